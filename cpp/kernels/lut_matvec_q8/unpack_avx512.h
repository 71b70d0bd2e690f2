// Code unpacking shared by the AVX-512 LUT kernels (lut_matvec_q8_avx512.cpp,
// lut_gemm_q16_avx512.cpp, lut_matvec_w8a16_avx512.cpp); include it only from files compiled
// with the AVX-512 flags.
//
// A step is 128 columns, 16 * bits bytes of codes (2 to 6 bits: 32 to 96 bytes), read with
// masked loads (so never past the matrix) into one register, or two above 64 bytes. For each
// half of the step, vpermb (vpermi2b across the two registers) gives qword q the bytes that
// hold codes 8q..8q+7, and vpmultishiftqb moves code k of the qword to the low bits of byte k.
// The bits above the code are left as they are: the look-ups that follow use only the low bits.
#pragma once

#include <immintrin.h>

#include <cstdint>
#include <cstring>

namespace sqllm {
namespace kernels {
namespace {

constexpr int64_t kUnpackStep = 128;

inline __mmask64 first_bytes(int64_t n) {
    return n >= 64 ? ~__mmask64(0) : n <= 0 ? __mmask64(0) : (__mmask64(1) << n) - 1;
}

template <int kBits>
struct UnpackCodes {
    static constexpr int64_t kStepBytes = kUnpackStep * kBits / 8;
    __m512i spread_first, spread_second, control;
    UnpackCodes() {
        alignas(64) uint8_t first[64], second[64], shifts[64];
        for (int q = 0; q < 8; q++)
            for (int m = 0; m < 8; m++) {
                first[8 * q + m] = uint8_t(m < kBits ? kBits * q + m : 0);
                second[8 * q + m] = uint8_t(m < kBits ? 8 * kBits + kBits * q + m : 0);
                shifts[8 * q + m] = uint8_t(kBits * m);
            }
        spread_first = _mm512_load_si512(first);
        spread_second = _mm512_load_si512(second);
        control = _mm512_load_si512(shifts);
    }
    // The step at p, of which `left` bytes may be read (fewer than kStepBytes only at the end of
    // the matrix): c[0] gets columns 0-63, c[1] columns 64-127, code k in the low bits of byte k.
    void unpack(const uint8_t *p, int64_t left, __m512i c[2]) const {
        const __m512i src = _mm512_maskz_loadu_epi8(first_bytes(left), p);
        const __m512i high = kStepBytes > 64 ? _mm512_maskz_loadu_epi8(first_bytes(left - 64), p + 64)
                                             : _mm512_setzero_si512();
        c[0] = _mm512_multishift_epi64_epi8(control, _mm512_permutexvar_epi8(spread_first, src));
        const __m512i second = kBits > 4 ? _mm512_permutex2var_epi8(src, spread_second, high)
                                         : _mm512_permutexvar_epi8(spread_second, src);
        c[1] = _mm512_multishift_epi64_epi8(control, second);
    }
};

// Lane k of the result: the sum of the 16 lanes of v[k]. A tree of 128-bit-lane shuffles and
// adds (45 instructions for 16 sums) and one permutation.
inline __m512 transpose_sum(const __m512 v[16]) {
    __m512 x[8], q[4];
#pragma GCC unroll 8
    for (int p = 0; p < 8; p++)  // lanes 0-7: v[2p]'s partial sums, lanes 8-15: v[2p+1]'s
        x[p] = _mm512_add_ps(_mm512_shuffle_f32x4(v[2 * p], v[2 * p + 1], 0x44), _mm512_shuffle_f32x4(v[2 * p], v[2 * p + 1], 0xEE));
#pragma GCC unroll 4
    for (int p = 0; p < 4; p++)  // 128-bit lane L: v[4p + L]'s partial sums
        q[p] = _mm512_add_ps(_mm512_shuffle_f32x4(x[2 * p], x[2 * p + 1], 0x88),
                             _mm512_shuffle_f32x4(x[2 * p], x[2 * p + 1], 0xDD));
    const __m512 z0 = _mm512_add_ps(_mm512_unpacklo_ps(q[0], q[1]), _mm512_unpackhi_ps(q[0], q[1]));
    const __m512 z1 = _mm512_add_ps(_mm512_unpacklo_ps(q[2], q[3]), _mm512_unpackhi_ps(q[2], q[3]));
    // Lane 4L + m now holds v[4m + L]'s sum.
    const __m512d d0 = _mm512_castps_pd(z0), d1 = _mm512_castps_pd(z1);
    const __m512 r = _mm512_add_ps(_mm512_castpd_ps(_mm512_unpacklo_pd(d0, d1)), _mm512_castpd_ps(_mm512_unpackhi_pd(d0, d1)));
    return _mm512_permutexvar_ps(_mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15), r);
}

// The byte levels of 128 columns: vpermb looks the unpacked codes up in a 64-byte table of the
// levels repeated (6 bits: the 64 levels once), which makes the bits above the code irrelevant.
template <int kBits>
struct DecodeLevels8 : UnpackCodes<kBits> {
    __m512i table;
    void load_table(const uint8_t *levels) {
        if (kBits == 6) {
            table = _mm512_loadu_si512(levels);
        } else if (kBits == 5) {
            table = _mm512_broadcast_i64x4(_mm256_loadu_si256(reinterpret_cast<const __m256i *>(levels)));
        } else if (kBits == 4) {
            table = _mm512_broadcast_i32x4(_mm_loadu_si128(reinterpret_cast<const __m128i *>(levels)));
        } else if (kBits == 3) {
            uint64_t eight;
            std::memcpy(&eight, levels, 8);
            table = _mm512_set1_epi64(int64_t(eight));
        } else {
            uint32_t four;
            std::memcpy(&four, levels, 4);
            table = _mm512_set1_epi32(int(four));
        }
    }
    void decode(const uint8_t *p, int64_t left, __m512i w[2]) const {
        this->unpack(p, left, w);
        w[0] = _mm512_permutexvar_epi8(w[0], table);
        w[1] = _mm512_permutexvar_epi8(w[1], table);
    }
};

}  // namespace
}  // namespace kernels
}  // namespace sqllm
