// Several contexts over one model, generating at once from several threads (as the server's slots
// do), each with its own thread pool, on the exact and the int8 paths, with a tokenizer thread
// beside them: every thread gets the tokens a lone context gets. `make test-tsan` runs this under
// ThreadSanitizer. Also sqllm_context_truncate's bounds.
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "sqllm/sqllm.h"

static int g_failed = 0;

static void check(bool ok, const std::string &what) {
    if (!ok) {
        g_failed++;
        std::printf("FAIL: %s (last error: %s)\n", what.c_str(), sqllm_last_error());
    }
}

static int collect(int32_t token, const char *, size_t, void *user_data) {
    static_cast<std::vector<int32_t> *>(user_data)->push_back(token);
    return 0;
}

static std::vector<int32_t> generate(sqllm_context *ctx, const char *prompt, uint64_t seed) {
    sqllm_sampler_params sp = sqllm_sampler_params_default();
    sp.temperature = 1.0f;
    sp.seed = seed;
    sp.presence_penalty = 0.5f;
    std::vector<int32_t> out;
    sqllm_context_reset(ctx);
    if (sqllm_generate(ctx, prompt, std::strlen(prompt), 48, &sp, collect, &out, nullptr) != SQLLM_OK) out.assign(1, -2);
    return out;
}

int main() {
    sqllm_model *model = nullptr;
    check(sqllm_model_load("tests/data/stories260K-q4.sqf", nullptr, &model) == SQLLM_OK, "the model loads");
    if (!model) return 1;
    const char *prompts[] = {"Once upon a time", "The little dog", "One day, Lily", "Tom and Sue"};
    constexpr int kContexts = 4;
    for (int int8 = 0; int8 <= 1; int8++) {
        sqllm_context_params cp = sqllm_context_params_default();
        cp.n_threads = 2;
        cp.int8 = int8;
        sqllm_context *ctx[kContexts] = {};
        for (auto &c : ctx) check(sqllm_context_create(model, &cp, &c) == SQLLM_OK, "a context");
        std::vector<int32_t> alone[kContexts], together[kContexts];
        for (int i = 0; i < kContexts; i++) alone[i] = generate(ctx[0], prompts[i], 100 + i);
        std::vector<std::thread> threads;
        for (int i = 0; i < kContexts; i++)
            threads.emplace_back([&, i] { together[i] = generate(ctx[i], prompts[i], 100 + i); });
        threads.emplace_back([&] {
            for (int k = 0; k < 200; k++) {
                int32_t ids[64];
                size_t n = 0;
                sqllm_tokenize(model, prompts[k % kContexts], std::strlen(prompts[k % kContexts]), 1, 1, ids, 64, &n);
            }
        });
        for (auto &t : threads) t.join();
        for (int i = 0; i < kContexts; i++)
            check(!alone[i].empty() && alone[i] == together[i], "context " + std::to_string(i) + " (int8 " +
                                                                    std::to_string(int8) + "): the tokens of a lone context");

        const char *prompt = prompts[0];
        generate(ctx[0], prompt, 5);
        int32_t ids[64];
        size_t n = 0;
        check(sqllm_tokenize(model, prompt, std::strlen(prompt), 1, 1, ids, 64, &n) == SQLLM_OK, "tokenize");
        check(sqllm_context_truncate(ctx[0], int32_t(n) + 100000) == SQLLM_ERR_INVALID_ARGUMENT, "truncating past the end");
        check(sqllm_context_truncate(ctx[0], int32_t(n) - 1) == SQLLM_OK, "truncate");
        check(sqllm_context_n_past(ctx[0]) == int32_t(n) - 1, "n_past after truncate");
        for (auto &c : ctx) sqllm_context_free(c);
    }
    sqllm_model_free(model);
    std::printf("%s\n", g_failed ? "FAILED" : "ok");
    return g_failed ? 1 : 0;
}
