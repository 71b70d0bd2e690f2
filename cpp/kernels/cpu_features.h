// Which SIMD extensions the running CPU has, detected once at run time. The library is
// compiled for the baseline ISA; only files named *_avx2.cpp (*_avx512.cpp) are compiled with
// AVX2/FMA/F16C (and AVX-512) and they run only when cpu_features() says the CPU has them.
#pragma once

namespace sqllm {
namespace kernels {

struct CpuFeatures {
    bool avx2 = false;
    bool fma = false;
    bool f16c = false;
    bool avx512 = false;  // F, BW, VL, VBMI and VNNI, all usable
    // SQLLM_NO_AVX512=1: stop at the AVX2 kernels.
    bool no_avx512 = false;
    // SQLLM_FORCE_SCALAR=1 in the environment: use the scalar kernels even when the CPU
    // could run faster ones (to compare, or to rule a SIMD kernel out while debugging).
    bool force_scalar = false;

    bool has_avx2_fma_f16c() const { return avx2 && fma && f16c; }
    bool has_avx512_int8() const { return has_avx2_fma_f16c() && avx512; }
};

// Detected on the first call; later calls return the same object.
const CpuFeatures &cpu_features();

}  // namespace kernels
}  // namespace sqllm
