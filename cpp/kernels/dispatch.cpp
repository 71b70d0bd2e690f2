#include "kernels/dispatch.h"

#include "kernels/cpu_features.h"

namespace sqllm {
namespace kernels {

const KernelTable &scalar_kernels() {
    static const KernelTable table = {
        "scalar",
        lut_matvec_scalar,
        lut_matmat_scalar,
        q8_order_natural,
        lut_matmat_q8_scalar,
        nullptr,
        nullptr,
        csr_spmv_add_scalar,
        csr_spmm_add_scalar,
        dense_matvec_f32_scalar,
        dense_matmat_f32_scalar,
        dense_matvec_f16_scalar,
        dense_matmat_f16_scalar,
        gemm_nt_f32_scalar,
        gemm_nn_add_f32_scalar,
        softmax_f32_scalar,
        fp16_to_fp32_scalar,
        fp32_to_fp16_scalar,
        sum_f32_scalar,
        kv_dequant_scalar,
        6,
    };
    return table;
}

const KernelTable *avx2_kernels() {
#if defined(SQLLM_X86)
    static const KernelTable table = {
        "avx2",
        lut_matvec_avx2,
        lut_matmat_avx2,
        q8_order_avx2,
        lut_matmat_q8_avx2,
        nullptr,
        nullptr,
        csr_spmv_add_avx2,
        csr_spmm_add_avx2,
        dense_matvec_f32_avx2,
        dense_matmat_f32_avx2,
        dense_matvec_f16_avx2,
        dense_matmat_f16_avx2,
        gemm_nt_f32_avx2,
        gemm_nn_add_f32_avx2,
        softmax_f32_avx2,
        fp16_to_fp32_avx2,
        fp32_to_fp16_avx2,
        sum_f32_avx2,
        kv_dequant_avx2,
        6,
    };
    if (cpu_features().has_avx2_fma_f16c()) return &table;
#endif
    return nullptr;
}

const KernelTable *avx512_kernels() {
#if defined(SQLLM_X86)
    if (!avx2_kernels() || !cpu_features().has_avx512_int8()) return nullptr;
    static const KernelTable table = [] {
        KernelTable t = *avx2_kernels();
        t.name = "avx512";
        t.q8_order = q8_order_natural;
        t.lut_matmat_q8 = lut_matmat_q8_avx512;
        t.lut_gemm_q16 = lut_gemm_q16_avx512;
        t.lut_matvec_w8a16 = lut_matvec_w8a16_avx512;
        t.q8_max_bits = 6;
        return t;
    }();
    return &table;
#else
    return nullptr;
#endif
}

const KernelTable &active_kernels() {
    static const KernelTable &table = [] () -> const KernelTable & {
        const CpuFeatures &f = cpu_features();
        if (f.force_scalar) return scalar_kernels();
        if (avx512_kernels() && !f.no_avx512) return *avx512_kernels();
        return avx2_kernels() ? *avx2_kernels() : scalar_kernels();
    }();
    return table;
}

}  // namespace kernels
}  // namespace sqllm
