// Streaming sum with enough independent accumulators to keep several cache lines in
// flight (internal linkage only, see lut_matvec_avx2.cpp).
#include <immintrin.h>

#include <cstdint>

#include "kernels/stream_read/stream_read.h"

namespace sqllm {
namespace kernels {

double sum_f32_avx2(const float *x, int64_t n) {
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps(), a2 = _mm256_setzero_ps(), a3 = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        a0 = _mm256_add_ps(a0, _mm256_loadu_ps(x + i));
        a1 = _mm256_add_ps(a1, _mm256_loadu_ps(x + i + 8));
        a2 = _mm256_add_ps(a2, _mm256_loadu_ps(x + i + 16));
        a3 = _mm256_add_ps(a3, _mm256_loadu_ps(x + i + 24));
    }
    alignas(32) float lanes[8];
    _mm256_store_ps(lanes, _mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
    double sum = 0.0;
    for (float v : lanes) sum += v;
    for (; i < n; i++) sum += x[i];
    return sum;
}

}  // namespace kernels
}  // namespace sqllm
