#include "kernels/fp16.h"
#include "kernels/fp16_convert/fp16_convert.h"

namespace sqllm {
namespace kernels {

void fp16_to_fp32_scalar(const uint16_t *in, float *out, int64_t n) {
    for (int64_t i = 0; i < n; i++) out[i] = fp16_to_fp32(in[i]);
}

void fp32_to_fp16_scalar(const float *in, uint16_t *out, int64_t n) {
    for (int64_t i = 0; i < n; i++) out[i] = fp32_to_fp16(in[i]);
}

}  // namespace kernels
}  // namespace sqllm
