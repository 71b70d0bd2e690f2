// AVX2 + FMA (+ F16C for fp16 weights) dense matvec. Internal linkage only, for the reason
// given in lut_matvec_avx2.cpp; scalar fp16 conversions use _cvtsh_ss, not fp16.h.
#include <immintrin.h>

#include <cstdint>

#include "kernels/dense_matvec/dense_matvec.h"

namespace sqllm {
namespace kernels {
namespace {

constexpr int kMaxTokens = 8;  // activations that share one load of the weights in *_matmat

inline float horizontal_sum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

inline __m256 load8(const float *w) { return _mm256_loadu_ps(w); }
inline __m256 load8(const uint16_t *w) { return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i *>(w))); }
inline float load1(const float *w) { return *w; }
inline float load1(const uint16_t *w) { return _cvtsh_ss(*w); }

template <class T>
float row_dot(const T *w, const float *x, int64_t cols) {
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps(), acc2 = _mm256_setzero_ps(), acc3 = _mm256_setzero_ps();
    int64_t j = 0;
    for (; j + 32 <= cols; j += 32) {
        acc0 = _mm256_fmadd_ps(load8(w + j), _mm256_loadu_ps(x + j), acc0);
        acc1 = _mm256_fmadd_ps(load8(w + j + 8), _mm256_loadu_ps(x + j + 8), acc1);
        acc2 = _mm256_fmadd_ps(load8(w + j + 16), _mm256_loadu_ps(x + j + 16), acc2);
        acc3 = _mm256_fmadd_ps(load8(w + j + 24), _mm256_loadu_ps(x + j + 24), acc3);
    }
    for (; j + 8 <= cols; j += 8) acc0 = _mm256_fmadd_ps(load8(w + j), _mm256_loadu_ps(x + j), acc0);
    float sum = horizontal_sum(_mm256_add_ps(_mm256_add_ps(acc0, acc1), _mm256_add_ps(acc2, acc3)));
    for (; j < cols; j++) sum += load1(w + j) * x[j];
    return sum;
}

template <class T>
void matvec(const T *w, int64_t cols, const float *x, float *y, int64_t row_begin, int64_t row_end) {
    for (int64_t i = row_begin; i < row_end; i++) y[i] = row_dot(w + i * cols, x, cols);
}

template <class T, int kTokens>
void matmat_row(const T *row, int64_t rows, int64_t cols, const float *x, float *y, int64_t i) {
    // The fixed-count loops must be unrolled for the accumulators to stay in registers.
    __m256 acc[kTokens];
#pragma GCC unroll 8
    for (int t = 0; t < kTokens; t++) acc[t] = _mm256_setzero_ps();
    int64_t j = 0;
    for (; j + 8 <= cols; j += 8) {
        const __m256 wv = load8(row + j);
#pragma GCC unroll 8
        for (int t = 0; t < kTokens; t++) acc[t] = _mm256_fmadd_ps(wv, _mm256_loadu_ps(x + t * cols + j), acc[t]);
    }
    for (int t = 0; t < kTokens; t++) {
        float sum = horizontal_sum(acc[t]);
        for (int64_t k = j; k < cols; k++) sum += load1(row + k) * x[t * cols + k];
        y[t * rows + i] = sum;
    }
}

template <class T>
void matmat(const T *w, int64_t rows, int64_t cols, const float *x, int64_t n, float *y, int64_t row_begin,
            int64_t row_end) {
    for (int64_t i = row_begin; i < row_end; i++) {
        const T *row = w + i * cols;
        for (int64_t t0 = 0; t0 < n; t0 += kMaxTokens) {
            const float *xt = x + t0 * cols;
            float *yt = y + t0 * rows;
            switch (n - t0 < kMaxTokens ? n - t0 : kMaxTokens) {
            case 1: matmat_row<T, 1>(row, rows, cols, xt, yt, i); break;
            case 2: matmat_row<T, 2>(row, rows, cols, xt, yt, i); break;
            case 3: matmat_row<T, 3>(row, rows, cols, xt, yt, i); break;
            case 4: matmat_row<T, 4>(row, rows, cols, xt, yt, i); break;
            case 5: matmat_row<T, 5>(row, rows, cols, xt, yt, i); break;
            case 6: matmat_row<T, 6>(row, rows, cols, xt, yt, i); break;
            case 7: matmat_row<T, 7>(row, rows, cols, xt, yt, i); break;
            default: matmat_row<T, 8>(row, rows, cols, xt, yt, i); break;
            }
        }
    }
}

}  // namespace

void dense_matvec_f32_avx2(const float *w, int64_t /*rows*/, int64_t cols, const float *x, float *y,
                           int64_t row_begin, int64_t row_end) {
    matvec(w, cols, x, y, row_begin, row_end);
}

void dense_matmat_f32_avx2(const float *w, int64_t rows, int64_t cols, const float *x, int64_t n, float *y,
                           int64_t row_begin, int64_t row_end) {
    if (n == 1) return matvec(w, cols, x, y, row_begin, row_end);
    matmat(w, rows, cols, x, n, y, row_begin, row_end);
}

void dense_matvec_f16_avx2(const uint16_t *w, int64_t /*rows*/, int64_t cols, const float *x, float *y,
                           int64_t row_begin, int64_t row_end) {
    matvec(w, cols, x, y, row_begin, row_end);
}

void dense_matmat_f16_avx2(const uint16_t *w, int64_t rows, int64_t cols, const float *x, int64_t n, float *y,
                           int64_t row_begin, int64_t row_end) {
    if (n == 1) return matvec(w, cols, x, y, row_begin, row_end);
    matmat(w, rows, cols, x, n, y, row_begin, row_end);
}

}  // namespace kernels
}  // namespace sqllm
