// Rotary position embedding of Llama / Mistral / Qwen2 with the scalings of transformers
// (none, linear, dynamic NTK, llama3): frequencies and cos/sin tables per position, computed in
// float as transformers computes them.
#pragma once

#include <cstdint>
#include <vector>

#include "sqf.h"

namespace sqllm {

class Rope {
public:
    explicit Rope(const ModelConfig &config) : config_(config) { update(0); }
    // Makes the tables cover positions [0, seq_len) (dynamic scaling: of a sequence that long).
    void update(int32_t seq_len);
    // One head's vector [head_dim] at position pos (in may equal out).
    void rotate(const float *in, float *out, int32_t pos) const;
    // Every head of n tokens, x [n][heads][head_dim], the first at position pos0, in place.
    void apply(float *x, int32_t n, int heads, int32_t pos0) const;

private:
    const ModelConfig &config_;
    std::vector<float> inv_freq_;
    int32_t seq_len_ = 0;
    // cos and sin of inv_freq_ * position for the positions [0, rows_): [position][head_dim / 2].
    std::vector<float> cos_, sin_;
    int32_t rows_ = 0;
};

}  // namespace sqllm
