#include "kernels/scratch.h"

#include <cstddef>
#include <vector>

namespace sqllm {
namespace kernels {

float *thread_scratch_floats(int64_t count) {
    thread_local std::vector<float> buffer;
    if (buffer.size() < std::size_t(count)) buffer.resize(std::size_t(count));
    return buffer.data();
}

}  // namespace kernels
}  // namespace sqllm
