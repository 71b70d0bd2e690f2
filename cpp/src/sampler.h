// Token sampling: greedy, temperature, top-k, top-p, min-p, repetition penalty, seeded.
#pragma once

#include <cstdint>
#include <random>
#include <string>
#include <vector>

namespace sqllm {

struct SamplerParams {
    float temperature = 0.8f;        // 0 = greedy
    int32_t top_k = 40;              // 0 = off
    float top_p = 0.95f;             // 1 = off
    float min_p = 0.05f;             // 0 = off; keep tokens with p >= min_p * p_max
    float repetition_penalty = 1.0f; // 1 = off; divides positive / multiplies negative logits of seen tokens
    int32_t repetition_window = 64;  // how many recent tokens the penalty looks at
    uint64_t seed = 0;
};

// Returns an empty string when the parameters are valid, else what is wrong.
std::string validate(const SamplerParams &p);

class Sampler {
public:
    explicit Sampler(const SamplerParams &p) : params_(p) {}
    // Picks the next token from logits[vocab]; `history` is the sequence so far (for the
    // penalty). The random draw depends only on the seed and the history length.
    int32_t sample(const float *logits, int32_t vocab, const std::vector<int32_t> &history);

private:
    SamplerParams params_;
    std::vector<std::pair<float, int32_t>> candidates_;
};

}  // namespace sqllm
