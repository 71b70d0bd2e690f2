#include "rope.h"

#include <cmath>
#include <string>

namespace sqllm {

void Rope::update(int32_t seq_len) {
    const ModelConfig &c = config_;
    const int half = int(c.head_dim / 2);
    double base = c.rope_theta;
    const std::string &kind = c.rope_scaling_type;
    bool stale = inv_freq_.empty();
    if (kind == format::ROPE_SCALING_DYNAMIC) {
        // transformers' dynamic NTK: the base grows once the sequence passes the original length.
        double orig = c.rope_original_context_length ? c.rope_original_context_length : c.context_length;
        if (seq_len > orig || seq_len_ > orig) {
            stale = true;
            if (seq_len > orig) {
                double f = c.rope_scaling_factor;
                base = c.rope_theta * std::pow(f * seq_len / orig - (f - 1.0), double(c.head_dim) / (c.head_dim - 2));
            }
        }
        seq_len_ = seq_len;
    }
    if (stale) {
        inv_freq_.resize(size_t(half));
        for (int i = 0; i < half; i++) {
            double f = 1.0 / std::pow(base, 2.0 * i / double(c.head_dim));
            if (kind == format::ROPE_SCALING_LINEAR) {
                f /= c.rope_scaling_factor;
            } else if (kind == format::ROPE_SCALING_LLAMA3) {
                const double pi = 3.14159265358979323846;
                double low_wavelen = c.rope_original_context_length / c.rope_low_freq_factor;
                double high_wavelen = c.rope_original_context_length / c.rope_high_freq_factor;
                double wavelen = 2.0 * pi / f;
                if (wavelen > low_wavelen) {
                    f /= c.rope_scaling_factor;
                } else if (wavelen >= high_wavelen) {
                    double smooth = (c.rope_original_context_length / wavelen - c.rope_low_freq_factor) /
                                    (c.rope_high_freq_factor - c.rope_low_freq_factor);
                    f = (1.0 - smooth) * f / c.rope_scaling_factor + smooth * f;
                }
            }
            inv_freq_[size_t(i)] = float(f);
        }
        rows_ = 0;
    }
    // cos and sin of every position below seq_len, each computed once (until the frequencies
    // change), in float as transformers computes them (inv_freq * position in fp32).
    if (rows_ < seq_len) {
        cos_.resize(size_t(seq_len) * size_t(half));
        sin_.resize(size_t(seq_len) * size_t(half));
        for (int32_t p = rows_; p < seq_len; p++)
            for (int i = 0; i < half; i++) {
                float angle = float(p) * inv_freq_[size_t(i)];
                cos_[size_t(p) * half + i] = std::cos(angle);
                sin_[size_t(p) * half + i] = std::sin(angle);
            }
        rows_ = seq_len;
    }
}

void Rope::rotate(const float *in, float *out, int32_t pos) const {
    const int half = int(config_.head_dim / 2);
    const float *cs = cos_.data() + size_t(pos) * half, *sn = sin_.data() + size_t(pos) * half;
    for (int i = 0; i < half; i++) {
        const float a = in[i], b = in[i + half];
        out[i] = a * cs[i] - b * sn[i];
        out[i + half] = b * cs[i] + a * sn[i];
    }
}

void Rope::apply(float *x, int32_t n, int heads, int32_t pos0) const {
    const size_t D = size_t(config_.head_dim);
    for (int32_t t = 0; t < n; t++)
        for (int h = 0; h < heads; h++) {
            float *v = x + (size_t(t) * heads + h) * D;
            rotate(v, v, pos0 + t);
        }
}

}  // namespace sqllm
