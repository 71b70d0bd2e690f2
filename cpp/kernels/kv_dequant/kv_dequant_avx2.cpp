// AVX2 KV dequantization. Compiled with -mavx2 -mfma -mf16c and run only when the CPU has
// them (dispatch.cpp); like every *_avx2.cpp file it uses no inline function from a shared
// header, so no AVX2 code can leak into the scalar path.
//
// Eight codes are `bits` whole bytes: they are read as one word, broadcast, and lane k
// shifted right by k*bits (vpsrlvd); vpermps then looks the low 3 bits of each lane up in a
// register of 8 levels (2-bit levels repeated twice). 4-bit codes look up the low and the
// high 8 levels and pick by bit 3, moved to the sign bit for vblendvps.
#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "kernels/kv_dequant/kv_dequant.h"

namespace sqllm {
namespace kernels {
namespace {

template <int kBits>
void dequant(const uint8_t *row, int64_t c0, int64_t n, const float *levels, const float *zero, const float *scale,
             int64_t step, float *out, int64_t *done) {
    __m256 low, high = _mm256_setzero_ps();
    if (kBits == 2) {
        const __m128 four = _mm_loadu_ps(levels);
        low = _mm256_set_m128(four, four);
    } else {
        low = _mm256_loadu_ps(levels);
        if (kBits == 4) high = _mm256_loadu_ps(levels + 8);
    }
    const __m256i shift = _mm256_setr_epi32(0, kBits, 2 * kBits, 3 * kBits, 4 * kBits, 5 * kBits, 6 * kBits, 7 * kBits);
    __m256 z = _mm256_set1_ps(zero[0]), s = _mm256_set1_ps(scale[0]);
    const uint8_t *p = row + c0 / 8 * kBits;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8, p += kBits) {
        uint32_t word = 0;
        std::memcpy(&word, p, kBits);
        const __m256i index = _mm256_srlv_epi32(_mm256_set1_epi32(int(word)), shift);
        __m256 level = _mm256_permutevar8x32_ps(low, index);
        if (kBits == 4)
            level = _mm256_blendv_ps(level, _mm256_permutevar8x32_ps(high, index),
                                     _mm256_castsi256_ps(_mm256_slli_epi32(index, 28)));
        if (step) {
            z = _mm256_loadu_ps(zero + i);
            s = _mm256_loadu_ps(scale + i);
        }
        _mm256_storeu_ps(out + i, _mm256_add_ps(z, _mm256_mul_ps(s, level)));
    }
    *done = i;
}

}  // namespace

void kv_dequant_avx2(const uint8_t *row, int64_t c0, int64_t n, int bits, const float *levels, const float *zero,
                     const float *scale, int64_t step, float *out) {
    int64_t done = 0;
    if (c0 % 8 == 0 && n > 0) {
        switch (bits) {
        case 2: dequant<2>(row, c0, n, levels, zero, scale, step, out, &done); break;
        case 3: dequant<3>(row, c0, n, levels, zero, scale, step, out, &done); break;
        case 4: dequant<4>(row, c0, n, levels, zero, scale, step, out, &done); break;
        default: break;
        }
    }
    if (done < n) kv_dequant_scalar(row, c0 + done, n - done, bits, levels, zero + done * step, scale + done * step, step, out + done);
}

}  // namespace kernels
}  // namespace sqllm
