#include <algorithm>
#include <cmath>

#include "kernels/attention/attention.h"

namespace sqllm {
namespace kernels {

void gemm_nt_f32_scalar(int64_t m, int64_t n, int64_t k, float alpha, const float *a, int64_t lda, const float *b,
                        int64_t ldb, float *c, int64_t ldc) {
    for (int64_t i = 0; i < m; i++)
        for (int64_t j = 0; j < n; j++) {
            double sum = 0.0;
            for (int64_t p = 0; p < k; p++) sum += double(a[i * lda + p]) * double(b[j * ldb + p]);
            c[i * ldc + j] = float(double(alpha) * sum);
        }
}

void gemm_nn_add_f32_scalar(int64_t m, int64_t n, int64_t k, const float *a, int64_t lda, const float *b, int64_t ldb,
                            float *c, int64_t ldc) {
    for (int64_t i = 0; i < m; i++)
        for (int64_t j = 0; j < n; j++) {
            double sum = c[i * ldc + j];
            for (int64_t p = 0; p < k; p++) sum += double(a[i * lda + p]) * double(b[p * ldb + j]);
            c[i * ldc + j] = float(sum);
        }
}

void softmax_f32_scalar(float *x, int64_t n) {
    const double maxv = *std::max_element(x, x + n);
    double sum = 0.0;
    for (int64_t i = 0; i < n; i++) sum += std::exp(double(x[i]) - maxv);
    for (int64_t i = 0; i < n; i++) x[i] = float(std::exp(double(x[i]) - maxv) / sum);
}

}  // namespace kernels
}  // namespace sqllm
