// F16C conversions (internal linkage only, see lut_matvec_avx2.cpp).
#include <immintrin.h>

#include <cstdint>

#include "kernels/fp16_convert/fp16_convert.h"

namespace sqllm {
namespace kernels {

void fp16_to_fp32_avx2(const uint16_t *in, float *out, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(out + i, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i *>(in + i))));
    for (; i < n; i++) out[i] = _cvtsh_ss(in[i]);
}

void fp32_to_fp16_avx2(const float *in, uint16_t *out, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128(reinterpret_cast<__m128i *>(out + i),
                         _mm256_cvtps_ph(_mm256_loadu_ps(in + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    for (; i < n; i++) out[i] = _cvtss_sh(in[i], _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
}

}  // namespace kernels
}  // namespace sqllm
