// AVX-512 (F, BW, VL, VBMI, VNNI) int8 LUT matvec (lut_matvec_q8.h). Compiled with those
// flags and run only when the CPU and OS support them (dispatch.cpp); internal linkage only
// (see lut_matvec_avx2.cpp on why).
//
// Codes are unpacked and looked up in the levels as unpack_avx512.h describes. vpdpbusd then
// sums 4 level * activation products per int32 lane: lanes 0-7 belong to one 32-column block and
// 8-15 to the next. Columns stay in order.
// GCC 12's AVX-512 intrinsics start from _mm512_undefined_*(), which -Wmaybe-uninitialized
// reports at every inlined call; the values are always fully written.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include <cstdint>

#include "kernels/lut_matvec_q8/lut_matvec_q8.h"
#include "kernels/lut_matvec_q8/unpack_avx512.h"

namespace sqllm {
namespace kernels {
namespace {

constexpr int64_t kStep = kUnpackStep;
constexpr int kMaxTokens = 4;


template <int kBits, int kTokens>
void rows_q8(const LutMatrixView &w, const LutQ8Tables &t, const Q8Activations &a, int64_t t0, float *y,
             int64_t row_begin, int64_t row_end) {
    constexpr int64_t kStepBytes = kStep * kBits / 8;
    // No view member functions here: see the note at the top of lut_matvec_avx2.cpp.
    const int64_t groups = (w.cols + w.group_size - 1) / w.group_size;
    const int64_t row_bytes = (w.cols + 31) / 32 * 32 * w.bits / 8, all_bytes = w.rows * row_bytes;
    const int64_t blocks = a.padded / kQ8Block, steps = a.padded / kStep;
    const int64_t group_steps = w.group_size >= w.cols ? steps : w.group_size / kStep;
    DecodeLevels8<kBits> decode;
    for (int64_t i = row_begin; i < row_end; i++) {
        const uint8_t *codes = w.codes + i * row_bytes;
        __m512 total[kTokens];
        double bias[kTokens];
#pragma GCC unroll 4
        for (int k = 0; k < kTokens; k++) total[k] = _mm512_setzero_ps(), bias[k] = 0.0;
        for (int64_t g = 0; g < groups; g++) {
            const int64_t table = i * groups + g;
            decode.load_table(t.levels + (table << kBits));
            const int64_t s0 = g * group_steps, s1 = g + 1 < groups ? s0 + group_steps : steps;
            __m512 acc[kTokens];
#pragma GCC unroll 4
            for (int k = 0; k < kTokens; k++) acc[k] = _mm512_setzero_ps();
            for (int64_t s = s0; s < s1; s++) {
                // Steps past the row read the next row's codes, which meet zero activations.
                const int64_t offset = i * row_bytes + s * kStepBytes;
                const int64_t left = all_bytes - offset < kStepBytes ? all_bytes - offset : kStepBytes;
                __m512i wv[2];
                decode.decode(codes + s * kStepBytes, left, wv);
#pragma GCC unroll 4
                for (int k = 0; k < kTokens; k++) {
                    const int8_t *q = a.q + (t0 + k) * a.padded + s * kStep;
                    const float *sc = a.scales + (t0 + k) * blocks * 8 + s * 32;
                    const __m512i p0 = _mm512_dpbusd_epi32(_mm512_setzero_si512(), wv[0], _mm512_loadu_si512(q));
                    const __m512i p1 = _mm512_dpbusd_epi32(_mm512_setzero_si512(), wv[1], _mm512_loadu_si512(q + 64));
                    acc[k] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(p0), _mm512_loadu_ps(sc), acc[k]);
                    acc[k] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(p1), _mm512_loadu_ps(sc + 16), acc[k]);
                }
            }
            const __m512 step = _mm512_set1_ps(t.step[table]);
            const double lo = double(t.lo[table]);
#pragma GCC unroll 4
            for (int k = 0; k < kTokens; k++) {
                const double *prefix = a.prefix + (t0 + k) * (blocks + 1);
                total[k] = _mm512_fmadd_ps(acc[k], step, total[k]);
                bias[k] += lo * (prefix[s1 * 4] - prefix[s0 * 4]);
            }
        }
#pragma GCC unroll 4
        for (int k = 0; k < kTokens; k++)
            y[(t0 + k) * w.rows + i] = float(double(_mm512_reduce_add_ps(total[k])) + bias[k]);
    }
}

template <int kBits>
void matmat_q8(const LutMatrixView &w, const LutQ8Tables &t, const Q8Activations &a, float *y, int64_t row_begin,
               int64_t row_end) {
    for (int64_t t0 = 0; t0 < a.n; t0 += kMaxTokens) {
        switch (a.n - t0 < kMaxTokens ? a.n - t0 : kMaxTokens) {
        case 1: rows_q8<kBits, 1>(w, t, a, t0, y, row_begin, row_end); break;
        case 2: rows_q8<kBits, 2>(w, t, a, t0, y, row_begin, row_end); break;
        case 3: rows_q8<kBits, 3>(w, t, a, t0, y, row_begin, row_end); break;
        default: rows_q8<kBits, 4>(w, t, a, t0, y, row_begin, row_end); break;
        }
    }
}

}  // namespace

void lut_matmat_q8_avx512(const LutMatrixView &w, const LutQ8Tables &t, const Q8Activations &a, float *y,
                          int64_t row_begin, int64_t row_end) {
    if (row_begin >= row_end || a.n <= 0) return;
    switch (w.bits) {
    case 2: return matmat_q8<2>(w, t, a, y, row_begin, row_end);
    case 3: return matmat_q8<3>(w, t, a, y, row_begin, row_end);
    case 5: return matmat_q8<5>(w, t, a, y, row_begin, row_end);
    case 6: return matmat_q8<6>(w, t, a, y, row_begin, row_end);
    default: return matmat_q8<4>(w, t, a, y, row_begin, row_end);
    }
}

}  // namespace kernels
}  // namespace sqllm
