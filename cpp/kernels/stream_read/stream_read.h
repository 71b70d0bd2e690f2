// The sum of a large float array: a pure streaming read, used by the benchmark to measure
// the memory bandwidth that the matvec kernels are compared against.
#pragma once

#include <cstdint>

namespace sqllm {
namespace kernels {

using SumF32Fn = double (*)(const float *x, int64_t n);

double sum_f32_scalar(const float *x, int64_t n);
#if defined(SQLLM_X86)
double sum_f32_avx2(const float *x, int64_t n);
#endif

}  // namespace kernels
}  // namespace sqllm
