// The int8 variant of the LUT matvec (the runtime's `int8` mode): the activations are
// quantized to int8 in blocks of 32 columns and each LUT to 255 evenly spaced levels, so that
// a SIMD byte shuffle turns codes straight into weights and an integer multiply-add
// consumes 32 (AVX2) or 64 (AVX-512 VNNI) of them per instruction, as GGUF's IQ4_NL path
// does. The exact path (lut_matvec.h) stays the default and the reference.
//
// For a row i, group g with levels u[k] in [0, 254], lo and step (lut[k] ~ lo + step * u[k]),
// and an activation x quantized per 32-column block b to a[j] = round(x[j] / s_b), |a| <= 127:
//
//     y[i] = sum_g ( lo_g * sum_{b in g} s_b * A_b  +  step_g * sum_{b in g} s_b * U_b )
//
// where A_b = sum_{j in b} a[j] and U_b = sum_{j in b} u[code(i, j)] * a[j] are exact integers.
// The first term needs only the prefix sums of s_b * A_b, computed once per activation.
// Matrices of 2 to 6 bits (up to the kernel table's q8_max_bits) with one LUT per row, or groups
// of a multiple of 128 columns, take this path (`q8_supported`); the others use the exact kernels.
#pragma once

#include <cstdint>

#include "kernels/lut_matvec/lut_matvec.h"

namespace sqllm {
namespace kernels {

constexpr int64_t kQ8Block = 32;   // activation columns per int8 scale
// LUT levels 0..254: 8-bit resolution, and u - 127 fits a signed byte with |u - 127| <= 127,
// which the AVX2 kernel needs (vpmaddubsw of |v| and +-a cannot saturate).
constexpr int kQ8Levels = 255;
constexpr int64_t kQ8Chunk = 128;  // activations are padded with zeros to a multiple of this

// The requantized LUT of a matrix, [rows][groups] entries of each array (levels: 1 << bits
// bytes per entry). Built once per matrix by q8_requantize_lut.
struct LutQ8Tables {
    const uint8_t *levels = nullptr;
    const float *lo = nullptr;
    const float *step = nullptr;
};

// n activations quantized for one kernel (its column order) and one code width.
//   q       [n][padded] int8, padded = round_up(cols, 128); columns >= cols are 0. Within
//           each 64-column chunk, position p holds column order[p] of the kernel's order.
//   scales  [n][blocks * 8] each block's scale s_b repeated 8 times (blocks = padded / 32).
//   prefix  [n][blocks + 1] prefix sums of s_b * A_b (double), prefix[0] = 0.
struct Q8Activations {
    const int8_t *q = nullptr;
    const float *scales = nullptr;
    const double *prefix = nullptr;
    int64_t n = 0;
    int64_t cols = 0;
    int64_t padded = 0;
};

bool q8_supported(const LutMatrixView &w, int max_bits);
inline int64_t q8_padded(int64_t cols) { return (cols + kQ8Chunk - 1) / kQ8Chunk * kQ8Chunk; }

// Levels, lo and step for every (row, group) of w: lo = min, step = (max - min) / 254 and
// level k = round((lut[k] - lo) / step) (0 when all entries are equal).
void q8_requantize_lut(const LutMatrixView &w, uint8_t *levels, float *lo, float *step);

// Quantizes x [n][cols] into the buffers (sizes above): s_b = max |x| / 127 over the block,
// a[j] = round-to-nearest-even(x[j] * (127 / max)); a block holding a NaN or an infinity gets
// a = 0 and s_b = NaN, so that the products are NaN as fp32's are. `order` (64 entries, or
// nullptr for the natural order) is the kernel's column order within a 64-column chunk.
void q8_quantize(const float *x, int64_t n, int64_t cols, const uint8_t *order, int8_t *q, float *scales,
                 double *prefix);

// y [n][rows] = the formula above over rows [row_begin, row_end), overwriting y there.
// The sparse part of w is not applied (ops.h adds it with the fp32 activations).
using LutMatmatQ8Fn = void (*)(const LutMatrixView &w, const LutQ8Tables &t, const Q8Activations &a, float *y,
                               int64_t row_begin, int64_t row_end);
// The column order a kernel wants for `bits` (64 entries), or nullptr for the natural order.
using Q8OrderFn = const uint8_t *(*)(int bits);

// Reference: each code decoded on its own, sums in double.
void lut_matmat_q8_scalar(const LutMatrixView &w, const LutQ8Tables &t, const Q8Activations &a, float *y,
                          int64_t row_begin, int64_t row_end);
const uint8_t *q8_order_natural(int bits);

#if defined(SQLLM_X86)
// AVX2: vpshufb looks the levels up, vpmaddubsw + vpmaddwd multiply and add.
void lut_matmat_q8_avx2(const LutMatrixView &w, const LutQ8Tables &t, const Q8Activations &a, float *y,
                        int64_t row_begin, int64_t row_end);
const uint8_t *q8_order_avx2(int bits);
// AVX-512 VBMI + VNNI: vpermb spreads the code bytes, vpmultishiftqb extracts the codes,
// vpermb looks the levels up and vpdpbusd multiplies and adds; natural column order.
void lut_matmat_q8_avx512(const LutMatrixView &w, const LutQ8Tables &t, const Q8Activations &a, float *y,
                          int64_t row_begin, int64_t row_end);
#endif

}  // namespace kernels
}  // namespace sqllm
