// AVX-512 (F, BW, VL, VBMI, VNNI) LUT matvec with byte levels and 14-bit activations
// (lut_matvec_w8a16.h). Compiled with those flags and run only when the CPU and OS support them
// (dispatch.cpp); internal linkage only (see lut_matvec_avx2.cpp on why).
//
// Each step (128 columns) of a row is unpacked and looked up in the row's byte levels
// (unpack_avx512.h); vpdpbusd multiplies them with the hi and the lo plane of the activations
// into four int32 sums (two chains per plane) that run over a whole 512-column block: a lane
// adds at most 4 steps * 4 products of |level * hi| <= 255 * 64 and of level * lo <= 255 * 127,
// so 128 * (hi sums) + (lo sums) stays far inside int32. Per block the sum is converted to float
// and scaled; the horizontal sums of 16 rows are taken together (transpose_sum).
// GCC 12's AVX-512 intrinsics start from _mm512_undefined_*(), which -Wmaybe-uninitialized
// reports at every inlined call; the values are always fully written.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include <cstdint>

#include "kernels/lut_matvec_q8/unpack_avx512.h"
#include "kernels/lut_matvec_w8a16/lut_matvec_w8a16.h"

namespace sqllm {
namespace kernels {
namespace {

constexpr int64_t kStep = kUnpackStep;
constexpr int64_t kBlockSteps = kQ16Block / kStep;

template <int kBits>
void rows_w8a16(const LutMatrixView &w, const LutQ8Tables &t, const W8A16Activations &a, int64_t token, float *y,
                int64_t row_begin, int64_t row_end) {
    constexpr int64_t kStepBytes = kStep * kBits / 8;
    // No view member functions here: see the note at the top of lut_matvec_avx2.cpp.
    const int64_t groups = (w.cols + w.group_size - 1) / w.group_size;
    const int64_t row_bytes = (w.cols + 31) / 32 * 32 * w.bits / 8, all_bytes = w.rows * row_bytes;
    const int64_t steps = a.padded / kStep, blocks = (a.padded + kQ16Block - 1) / kQ16Block;
    const int64_t group_steps = w.group_size >= w.cols ? steps : w.group_size / kStep;
    const int8_t *hi = a.hi + token * a.padded, *lo = a.lo + token * a.padded;
    const float *scales = a.scales + token * blocks;
    const double *prefix = a.prefix + token * (steps + 1);
    DecodeLevels8<kBits> decode;
    for (int64_t i0 = row_begin; i0 < row_end; i0 += 16) {
        const int64_t i1 = i0 + 16 < row_end ? i0 + 16 : row_end;
        __m512 totals[16];
        alignas(64) float biases[16] = {};
        for (int64_t i = i0; i < i1; i++) {
            const uint8_t *codes = w.codes + i * row_bytes;
            __m512 total = _mm512_setzero_ps();
            double bias = 0.0;
            for (int64_t g = 0; g < groups; g++) {
                const int64_t table = i * groups + g;
                decode.load_table(t.levels + (table << kBits));
                const int64_t s0 = g * group_steps, s1 = g + 1 < groups ? s0 + group_steps : steps;
                __m512 u = _mm512_setzero_ps();
                // Segments end at each block's end and at the group's.
                for (int64_t c0 = s0; c0 < s1;) {
                    const int64_t block = c0 / kBlockSteps, block_end = (block + 1) * kBlockSteps;
                    const int64_t c1 = block_end < s1 ? block_end : s1;
                    __m512i h0 = _mm512_setzero_si512(), h1 = h0, l0 = h0, l1 = h0;
                    for (int64_t s = c0; s < c1; s++) {
                        // Steps past the row read the next row's codes, which meet zero activations.
                        const int64_t offset = i * row_bytes + s * kStepBytes;
                        const int64_t left = all_bytes - offset < kStepBytes ? all_bytes - offset : kStepBytes;
                        __m512i wv[2];
                        decode.decode(codes + s * kStepBytes, left, wv);
                        h0 = _mm512_dpbusd_epi32(h0, wv[0], _mm512_loadu_si512(hi + s * kStep));
                        h1 = _mm512_dpbusd_epi32(h1, wv[1], _mm512_loadu_si512(hi + s * kStep + 64));
                        l0 = _mm512_dpbusd_epi32(l0, wv[0], _mm512_loadu_si512(lo + s * kStep));
                        l1 = _mm512_dpbusd_epi32(l1, wv[1], _mm512_loadu_si512(lo + s * kStep + 64));
                    }
                    const __m512i sum = _mm512_add_epi32(_mm512_slli_epi32(_mm512_add_epi32(h0, h1), 7), _mm512_add_epi32(l0, l1));
                    u = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sum), _mm512_set1_ps(scales[block]), u);
                    c0 = c1;
                }
                total = _mm512_fmadd_ps(u, _mm512_set1_ps(t.step[table]), total);
                bias += double(t.lo[table]) * (prefix[s1] - prefix[s0]);
            }
            totals[i - i0] = total;
            biases[i - i0] = float(bias);
        }
        for (int64_t r = i1 - i0; r < 16; r++) totals[r] = _mm512_setzero_ps();
        const __m512 sums = _mm512_add_ps(transpose_sum(totals), _mm512_load_ps(biases));
        _mm512_mask_storeu_ps(y + token * w.rows + i0, __mmask16((1u << (i1 - i0)) - 1), sums);
    }
}

template <int kBits>
void matvec(const LutMatrixView &w, const LutQ8Tables &t, const W8A16Activations &a, float *y, int64_t row_begin,
            int64_t row_end) {
    for (int64_t token = 0; token < a.n; token++) rows_w8a16<kBits>(w, t, a, token, y, row_begin, row_end);
}

}  // namespace

void lut_matvec_w8a16_avx512(const LutMatrixView &w, const LutQ8Tables &t, const W8A16Activations &a, float *y,
                             int64_t row_begin, int64_t row_end) {
    if (row_begin >= row_end || a.n <= 0) return;
    switch (w.bits) {
    case 2: return matvec<2>(w, t, a, y, row_begin, row_end);
    case 3: return matvec<3>(w, t, a, y, row_begin, row_end);
    case 5: return matvec<5>(w, t, a, y, row_begin, row_end);
    case 6: return matvec<6>(w, t, a, y, row_begin, row_end);
    default: return matvec<4>(w, t, a, y, row_begin, row_end);
    }
}

}  // namespace kernels
}  // namespace sqllm
