// AVX2 CSR SpMV: 8 nonzeros at a time, x gathered with vgatherdps; the last 1-7 nonzeros of
// a row one at a time. Internal linkage only, for the reason given in lut_matvec_avx2.cpp.
#include <immintrin.h>

#include <cstdint>

#include "kernels/csr_spmv/csr_spmv.h"

namespace sqllm {
namespace kernels {
namespace {

// Rows per chunk in the batched version: the chunk's CSR entries stay in L1 while every
// activation of the batch passes over them.
constexpr int64_t kRowsPerChunk = 64;

inline float horizontal_sum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

float row_dot(const int32_t *colidx, const float *values, int64_t count, const float *x) {
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    int64_t k = 0;
    for (; k + 16 <= count; k += 16) {
        const __m256i i0 = _mm256_loadu_si256(reinterpret_cast<const __m256i *>(colidx + k));
        const __m256i i1 = _mm256_loadu_si256(reinterpret_cast<const __m256i *>(colidx + k + 8));
        acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(values + k), _mm256_i32gather_ps(x, i0, 4), acc0);
        acc1 = _mm256_fmadd_ps(_mm256_loadu_ps(values + k + 8), _mm256_i32gather_ps(x, i1, 4), acc1);
    }
    for (; k + 8 <= count; k += 8) {
        const __m256i i0 = _mm256_loadu_si256(reinterpret_cast<const __m256i *>(colidx + k));
        acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(values + k), _mm256_i32gather_ps(x, i0, 4), acc0);
    }
    // The last 1-7 (most rows of a 0.45% sparse part have fewer than 8): one by one, cheaper
    // than a masked gather and a horizontal sum.
    float tail = 0.0f;
    for (; k < count; k++) tail += values[k] * x[colidx[k]];
    return k >= 8 ? horizontal_sum(_mm256_add_ps(acc0, acc1)) + tail : tail;
}

}  // namespace

void csr_spmv_add_avx2(const CsrMatrixView &a, const float *x, float *y, int64_t row_begin, int64_t row_end) {
    for (int64_t i = row_begin; i < row_end; i++) {
        const int64_t begin = a.rowptr[i], end = a.rowptr[i + 1];
        if (begin < end) y[i] += row_dot(a.colidx + begin, a.values + begin, end - begin, x);
    }
}

void csr_spmm_add_avx2(const CsrMatrixView &a, const float *x, int64_t n, float *y, int64_t row_begin,
                       int64_t row_end) {
    for (int64_t chunk = row_begin; chunk < row_end; chunk += kRowsPerChunk) {
        const int64_t chunk_end = row_end - chunk < kRowsPerChunk ? row_end : chunk + kRowsPerChunk;
        for (int64_t t = 0; t < n; t++) csr_spmv_add_avx2(a, x + t * a.cols, y + t * a.rows, chunk, chunk_end);
    }
}

}  // namespace kernels
}  // namespace sqllm
