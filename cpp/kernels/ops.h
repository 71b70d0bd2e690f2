// The kernels as whole-matrix operations: each splits the rows over a ThreadPool and calls
// the active kernels (or the table given, so that tests can compare implementations).
// Shapes and layouts are as in the kernel headers; y must not overlap x.
//
// Row ranges are balanced by the bytes each row makes the kernel read (codes + LUT + its
// share of the CSR), and cut into a few more tasks than threads so that a thread delayed
// by the OS does not hold up the rest. The sparse part of a LutMatrixView is applied by the
// same task right after the dense part of its rows, while those y values are in cache.
#pragma once

#include <cstdint>
#include <vector>

#include "kernels/dispatch.h"
#include "src/threadpool.h"

namespace sqllm {
namespace ops {

// y [rows] = W x (dense LUT part plus, when present, the sparse corrections).
void lut_matvec(ThreadPool &pool, const kernels::LutMatrixView &w, const float *x, float *y,
                const kernels::KernelTable &k = kernels::active_kernels());
// y [n][rows] = W x_t for each of the n activations x [n][cols].
void lut_matmat(ThreadPool &pool, const kernels::LutMatrixView &w, const float *x, int64_t n, float *y,
                const kernels::KernelTable &k = kernels::active_kernels());

// The int8 path (lut_matvec_q8.h): `a` holds x [n][cols] quantized in k's column order for
// w.bits (Q8Buffer); the sparse part, when present, is added with the fp32 x.
struct Q8Buffer {
    std::vector<int8_t> q;
    std::vector<float> scales;
    std::vector<double> prefix;
    // Quantizes x [n][cols] in `order` (KernelTable::q8_order) into the buffer; the view
    // stays valid until the next call.
    kernels::Q8Activations quantize(const float *x, int64_t n, int64_t cols, const uint8_t *order);
};
void lut_matmat_q8(ThreadPool &pool, const kernels::LutMatrixView &w, const kernels::LutQ8Tables &t,
                   const kernels::Q8Activations &a, const float *x, float *y,
                   const kernels::KernelTable &k = kernels::active_kernels());

// Prompt batches as an integer GEMM (lut_gemm_q16.h); `a` holds x [n][cols] quantized by
// Q16Buffer, and the sparse part, when present, is added with the fp32 x. k.lut_gemm_q16 must be set.
struct Q16Buffer {
    std::vector<int16_t> q;
    std::vector<float> scales;
    std::vector<double> prefix;
    std::vector<int8_t> planes;
    // Quantizes x [n][cols], tokens split over the pool; the view stays valid until the next call.
    kernels::Q16Activations quantize(ThreadPool &pool, const float *x, int64_t n, int64_t cols);
    // a (from quantize) split for lut_matvec_w8a16; valid while a is.
    kernels::W8A16Activations split(const kernels::Q16Activations &a);
};
void lut_gemm_q16(ThreadPool &pool, const kernels::LutMatrixView &w, const kernels::LutQ16Tables &t,
                  const kernels::Q16Activations &a, const float *x, float *y,
                  const kernels::KernelTable &k = kernels::active_kernels());

// Single tokens of the default path (lut_matvec_w8a16.h): t from q8_requantize_lut, `a` from
// Q16Buffer::split; the sparse part, when present, is added with the fp32 x. k.lut_matvec_w8a16 must be set.
void lut_matvec_w8a16(ThreadPool &pool, const kernels::LutMatrixView &w, const kernels::LutQ8Tables &t,
                      const kernels::W8A16Activations &a, const float *x, float *y,
                      const kernels::KernelTable &k = kernels::active_kernels());

// y += A x, with rows split by nonzeros.
void csr_spmv_add(ThreadPool &pool, const kernels::CsrMatrixView &a, const float *x, float *y,
                  const kernels::KernelTable &k = kernels::active_kernels());
void csr_spmm_add(ThreadPool &pool, const kernels::CsrMatrixView &a, const float *x, int64_t n, float *y,
                  const kernels::KernelTable &k = kernels::active_kernels());

// y = W x for a row-major fp32 / fp16 matrix W [rows][cols]; *_matmat: x [n][cols] -> y [n][rows].
void dense_matvec_f32(ThreadPool &pool, const float *w, int64_t rows, int64_t cols, const float *x, float *y,
                      const kernels::KernelTable &k = kernels::active_kernels());
void dense_matmat_f32(ThreadPool &pool, const float *w, int64_t rows, int64_t cols, const float *x, int64_t n,
                      float *y, const kernels::KernelTable &k = kernels::active_kernels());
void dense_matvec_f16(ThreadPool &pool, const uint16_t *w, int64_t rows, int64_t cols, const float *x, float *y,
                      const kernels::KernelTable &k = kernels::active_kernels());
void dense_matmat_f16(ThreadPool &pool, const uint16_t *w, int64_t rows, int64_t cols, const float *x, int64_t n,
                      float *y, const kernels::KernelTable &k = kernels::active_kernels());

}  // namespace ops
}  // namespace sqllm
