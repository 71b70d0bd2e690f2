// AVX2 + FMA + F16C LUT matvec. Compiled with -mavx2 -mfma -mf16c and run only when the CPU
// has all three (dispatch.cpp).
//
// Everything here has internal linkage and calls no inline function or template from a
// shared header (fp16.h, <algorithm>, std::vector, the view's member functions): such
// functions are emitted in every translation unit that uses them and the linker keeps one
// copy, which could be this file's AVX2-encoded one, and then the scalar path would crash
// on a CPU without AVX.
//
// How a 32-code block becomes four vectors of 8 fp32 weights (measured on Zen 3, where
// vpermps, vcvtph2ps and vextracti128 share one unit at about 1 per cycle, and a gather of
// 8 floats takes ~8 cycles):
//   2, 3 bits  the LUT (8 fp32 entries; 2-bit entries repeated twice) sits in one
//              register; broadcast 32 bits of codes, shift lane k right by k*bits with
//              vpsrlvd and look 8 codes up at once with vpermps, which reads only the low 3
//              bits of each index (so no mask is needed).
//   4 bits     the 16 fp16 entries split into a low-byte and a high-byte table; vpshufb
//              looks up 32 codes in each, the two halves interleave back into fp16 and
//              vcvtph2ps widens them. This beats two vpermps + a blend per 8 codes by ~1.7x,
//              but yields the columns of a block in the order even 0-14, odd 1-15, even
//              16-30, odd 17-31, so x is reordered once per call to match.
//   5, 6 bits  as for 4 bits, byte planes of 16-entry tables (two or four of them) and
//              vpshufb, with vpblendvb keeping the table that each code's bits 4 (and 5)
//              select. The codes become bytes first: vpshufb copies the two bytes that hold
//              a code into a 16-bit lane, vpmullw moves the code to the lane's top and a
//              shift brings it down, and vpackuswb of two such vectors leaves the block's
//              32 codes in column order. On an AMD EPYC with the matrix in cache, 5 and 6
//              bits run at about 1/2 and 3/8 of the 4-bit code rate; a vgatherdps from the
//              LUT widened to fp32 reached 1/11, and vpshufb's zeroing of indices with
//              bit 7 set + vpor in place of vpblendvb was no faster at 5 bits, slower at 6.
//   8 bits     eight scalar loads from the group's LUT widened to fp32, assembled into a
//              vector: about twice as fast as vpmovzxbd + vgatherdps.
// Columns past the last whole block (cols % 32) are done one by one, so x is never read
// past x[cols-1] and padding codes are never used.
#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "kernels/lut_matvec/lut_matvec.h"
#include "kernels/scratch.h"

namespace sqllm {
namespace kernels {
namespace {

constexpr int64_t kBlock = 32;  // codes per block; a block is exactly `bits` 32-bit words
constexpr int kMaxTokens = 8;   // activations that share one decode of a block in lut_matmat

struct Shape {
    int64_t rows, cols, group_size, groups, row_bytes, lut_row_entries;
    int64_t full_cols;  // columns in whole 32-code blocks
    int bits;
};

Shape shape_of(const LutMatrixView &w) {
    Shape s;
    s.rows = w.rows;
    s.cols = w.cols;
    s.group_size = w.group_size;
    s.groups = (w.cols + w.group_size - 1) / w.group_size;
    s.row_bytes = (w.cols + kBlock - 1) / kBlock * kBlock * w.bits / 8;
    s.lut_row_entries = s.groups << w.bits;
    s.full_cols = w.cols / kBlock * kBlock;
    s.bits = w.bits;
    return s;
}

inline __m256i broadcast_u32(const uint8_t *p) {
    uint32_t v;
    std::memcpy(&v, p, 4);
    return _mm256_set1_epi32(int(v));
}

inline float horizontal_sum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

inline float half_to_float(uint16_t h) { return _cvtsh_ss(h); }

// Sum over the columns [full_cols, cols) that do not fill a whole block.
float tail_dot(const Shape &s, const uint8_t *codes_row, const uint16_t *lut_row, const float *x) {
    float sum = 0.0f;
    const uint32_t mask = (1u << s.bits) - 1u;
    for (int64_t j = s.full_cols; j < s.cols; j++) {
        const int64_t bit = j * s.bits;
        uint32_t window = codes_row[bit / 8];
        if (bit % 8 + s.bits > 8) window |= uint32_t(codes_row[bit / 8 + 1]) << 8;
        const uint32_t code = (window >> (bit % 8)) & mask;
        sum += half_to_float(lut_row[((j / s.group_size) << s.bits) + code]) * x[j];
    }
    return sum;
}

struct Decode2 {
    static constexpr int kBits = 2;
    static constexpr bool kReordersColumns = false;
    __m256 table;
    __m256i shift_low = _mm256_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14);
    __m256i shift_high = _mm256_setr_epi32(16, 18, 20, 22, 24, 26, 28, 30);

    void load_table(const uint16_t *lut) {
        const __m128i four = _mm_loadl_epi64(reinterpret_cast<const __m128i *>(lut));
        table = _mm256_cvtph_ps(_mm_unpacklo_epi64(four, four));
    }
    void decode(const uint8_t *block, __m256 w[4]) const {
        const __m256i first = broadcast_u32(block), second = broadcast_u32(block + 4);
        w[0] = _mm256_permutevar8x32_ps(table, _mm256_srlv_epi32(first, shift_low));
        w[1] = _mm256_permutevar8x32_ps(table, _mm256_srlv_epi32(first, shift_high));
        w[2] = _mm256_permutevar8x32_ps(table, _mm256_srlv_epi32(second, shift_low));
        w[3] = _mm256_permutevar8x32_ps(table, _mm256_srlv_epi32(second, shift_high));
    }
};

struct Decode3 {
    static constexpr int kBits = 3;
    static constexpr bool kReordersColumns = false;
    __m256 table;
    __m256i shift = _mm256_setr_epi32(0, 3, 6, 9, 12, 15, 18, 21);
    // The fourth group of 8 codes is read from byte 8 rather than 9, so that no load
    // reaches past the block's 12 bytes; its codes then sit 8 bits higher.
    __m256i shift_last = _mm256_setr_epi32(8, 11, 14, 17, 20, 23, 26, 29);

    void load_table(const uint16_t *lut) {
        table = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i *>(lut)));
    }
    void decode(const uint8_t *block, __m256 w[4]) const {
        w[0] = _mm256_permutevar8x32_ps(table, _mm256_srlv_epi32(broadcast_u32(block), shift));
        w[1] = _mm256_permutevar8x32_ps(table, _mm256_srlv_epi32(broadcast_u32(block + 3), shift));
        w[2] = _mm256_permutevar8x32_ps(table, _mm256_srlv_epi32(broadcast_u32(block + 6), shift));
        w[3] = _mm256_permutevar8x32_ps(table, _mm256_srlv_epi32(broadcast_u32(block + 8), shift_last));
    }
};

struct Decode4 {
    static constexpr int kBits = 4;
    static constexpr bool kReordersColumns = true;
    __m256i low_bytes, high_bytes;  // the fp16 LUT split into byte planes, in both lanes
    __m256i nibble_shift = _mm256_setr_epi32(0, 0, 0, 0, 4, 4, 4, 4);
    __m256i nibble_mask = _mm256_set1_epi8(0x0f);

    void load_table(const uint16_t *lut) {
        const __m128i first = _mm_loadu_si128(reinterpret_cast<const __m128i *>(lut));
        const __m128i second = _mm_loadu_si128(reinterpret_cast<const __m128i *>(lut + 8));
        const __m128i byte_mask = _mm_set1_epi16(0x00ff);
        low_bytes = _mm256_broadcastsi128_si256(
            _mm_packus_epi16(_mm_and_si128(first, byte_mask), _mm_and_si128(second, byte_mask)));
        high_bytes = _mm256_broadcastsi128_si256(_mm_packus_epi16(_mm_srli_epi16(first, 8), _mm_srli_epi16(second, 8)));
    }
    void decode(const uint8_t *block, __m256 w[4]) const {
        // Low lane: the low nibbles (even columns); high lane: the high nibbles (odd ones).
        const __m256i bytes = _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i *>(block)));
        const __m256i codes = _mm256_and_si256(_mm256_srlv_epi32(bytes, nibble_shift), nibble_mask);
        const __m256i low = _mm256_shuffle_epi8(low_bytes, codes);
        const __m256i high = _mm256_shuffle_epi8(high_bytes, codes);
        const __m256i halves_first = _mm256_unpacklo_epi8(low, high);
        const __m256i halves_second = _mm256_unpackhi_epi8(low, high);
        w[0] = _mm256_cvtph_ps(_mm256_castsi256_si128(halves_first));
        w[1] = _mm256_cvtph_ps(_mm256_extracti128_si256(halves_first, 1));
        w[2] = _mm256_cvtph_ps(_mm256_castsi256_si128(halves_second));
        w[3] = _mm256_cvtph_ps(_mm256_extracti128_si256(halves_second, 1));
    }
};

// The vpshufb and vpmullw operands that bring each code of a 5- or 6-bit block to the top of
// a 16-bit lane. The block's first 16 bytes fill the low 128-bit lane and its last 16 (from
// byte 4 * bits - 16, so that no load reaches past the block) the high one. The first vector
// holds codes 0-7 (low lane) and 16-23 (high lane), the second 8-15 and 24-31, which
// vpackuswb then puts back in column order.
struct WideControls {
    alignas(32) int8_t window[2][32];
    alignas(32) int16_t multiplier[2][16];
};

constexpr WideControls wide_controls(int bits) {
    WideControls c{};
    for (int v = 0; v < 2; v++)
        for (int lane = 0; lane < 2; lane++)
            for (int m = 0; m < 8; m++) {
                const int code = 16 * lane + 8 * v + m;
                const int bit = code * bits - lane * 8 * (4 * bits - 16);
                const int byte = bit / 8, offset = bit % 8;
                c.window[v][16 * lane + 2 * m] = int8_t(byte);
                // A code within one byte takes a zero above it (an index with bit 7 set),
                // which also keeps the last code's window inside the lane.
                c.window[v][16 * lane + 2 * m + 1] = int8_t(offset + bits > 8 ? byte + 1 : -128);
                c.multiplier[v][8 * lane + m] = int16_t(1 << (16 - bits - offset));
            }
    return c;
}

template <int Bits>
constexpr WideControls kWideControls = wide_controls(Bits);

template <int Bits>
struct DecodeWide {
    static_assert(Bits == 5 || Bits == 6, "5 or 6 bits");
    static constexpr int kBits = Bits;
    static constexpr bool kReordersColumns = false;
    static constexpr int kTables = 1 << (Bits - 4);
    __m256i low_bytes[kTables], high_bytes[kTables];  // each 16-entry table's fp16 byte planes, in both lanes

    void load_table(const uint16_t *lut) {
        const __m128i byte_mask = _mm_set1_epi16(0x00ff);
        for (int t = 0; t < kTables; t++) {
            const __m128i first = _mm_loadu_si128(reinterpret_cast<const __m128i *>(lut + 16 * t));
            const __m128i second = _mm_loadu_si128(reinterpret_cast<const __m128i *>(lut + 16 * t + 8));
            low_bytes[t] = _mm256_broadcastsi128_si256(
                _mm_packus_epi16(_mm_and_si128(first, byte_mask), _mm_and_si128(second, byte_mask)));
            high_bytes[t] = _mm256_broadcastsi128_si256(_mm_packus_epi16(_mm_srli_epi16(first, 8), _mm_srli_epi16(second, 8)));
        }
    }
    // vpshufb reads the low 4 bits of a code; vpblendvb reads bit 7 of each mask byte, where
    // the selects hold bit 4 and bit 5 of the code.
    static __m256i look_up(const __m256i *tables, __m256i codes, __m256i select4, __m256i select5) {
        const __m256i first = _mm256_blendv_epi8(_mm256_shuffle_epi8(tables[0], codes), _mm256_shuffle_epi8(tables[1], codes), select4);
        if (kTables == 2) return first;
        const __m256i second = _mm256_blendv_epi8(_mm256_shuffle_epi8(tables[2], codes), _mm256_shuffle_epi8(tables[3], codes), select4);
        return _mm256_blendv_epi8(first, second, select5);
    }
    static __m256i codes_of(__m256i bytes, int v) {
        const WideControls &c = kWideControls<Bits>;
        const __m256i window = _mm256_shuffle_epi8(bytes, _mm256_load_si256(reinterpret_cast<const __m256i *>(c.window[v])));
        const __m256i top = _mm256_mullo_epi16(window, _mm256_load_si256(reinterpret_cast<const __m256i *>(c.multiplier[v])));
        return _mm256_srli_epi16(top, 16 - Bits);
    }
    void decode(const uint8_t *block, __m256 w[4]) const {
        const __m128i head = _mm_loadu_si128(reinterpret_cast<const __m128i *>(block));
        const __m128i tail = _mm_loadu_si128(reinterpret_cast<const __m128i *>(block + 4 * Bits - 16));
        const __m256i bytes = _mm256_inserti128_si256(_mm256_castsi128_si256(head), tail, 1);
        const __m256i codes = _mm256_packus_epi16(codes_of(bytes, 0), codes_of(bytes, 1));
        const __m256i select4 = _mm256_slli_epi16(codes, 3), select5 = _mm256_slli_epi16(codes, 2);
        const __m256i low = look_up(low_bytes, codes, select4, select5);
        const __m256i high = look_up(high_bytes, codes, select4, select5);
        // Per lane, unpacklo gives its codes 0-7 and unpackhi its codes 8-15 as fp16.
        const __m256i halves_first = _mm256_unpacklo_epi8(low, high);
        const __m256i halves_second = _mm256_unpackhi_epi8(low, high);
        w[0] = _mm256_cvtph_ps(_mm256_castsi256_si128(halves_first));
        w[1] = _mm256_cvtph_ps(_mm256_castsi256_si128(halves_second));
        w[2] = _mm256_cvtph_ps(_mm256_extracti128_si256(halves_first, 1));
        w[3] = _mm256_cvtph_ps(_mm256_extracti128_si256(halves_second, 1));
    }
};

struct Decode8 {
    static constexpr int kBits = 8;
    static constexpr bool kReordersColumns = false;
    alignas(32) float table[256];

    void load_table(const uint16_t *lut) {
        for (int k = 0; k < 256; k += 8)
            _mm256_store_ps(table + k, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i *>(lut + k))));
    }
    void decode(const uint8_t *block, __m256 w[4]) const {
#pragma GCC unroll 4
        for (int k = 0; k < 4; k++) {
            uint64_t c;
            std::memcpy(&c, block + 8 * k, 8);
            w[k] = _mm256_setr_ps(table[c & 255], table[(c >> 8) & 255], table[(c >> 16) & 255], table[(c >> 24) & 255],
                                  table[(c >> 32) & 255], table[(c >> 40) & 255], table[(c >> 48) & 255], table[c >> 56]);
        }
    }
};

// Decode4's column order for the whole blocks of n activations of `cols` floats each.
const float *reorder_for_decode4(const float *x, int64_t n, int64_t cols, int64_t full_cols) {
    float *out = thread_scratch_floats(n * full_cols);
    for (int64_t t = 0; t < n; t++) {
        const float *src = x + t * cols;
        float *dst = out + t * full_cols;
        for (int64_t j = 0; j < full_cols; j += 16) {
            const __m256 a = _mm256_loadu_ps(src + j), b = _mm256_loadu_ps(src + j + 8);
            const __m256 even = _mm256_shuffle_ps(a, b, _MM_SHUFFLE(2, 0, 2, 0));
            const __m256 odd = _mm256_shuffle_ps(a, b, _MM_SHUFFLE(3, 1, 3, 1));
            _mm256_storeu_ps(dst + j, _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(even), _MM_SHUFFLE(3, 1, 2, 0))));
            _mm256_storeu_ps(dst + j + 8, _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(odd), _MM_SHUFFLE(3, 1, 2, 0))));
        }
    }
    return out;
}

// x for the whole blocks in the decoder's column order, with a row stride of `*stride`.
template <class Decode>
const float *blocks_input(const Shape &s, const float *x, int64_t n, int64_t *stride) {
    if (!Decode::kReordersColumns || s.full_cols == 0) {
        *stride = s.cols;
        return x;
    }
    *stride = s.full_cols;
    return reorder_for_decode4(x, n, s.cols, s.full_cols);
}

template <class Decode>
void matvec_rows(const LutMatrixView &w, const float *x, float *y, int64_t row_begin, int64_t row_end) {
    const Shape s = shape_of(w);
    int64_t stride;
    const float *xb = blocks_input<Decode>(s, x, 1, &stride);
    const int64_t block_bytes = kBlock * Decode::kBits / 8;
    Decode decode;
    for (int64_t i = row_begin; i < row_end; i++) {
        const uint8_t *codes_row = w.codes + i * s.row_bytes;
        const uint16_t *lut_row = w.lut + i * s.lut_row_entries;
        __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
        for (int64_t g = 0; g < s.groups && g * s.group_size < s.full_cols; g++) {
            decode.load_table(lut_row + (g << Decode::kBits));
            const int64_t j_end = (g + 1) * s.group_size < s.full_cols ? (g + 1) * s.group_size : s.full_cols;
            const uint8_t *block = codes_row + g * s.group_size / kBlock * block_bytes;
            for (int64_t j = g * s.group_size; j < j_end; j += kBlock, block += block_bytes) {
                __m256 wv[4];
                decode.decode(block, wv);
                acc[0] = _mm256_fmadd_ps(wv[0], _mm256_loadu_ps(xb + j), acc[0]);
                acc[1] = _mm256_fmadd_ps(wv[1], _mm256_loadu_ps(xb + j + 8), acc[1]);
                acc[2] = _mm256_fmadd_ps(wv[2], _mm256_loadu_ps(xb + j + 16), acc[2]);
                acc[3] = _mm256_fmadd_ps(wv[3], _mm256_loadu_ps(xb + j + 24), acc[3]);
            }
        }
        const __m256 total = _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3]));
        y[i] = horizontal_sum(total) + tail_dot(s, codes_row, lut_row, x);
    }
}

// One row against kTokens activations: each block is decoded once and used kTokens times.
// With few tokens each gets several accumulators, so that the FMA latency stays hidden.
template <class Decode, int kTokens>
void matmat_row(const Shape &s, const uint8_t *codes_row, const uint16_t *lut_row, const float *xb, int64_t stride,
                const float *x, float *y, int64_t row) {
    constexpr int kAccPerToken = kTokens <= 2 ? 4 : kTokens <= 4 ? 2 : 1;
    const int64_t block_bytes = kBlock * Decode::kBits / 8;
    Decode decode;
    // The fixed-count loops below must be unrolled for the accumulators to stay in registers.
    __m256 acc[kTokens][kAccPerToken];
#pragma GCC unroll 8
    for (int t = 0; t < kTokens; t++)
#pragma GCC unroll 4
        for (int a = 0; a < kAccPerToken; a++) acc[t][a] = _mm256_setzero_ps();
    for (int64_t g = 0; g < s.groups && g * s.group_size < s.full_cols; g++) {
        decode.load_table(lut_row + (g << Decode::kBits));
        const int64_t j_end = (g + 1) * s.group_size < s.full_cols ? (g + 1) * s.group_size : s.full_cols;
        const uint8_t *block = codes_row + g * s.group_size / kBlock * block_bytes;
        for (int64_t j = g * s.group_size; j < j_end; j += kBlock, block += block_bytes) {
            __m256 wv[4];
            decode.decode(block, wv);
#pragma GCC unroll 8
            for (int t = 0; t < kTokens; t++) {
                const float *xt = xb + t * stride + j;
#pragma GCC unroll 4
                for (int k = 0; k < 4; k++)
                    acc[t][k % kAccPerToken] = _mm256_fmadd_ps(wv[k], _mm256_loadu_ps(xt + 8 * k), acc[t][k % kAccPerToken]);
            }
        }
    }
#pragma GCC unroll 8
    for (int t = 0; t < kTokens; t++) {
        __m256 total = acc[t][0];
#pragma GCC unroll 4
        for (int a = 1; a < kAccPerToken; a++) total = _mm256_add_ps(total, acc[t][a]);
        y[t * s.rows + row] = horizontal_sum(total) + tail_dot(s, codes_row, lut_row, x + t * s.cols);
    }
}

template <class Decode>
void matmat_rows(const LutMatrixView &w, const float *x, int64_t n, float *y, int64_t row_begin, int64_t row_end) {
    const Shape s = shape_of(w);
    int64_t stride;
    const float *xb = blocks_input<Decode>(s, x, n, &stride);
    // Rows outside, token tiles inside: a row's codes are read from memory once and stay
    // in L1 for the remaining tiles.
    for (int64_t i = row_begin; i < row_end; i++) {
        for (int64_t t0 = 0; t0 < n; t0 += kMaxTokens) {
            const int64_t tokens = n - t0 < kMaxTokens ? n - t0 : kMaxTokens;
            const uint8_t *codes_row = w.codes + i * s.row_bytes;
            const uint16_t *lut_row = w.lut + i * s.lut_row_entries;
            const float *xt = xb + t0 * stride, *x0 = x + t0 * s.cols;
            float *yt = y + t0 * s.rows;
            switch (tokens) {
            case 1: matmat_row<Decode, 1>(s, codes_row, lut_row, xt, stride, x0, yt, i); break;
            case 2: matmat_row<Decode, 2>(s, codes_row, lut_row, xt, stride, x0, yt, i); break;
            case 3: matmat_row<Decode, 3>(s, codes_row, lut_row, xt, stride, x0, yt, i); break;
            case 4: matmat_row<Decode, 4>(s, codes_row, lut_row, xt, stride, x0, yt, i); break;
            case 5: matmat_row<Decode, 5>(s, codes_row, lut_row, xt, stride, x0, yt, i); break;
            case 6: matmat_row<Decode, 6>(s, codes_row, lut_row, xt, stride, x0, yt, i); break;
            case 7: matmat_row<Decode, 7>(s, codes_row, lut_row, xt, stride, x0, yt, i); break;
            default: matmat_row<Decode, 8>(s, codes_row, lut_row, xt, stride, x0, yt, i); break;
            }
        }
    }
}

// The blocked loops need group boundaries on block boundaries: group_size a multiple of 32,
// or one group for the whole row. Anything else the file format does not produce.
bool blocked_layout_ok(const LutMatrixView &w) { return w.group_size % kBlock == 0 || w.group_size >= w.cols; }

}  // namespace

void lut_matvec_avx2(const LutMatrixView &w, const float *x, float *y, int64_t row_begin, int64_t row_end) {
    if (row_begin >= row_end) return;
    if (!blocked_layout_ok(w)) return lut_matvec_scalar(w, x, y, row_begin, row_end);
    switch (w.bits) {
    case 2: return matvec_rows<Decode2>(w, x, y, row_begin, row_end);
    case 3: return matvec_rows<Decode3>(w, x, y, row_begin, row_end);
    case 4: return matvec_rows<Decode4>(w, x, y, row_begin, row_end);
    case 5: return matvec_rows<DecodeWide<5>>(w, x, y, row_begin, row_end);
    case 6: return matvec_rows<DecodeWide<6>>(w, x, y, row_begin, row_end);
    case 8: return matvec_rows<Decode8>(w, x, y, row_begin, row_end);
    default: return lut_matvec_scalar(w, x, y, row_begin, row_end);
    }
}

void lut_matmat_avx2(const LutMatrixView &w, const float *x, int64_t n, float *y, int64_t row_begin,
                     int64_t row_end) {
    if (row_begin >= row_end || n <= 0) return;
    if (n == 1) return lut_matvec_avx2(w, x, y, row_begin, row_end);
    if (!blocked_layout_ok(w)) return lut_matmat_scalar(w, x, n, y, row_begin, row_end);
    switch (w.bits) {
    case 2: return matmat_rows<Decode2>(w, x, n, y, row_begin, row_end);
    case 3: return matmat_rows<Decode3>(w, x, n, y, row_begin, row_end);
    case 4: return matmat_rows<Decode4>(w, x, n, y, row_begin, row_end);
    case 5: return matmat_rows<DecodeWide<5>>(w, x, n, y, row_begin, row_end);
    case 6: return matmat_rows<DecodeWide<6>>(w, x, n, y, row_begin, row_end);
    case 8: return matmat_rows<Decode8>(w, x, n, y, row_begin, row_end);
    default: return lut_matmat_scalar(w, x, n, y, row_begin, row_end);
    }
}

}  // namespace kernels
}  // namespace sqllm
