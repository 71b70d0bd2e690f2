#include "generator.h"

#include <algorithm>
#include <chrono>
#include <cmath>

namespace sqllm {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

}  // namespace

bool ends_generation(const Tokenizer &tokenizer, int32_t token) {
    return token == tokenizer.eos_id() || tokenizer.token_type(token) == TOKEN_CONTROL;
}

namespace {

std::vector<int32_t> tokenize_prompt(const Context &ctx, std::string_view prompt) {
    const Tokenizer &tok = ctx.model().tokenizer();
    std::vector<int32_t> ids = tok.encode(prompt, ctx.n_past() == 0 && tok.add_bos(), true);
    if (ids.empty()) throw Error(SQLLM_ERR_INVALID_ARGUMENT, "the prompt is empty and the model has no BOS token");
    return ids;
}

}  // namespace

Generator::Generator(Context &ctx, std::string_view prompt, int32_t max_tokens, const SamplerParams &params)
    : Generator(ctx, tokenize_prompt(ctx, prompt), max_tokens, params) {}

Generator::Generator(Context &ctx, std::vector<int32_t> ids, int32_t max_tokens, const SamplerParams &params)
    : ctx_(ctx), sampler_(params), max_tokens_(max_tokens) {
    if (max_tokens < 0) throw Error(SQLLM_ERR_INVALID_ARGUMENT, "max_tokens must be >= 0, got " + std::to_string(max_tokens));
    if (ids.empty()) throw Error(SQLLM_ERR_INVALID_ARGUMENT, "the prompt has no tokens");
    for (int32_t id : ids)
        if (id < 0 || id >= ctx.vocab_size())
            throw Error(SQLLM_ERR_INVALID_ARGUMENT, "token id " + std::to_string(id) + " is outside the vocabulary");
    const int64_t left = int64_t(ctx.n_ctx()) - ctx.n_past();
    if (int64_t(ids.size()) > left)
        throw Error(SQLLM_ERR_INVALID_ARGUMENT, "the prompt (" + std::to_string(ids.size()) + " tokens) does not fit in the context (" +
                                                    std::to_string(left) + " positions left)");
    logits_.resize(size_t(ctx.vocab_size()));
    const Clock::time_point t0 = Clock::now();
    ctx.eval(ids.data(), int32_t(ids.size()), logits_.data(), false);
    stats_.prompt_tokens = int32_t(ids.size());
    stats_.prompt_seconds = seconds_since(t0);
}

int32_t Generator::next() {
    piece_.clear();
    if (end_ != EndReason::NONE) return -1;
    const Clock::time_point t0 = Clock::now();
    // The token returned last is evaluated only now, so that a caller who stops after it, or a
    // full context, costs no forward pass.
    if (pending_ >= 0) {
        if (ctx_.n_past() >= ctx_.n_ctx()) end_ = EndReason::CONTEXT_FULL;
        else ctx_.eval(&pending_, 1, logits_.data(), false);
        pending_ = -1;
    }
    if (end_ == EndReason::NONE && stats_.generated_tokens >= max_tokens_) end_ = EndReason::MAX_TOKENS;
    int32_t token = -1;
    if (end_ == EndReason::NONE) {
        token = sampler_.sample(logits_.data(), ctx_.vocab_size(), ctx_.tokens());
        if (ends_generation(ctx_.model().tokenizer(), token)) {
            end_ = EndReason::END_TOKEN;
            token = -1;
        } else {
            stats_.generated_tokens++;
            pending_ = token;
            piece_ = ctx_.model().tokenizer().token_to_piece(token);
        }
    }
    stats_.decode_seconds += seconds_since(t0);
    return token;
}

void token_nll(Context &ctx, const int32_t *tokens, int32_t n, double *out) {
    if (n < 2) throw Error(SQLLM_ERR_INVALID_ARGUMENT, "scoring needs at least two tokens, got " + std::to_string(n));
    const int32_t vocab = ctx.vocab_size(), chunk = 64;
    std::vector<float> logits(size_t(chunk) * size_t(vocab));
    for (int32_t start = 0; start + 1 < n; start += chunk) {
        const int32_t m = std::min(chunk, n - 1 - start);
        ctx.eval(tokens + start, m, logits.data(), true);
        for (int32_t t = 0; t < m; t++) {
            const float *row = logits.data() + size_t(t) * size_t(vocab);
            double mx = row[0];
            for (int32_t k = 1; k < vocab; k++) mx = std::max(mx, double(row[k]));
            double sum = 0.0;
            for (int32_t k = 0; k < vocab; k++) sum += std::exp(double(row[k]) - mx);
            out[start + t] = mx + std::log(sum) - double(row[tokens[start + t + 1]]);
        }
    }
}

std::vector<std::vector<int32_t>> perplexity_windows(const std::vector<int32_t> &body, int32_t window, int32_t bos) {
    if (window < 2) throw Error(SQLLM_ERR_INVALID_ARGUMENT, "a perplexity window needs at least 2 tokens, got " + std::to_string(window));
    const size_t step = size_t(bos >= 0 ? window - 1 : window);
    std::vector<std::vector<int32_t>> out;
    for (size_t start = 0; start < body.size(); start += step) {
        std::vector<int32_t> w;
        if (bos >= 0) w.push_back(bos);
        w.insert(w.end(), body.begin() + long(start), body.begin() + long(std::min(body.size(), start + step)));
        if (w.size() >= 2) out.push_back(std::move(w));
    }
    return out;
}

NllSum text_nll(Context &ctx, std::string_view text, int32_t window, int32_t max_windows) {
    if (window < 2 || window > ctx.n_ctx())
        throw Error(SQLLM_ERR_INVALID_ARGUMENT, "the perplexity window must be in [2, " + std::to_string(ctx.n_ctx()) + "], got " +
                                                    std::to_string(window));
    if (max_windows < 0) throw Error(SQLLM_ERR_INVALID_ARGUMENT, "max_windows must be >= 0 (0: all)");
    const Tokenizer &tok = ctx.model().tokenizer();
    const std::vector<int32_t> body = tok.encode(text, false, true);
    NllSum sum;
    std::vector<double> terms;
    int32_t done = 0;
    for (const std::vector<int32_t> &w : perplexity_windows(body, window, tok.add_bos() ? tok.bos_id() : -1)) {
        if (max_windows && done == max_windows) break;
        ctx.reset();
        terms.resize(w.size() - 1);
        token_nll(ctx, w.data(), int32_t(w.size()), terms.data());
        for (double x : terms) sum.nll += x;
        sum.count += int64_t(terms.size());
        done++;
    }
    if (sum.count == 0) throw Error(SQLLM_ERR_INVALID_ARGUMENT, "the text is too short to score a single token");
    return sum;
}

}  // namespace sqllm
