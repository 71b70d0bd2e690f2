// AVX-512 (F, BW, VL, VBMI, VNNI) LUT GEMM for prompt batches (lut_gemm_q16.h). Compiled with
// those flags and run only when the CPU and OS support them (dispatch.cpp); internal linkage only
// (see lut_matvec_avx2.cpp on why).
//
// Tiles of up to 16 tokens, rows in blocks of 32 taken segment by segment (gemm_rows says why).
// Each step (128 columns) of a row is unpacked once
// (unpack_avx512.h), 32 code bytes at a time widened to words and looked up by vpermw (vpermi2w
// over two registers at 6 bits) in the row's 16-bit levels; vpdpwssd then multiplies and adds
// them with every token of the tile into one int32 accumulator per token. The activations of a
// step lie token after token (lut_gemm_q16.h), at fixed offsets. At the end of each 512-column
// block and each group the 16 accumulators are summed across lanes into one vector (one lane
// per token), in float, scaled by the block's scales and added up.
// GCC 12's AVX-512 intrinsics start from _mm512_undefined_*(), which -Wmaybe-uninitialized
// reports at every inlined call; the values are always fully written.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include <cstdint>
#include <cstring>
#include <vector>

#include "kernels/lut_gemm_q16/lut_gemm_q16.h"
#include "kernels/lut_matvec_q8/unpack_avx512.h"

namespace sqllm {
namespace kernels {
namespace {

constexpr int kTile = 16;  // tokens per tile: one int32 accumulator register each
constexpr int64_t kStep = kUnpackStep;
constexpr int64_t kBlockSteps = kQ16Block / kStep;

template <int kBits>
struct Decode16 : UnpackCodes<kBits> {
    __m512i low, high;  // 32 levels each; high only at 6 bits. Fewer levels are repeated.
    void load_table(const int16_t *levels) {
        if (kBits == 6) {
            low = _mm512_loadu_si512(levels);
            high = _mm512_loadu_si512(levels + 32);
        } else if (kBits == 5) {
            low = _mm512_loadu_si512(levels);
        } else if (kBits == 4) {
            low = _mm512_broadcast_i64x4(_mm256_loadu_si256(reinterpret_cast<const __m256i *>(levels)));
        } else if (kBits == 3) {
            low = _mm512_broadcast_i32x4(_mm_loadu_si128(reinterpret_cast<const __m128i *>(levels)));
        } else {
            uint64_t four;
            std::memcpy(&four, levels, 8);
            low = _mm512_set1_epi64(int64_t(four));
        }
    }
    // The levels of 32 columns from their 32 code bytes (only the low bits of each are used).
    __m512i lookup(__m256i codes) const {
        const __m512i index = _mm512_cvtepu8_epi16(codes);
        return kBits == 6 ? _mm512_permutex2var_epi16(low, index, high) : _mm512_permutexvar_epi16(index, low);
    }
};

// Lane k of the result: the sum of the 16 int32 lanes of v[k], in float (a lane holds at most
// 32 products of a block, within int32; 16 lanes of them may not be).
inline __m512 sum_lanes(const __m512i v[kTile]) {
    __m512 f[kTile];
#pragma GCC unroll 16
    for (int k = 0; k < kTile; k++) f[k] = _mm512_cvtepi32_ps(v[k]);
    return transpose_sum(f);
}

// Per tile, one vector (a lane per token, zero past the tile) of each block's scale and of each
// group's sum of s_b * A.
struct TileSums {
    std::vector<float> scales, lo_sums;  // [blocks][16], [groups][16]
};

// A run of steps of a row that one int32 sum per token covers: within one 512-column block and
// one group.
struct Segment {
    int64_t first, end, block, group;
    bool last_of_group;
};

// Rows [row_begin, row_end) for tokens t0 .. t0 + kTokens - 1. Rows are taken kRowBlock at a
// time and, within such a block, segment by segment: each segment's activations (at most 16
// tokens x 512 columns, 16 KiB) stay in L1 while every row of the block uses them, which long
// rows (whose activations would not fit) need. Per row, the float sums of the group under way
// (u) and of the groups done (total) wait in `state` between segments.
template <int kBits, int kTokens>
void gemm_rows(const LutMatrixView &w, const LutQ16Tables &t, const Q16Activations &a, int64_t t0,
               const TileSums &sums, const std::vector<Segment> &segments, float *y, int64_t row_begin, int64_t row_end) {
    constexpr int64_t kStepBytes = UnpackCodes<kBits>::kStepBytes;
    constexpr int64_t kRowBlock = 32;
    // No view member functions here: see the note at the top of lut_matvec_avx2.cpp.
    const int64_t groups = (w.cols + w.group_size - 1) / w.group_size;
    const int64_t row_bytes = (w.cols + 31) / 32 * 32 * w.bits / 8, all_bytes = w.rows * row_bytes;
    const __mmask16 live = __mmask16((1u << kTokens) - 1);
    const __m512i where = _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                                             _mm512_set1_epi32(int(w.rows)));
    Decode16<kBits> decode;
    __m512 state[kRowBlock][2];  // per row: u, total
    for (int64_t r0 = row_begin; r0 < row_end; r0 += kRowBlock) {
        const int64_t r1 = r0 + kRowBlock < row_end ? r0 + kRowBlock : row_end;
        for (int64_t i = r0; i < r1; i++) state[i - r0][0] = state[i - r0][1] = _mm512_setzero_ps();
        for (const Segment &seg : segments) {
            const __m512 scales = _mm512_loadu_ps(&sums.scales[size_t(seg.block * kTile)]);
            for (int64_t i = r0; i < r1; i++) {
                const uint8_t *codes = w.codes + i * row_bytes;
                const int64_t table = i * groups + seg.group;
                decode.load_table(t.levels + (table << kBits));
                __m512i acc[kTile];
#pragma GCC unroll 16
                for (int k = 0; k < kTile; k++) acc[k] = _mm512_setzero_si512();
                for (int64_t s = seg.first; s < seg.end; s++) {
                    // Steps past the row read the next row's codes, which meet zero activations.
                    const int64_t offset = i * row_bytes + s * kStepBytes;
                    __m512i c[2];
                    decode.unpack(codes + s * kStepBytes, all_bytes - offset, c);
                    const int16_t *q = a.q + (s * a.n + t0) * kStep;
#pragma GCC unroll 2
                    for (int half = 0; half < 2; half++) {
                        const __m512i w0 = decode.lookup(_mm512_castsi512_si256(c[half]));
                        const __m512i w1 = decode.lookup(_mm512_extracti64x4_epi64(c[half], 1));
                        if (kTokens == 1) {  // four independent chains instead of one
                            acc[2 * half] = _mm512_dpwssd_epi32(acc[2 * half], w0, _mm512_loadu_si512(q + 64 * half));
                            acc[2 * half + 1] = _mm512_dpwssd_epi32(acc[2 * half + 1], w1, _mm512_loadu_si512(q + 64 * half + 32));
                            continue;
                        }
#pragma GCC unroll 16
                        for (int k = 0; k < kTokens; k++) {
                            acc[k] = _mm512_dpwssd_epi32(acc[k], w0, _mm512_loadu_si512(q + k * kStep + 64 * half));
                            acc[k] = _mm512_dpwssd_epi32(acc[k], w1, _mm512_loadu_si512(q + k * kStep + 64 * half + 32));
                        }
                    }
                }
                // One token: its four chains (8 products per lane each) added into the first, so that
                // its lanes are summed in the same order as in any other tile: a token's result does
                // not depend on how a batch is cut into tiles.
                if (kTokens == 1) {
                    acc[0] = _mm512_add_epi32(_mm512_add_epi32(acc[0], acc[1]), _mm512_add_epi32(acc[2], acc[3]));
                    acc[1] = acc[2] = acc[3] = _mm512_setzero_si512();
                }
                const __m512 block_sums = sum_lanes(acc);
                __m512 *row = state[i - r0];
                row[0] = _mm512_fmadd_ps(block_sums, scales, row[0]);
                if (seg.last_of_group) {
                    row[1] = _mm512_fmadd_ps(row[0], _mm512_set1_ps(t.step[table]), row[1]);
                    row[1] = _mm512_fmadd_ps(_mm512_set1_ps(t.lo[table]), _mm512_loadu_ps(&sums.lo_sums[size_t(seg.group * kTile)]), row[1]);
                    row[0] = _mm512_setzero_ps();
                }
            }
        }
        for (int64_t i = r0; i < r1; i++) _mm512_mask_i32scatter_ps(y + t0 * w.rows + i, live, where, state[i - r0][1], 4);
    }
}

template <int kBits>
void gemm(const LutMatrixView &w, const LutQ16Tables &t, const Q16Activations &a, float *y, int64_t row_begin,
          int64_t row_end) {
    const int64_t groups = (w.cols + w.group_size - 1) / w.group_size, chunks = a.padded / kStep;
    const int64_t blocks = (a.padded + kQ16Block - 1) / kQ16Block;
    const int64_t group_steps = w.group_size >= w.cols ? chunks : w.group_size / kStep;
    thread_local TileSums sums;
    sums.scales.resize(size_t(blocks * kTile));
    sums.lo_sums.resize(size_t(groups * kTile));
    // Segments end at each block's end and at each group's.
    thread_local std::vector<Segment> segments;
    segments.clear();
    for (int64_t g = 0; g < groups; g++) {
        const int64_t s0 = g * group_steps, s1 = g + 1 < groups ? s0 + group_steps : chunks;
        for (int64_t c0 = s0; c0 < s1;) {
            const int64_t block = c0 / kBlockSteps, block_end = (block + 1) * kBlockSteps;
            const int64_t c1 = block_end < s1 ? block_end : s1;
            segments.push_back({c0, c1, block, g, c1 == s1});
            c0 = c1;
        }
    }
    for (int64_t t0 = 0; t0 < a.n;) {
        const int64_t left = a.n - t0;
        const int tile = left >= 16 ? 16 : left >= 8 ? 8 : left >= 4 ? 4 : left >= 2 ? 2 : 1;
        for (int k = 0; k < kTile; k++) {
            const bool in = k < tile;
            const double *prefix = in ? a.prefix + (t0 + k) * (chunks + 1) : nullptr;
            for (int64_t b = 0; b < blocks; b++)
                sums.scales[size_t(b * kTile + k)] = in ? a.scales[(t0 + k) * blocks + b] : 0.0f;
            for (int64_t g = 0; g < groups; g++) {
                const int64_t s0 = g * group_steps, s1 = g + 1 < groups ? s0 + group_steps : chunks;
                sums.lo_sums[size_t(g * kTile + k)] = in ? float(prefix[s1] - prefix[s0]) : 0.0f;
            }
        }
        switch (tile) {
        case 16: gemm_rows<kBits, 16>(w, t, a, t0, sums, segments, y, row_begin, row_end); break;
        case 8: gemm_rows<kBits, 8>(w, t, a, t0, sums, segments, y, row_begin, row_end); break;
        case 4: gemm_rows<kBits, 4>(w, t, a, t0, sums, segments, y, row_begin, row_end); break;
        case 2: gemm_rows<kBits, 2>(w, t, a, t0, sums, segments, y, row_begin, row_end); break;
        default: gemm_rows<kBits, 1>(w, t, a, t0, sums, segments, y, row_begin, row_end); break;
        }
        t0 += tile;
    }
}

}  // namespace

void lut_gemm_q16_avx512(const LutMatrixView &w, const LutQ16Tables &t, const Q16Activations &a, float *y,
                         int64_t row_begin, int64_t row_end) {
    if (row_begin >= row_end || a.n <= 0) return;
    switch (w.bits) {
    case 2: return gemm<2>(w, t, a, y, row_begin, row_end);
    case 3: return gemm<3>(w, t, a, y, row_begin, row_end);
    case 5: return gemm<5>(w, t, a, y, row_begin, row_end);
    case 6: return gemm<6>(w, t, a, y, row_begin, row_end);
    default: return gemm<4>(w, t, a, y, row_begin, row_end);
    }
}

}  // namespace kernels
}  // namespace sqllm
