// The small products and the softmax of attention, on blocks that fit in L1 (a few dozen
// queries against a block of 64 cached positions of one KV head, head_dim 64-128). Matrices are
// row-major with a leading dimension (the distance between rows, in floats), so the queries of
// one head across a batch of tokens, or the heads of one token, are read in place.
#pragma once

#include <cstdint>

namespace sqllm {
namespace kernels {

// Scores: C[i][j] = alpha * sum_p A[i][p] * B[j][p] for i < m, j < n, p < k (overwrites C).
//   A: queries [m][k]; B: a block of keys [n][k]; C: scores [m][n].
using GemmNtF32Fn = void (*)(int64_t m, int64_t n, int64_t k, float alpha, const float *a, int64_t lda,
                             const float *b, int64_t ldb, float *c, int64_t ldc);
// Outputs: C[i][j] += sum_p A[i][p] * B[p][j] for i < m, j < n, p < k (adds to C).
//   A: attention weights [m][k]; B: a block of values [k][n]; C: outputs [m][n].
using GemmNnAddF32Fn = void (*)(int64_t m, int64_t n, int64_t k, const float *a, int64_t lda, const float *b,
                                int64_t ldb, float *c, int64_t ldc);
// In place: x[i] = exp(x[i] - max x) / sum_j exp(x[j] - max x) for i < n (n >= 1).
using SoftmaxF32Fn = void (*)(float *x, int64_t n);

// References: accumulate in double, std::exp.
void gemm_nt_f32_scalar(int64_t m, int64_t n, int64_t k, float alpha, const float *a, int64_t lda, const float *b,
                        int64_t ldb, float *c, int64_t ldc);
void gemm_nn_add_f32_scalar(int64_t m, int64_t n, int64_t k, const float *a, int64_t lda, const float *b, int64_t ldb,
                            float *c, int64_t ldc);
void softmax_f32_scalar(float *x, int64_t n);

#if defined(SQLLM_X86)
// Register tiles of 3 queries x 4 keys (scores) and 6 rows x 16 columns (outputs); tails by
// masked loads, so nothing past a row's last element is read. exp by range reduction and a
// polynomial (relative error below 2e-7 where the result is a normal float).
void gemm_nt_f32_avx2(int64_t m, int64_t n, int64_t k, float alpha, const float *a, int64_t lda, const float *b,
                      int64_t ldb, float *c, int64_t ldc);
void gemm_nn_add_f32_avx2(int64_t m, int64_t n, int64_t k, const float *a, int64_t lda, const float *b, int64_t ldb,
                          float *c, int64_t ldc);
void softmax_f32_avx2(float *x, int64_t n);
#endif

}  // namespace kernels
}  // namespace sqllm
