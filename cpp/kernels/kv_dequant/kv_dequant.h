// KV-cache dequantization (SPEC §7): a run of b-bit codes from a packed cache row becomes
// floats through a small table of levels and an affine map,
//
//   out[i] = zero[i * step] + scale[i * step] * levels[code(c0 + i)],   i in [0, n)
//
// step 1: per-channel zero and scale (keys); step 0: one zero and scale for the run (a
// token's values). The row is the LSB-first bit stream of the weights' codes (lut_matvec.h):
// code c occupies bits [c*bits, (c+1)*bits). levels holds 1 << bits floats; bits is 2, 3 or 4.
// Every version rounds the product, then the sum (never a fused multiply-add; the AVX2 file
// is compiled with -ffp-contract=off), so all give the same bits as numpy's zero + scale * level.
#pragma once

#include <cstdint>

namespace sqllm {
namespace kernels {

using KvDequantFn = void (*)(const uint8_t *row, int64_t c0, int64_t n, int bits, const float *levels,
                             const float *zero, const float *scale, int64_t step, float *out);

void kv_dequant_scalar(const uint8_t *row, int64_t c0, int64_t n, int bits, const float *levels, const float *zero,
                       const float *scale, int64_t step, float *out);

#if defined(SQLLM_X86)
// Eight codes per step when c0 is a multiple of 8 (a head's channels, whenever head_dim is);
// otherwise the scalar version. Reads no byte of the row past the last code's.
void kv_dequant_avx2(const uint8_t *row, int64_t c0, int64_t n, int bits, const float *levels, const float *zero,
                     const float *scale, int64_t step, float *out);
#endif

}  // namespace kernels
}  // namespace sqllm
