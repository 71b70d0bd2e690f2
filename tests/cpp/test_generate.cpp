// Generation and scoring through the C API on the bundled 4-bit model: sqllm_generate and the
// step-by-step generator give the same tokens for the same seed, the context holds what was
// generated, the stop and fit rules, parameter checks, and sqllm_nll / sqllm_text_nll against
// logits from sqllm_eval.
#include <cmath>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "sqllm/sqllm.h"

static int g_passed = 0, g_failed = 0;

static void check(bool ok, const std::string &what) {
    if (ok) {
        g_passed++;
    } else {
        g_failed++;
        std::printf("FAIL: %s (last error: %s)\n", what.c_str(), sqllm_last_error());
    }
}

static int collect(int32_t token, const char *, size_t, void *user_data) {
    static_cast<std::vector<int32_t> *>(user_data)->push_back(token);
    return 0;
}

static int stop_after_three(int32_t token, const char *, size_t, void *user_data) {
    auto *out = static_cast<std::vector<int32_t> *>(user_data);
    out->push_back(token);
    return out->size() == 3;
}

int main() {
    sqllm_model *model = nullptr;
    check(sqllm_model_load("tests/data/stories260K-q4.sqf", nullptr, &model) == SQLLM_OK, "the model loads");
    if (!model) return 1;
    check(std::strlen(sqllm_version()) >= 5 && std::strchr(sqllm_version(), '.') != nullptr, "a version string");
    sqllm_context *ctx = nullptr;
    check(sqllm_context_create(model, nullptr, &ctx) == SQLLM_OK, "a context");
    const char *prompt = "Once upon a time";
    sqllm_sampler_params sp = sqllm_sampler_params_default();
    sp.temperature = 1.0f;
    sp.seed = 7;

    std::vector<int32_t> a;
    sqllm_generate_stats stats{};
    check(sqllm_generate(ctx, prompt, std::strlen(prompt), 40, &sp, collect, &a, &stats) == SQLLM_OK, "generate");
    check(stats.generated_tokens == int32_t(a.size()) && !a.empty() && a.size() <= 40, "stats count the tokens");
    check(sqllm_context_n_past(ctx) == stats.prompt_tokens + stats.generated_tokens, "the context holds prompt and output");

    // The generator handle, from an empty context: the same tokens.
    sqllm_context_reset(ctx);
    sqllm_generator *gen = nullptr;
    check(sqllm_generator_create(ctx, prompt, std::strlen(prompt), 40, &sp, &gen) == SQLLM_OK, "generator");
    std::vector<int32_t> b;
    std::string text;
    for (int32_t t = 0;;) {
        const char *piece;
        size_t n;
        if (sqllm_generator_next(gen, &t, &piece, &n) != SQLLM_OK || t < 0) break;
        b.push_back(t);
        text.append(piece, n);
    }
    sqllm_generate_stats gstats{};
    sqllm_generator_stats(gen, &gstats);
    sqllm_generator_free(gen);
    check(a == b && gstats.generated_tokens == stats.generated_tokens, "the step-by-step generator gives the same tokens");
    std::vector<char> decoded(4096);
    size_t length = 0;
    check(sqllm_detokenize(model, b.data(), b.size(), 0, decoded.data(), decoded.size(), &length) == SQLLM_OK &&
              std::string(decoded.data(), length) == text,
          "the pieces concatenate to the detokenized text");

    // Another seed, another continuation; a callback that stops.
    sqllm_context_reset(ctx);
    sp.seed = 8;
    std::vector<int32_t> c;
    check(sqllm_generate(ctx, prompt, std::strlen(prompt), 40, &sp, collect, &c, nullptr) == SQLLM_OK && c != a, "another seed");
    sqllm_context_reset(ctx);
    std::vector<int32_t> three;
    check(sqllm_generate(ctx, prompt, std::strlen(prompt), 40, &sp, stop_after_three, &three, &stats) == SQLLM_OK &&
              three.size() == 3 && stats.generated_tokens == 3,
          "the callback stops generation");

    // Parameters are checked once, in the core, with one status.
    sqllm_sampler_params bad = sqllm_sampler_params_default();
    bad.top_p = 0.0f;
    check(sqllm_generate(ctx, prompt, std::strlen(prompt), 4, &bad, nullptr, nullptr, nullptr) == SQLLM_ERR_INVALID_ARGUMENT &&
              std::strstr(sqllm_last_error(), "top-p") != nullptr,
          "a bad top-p is refused, named");
    check(sqllm_generate(ctx, prompt, std::strlen(prompt), -1, nullptr, nullptr, nullptr, nullptr) == SQLLM_ERR_INVALID_ARGUMENT,
          "max_tokens -1 is refused");
    int32_t token;
    const float logits[2] = {0.0f, 1.0f};
    check(sqllm_sample(&bad, logits, 2, nullptr, 0, &token) == SQLLM_ERR_INVALID_ARGUMENT, "sqllm_sample checks the same way");
    sqllm_context_params cp = sqllm_context_params_default();
    cp.n_batch = 0;
    sqllm_context *bad_ctx = nullptr;
    check(sqllm_context_create(model, &cp, &bad_ctx) == SQLLM_ERR_INVALID_ARGUMENT && !bad_ctx &&
              std::strstr(sqllm_last_error(), "n_batch") != nullptr,
          "n_batch 0 is refused, named");

    // A prompt that exactly fills the context is accepted and yields at most one token; one
    // token more does not fit.
    cp = sqllm_context_params_default();
    size_t n_prompt = 0;
    sqllm_tokenize(model, prompt, std::strlen(prompt), 1, 1, nullptr, 0, &n_prompt);
    cp.n_ctx = int32_t(n_prompt);
    sqllm_context *small = nullptr;
    check(sqllm_context_create(model, &cp, &small) == SQLLM_OK, "a context as long as the prompt");
    std::vector<int32_t> one;
    check(sqllm_generate(small, prompt, std::strlen(prompt), 10, &sp, collect, &one, nullptr) == SQLLM_OK && one.size() <= 1,
          "a prompt that fills the context: at most one token");
    sqllm_context_reset(small);
    const std::string longer = std::string(prompt) + " there";
    check(sqllm_generate(small, longer.c_str(), longer.size(), 10, &sp, nullptr, nullptr, nullptr) == SQLLM_ERR_INVALID_ARGUMENT &&
              std::strstr(sqllm_last_error(), "does not fit") != nullptr,
          "a longer prompt does not fit");
    sqllm_context_free(small);

    // Scoring: sqllm_nll against the log-softmax of sqllm_eval's logits.
    const int32_t vocab = sqllm_model_vocab_size(model);
    std::vector<int32_t> ids(100);
    size_t n_ids = 0;
    const char *story = "Once upon a time, there was a little girl named Lily. She liked to play in the park with her dog.";
    sqllm_tokenize(model, story, std::strlen(story), 1, 1, ids.data(), ids.size(), &n_ids);
    ids.resize(n_ids);
    sqllm_context_reset(ctx);
    std::vector<float> all(ids.size() * size_t(vocab));
    check(sqllm_eval(ctx, ids.data(), ids.size(), all.data(), 1) == SQLLM_OK, "eval all logits");
    double expected = 0.0;
    for (size_t t = 0; t + 1 < ids.size(); t++) {
        const float *row = all.data() + t * size_t(vocab);
        double mx = row[0], sum = 0.0;
        for (int32_t k = 1; k < vocab; k++) mx = std::fmax(mx, row[k]);
        for (int32_t k = 0; k < vocab; k++) sum += std::exp(double(row[k]) - mx);
        expected += mx + std::log(sum) - row[ids[t + 1]];
    }
    sqllm_context_reset(ctx);
    std::vector<double> nll(ids.size() - 1);
    check(sqllm_nll(ctx, ids.data(), ids.size(), nll.data()) == SQLLM_OK, "sqllm_nll");
    double total = 0.0;
    for (double x : nll) total += x;
    check(std::fabs(total - expected) < 1e-6 * std::fabs(expected), "sqllm_nll sums to the NLL of the logits");
    double text_nll = 0.0;
    int64_t count = 0;
    check(sqllm_text_nll(ctx, story, std::strlen(story), 512, 0, &text_nll, &count) == SQLLM_OK && count == int64_t(ids.size()) - 1 &&
              std::fabs(text_nll - expected) < 1e-6 * std::fabs(expected),
          "sqllm_text_nll of one window: the same sum");
    check(sqllm_text_nll(ctx, story, std::strlen(story), 1, 0, &text_nll, &count) == SQLLM_ERR_INVALID_ARGUMENT,
          "a window of 1 is refused");
    check(sqllm_text_nll(ctx, story, std::strlen(story), 8, 2, &text_nll, &count) == SQLLM_OK && count == 14,
          "two windows of 8 score 7 tokens each");

    sqllm_context_free(ctx);
    sqllm_model_free(model);
    std::printf("%d passed, %d failed\n", g_passed, g_failed);
    return g_failed ? 1 : 0;
}
