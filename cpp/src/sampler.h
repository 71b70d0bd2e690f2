// Token sampling: greedy, temperature, top-k, top-p, min-p, repetition penalty, seeded.
#pragma once

#include <cstdint>
#include <vector>

#include "sqllm/sqllm.h"

namespace sqllm {

// The parameters are the C API's struct (sqllm.h documents each field), used as they are.
using SamplerParams = sqllm_sampler_params;

SamplerParams default_sampler_params();

class Sampler {
public:
    // Throws Error(INVALID_ARGUMENT) naming the first parameter out of range.
    explicit Sampler(const SamplerParams &p);
    // Picks the next token from logits[vocab]; `history` is the sequence so far (for the
    // penalty). The random draw depends only on the seed and the history length. Throws
    // Error(INVALID_ARGUMENT) when a logit is NaN or +infinity, or all are -infinity.
    int32_t sample(const float *logits, int32_t vocab, const std::vector<int32_t> &history);

private:
    SamplerParams params_;
    std::vector<std::pair<float, int32_t>> candidates_;
};

}  // namespace sqllm
