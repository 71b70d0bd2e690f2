// Matvec with an unquantized row-major weight matrix W [rows][cols] in fp32 or fp16 (the
// embeddings / lm_head kept as is, and the fp16 / fp32 baselines the LUT kernels are
// measured against).
#pragma once

#include <cstdint>

namespace sqllm {
namespace kernels {

// y[i] = sum_j W[i][j] * x[j] for the rows [row_begin, row_end) (overwrites y there).
//   *_matvec: x [cols] -> y [rows];  *_matmat: x [n][cols] -> y [n][rows]
// fp16 weights are IEEE half bit patterns.
using DenseMatvecF32Fn = void (*)(const float *w, int64_t rows, int64_t cols, const float *x, float *y,
                                  int64_t row_begin, int64_t row_end);
using DenseMatmatF32Fn = void (*)(const float *w, int64_t rows, int64_t cols, const float *x, int64_t n, float *y,
                                  int64_t row_begin, int64_t row_end);
using DenseMatvecF16Fn = void (*)(const uint16_t *w, int64_t rows, int64_t cols, const float *x, float *y,
                                  int64_t row_begin, int64_t row_end);
using DenseMatmatF16Fn = void (*)(const uint16_t *w, int64_t rows, int64_t cols, const float *x, int64_t n,
                                  float *y, int64_t row_begin, int64_t row_end);

// References: accumulate in double.
void dense_matvec_f32_scalar(const float *w, int64_t rows, int64_t cols, const float *x, float *y,
                             int64_t row_begin, int64_t row_end);
void dense_matmat_f32_scalar(const float *w, int64_t rows, int64_t cols, const float *x, int64_t n, float *y,
                             int64_t row_begin, int64_t row_end);
void dense_matvec_f16_scalar(const uint16_t *w, int64_t rows, int64_t cols, const float *x, float *y,
                             int64_t row_begin, int64_t row_end);
void dense_matmat_f16_scalar(const uint16_t *w, int64_t rows, int64_t cols, const float *x, int64_t n, float *y,
                             int64_t row_begin, int64_t row_end);

#if defined(SQLLM_X86)
void dense_matvec_f32_avx2(const float *w, int64_t rows, int64_t cols, const float *x, float *y,
                           int64_t row_begin, int64_t row_end);
void dense_matmat_f32_avx2(const float *w, int64_t rows, int64_t cols, const float *x, int64_t n, float *y,
                           int64_t row_begin, int64_t row_end);
void dense_matvec_f16_avx2(const uint16_t *w, int64_t rows, int64_t cols, const float *x, float *y,
                           int64_t row_begin, int64_t row_end);
void dense_matmat_f16_avx2(const uint16_t *w, int64_t rows, int64_t cols, const float *x, int64_t n, float *y,
                           int64_t row_begin, int64_t row_end);
#endif

}  // namespace kernels
}  // namespace sqllm
