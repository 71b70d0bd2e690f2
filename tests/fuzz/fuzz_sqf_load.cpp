// libFuzzer target: the .sqf loader through the C API. Each input is a file; when it loads, its
// metadata, tensors and linears are read back, and a small context evaluates and generates a
// few tokens, so that whatever the checks let through is also run.
#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "sqllm/sqllm.h"

namespace {

// One in-memory file, rewritten for every input (a regular file the loader can map).
const std::string &input_path(const uint8_t *data, size_t size) {
    static const int fd = memfd_create("sqf", 0);
    static const std::string path = "/proc/self/fd/" + std::to_string(fd);
    if (ftruncate(fd, 0) != 0 || pwrite(fd, data, size, 0) != ssize_t(size)) __builtin_trap();
    return path;
}

void exercise(sqllm_model *model) {
    sqllm_model_config config;
    sqllm_model_get_config(model, &config);
    for (size_t i = 0; i < sqllm_model_meta_count(model); i++) {
        const char *key;
        sqllm_value_type type;
        uint64_t count;
        if (sqllm_model_meta_key(model, i, &key, &type, &count) != SQLLM_OK) continue;
        int64_t v;
        double f;
        const char *s;
        size_t n;
        sqllm_model_meta_int(model, key, &v);
        sqllm_model_meta_float(model, key, &f);
        sqllm_model_meta_string(model, key, &s, &n);
    }
    sqllm_tensor_info t;
    for (size_t i = 0; sqllm_model_tensor(model, i, &t) == SQLLM_OK; i++) sqllm_model_find_tensor(model, t.name, &t);
    sqllm_linear_info l;
    for (size_t i = 0; sqllm_model_linear(model, i, &l) == SQLLM_OK; i++) {
    }

    sqllm_context_params cp = sqllm_context_params_default();
    cp.n_ctx = 8;
    cp.n_threads = 1;
    sqllm_context *ctx = nullptr;
    if (sqllm_context_create(model, &cp, &ctx) != SQLLM_OK) return;
    const int32_t vocab = sqllm_model_vocab_size(model);
    const int32_t ids[2] = {0, vocab - 1};
    std::vector<float> logits(size_t(vocab) * 2);
    sqllm_eval(ctx, ids, 2, logits.data(), 1);
    sqllm_context_reset(ctx);
    sqllm_sampler_params sp = sqllm_sampler_params_default();
    sp.seed = 1;
    sqllm_generate(ctx, "Hi", 2, 3, &sp, nullptr, nullptr, nullptr);
    double nll;
    int64_t count;
    sqllm_text_nll(ctx, "a b c", 5, 4, 1, &nll, &count);
    sqllm_context_free(ctx);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    sqllm_model *model = nullptr;
    if (sqllm_model_load(input_path(data, size).c_str(), nullptr, &model) == SQLLM_OK) {
        exercise(model);
        sqllm_model_free(model);
    } else if (sqllm_last_error()[0] == '\0') {
        __builtin_trap();  // every failure says what went wrong
    }
    return 0;
}
