// Bulk fp16 <-> fp32 conversion (KV cache writes, tensors kept in fp16). The scalar versions
// use fp16.h; the AVX2 ones use the F16C instructions, which round the same way (to
// nearest even), so both give identical bits.
#pragma once

#include <cstdint>

namespace sqllm {
namespace kernels {

using Fp16ToFp32Fn = void (*)(const uint16_t *in, float *out, int64_t n);
using Fp32ToFp16Fn = void (*)(const float *in, uint16_t *out, int64_t n);

void fp16_to_fp32_scalar(const uint16_t *in, float *out, int64_t n);
void fp32_to_fp16_scalar(const float *in, uint16_t *out, int64_t n);

#if defined(SQLLM_X86)
void fp16_to_fp32_avx2(const uint16_t *in, float *out, int64_t n);
void fp32_to_fp16_avx2(const float *in, uint16_t *out, int64_t n);
#endif

}  // namespace kernels
}  // namespace sqllm
