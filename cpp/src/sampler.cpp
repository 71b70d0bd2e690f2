#include "sampler.h"

#include <algorithm>
#include <cmath>
#include <random>
#include <string>
#include <unordered_map>

#include "sqf.h"

namespace sqllm {

SamplerParams default_sampler_params() {
    SamplerParams p;
    p.temperature = 0.8f;
    p.top_k = 40;
    p.top_p = 0.95f;
    p.min_p = 0.05f;
    p.repetition_penalty = 1.0f;
    p.repetition_window = 64;
    p.seed = 0;
    p.presence_penalty = 0.0f;
    p.frequency_penalty = 0.0f;
    return p;
}

Sampler::Sampler(const SamplerParams &p) : params_(p) {
    auto fail = [](const char *what) { throw Error(SQLLM_ERR_INVALID_ARGUMENT, std::string("sampler: ") + what); };
    if (!(p.temperature >= 0.0f) || !std::isfinite(p.temperature)) fail("temperature must be a finite number >= 0");
    if (p.top_k < 0) fail("top-k must be >= 0");
    if (!(p.top_p > 0.0f && p.top_p <= 1.0f)) fail("top-p must be in (0, 1]");
    if (!(p.min_p >= 0.0f && p.min_p < 1.0f)) fail("min-p must be in [0, 1)");
    if (!(p.repetition_penalty > 0.0f) || !std::isfinite(p.repetition_penalty)) fail("repetition penalty must be a finite number > 0");
    if (p.repetition_window < 0) fail("repetition window must be >= 0");
    if (!std::isfinite(p.presence_penalty)) fail("presence penalty must be a finite number");
    if (!std::isfinite(p.frequency_penalty)) fail("frequency penalty must be a finite number");
}

int32_t Sampler::sample(const float *logits, int32_t vocab, const std::vector<int32_t> &history) {
    // NaN would break the orderings below; -infinity (a token ruled out) is fine, as long as one
    // token is left.
    bool any_finite = false;
    for (int32_t i = 0; i < vocab; i++) {
        if (std::isnan(logits[i]) || logits[i] == INFINITY)
            throw Error(SQLLM_ERR_INVALID_ARGUMENT, "sampler: the logit of token " + std::to_string(i) + " is " + std::to_string(logits[i]));
        any_finite = any_finite || std::isfinite(logits[i]);
    }
    if (!any_finite) throw Error(SQLLM_ERR_INVALID_ARGUMENT, "sampler: every logit is -infinity");
    candidates_.resize(size_t(vocab));
    for (int32_t i = 0; i < vocab; i++) candidates_[size_t(i)] = {logits[i], i};
    const bool penalised = params_.repetition_penalty != 1.0f || params_.presence_penalty != 0.0f || params_.frequency_penalty != 0.0f;
    if (penalised && params_.repetition_window > 0) {
        size_t from = history.size() > size_t(params_.repetition_window) ? history.size() - size_t(params_.repetition_window) : 0;
        std::unordered_map<int32_t, int32_t> seen;  // token -> occurrences in the window
        for (size_t i = from; i < history.size(); i++) seen[history[i]]++;
        for (const auto &[t, count] : seen) {
            if (t < 0 || t >= vocab) continue;
            float &l = candidates_[size_t(t)].first;
            if (!std::isfinite(l)) continue;  // a token ruled out stays out
            l = l > 0 ? l / params_.repetition_penalty : l * params_.repetition_penalty;
            l -= params_.presence_penalty + params_.frequency_penalty * float(count);
        }
    }
    auto by_logit = [](const auto &a, const auto &b) { return a.first > b.first || (a.first == b.first && a.second < b.second); };
    if (params_.temperature == 0.0f) return std::min_element(candidates_.begin(), candidates_.end(), by_logit)->second;

    size_t n = candidates_.size();
    if (params_.top_k > 0 && size_t(params_.top_k) < n) {
        std::partial_sort(candidates_.begin(), candidates_.begin() + params_.top_k, candidates_.end(), by_logit);
        n = size_t(params_.top_k);
    } else {
        std::sort(candidates_.begin(), candidates_.end(), by_logit);
    }
    // Softmax of the survivors at the temperature (they are sorted: the first is the maximum).
    std::vector<double> p(n);
    double sum = 0.0, top = candidates_[0].first;
    for (size_t i = 0; i < n; i++) sum += p[i] = std::exp((candidates_[i].first - top) / params_.temperature);
    for (double &x : p) x /= sum;
    size_t keep = n;
    if (params_.min_p > 0.0f) {
        size_t k = 1;
        while (k < keep && p[k] >= params_.min_p * p[0]) k++;
        keep = k;
    }
    if (params_.top_p < 1.0f) {
        double cum = 0.0;
        size_t k = 0;
        while (k < keep) {
            cum += p[k++];
            if (cum >= params_.top_p) break;
        }
        keep = k;
    }
    double total = 0.0;
    for (size_t i = 0; i < keep; i++) total += p[i];
    std::mt19937_64 rng(params_.seed * 0x9E3779B97F4A7C15ull + history.size());
    double r = std::uniform_real_distribution<double>(0.0, total)(rng);
    for (size_t i = 0; i < keep; i++) {
        r -= p[i];
        if (r <= 0.0) return candidates_[i].second;
    }
    return candidates_[keep - 1].second;
}

}  // namespace sqllm
