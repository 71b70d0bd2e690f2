// CSR sparse matrix-vector product that *adds* into y: the sparse part of a SqueezeLLM
// linear (outliers and sensitive weights), applied on top of the LUT matvec.
#pragma once

#include <cstdint>

namespace sqllm {
namespace kernels {

// A CSR matrix with fp32 values. rowptr has rows + 1 entries, rowptr[0] = 0, non-decreasing;
// colidx[k] is in [0, cols). Nothing is owned.
struct CsrMatrixView {
    const int32_t *rowptr = nullptr;
    const int32_t *colidx = nullptr;
    const float *values = nullptr;
    int64_t rows = 0;
    int64_t cols = 0;
};

// y[i] += sum over k in [rowptr[i], rowptr[i+1]) of values[k] * x[colidx[k]], for the rows
// [row_begin, row_end).
//   csr_spmv_add: x [cols], y [rows]
//   csr_spmm_add: x [n][cols], y [n][rows]
using CsrSpmvAddFn = void (*)(const CsrMatrixView &a, const float *x, float *y, int64_t row_begin, int64_t row_end);
using CsrSpmmAddFn = void (*)(const CsrMatrixView &a, const float *x, int64_t n, float *y, int64_t row_begin,
                              int64_t row_end);

// Reference: accumulates each row in double.
void csr_spmv_add_scalar(const CsrMatrixView &a, const float *x, float *y, int64_t row_begin, int64_t row_end);
void csr_spmm_add_scalar(const CsrMatrixView &a, const float *x, int64_t n, float *y, int64_t row_begin,
                         int64_t row_end);

#if defined(SQLLM_X86)
void csr_spmv_add_avx2(const CsrMatrixView &a, const float *x, float *y, int64_t row_begin, int64_t row_end);
void csr_spmm_add_avx2(const CsrMatrixView &a, const float *x, int64_t n, float *y, int64_t row_begin,
                       int64_t row_end);
#endif

// Splits the rows [0, rows) into n_parts contiguous ranges of about equal cost, where row r
// costs row_cost + nnz_cost * (its number of nonzeros); rowptr may be nullptr (no
// nonzeros). Range p is [bounds[p], bounds[p+1]); bounds has n_parts + 1 entries,
// bounds[0] = 0 and bounds[n_parts] = rows. With a total cost of 0 the rows are split evenly.
void split_rows_by_cost(const int32_t *rowptr, int64_t rows, double row_cost, double nnz_cost, int n_parts,
                        int64_t *bounds);
// bounds[part] of split_rows_by_cost alone, by a binary search on rowptr (O(log rows)), so
// that each thread can find its own range without a shared array.
int64_t row_split_point(const int32_t *rowptr, int64_t rows, double row_cost, double nnz_cost, int n_parts,
                        int part);

// Ranges of about equal nonzeros, for the SpMV on its own.
inline void split_rows_by_nnz(const int32_t *rowptr, int64_t rows, int n_parts, int64_t *bounds) {
    split_rows_by_cost(rowptr, rows, 0.0, 1.0, n_parts, bounds);
}

}  // namespace kernels
}  // namespace sqllm
