// AVX2 + FMA attention products and softmax. Internal linkage only, for the reason given in
// lut_matvec_avx2.cpp.
#include <immintrin.h>

#include <cmath>
#include <cstdint>

#include "kernels/attention/attention.h"

namespace sqllm {
namespace kernels {
namespace {

// Lanes [0, count) set (count in [0, 8]).
inline __m256i lanes_below(int64_t count) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(int(count)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

// R rows of A against J rows of B: R x 4 accumulators over p, reduced at the end four at a time.
template <int R, int J>
void nt_tile(int64_t k, float alpha, const float *a, int64_t lda, const float *b, int64_t ldb, float *c, int64_t ldc,
             __m256i k_tail) {
    __m256 acc[R][4];
#pragma GCC unroll 4
    for (int r = 0; r < R; r++)
#pragma GCC unroll 4
        for (int j = 0; j < 4; j++) acc[r][j] = _mm256_setzero_ps();
    auto step = [&](int64_t p, bool tail) {
        __m256 av[R];
#pragma GCC unroll 4
        for (int r = 0; r < R; r++) av[r] = tail ? _mm256_maskload_ps(a + r * lda + p, k_tail) : _mm256_loadu_ps(a + r * lda + p);
#pragma GCC unroll 4
        for (int j = 0; j < J; j++) {
            const __m256 bv = tail ? _mm256_maskload_ps(b + j * ldb + p, k_tail) : _mm256_loadu_ps(b + j * ldb + p);
#pragma GCC unroll 4
            for (int r = 0; r < R; r++) acc[r][j] = _mm256_fmadd_ps(av[r], bv, acc[r][j]);
        }
    };
    int64_t p = 0;
    for (; p + 8 <= k; p += 8) step(p, false);
    if (p < k) step(p, true);
    const __m128 scale = _mm_set1_ps(alpha);
#pragma GCC unroll 4
    for (int r = 0; r < R; r++) {
        // hadd(hadd(a0, a1), hadd(a2, a3)) holds the four sums' low and high halves.
        const __m256 h = _mm256_hadd_ps(_mm256_hadd_ps(acc[r][0], acc[r][1]), _mm256_hadd_ps(acc[r][2], acc[r][3]));
        const __m128 s = _mm_mul_ps(scale, _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1)));
        if (J == 4) {
            _mm_storeu_ps(c + r * ldc, s);
        } else {
            alignas(16) float out[4];
            _mm_store_ps(out, s);
            for (int j = 0; j < J; j++) c[r * ldc + j] = out[j];
        }
    }
}

template <int R>
void nt_rows(int64_t n, int64_t k, float alpha, const float *a, int64_t lda, const float *b, int64_t ldb, float *c,
             int64_t ldc, __m256i k_tail) {
    for (int64_t j = 0; j < n; j += 4) {
        const float *bj = b + j * ldb;
        float *cj = c + j;
        switch (n - j < 4 ? n - j : 4) {
        case 1: nt_tile<R, 1>(k, alpha, a, lda, bj, ldb, cj, ldc, k_tail); break;
        case 2: nt_tile<R, 2>(k, alpha, a, lda, bj, ldb, cj, ldc, k_tail); break;
        case 3: nt_tile<R, 3>(k, alpha, a, lda, bj, ldb, cj, ldc, k_tail); break;
        default: nt_tile<R, 4>(k, alpha, a, lda, bj, ldb, cj, ldc, k_tail); break;
        }
    }
}

// R rows of C, V vectors of 8 columns (the last one masked when kMasked): each B row loaded
// once per tile, each A element broadcast once.
template <int R, int V, bool kMasked>
void nn_tile(int64_t k, const float *a, int64_t lda, const float *b, int64_t ldb, float *c, int64_t ldc,
             __m256i n_tail) {
    auto load = [&](const float *p, int v) {
        return kMasked && v == V - 1 ? _mm256_maskload_ps(p, n_tail) : _mm256_loadu_ps(p);
    };
    __m256 acc[R][V];
#pragma GCC unroll 6
    for (int r = 0; r < R; r++)
#pragma GCC unroll 2
        for (int v = 0; v < V; v++) acc[r][v] = load(c + r * ldc + 8 * v, v);
    for (int64_t p = 0; p < k; p++) {
        __m256 bv[V];
#pragma GCC unroll 2
        for (int v = 0; v < V; v++) bv[v] = load(b + p * ldb + 8 * v, v);
#pragma GCC unroll 6
        for (int r = 0; r < R; r++) {
            const __m256 ar = _mm256_broadcast_ss(a + r * lda + p);
#pragma GCC unroll 2
            for (int v = 0; v < V; v++) acc[r][v] = _mm256_fmadd_ps(ar, bv[v], acc[r][v]);
        }
    }
#pragma GCC unroll 6
    for (int r = 0; r < R; r++)
#pragma GCC unroll 2
        for (int v = 0; v < V; v++) {
            if (kMasked && v == V - 1) _mm256_maskstore_ps(c + r * ldc + 8 * v, n_tail, acc[r][v]);
            else _mm256_storeu_ps(c + r * ldc + 8 * v, acc[r][v]);
        }
}

template <int V, bool kMasked>
void nn_rows(int64_t m, int64_t k, const float *a, int64_t lda, const float *b, int64_t ldb, float *c, int64_t ldc,
             __m256i n_tail) {
    for (int64_t i = 0; i < m; i += 6) {
        const float *ai = a + i * lda;
        float *ci = c + i * ldc;
        switch (m - i < 6 ? m - i : 6) {
        case 1: nn_tile<1, V, kMasked>(k, ai, lda, b, ldb, ci, ldc, n_tail); break;
        case 2: nn_tile<2, V, kMasked>(k, ai, lda, b, ldb, ci, ldc, n_tail); break;
        case 3: nn_tile<3, V, kMasked>(k, ai, lda, b, ldb, ci, ldc, n_tail); break;
        case 4: nn_tile<4, V, kMasked>(k, ai, lda, b, ldb, ci, ldc, n_tail); break;
        case 5: nn_tile<5, V, kMasked>(k, ai, lda, b, ldb, ci, ldc, n_tail); break;
        default: nn_tile<6, V, kMasked>(k, ai, lda, b, ldb, ci, ldc, n_tail); break;
        }
    }
}

// exp(x) for x <= 0 (a softmax argument): x = n ln2 + r with |r| <= ln2 / 2, exp(r) by a
// degree-6 polynomial (Cephes' expf), times 2^n built in the exponent field; 0 below the
// smallest normal float's logarithm.
inline __m256 exp_nonpositive(__m256 x) {
    const __m256 underflow = _mm256_cmp_ps(x, _mm256_set1_ps(-87.33f), _CMP_LT_OQ);
    x = _mm256_max_ps(x, _mm256_set1_ps(-87.33f));
    const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                     _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 y = _mm256_set1_ps(1.9875691500e-4f);
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(1.3981999507e-3f));
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(8.3334519073e-3f));
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(4.1665795894e-2f));
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(1.6666665459e-1f));
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(5.0000001201e-1f));
    y = _mm256_fmadd_ps(y, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
    const __m256i pow2n = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_andnot_ps(underflow, _mm256_mul_ps(y, _mm256_castsi256_ps(pow2n)));
}

inline float horizontal_max(__m256 v) {
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    return _mm_cvtss_f32(_mm_max_ss(m, _mm_movehdup_ps(m)));
}

inline float horizontal_sum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    return _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)));
}

}  // namespace

void gemm_nt_f32_avx2(int64_t m, int64_t n, int64_t k, float alpha, const float *a, int64_t lda, const float *b,
                      int64_t ldb, float *c, int64_t ldc) {
    const __m256i k_tail = lanes_below(k % 8);
    for (int64_t i = 0; i < m; i += 3) {
        const float *ai = a + i * lda;
        float *ci = c + i * ldc;
        switch (m - i < 3 ? m - i : 3) {
        case 1: nt_rows<1>(n, k, alpha, ai, lda, b, ldb, ci, ldc, k_tail); break;
        case 2: nt_rows<2>(n, k, alpha, ai, lda, b, ldb, ci, ldc, k_tail); break;
        default: nt_rows<3>(n, k, alpha, ai, lda, b, ldb, ci, ldc, k_tail); break;
        }
    }
}

void gemm_nn_add_f32_avx2(int64_t m, int64_t n, int64_t k, const float *a, int64_t lda, const float *b, int64_t ldb,
                          float *c, int64_t ldc) {
    int64_t j = 0;
    for (; j + 16 <= n; j += 16) nn_rows<2, false>(m, k, a, lda, b + j, ldb, c + j, ldc, lanes_below(8));
    const int64_t rest = n - j;
    if (rest > 8) nn_rows<2, true>(m, k, a, lda, b + j, ldb, c + j, ldc, lanes_below(rest - 8));
    else if (rest == 8) nn_rows<1, false>(m, k, a, lda, b + j, ldb, c + j, ldc, lanes_below(8));
    else if (rest > 0) nn_rows<1, true>(m, k, a, lda, b + j, ldb, c + j, ldc, lanes_below(rest));
}

void softmax_f32_avx2(float *x, int64_t n) {
    const int64_t full = n - n % 8;
    const __m256i tail = lanes_below(n % 8);
    const __m256 neg_inf = _mm256_set1_ps(-INFINITY);
    __m256 maxv = neg_inf;
    for (int64_t i = 0; i < full; i += 8) maxv = _mm256_max_ps(maxv, _mm256_loadu_ps(x + i));
    if (full < n) maxv = _mm256_max_ps(maxv, _mm256_blendv_ps(neg_inf, _mm256_maskload_ps(x + full, tail), _mm256_castsi256_ps(tail)));
    const __m256 top = _mm256_set1_ps(horizontal_max(maxv));
    __m256 sum = _mm256_setzero_ps();
    for (int64_t i = 0; i < full; i += 8) {
        const __m256 e = exp_nonpositive(_mm256_sub_ps(_mm256_loadu_ps(x + i), top));
        _mm256_storeu_ps(x + i, e);
        sum = _mm256_add_ps(sum, e);
    }
    if (full < n) {
        const __m256 e = _mm256_and_ps(_mm256_castsi256_ps(tail), exp_nonpositive(_mm256_sub_ps(_mm256_maskload_ps(x + full, tail), top)));
        _mm256_maskstore_ps(x + full, tail, e);
        sum = _mm256_add_ps(sum, e);
    }
    const __m256 inv = _mm256_set1_ps(1.0f / horizontal_sum(sum));
    for (int64_t i = 0; i < full; i += 8) _mm256_storeu_ps(x + i, _mm256_mul_ps(_mm256_loadu_ps(x + i), inv));
    if (full < n) _mm256_maskstore_ps(x + full, tail, _mm256_mul_ps(_mm256_maskload_ps(x + full, tail), inv));
}

}  // namespace kernels
}  // namespace sqllm
