#include "kernels/cpu_features.h"

#include <cstdlib>
#include <cstring>

#if defined(SQLLM_X86)
#include <cpuid.h>
#endif

namespace sqllm {
namespace kernels {
namespace {

bool flag_set(const char *name) {
    const char *value = std::getenv(name);
    return value && *value && std::strcmp(value, "0") != 0;
}

CpuFeatures detect() {
    CpuFeatures f;
#if defined(SQLLM_X86)
    __builtin_cpu_init();
    f.avx2 = __builtin_cpu_supports("avx2");
    f.fma = __builtin_cpu_supports("fma");
    unsigned eax, ebx, ecx, edx;  // clang has no "f16c" for __builtin_cpu_supports: CPUID leaf 1
    f.f16c = __get_cpuid(1, &eax, &ebx, &ecx, &edx) && (ecx & bit_F16C);
    // libgcc sets the AVX-512 bits only when the OS saves the zmm state (XCR0).
    f.avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
               __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vbmi") &&
               __builtin_cpu_supports("avx512vnni");
#endif
    f.force_scalar = flag_set("SQLLM_FORCE_SCALAR");
    f.no_avx512 = flag_set("SQLLM_NO_AVX512");
    return f;
}

}  // namespace

const CpuFeatures &cpu_features() {
    static const CpuFeatures features = detect();
    return features;
}

}  // namespace kernels
}  // namespace sqllm
