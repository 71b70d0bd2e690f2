#include "kernels/kv_dequant/kv_dequant.h"

#include "kernels/lut_matvec/lut_matvec.h"

namespace sqllm {
namespace kernels {

void kv_dequant_scalar(const uint8_t *row, int64_t c0, int64_t n, int bits, const float *levels, const float *zero,
                       const float *scale, int64_t step, float *out) {
    for (int64_t i = 0; i < n; i++) {
        const float level = levels[lut_code_at(row, c0 + i, bits)];
        const float product = scale[i * step] * level;
        out[i] = zero[i * step] + product;
    }
}

}  // namespace kernels
}  // namespace sqllm
