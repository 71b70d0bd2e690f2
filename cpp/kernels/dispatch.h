// The kernel table: one function pointer per kernel, filled with the scalar references, the
// AVX2 versions, or the AVX2 versions with the AVX-512 int8 LUT kernel. active_kernels()
// picks one table, once, from the CPU's features and SQLLM_FORCE_SCALAR / SQLLM_NO_AVX512;
// tests and benchmarks may name a table explicitly.
#pragma once

#include <cstdint>

#include "kernels/attention/attention.h"
#include "kernels/csr_spmv/csr_spmv.h"
#include "kernels/dense_matvec/dense_matvec.h"
#include "kernels/fp16_convert/fp16_convert.h"
#include "kernels/kv_dequant/kv_dequant.h"
#include "kernels/lut_matvec/lut_matvec.h"
#include "kernels/lut_gemm_q16/lut_gemm_q16.h"
#include "kernels/lut_matvec_q8/lut_matvec_q8.h"
#include "kernels/lut_matvec_w8a16/lut_matvec_w8a16.h"
#include "kernels/stream_read/stream_read.h"

namespace sqllm {
namespace kernels {

struct KernelTable {
    const char *name;  // "scalar", "avx2" or "avx512"
    LutMatvecFn lut_matvec;
    LutMatmatFn lut_matmat;
    Q8OrderFn q8_order;
    LutMatmatQ8Fn lut_matmat_q8;
    LutGemmQ16Fn lut_gemm_q16;  // nullptr where no kernel is faster than lut_matmat for batches
    LutMatvecW8A16Fn lut_matvec_w8a16;  // nullptr where no kernel is faster than lut_matvec
    CsrSpmvAddFn csr_spmv_add;
    CsrSpmmAddFn csr_spmm_add;
    DenseMatvecF32Fn dense_matvec_f32;
    DenseMatmatF32Fn dense_matmat_f32;
    DenseMatvecF16Fn dense_matvec_f16;
    DenseMatmatF16Fn dense_matmat_f16;
    GemmNtF32Fn gemm_nt_f32;
    GemmNnAddF32Fn gemm_nn_add_f32;
    SoftmaxF32Fn softmax_f32;
    Fp16ToFp32Fn fp16_to_fp32;
    Fp32ToFp16Fn fp32_to_fp16;
    SumF32Fn sum_f32;
    KvDequantFn kv_dequant;
    int q8_max_bits;  // the widest codes lut_matmat_q8 takes
};

const KernelTable &scalar_kernels();
// nullptr unless this build has the AVX2 kernels and the CPU has AVX2, FMA and F16C.
const KernelTable *avx2_kernels();
// nullptr unless this build has the AVX-512 kernels and the CPU has AVX2 (as above) and
// AVX-512 F, BW, VL, VBMI and VNNI with OS support.
const KernelTable *avx512_kernels();
// The best available table: AVX-512 (unless SQLLM_NO_AVX512 is set), AVX2, or scalar (always
// when SQLLM_FORCE_SCALAR is set).
const KernelTable &active_kernels();

// The active kernels as plain functions, for call sites that do one small operation.
inline void fp16_to_fp32_array(const uint16_t *in, float *out, int64_t n) { active_kernels().fp16_to_fp32(in, out, n); }
inline void fp32_to_fp16_array(const float *in, uint16_t *out, int64_t n) { active_kernels().fp32_to_fp16(in, out, n); }

}  // namespace kernels
}  // namespace sqllm
