// Per-thread scratch memory for kernels that need a temporary copy of their input (e.g.
// activations reordered to match a SIMD decode order).
#pragma once

#include <cstdint>

namespace sqllm {
namespace kernels {

// A buffer of at least `count` floats owned by the calling thread, reused by later calls
// on the same thread: valid until that thread calls this again. Defined in a file compiled
// for the baseline ISA, so that the *_avx2.cpp files need no std:: containers of their own
// (see lut_matvec_avx2.cpp on why that matters).
float *thread_scratch_floats(int64_t count);

}  // namespace kernels
}  // namespace sqllm
