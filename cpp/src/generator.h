// Generation and scoring over a Context, written once for every edge: sqllm_generate and the
// generator handle of the C API, the Python API and sqrun all run this code.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "model.h"
#include "sampler.h"

namespace sqllm {

struct GenerationStats {
    int32_t prompt_tokens = 0;
    int32_t generated_tokens = 0;
    double prompt_seconds = 0.0;
    double decode_seconds = 0.0;  // time spent in next(): sampling and evaluation
};

// The tokens that end generation: EOS, or any control token (Qwen's <|im_end|>, <|endoftext|>).
bool ends_generation(const Tokenizer &tokenizer, int32_t token);

// Why a generator stopped (SQLLM_END_* of sqllm.h).
enum class EndReason : int32_t { NONE = SQLLM_END_NONE, MAX_TOKENS = SQLLM_END_MAX_TOKENS, END_TOKEN = SQLLM_END_TOKEN,
                                 CONTEXT_FULL = SQLLM_END_CONTEXT_FULL };

// Step-by-step generation. The constructor tokenizes the prompt (BOS first when the context is
// empty and the model's tokenizer adds one; special tokens written in the prompt become their
// ids) and evaluates it after what the context already holds; each next() then samples one
// token. The context must not be used otherwise while the generator runs.
class Generator {
public:
    // Throws Error(INVALID_ARGUMENT) for bad sampler parameters, max_tokens < 0, an empty prompt
    // on a model without BOS, or a prompt that does not fit in the context.
    Generator(Context &ctx, std::string_view prompt, int32_t max_tokens, const SamplerParams &params);
    // The same with the prompt as token ids (at least one; ids outside the vocabulary refused),
    // evaluated as they are after what the context holds.
    Generator(Context &ctx, std::vector<int32_t> prompt, int32_t max_tokens, const SamplerParams &params);

    // The next token, or -1 at the end: max_tokens generated, an end-of-generation token
    // sampled (not returned), or the context full with the last token still to evaluate.
    int32_t next();
    // The bytes of the token next() last returned (may end inside a UTF-8 character).
    const std::string &piece() const { return piece_; }
    const GenerationStats &stats() const { return stats_; }
    // NONE until next() has returned -1.
    EndReason end_reason() const { return end_; }

private:
    Context &ctx_;
    Sampler sampler_;
    int32_t max_tokens_;
    std::vector<float> logits_;
    int32_t pending_ = -1;  // returned by next() and not yet evaluated
    EndReason end_ = EndReason::NONE;
    std::string piece_;
    GenerationStats stats_;
};

// Negative log-likelihoods (natural log): out[i] = -log p(tokens[i + 1] | what the context held,
// tokens[0..i]) for i < n - 1. Evaluates the tokens after what the context holds, a batch at a
// time (never [n][vocab] logits at once).
void token_nll(Context &ctx, const int32_t *tokens, int32_t n, double *out);

// The perplexity windows over the token ids of a text (without BOS): each window is BOS
// followed by the next window - 1 ids (without BOS: window ids, the first not scored); the last
// may be shorter; a window of fewer than two tokens is dropped.
std::vector<std::vector<int32_t>> perplexity_windows(const std::vector<int32_t> &body, int32_t window, int32_t bos);

struct NllSum {
    double nll = 0.0;   // sum of the scored tokens' NLL
    int64_t count = 0;  // tokens scored
};

// The NLL of a text over its perplexity windows (BOS when the model adds one), each window from
// an empty context; max_windows 0: all. perplexity = exp(nll / count). Throws
// Error(INVALID_ARGUMENT) when window is outside [2, n_ctx] or the text scores no token.
NllSum text_nll(Context &ctx, std::string_view text, int32_t window, int32_t max_windows);

}  // namespace sqllm
