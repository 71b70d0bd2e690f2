// AVX2 int8 LUT matvec (lut_matvec_q8.h). Compiled with -mavx2 -mfma -mf16c; internal
// linkage only (see lut_matvec_avx2.cpp on why).
//
// vpmaddubsw multiplies unsigned by signed bytes and saturates pairs at 16 bits, so the
// tables hold v = u - 127 (|v| <= 127) and each product is |v| * (a with v's sign); the
// kernel adds the 127 * sum(a) back through lo + 127 * step.
//
// A step is 64 columns: the codes of two 32-column blocks become two registers of 32 levels,
// each holding the first block in its low lane and the second in its high lane, so that after
// vpmaddubsw + vpmaddwd the int32 lanes 0-3 belong to the first block and 4-7 to the second
// and one vector of scales {s0 x4, s1 x4} weighs them. The unpacking leaves the columns in a
// fixed order within the step (q8_order_avx2), which the activations are quantized into.
//   4 bits  32 bytes: low nibbles (even columns) and high nibbles (odd columns).
//   3 bits  each 16-bit window holding a code is gathered by vpshufb twice per dword (codes
//           k and k+8 share a bit offset), shifted by vpsrlvd, masked and packed to bytes.
//   2 bits  each block's 8 bytes in two qwords shifted by 0/2 and 4/6 bits, masked.
//   5, 6    16 columns of each block per lane: vpshufb puts the two bytes holding each code
//   bits    in a 16-bit lane, vpmullw moves the code to the top and vpsrlw down; two such
//           registers pack to 32 codes, looked up in 2 or 4 16-entry tables chosen by
//           vpblendvb on code bits 4 and 5.
#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "kernels/lut_matvec_q8/lut_matvec_q8.h"

namespace sqllm {
namespace kernels {
namespace {

constexpr int64_t kStep = 64;
constexpr int kMaxTokens = 4;

inline __m256i centered(__m256i levels) { return _mm256_sub_epi8(levels, _mm256_set1_epi8(127)); }

struct Decode4 {
    static constexpr int kBits = 4, kReadBytes = 32;
    __m256i table;
    __m256i mask = _mm256_set1_epi8(0x0f);
    void load_table(const uint8_t *levels) {
        table = centered(_mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i *>(levels))));
    }
    void decode(const uint8_t *p, __m256i w[2]) const {
        const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i *>(p));
        w[0] = _mm256_shuffle_epi8(table, _mm256_and_si256(v, mask));
        w[1] = _mm256_shuffle_epi8(table, _mm256_and_si256(_mm256_srli_epi16(v, 4), mask));
    }
};

struct Decode3 {
    static constexpr int kBits = 3, kReadBytes = 28;  // the second block's load reads 4 bytes on
    __m256i table;
    // Dword k of a lane (codes k and k+8, or k+16 and k+24): the two bytes of each code's
    // window. Codes 0-3 / 4-7 of the block in `first` / `second`.
    __m256i first = _mm256_setr_epi8(0, 1, 3, 4, 0, 1, 3, 4, 0, 1, 3, 4, 1, 2, 4, 5,  //
                                     0, 1, 3, 4, 0, 1, 3, 4, 0, 1, 3, 4, 1, 2, 4, 5);
    __m256i second = _mm256_setr_epi8(1, 2, 4, 5, 1, 2, 4, 5, 2, 3, 5, 6, 2, 3, 5, 6,  //
                                      1, 2, 4, 5, 1, 2, 4, 5, 2, 3, 5, 6, 2, 3, 5, 6);
    __m256i six = _mm256_set1_epi8(6);
    __m256i shift_first = _mm256_setr_epi32(0, 3, 6, 1, 0, 3, 6, 1);
    __m256i shift_second = _mm256_setr_epi32(4, 7, 2, 5, 4, 7, 2, 5);
    __m256i mask = _mm256_set1_epi32(0x00070007);
    void load_table(const uint8_t *levels) {
        table = centered(_mm256_broadcastsi128_si256(_mm_loadl_epi64(reinterpret_cast<const __m128i *>(levels))));
    }
    __m256i codes(__m256i src, __m256i index, __m256i shift) const {
        return _mm256_and_si256(_mm256_srlv_epi32(_mm256_shuffle_epi8(src, index), shift), mask);
    }
    void decode(const uint8_t *p, __m256i w[2]) const {
        const __m256i src = _mm256_loadu2_m128i(reinterpret_cast<const __m128i *>(p + 12),
                                                reinterpret_cast<const __m128i *>(p));
        const __m256i low = _mm256_packus_epi16(codes(src, first, shift_first), codes(src, second, shift_second));
        const __m256i high = _mm256_packus_epi16(codes(src, _mm256_add_epi8(first, six), shift_first),
                                                 codes(src, _mm256_add_epi8(second, six), shift_second));
        w[0] = _mm256_shuffle_epi8(table, low);
        w[1] = _mm256_shuffle_epi8(table, high);
    }
};

struct Decode2 {
    static constexpr int kBits = 2, kReadBytes = 16;
    __m256i table;
    __m256i shift_first = _mm256_setr_epi64x(0, 2, 0, 2);
    __m256i shift_second = _mm256_setr_epi64x(4, 6, 4, 6);
    __m256i mask = _mm256_set1_epi8(0x03);
    void load_table(const uint8_t *levels) {
        uint32_t four;
        std::memcpy(&four, levels, 4);
        table = centered(_mm256_set1_epi32(int(four)));
    }
    void decode(const uint8_t *p, __m256i w[2]) const {
        const __m256i v = _mm256_permute4x64_epi64(
            _mm256_castsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i *>(p))), _MM_SHUFFLE(1, 1, 0, 0));
        w[0] = _mm256_shuffle_epi8(table, _mm256_and_si256(_mm256_srlv_epi64(v, shift_first), mask));
        w[1] = _mm256_shuffle_epi8(table, _mm256_and_si256(_mm256_srlv_epi64(v, shift_second), mask));
    }
};

template <int Bits>
struct DecodeWide {
    static_assert(Bits == 5 || Bits == 6, "5 or 6 bits");
    static constexpr int kBits = Bits, kTables = 1 << (Bits - 4);
    // Register half h takes, in lane L, columns 32 L + 16 h .. + 15, from byte Bits * (4 L + 2 h).
    static constexpr int kReadBytes = Bits * 6 + 16;
    __m256i tables[kTables];
    // Codes 0-7 and 8-15 of a lane's 16; code 8 starts on a byte (bit 8 * Bits), so both
    // halves share the shifts.
    __m256i window[2], multiplier;
    DecodeWide() {
        alignas(32) uint8_t w[2][32];
        alignas(32) uint16_t m[16];
        for (int part = 0; part < 2; part++)
            for (int lane = 0; lane < 2; lane++)
                for (int j = 0; j < 8; j++) {
                    const int bit = Bits * (8 * part + j), byte = bit / 8;
                    w[part][16 * lane + 2 * j] = uint8_t(byte);
                    w[part][16 * lane + 2 * j + 1] = uint8_t(byte + 1);
                    m[8 * lane + j] = uint16_t(1u << (16 - Bits - bit % 8));
                }
        for (int part = 0; part < 2; part++) window[part] = _mm256_load_si256(reinterpret_cast<const __m256i *>(w[part]));
        multiplier = _mm256_load_si256(reinterpret_cast<const __m256i *>(m));
    }
    void load_table(const uint8_t *levels) {
        for (int k = 0; k < kTables; k++)
            tables[k] = centered(_mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i *>(levels + 16 * k))));
    }
    __m256i codes(const uint8_t *low_lane, const uint8_t *high_lane) const {
        const __m256i src = _mm256_loadu2_m128i(reinterpret_cast<const __m128i *>(high_lane),
                                                reinterpret_cast<const __m128i *>(low_lane));
        __m256i part[2];
        for (int k = 0; k < 2; k++)
            part[k] = _mm256_srli_epi16(_mm256_mullo_epi16(_mm256_shuffle_epi8(src, window[k]), multiplier), 16 - Bits);
        return _mm256_packus_epi16(part[0], part[1]);
    }
    __m256i look_up(__m256i c) const {
        // vpshufb reads the low 4 bits; vpblendvb bit 7 of each byte, where the shifts put bit 4 / 5.
        const __m256i select4 = _mm256_slli_epi16(c, 3);
        const __m256i first = _mm256_blendv_epi8(_mm256_shuffle_epi8(tables[0], c), _mm256_shuffle_epi8(tables[1], c), select4);
        if (kTables == 2) return first;
        const __m256i second = _mm256_blendv_epi8(_mm256_shuffle_epi8(tables[2], c), _mm256_shuffle_epi8(tables[3], c), select4);
        return _mm256_blendv_epi8(first, second, _mm256_slli_epi16(c, 2));
    }
    void decode(const uint8_t *p, __m256i w[2]) const {
        w[0] = look_up(codes(p, p + 4 * Bits));
        w[1] = look_up(codes(p + 2 * Bits, p + 6 * Bits));
    }
};

inline float horizontal_sum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

template <class Decode, int kTokens>
void rows_q8(const LutMatrixView &w, const LutQ8Tables &t, const Q8Activations &a, int64_t t0, float *y,
             int64_t row_begin, int64_t row_end) {
    constexpr int64_t kStepBytes = kStep * Decode::kBits / 8;
    // No view member functions here: see the note at the top of lut_matvec_avx2.cpp.
    const int64_t groups = (w.cols + w.group_size - 1) / w.group_size;
    const int64_t row_bytes = (w.cols + 31) / 32 * 32 * w.bits / 8, all_bytes = w.rows * row_bytes;
    const int64_t blocks = a.padded / kQ8Block, steps = a.padded / kStep;
    const int64_t group_steps = w.group_size >= w.cols ? steps : w.group_size / kStep;
    const __m256i ones = _mm256_set1_epi16(1);
    Decode decode;
    alignas(32) uint8_t last[64];
    for (int64_t i = row_begin; i < row_end; i++) {
        const uint8_t *codes = w.codes + i * row_bytes;
        __m256 total[kTokens];
        double bias[kTokens];
#pragma GCC unroll 4
        for (int k = 0; k < kTokens; k++) total[k] = _mm256_setzero_ps(), bias[k] = 0.0;
        for (int64_t g = 0; g < groups; g++) {
            const int64_t table = i * groups + g;
            decode.load_table(t.levels + (table << Decode::kBits));
            const int64_t s0 = g * group_steps, s1 = g + 1 < groups ? s0 + group_steps : steps;
            __m256 acc[kTokens];
#pragma GCC unroll 4
            for (int k = 0; k < kTokens; k++) acc[k] = _mm256_setzero_ps();
            for (int64_t s = s0; s < s1; s++) {
                const uint8_t *p = codes + s * kStepBytes;
                // Steps past the row read the next row's codes, which meet zero activations;
                // past the matrix they read a zero-filled copy instead.
                const int64_t offset = i * row_bytes + s * kStepBytes;
                if (offset + Decode::kReadBytes > all_bytes) {
                    std::memset(last, 0, sizeof last);
                    if (offset < all_bytes) std::memcpy(last, p, size_t(all_bytes - offset));
                    p = last;
                }
                __m256i wv[2];
                decode.decode(p, wv);
                const __m256i mag0 = _mm256_abs_epi8(wv[0]), mag1 = _mm256_abs_epi8(wv[1]);
#pragma GCC unroll 4
                for (int k = 0; k < kTokens; k++) {
                    const int8_t *q = a.q + (t0 + k) * a.padded + s * kStep;
                    const float *sc = a.scales + (t0 + k) * blocks * 8 + s * 16;
                    const __m256i a0 = _mm256_sign_epi8(_mm256_loadu_si256(reinterpret_cast<const __m256i *>(q)), wv[0]);
                    const __m256i a1 = _mm256_sign_epi8(_mm256_loadu_si256(reinterpret_cast<const __m256i *>(q + 32)), wv[1]);
                    const __m256i p0 = _mm256_madd_epi16(_mm256_maddubs_epi16(mag0, a0), ones);
                    const __m256i p1 = _mm256_madd_epi16(_mm256_maddubs_epi16(mag1, a1), ones);
                    const __m256 scale = _mm256_blend_ps(_mm256_loadu_ps(sc), _mm256_loadu_ps(sc + 8), 0xf0);
                    acc[k] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_add_epi32(p0, p1)), scale, acc[k]);
                }
            }
            const __m256 step = _mm256_set1_ps(t.step[table]);
            const double lo = double(t.lo[table]) + double(kQ8Levels / 2) * double(t.step[table]);
#pragma GCC unroll 4
            for (int k = 0; k < kTokens; k++) {
                const double *prefix = a.prefix + (t0 + k) * (blocks + 1);
                total[k] = _mm256_fmadd_ps(acc[k], step, total[k]);
                bias[k] += lo * (prefix[s1 * 2] - prefix[s0 * 2]);
            }
        }
#pragma GCC unroll 4
        for (int k = 0; k < kTokens; k++) y[(t0 + k) * w.rows + i] = float(double(horizontal_sum(total[k])) + bias[k]);
    }
}

template <class Decode>
void matmat_q8(const LutMatrixView &w, const LutQ8Tables &t, const Q8Activations &a, float *y, int64_t row_begin,
               int64_t row_end) {
    // Token tiles outside: each tile reads the rows once; the activations stay in L1/L2.
    for (int64_t t0 = 0; t0 < a.n; t0 += kMaxTokens) {
        switch (a.n - t0 < kMaxTokens ? a.n - t0 : kMaxTokens) {
        case 1: rows_q8<Decode, 1>(w, t, a, t0, y, row_begin, row_end); break;
        case 2: rows_q8<Decode, 2>(w, t, a, t0, y, row_begin, row_end); break;
        case 3: rows_q8<Decode, 3>(w, t, a, t0, y, row_begin, row_end); break;
        default: rows_q8<Decode, 4>(w, t, a, t0, y, row_begin, row_end); break;
        }
    }
}

// Columns in step order: position p of a 64-column step holds column order[p].
struct Orders {
    uint8_t bits4[64], bits3[64], bits2[64], wide[64];
    Orders() {
        static const uint8_t interleave[16] = {0, 8, 1, 9, 2, 10, 3, 11, 4, 12, 5, 13, 6, 14, 7, 15};
        for (int p = 0; p < 64; p++) {
            const int lane = (p / 16) % 2, half = p / 32, m = p % 16;  // lane: which block
            bits4[p] = uint8_t(32 * lane + 2 * m + half);
            bits3[p] = uint8_t(32 * lane + 16 * half + interleave[m]);
            bits2[p] = uint8_t(32 * lane + 4 * (m % 8) + (m / 8) + 2 * half);
            wide[p] = uint8_t(32 * lane + 16 * half + m);
        }
    }
};

}  // namespace

const uint8_t *q8_order_avx2(int bits) {
    static const Orders orders;
    return bits >= 5 ? orders.wide : bits == 4 ? orders.bits4 : bits == 3 ? orders.bits3 : orders.bits2;
}

void lut_matmat_q8_avx2(const LutMatrixView &w, const LutQ8Tables &t, const Q8Activations &a, float *y,
                        int64_t row_begin, int64_t row_end) {
    if (row_begin >= row_end || a.n <= 0) return;
    switch (w.bits) {
    case 2: return matmat_q8<Decode2>(w, t, a, y, row_begin, row_end);
    case 3: return matmat_q8<Decode3>(w, t, a, y, row_begin, row_end);
    case 5: return matmat_q8<DecodeWide<5>>(w, t, a, y, row_begin, row_end);
    case 6: return matmat_q8<DecodeWide<6>>(w, t, a, y, row_begin, row_end);
    default: return matmat_q8<Decode4>(w, t, a, y, row_begin, row_end);
    }
}

}  // namespace kernels
}  // namespace sqllm
