#include "kernels/stream_read/stream_read.h"

namespace sqllm {
namespace kernels {

double sum_f32_scalar(const float *x, int64_t n) {
    // Four independent partial sums, so that the loop is not bound by the add latency.
    double s0 = 0.0, s1 = 0.0, s2 = 0.0, s3 = 0.0;
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) {
        s0 += x[i];
        s1 += x[i + 1];
        s2 += x[i + 2];
        s3 += x[i + 3];
    }
    for (; i < n; i++) s0 += x[i];
    return (s0 + s1) + (s2 + s3);
}

}  // namespace kernels
}  // namespace sqllm
