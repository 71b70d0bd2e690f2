// Prompt batches as an integer GEMM: y [n][rows] = W x_t for many tokens at once, close enough
// to the exact product to be the default for batches (docs/RESULTS.md gives the perplexity).
//
// Each LUT is requantized to 2048 evenly spaced 16-bit levels (11 bits: far finer than the
// spacing of a 2- to 6-bit LUT), and each activation to 14-bit integers with one scale per
// block of 512 columns. For a row i, group g with levels u[k] in [0, 2047], lo and step
// (lut[k] ~ lo + step * u[k]), and token t's blocks b with scales s_b and a[j] = round(x[j] / s_b):
//
//     y[t][i] = sum_g sum_{b} s_b * ( lo_g * A_{g,b} + step_g * U_{g,b} ),
//
// over the blocks b that meet group g, with A_{g,b} = sum_{j in g and b} a[j] and U_{g,b} =
// sum_{j in g and b} u[code(i, j)] * a[j], both exact integers. A 32-bit sum holds 128 products
// |u * a| <= 2047 * 8191 (2^31 / 2^24): a kernel that spreads a block's 512 columns over 16
// int32 lanes (32 products each) must add the lanes in float. The s_b * A terms need only
// per-token prefix sums.
#pragma once

#include <cstdint>

#include "kernels/lut_matvec/lut_matvec.h"

namespace sqllm {
namespace kernels {

constexpr int kQ16Levels = 2048;         // LUT levels 0 .. 2047
constexpr int kQ16Max = 8191;            // |a| <= 8191
constexpr int64_t kQ16Chunk = 128;       // activations are padded with zeros to a multiple of this
constexpr int64_t kQ16Block = 512;       // activation columns per scale (a multiple of kQ16Chunk)

// The requantized LUT of a matrix: [rows][groups] tables of 1 << bits levels, lo and step.
struct LutQ16Tables {
    const int16_t *levels = nullptr;
    const float *lo = nullptr;
    const float *step = nullptr;
};

// n activations quantized for the kernels.
//   q       [chunks][n][128] int16: columns 128c .. 128c + 127 of token t at (c * n + t) * 128, so
//           that a kernel finds a chunk of consecutive tokens at fixed offsets; chunks =
//           padded / 128, padded = q16_padded(cols); columns >= cols are 0.
//   scales  [n][blocks] s_b, blocks = ceil(padded / 512).
//   prefix  [n][chunks + 1] prefix sums over the chunks of s_b * (the chunk's sum of a) (double).
struct Q16Activations {
    const int16_t *q = nullptr;
    const float *scales = nullptr;
    const double *prefix = nullptr;
    int64_t n = 0;
    int64_t cols = 0;
    int64_t padded = 0;
};

inline int64_t q16_padded(int64_t cols) { return (cols + kQ16Chunk - 1) / kQ16Chunk * kQ16Chunk; }
inline int64_t q16_blocks(int64_t cols) { return (q16_padded(cols) + kQ16Block - 1) / kQ16Block; }
// The matrices the kernels take: 2 to 6 bits, one LUT per row or groups of a multiple of 128 columns.
bool q16_supported(const LutMatrixView &w);

// Levels, lo and step for every (row, group) of w: lo = min, step = (max - min) / 2047 and
// level k = round((lut[k] - lo) / step) (0 when all entries are equal).
void q16_requantize_lut(const LutMatrixView &w, int16_t *levels, float *lo, float *step);

// Quantizes tokens [t_begin, t_end) of x [n][cols] into the buffers of all n (sizes above):
// s_b = max |x| / 8191 over the block, a[j] = round-to-nearest-even(x[j] * (8191 / max)); a block
// holding a NaN or an infinity gets a = 0 and s_b = NaN, so that the products are NaN as fp32's are.
// Calls on disjoint token ranges may run concurrently.
void q16_quantize(const float *x, int64_t n, int64_t cols, int64_t t_begin, int64_t t_end, int16_t *q, float *scales,
                  double *prefix);

// y [n][rows] = the formula above over rows [row_begin, row_end), overwriting y there. The
// sparse part of w is not applied (ops.h adds it with the fp32 activations).
using LutGemmQ16Fn = void (*)(const LutMatrixView &w, const LutQ16Tables &t, const Q16Activations &a, float *y,
                              int64_t row_begin, int64_t row_end);

// Reference: each code decoded on its own, sums in double.
void lut_gemm_q16_scalar(const LutMatrixView &w, const LutQ16Tables &t, const Q16Activations &a, float *y,
                         int64_t row_begin, int64_t row_end);

#if defined(SQLLM_X86)
// AVX-512 VBMI + VNNI: the codes unpacked as lut_matvec_q8's kernel does, widened to words and
// looked up by vpermw; vpdpwssd multiplies and adds for tiles of up to 16 tokens, so that each
// decoded step of a row serves all of them.
void lut_gemm_q16_avx512(const LutMatrixView &w, const LutQ16Tables &t, const Q16Activations &a, float *y,
                         int64_t row_begin, int64_t row_end);
#endif

}  // namespace kernels
}  // namespace sqllm
