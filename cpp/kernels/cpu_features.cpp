#include "kernels/cpu_features.h"

#include <cstdlib>
#include <cstring>

namespace sqllm {
namespace kernels {
namespace {

bool force_scalar_requested() {
    const char *value = std::getenv("SQLLM_FORCE_SCALAR");
    return value && *value && std::strcmp(value, "0") != 0;
}

CpuFeatures detect() {
    CpuFeatures f;
#if defined(SQLLM_X86)
    __builtin_cpu_init();
    f.avx2 = __builtin_cpu_supports("avx2");
    f.fma = __builtin_cpu_supports("fma");
    f.f16c = __builtin_cpu_supports("f16c");
#endif
    f.force_scalar = force_scalar_requested();
    return f;
}

}  // namespace

const CpuFeatures &cpu_features() {
    static const CpuFeatures features = detect();
    return features;
}

}  // namespace kernels
}  // namespace sqllm
