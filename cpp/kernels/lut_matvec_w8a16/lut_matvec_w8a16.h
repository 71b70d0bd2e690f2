// Single tokens of the default path: y = W x with byte LUT levels (levels u[k] in [0, 255],
// lut[k] ~ lo + step * u[k]) and the batch GEMM's 14-bit activations (lut_gemm_q16.h: one scale
// per 512 columns), so that a byte shuffle looks the weights up and an int8 multiply-add
// consumes 64 of them per instruction, as on the int8 path, while the activations keep 14 bits.
// An 8-bit LUT (SPEC §4) serves with its own levels, so the weights are exact up to the fp16
// rounding of the LUT's values; an fp16 LUT is requantized to 256 levels (w8a16_requantize_lut).
// An activation a in [-8191, 8191] is split into two int8 planes,
//
//     a = 128 * hi + lo,  hi = a >> 7 in [-64, 63],  lo = a & 127 in [0, 127],
//
// and each plane meets the levels in its own int32 sum: U = 128 * U_hi + U_lo exactly. With the
// notation of lut_gemm_q16.h,
//
//     y[i] = sum_g sum_b s_b * ( lo_g * A_{g,b} + step_g * U_{g,b} ).
//
// A batch of n tokens reads the matrix n times: batches belong to the GEMM.
#pragma once

#include <cstdint>

#include "kernels/lut_gemm_q16/lut_gemm_q16.h"
#include "kernels/lut_matvec_q8/lut_matvec_q8.h"

namespace sqllm {
namespace kernels {

// Activations quantized by q16_quantize, split into planes: hi and lo [n][padded], token after
// token in natural column order; scales and prefix are those of the Q16Activations.
struct W8A16Activations {
    const int8_t *hi = nullptr;
    const int8_t *lo = nullptr;
    const float *scales = nullptr;
    const double *prefix = nullptr;
    int64_t n = 0;
    int64_t cols = 0;
    int64_t padded = 0;
};

constexpr int kW8Levels = 256;  // levels 0 .. 255

// Levels, lo and step for every (row, group) of w: lo = min, step = (max - min) / 255 and
// level k = round((lut[k] - lo) / step) (0 when all entries are equal).
void w8a16_requantize_lut(const LutMatrixView &w, uint8_t *levels, float *lo, float *step);

// Splits a's integers into hi and lo (a.n * a.padded bytes each); the result refers to a's scales and prefix.
W8A16Activations w8a16_split(const Q16Activations &a, int8_t *hi, int8_t *lo);

// y [n][rows] = the formula above over rows [row_begin, row_end), overwriting y there, for a
// matrix that q8_supported takes, with its levels in t (LutQ8Tables, here in [0, 255]). The sparse part of w is not
// applied (ops.h adds it with the fp32 activations).
using LutMatvecW8A16Fn = void (*)(const LutMatrixView &w, const LutQ8Tables &t, const W8A16Activations &a,
                                  float *y, int64_t row_begin, int64_t row_end);

// Reference: each code decoded on its own, sums in int64 and double.
void lut_matvec_w8a16_scalar(const LutMatrixView &w, const LutQ8Tables &t, const W8A16Activations &a, float *y,
                             int64_t row_begin, int64_t row_end);

#if defined(SQLLM_X86)
// AVX-512 VBMI + VNNI: codes unpacked and looked up as lut_matvec_q8's kernel does, and two
// vpdpbusd per 64 weights (one per plane) into int32 sums that span a 512-column block.
void lut_matvec_w8a16_avx512(const LutMatrixView &w, const LutQ8Tables &t, const W8A16Activations &a, float *y,
                             int64_t row_begin, int64_t row_end);
#endif

}  // namespace kernels
}  // namespace sqllm
