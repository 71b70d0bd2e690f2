#include "kernels/dense_matvec/dense_matvec.h"
#include "kernels/fp16.h"

namespace sqllm {
namespace kernels {
namespace {

double dot_f16(const uint16_t *a, const float *b, int64_t n) {
    double sum = 0.0;
    for (int64_t j = 0; j < n; j++) sum += double(fp16_to_fp32(a[j])) * double(b[j]);
    return sum;
}

}  // namespace

void dense_matvec_f32_scalar(const float *w, int64_t /*rows*/, int64_t cols, const float *x, float *y,
                             int64_t row_begin, int64_t row_end) {
    for (int64_t i = row_begin; i < row_end; i++) {
        const float *row = w + i * cols;
        double sum = 0.0;
        for (int64_t j = 0; j < cols; j++) sum += double(row[j]) * double(x[j]);
        y[i] = float(sum);
    }
}

void dense_matmat_f32_scalar(const float *w, int64_t rows, int64_t cols, const float *x, int64_t n, float *y,
                             int64_t row_begin, int64_t row_end) {
    for (int64_t t = 0; t < n; t++) dense_matvec_f32_scalar(w, rows, cols, x + t * cols, y + t * rows, row_begin, row_end);
}

void dense_matvec_f16_scalar(const uint16_t *w, int64_t /*rows*/, int64_t cols, const float *x, float *y,
                             int64_t row_begin, int64_t row_end) {
    for (int64_t i = row_begin; i < row_end; i++) y[i] = float(dot_f16(w + i * cols, x, cols));
}

void dense_matmat_f16_scalar(const uint16_t *w, int64_t rows, int64_t cols, const float *x, int64_t n, float *y,
                             int64_t row_begin, int64_t row_end) {
    for (int64_t t = 0; t < n; t++) dense_matvec_f16_scalar(w, rows, cols, x + t * cols, y + t * rows, row_begin, row_end);
}

}  // namespace kernels
}  // namespace sqllm
