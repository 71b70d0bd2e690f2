#include "kernels/csr_spmv/csr_spmv.h"

namespace sqllm {
namespace kernels {

void csr_spmv_add_scalar(const CsrMatrixView &a, const float *x, float *y, int64_t row_begin, int64_t row_end) {
    for (int64_t i = row_begin; i < row_end; i++) {
        double sum = 0.0;
        for (int64_t k = a.rowptr[i]; k < a.rowptr[i + 1]; k++) sum += double(a.values[k]) * double(x[a.colidx[k]]);
        y[i] = float(double(y[i]) + sum);
    }
}

void csr_spmm_add_scalar(const CsrMatrixView &a, const float *x, int64_t n, float *y, int64_t row_begin,
                         int64_t row_end) {
    for (int64_t t = 0; t < n; t++) csr_spmv_add_scalar(a, x + t * a.cols, y + t * a.rows, row_begin, row_end);
}

}  // namespace kernels
}  // namespace sqllm
