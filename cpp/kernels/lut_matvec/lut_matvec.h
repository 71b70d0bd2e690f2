// LUT matvec: y = W x for a non-uniformly quantized matrix W stored as packed b-bit codes
// that index a small fp16 look-up table per row (or per group of columns). This is the
// dense part of a SqueezeLLM linear; the sparse part is a CSR SpMV added on top
// (csr_spmv.h), and ops.h runs both, threaded.
#pragma once

#include <cstdint>

namespace sqllm {
namespace kernels {

// A quantized linear layer as the .sqf file stores it (formats/SPEC.md §4). Nothing is
// owned; the pointers usually point into the memory-mapped file.
//
//   codes       rows x row_bytes(): row i is a little-endian bit stream in which column j's
//               code occupies bits [j*bits, (j+1)*bits); stream bit t is bit t%8 of byte
//               t/8. Rows hold round_up(cols, 32) codes; the padding codes are ignored.
//   lut         fp16 bit patterns, [rows][groups()][1 << bits]:
//               W[i][j] = lut[i][j / group_size][code(i, j)].
//   rowptr, colidx, corr
//               optional sparse part in CSR (all three, or all nullptr): for row i,
//               entries k in [rowptr[i], rowptr[i+1]) add corr[k] at column colidx[k].
//               corr are fp32 *corrections* (the file's sparse value minus the dense
//               value at that position), so W = dense + sparse.
//   rows, cols  output and input features.
//   group_size  cols (one LUT per row) or a multiple of 32.
//   bits        2, 3, 4, 5, 6 or 8.
struct LutMatrixView {
    const uint8_t *codes = nullptr;
    const uint16_t *lut = nullptr;
    const int32_t *rowptr = nullptr;
    const int32_t *colidx = nullptr;
    const float *corr = nullptr;
    int64_t rows = 0;
    int64_t cols = 0;
    int64_t group_size = 0;
    int bits = 0;

    int64_t groups() const { return (cols + group_size - 1) / group_size; }
    int64_t cols_padded() const { return (cols + 31) / 32 * 32; }
    int64_t row_bytes() const { return cols_padded() * bits / 8; }
    int64_t lut_row_entries() const { return groups() << bits; }
    bool has_sparse() const { return rowptr != nullptr; }
};

// The kernels compute only the dense (codes + LUT) part and *overwrite* y over the rows
// [row_begin, row_end); the sparse fields are ignored here. Calls on disjoint row ranges may
// run concurrently; y must not overlap x.
//
//   lut_matvec: x [cols] -> y [rows]
//   lut_matmat: x [n][cols] -> y [n][rows] (a batch of n activations, e.g. prompt tokens)
using LutMatvecFn = void (*)(const LutMatrixView &w, const float *x, float *y, int64_t row_begin, int64_t row_end);
using LutMatmatFn = void (*)(const LutMatrixView &w, const float *x, int64_t n, float *y, int64_t row_begin,
                             int64_t row_end);

// Column j's code in a packed row (scalar code only).
uint32_t lut_code_at(const uint8_t *row, int64_t j, int bits);

// Reference: decodes every weight on its own and accumulates in double.
void lut_matvec_scalar(const LutMatrixView &w, const float *x, float *y, int64_t row_begin, int64_t row_end);
void lut_matmat_scalar(const LutMatrixView &w, const float *x, int64_t n, float *y, int64_t row_begin,
                       int64_t row_end);

#if defined(SQLLM_X86)
void lut_matvec_avx2(const LutMatrixView &w, const float *x, float *y, int64_t row_begin, int64_t row_end);
void lut_matmat_avx2(const LutMatrixView &w, const float *x, int64_t n, float *y, int64_t row_begin,
                     int64_t row_end);
#endif

}  // namespace kernels
}  // namespace sqllm
