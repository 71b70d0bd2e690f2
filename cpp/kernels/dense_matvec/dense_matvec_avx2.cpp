// AVX2 + FMA (+ F16C for fp16 weights) dense matvec. Internal linkage only, for the reason
// given in lut_matvec_avx2.cpp; scalar fp16 conversions use _cvtsh_ss, not fp16.h.
#include <immintrin.h>

#include <cstdint>

#include "kernels/dense_matvec/dense_matvec.h"

namespace sqllm {
namespace kernels {
namespace {

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

// Rows [i, i + R) against tokens [t, t + N): R x N accumulators over the columns, so that each
// 8 columns of a weight row are loaded once for N tokens and each 8 of a token's activations
// once for R rows. The sums of 4 rows are reduced together and stored side by side.
template <class T, int R, int N>
void matmat_tile(const T *w, int64_t rows, int64_t cols, const float *x, float *y, int64_t i, int64_t t) {
    __m256 acc[N][4];
#pragma GCC unroll 3
    for (int k = 0; k < N; k++)
#pragma GCC unroll 4
        for (int r = 0; r < 4; r++) acc[k][r] = _mm256_setzero_ps();
    const T *row = w + i * cols;
    const float *xt = x + t * cols;
    int64_t j = 0;
    for (; j + 8 <= cols; j += 8) {
        __m256 xv[N];
#pragma GCC unroll 3
        for (int k = 0; k < N; k++) xv[k] = _mm256_loadu_ps(xt + k * cols + j);
#pragma GCC unroll 4
        for (int r = 0; r < R; r++) {
            const __m256 wv = load8(row + r * cols + j);
#pragma GCC unroll 3
            for (int k = 0; k < N; k++) acc[k][r] = _mm256_fmadd_ps(wv, xv[k], acc[k][r]);
        }
    }
#pragma GCC unroll 3
    for (int k = 0; k < N; k++) {
        const __m256 h = _mm256_hadd_ps(_mm256_hadd_ps(acc[k][0], acc[k][1]), _mm256_hadd_ps(acc[k][2], acc[k][3]));
        alignas(16) float sums[4];
        _mm_store_ps(sums, _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1)));
        for (int r = 0; r < R; r++) {
            float sum = sums[r];
            for (int64_t c = j; c < cols; c++) sum += load1(row + r * cols + c) * xt[k * cols + c];
            y[(t + k) * rows + i + r] = sum;
        }
    }
}

template <class T, int R>
void matmat_rows(const T *w, int64_t rows, int64_t cols, const float *x, int64_t n, float *y, int64_t i) {
    for (int64_t t = 0; t < n; t += 3) {
        switch (n - t < 3 ? n - t : 3) {
        case 1: matmat_tile<T, R, 1>(w, rows, cols, x, y, i, t); break;
        case 2: matmat_tile<T, R, 2>(w, rows, cols, x, y, i, t); break;
        default: matmat_tile<T, R, 3>(w, rows, cols, x, y, i, t); break;
        }
    }
}

template <class T>
void matmat(const T *w, int64_t rows, int64_t cols, const float *x, int64_t n, float *y, int64_t row_begin,
            int64_t row_end) {
    for (int64_t i = row_begin; i < row_end; i += 4) {
        switch (row_end - i < 4 ? row_end - i : 4) {
        case 1: matmat_rows<T, 1>(w, rows, cols, x, n, y, i); break;
        case 2: matmat_rows<T, 2>(w, rows, cols, x, n, y, i); break;
        case 3: matmat_rows<T, 3>(w, rows, cols, x, n, y, i); break;
        default: matmat_rows<T, 4>(w, rows, cols, x, n, y, i); break;
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
