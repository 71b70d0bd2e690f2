// The loader through the C API, in the spirit of llama.cpp's test-gguf: the golden file loads
// and reads back its metadata; truncation at every byte and thousands of seeded random byte
// flips each give a clean status (never a crash, hang or sanitizer report), and so does a file
// truncated while mapped.
#include <cstdio>
#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include <unistd.h>

#include "sqllm/sqllm.h"

static int g_passed = 0, g_failed = 0;

static void check(bool ok, const std::string &what) {
    if (ok) {
        g_passed++;
    } else {
        g_failed++;
        std::printf("FAIL: %s\n", what.c_str());
    }
}

static std::vector<char> read_file(const char *path) {
    std::ifstream f(path, std::ios::binary);
    return std::vector<char>((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

static void write_file(const std::string &path, const char *data, size_t n) {
    std::ofstream f(path, std::ios::binary | std::ios::trunc);
    f.write(data, std::streamsize(n));
}

int main() {
    const char *golden = "tests/data/golden.sqf";
    std::vector<char> data = read_file(golden);
    check(data.size() > 1000, "golden.sqf is readable");

    sqllm_model *model = nullptr;
    sqllm_load_params params = sqllm_load_params_default();
    params.verify_checksums = 1;
    sqllm_status st = sqllm_model_load(golden, &params, &model);
    check(st == SQLLM_OK, std::string("golden loads: ") + sqllm_last_error());
    if (model) {
        sqllm_model_config cfg;
        check(sqllm_model_get_config(model, &cfg) == SQLLM_OK, "config");
        check(std::strcmp(cfg.family, "qwen2") == 0 && cfg.hidden_size == 32 && cfg.num_layers == 1, "config values");
        check(sqllm_model_linear_count(model) == 6, "six quantized linears");
        const char *s;
        size_t n;
        check(sqllm_model_meta_string(model, "general.architecture", &s, &n) == SQLLM_OK && std::string(s, n) == "sqllm", "architecture");
        int64_t v;
        check(sqllm_model_meta_int(model, "sqllm.format_version", &v) == SQLLM_OK && v == 3, "format version");
        check(sqllm_model_meta_int(model, "general.architecture", &v) == SQLLM_ERR_TYPE, "type mismatch is reported");
        check(sqllm_model_meta_int(model, "no.such.key", &v) == SQLLM_ERR_NOT_FOUND, "missing key is reported");
        check(std::strstr(sqllm_last_error(), "no.such.key") != nullptr, "error names the key");
        sqllm_tensor_info t;
        check(sqllm_model_find_tensor(model, "model.norm.weight", &t) == SQLLM_OK && t.type == SQLLM_TENSOR_F32 && t.shape[0] == 32, "find tensor");
        check(sqllm_model_tensor(model, 100000, &t) == SQLLM_ERR_INVALID_ARGUMENT, "tensor index out of range");

        // KV cache parameters: golden.sqf has no KV calibration.
        sqllm_context_params cp = sqllm_context_params_default();
        sqllm_context *ctx = nullptr;
        check(cp.kv_bits == -1 && cp.kv_method == SQLLM_KV_NUQ, "KV defaults: the file's choice");
        check(sqllm_context_create(model, &cp, &ctx) == SQLLM_OK && sqllm_context_kv_bits(ctx) == 0, "no calibration: fp16 cache");
        if (ctx) {
            int32_t ids[3] = {1, 2, 3};
            std::vector<float> logits(cfg.vocab_size);
            check(sqllm_eval(ctx, ids, 3, logits.data(), 0) == SQLLM_OK, "eval");
            check(sqllm_context_kv_bytes(ctx) == uint64_t(3) * cfg.num_layers * cfg.num_kv_heads * cfg.head_dim * 2 * 2,
                  "fp16 cache bytes: tokens x layers x channels x K,V x 2");
            sqllm_context_free(ctx);
            // The int8 path: the same tokens, logits close to the exact ones but not identical.
            sqllm_context_params ip = cp;
            check(ip.int8 == 0, "int8 is off by default");
            ip.int8 = 1;
            sqllm_context *ictx = nullptr;
            std::vector<float> fast(cfg.vocab_size);
            check(sqllm_context_create(model, &ip, &ictx) == SQLLM_OK && sqllm_eval(ictx, ids, 3, fast.data(), 0) == SQLLM_OK,
                  "int8 context evaluates");
            float diff = 0.0f, size = 0.0f;
            for (size_t i = 0; i < fast.size(); i++) {
                diff = std::max(diff, std::fabs(fast[i] - logits[i]));
                size = std::max(size, std::fabs(logits[i]));
            }
            check(diff > 0.0f && diff < 0.05f * size, "int8 logits within 5% of the exact path, and not identical");
            sqllm_context_free(ictx);
        }
        cp.kv_bits = 3;
        ctx = nullptr;
        check(sqllm_context_create(model, &cp, &ctx) == SQLLM_ERR_UNSUPPORTED && ctx == nullptr &&
                  std::strstr(sqllm_last_error(), "golden.sqf: the file has no KV-cache calibration") != nullptr,
              "kv_bits without calibration is refused, naming the file");
        cp.kv_bits = 5;
        check(sqllm_context_create(model, &cp, &ctx) == SQLLM_ERR_INVALID_ARGUMENT, "kv_bits 5 is refused");
        cp.kv_bits = 0;
        cp.kv_method = 7;
        check(sqllm_context_create(model, &cp, &ctx) == SQLLM_ERR_INVALID_ARGUMENT, "unknown kv_method is refused");
        sqllm_model_free(model);
    }
    check(sqllm_model_load(nullptr, nullptr, &model) == SQLLM_ERR_INVALID_ARGUMENT, "NULL path");
    check(sqllm_model_load("does/not/exist.sqf", nullptr, &model) == SQLLM_ERR_IO && model == nullptr, "missing file");

    const std::string tmp = "build/test_loader_tmp.sqf";
    {
        // Truncated under a guarded mapping: reading the vanished pages gives zeros instead of SIGBUS,
        // and the next call says what happened.
        write_file(tmp, data.data(), data.size());
        sqllm_model *m = nullptr;
        sqllm_load_params guarded = sqllm_load_params_default();
        check(guarded.guard_mapping == 0, "the mapping guard is off by default");
        guarded.guard_mapping = 1;
        check(sqllm_model_load(tmp.c_str(), &guarded, &m) == SQLLM_OK, "a copy of golden.sqf loads, guarded");
        sqllm_tensor_info last{};
        size_t n_tensors = 0;
        for (sqllm_tensor_info t{}; sqllm_model_tensor(m, n_tensors, &t) == SQLLM_OK; n_tensors++)
            if (t.file_offset > last.file_offset) last = t;
        sqllm_context *c = nullptr;
        check(sqllm_context_create(m, nullptr, &c) == SQLLM_OK, "a context on the copy");
        check(truncate(tmp.c_str(), 4096) == 0, "the copy is truncated to 4096 bytes");
        const volatile unsigned char *bytes = static_cast<const unsigned char *>(last.data);
        unsigned sum = 0;
        for (uint64_t i = 0; i < last.n_bytes; i++) sum += bytes[i];
        check(last.file_offset > 4096 && sum == 0, "the last tensor's vanished pages read as zeros");
        std::vector<float> logits(size_t(sqllm_model_vocab_size(m)));
        const int32_t id = 1;
        check(sqllm_eval(c, &id, 1, logits.data(), 0) == SQLLM_ERR_IO &&
                  std::strstr(sqllm_last_error(), "test_loader_tmp.sqf: the file was changed in place") != nullptr,
              std::string("eval after the truncation fails with IO: ") + sqllm_last_error());
        sqllm_context_free(c);
        sqllm_model_free(m);
    }
    int truncated_ok = 0;
    for (size_t n = 0; n < data.size(); n++) {
        write_file(tmp, data.data(), n);
        sqllm_model *m = nullptr;
        sqllm_status s = sqllm_model_load(tmp.c_str(), nullptr, &m);
        if (s == SQLLM_OK) {
            truncated_ok++;
            sqllm_model_free(m);
        } else if (std::strlen(sqllm_last_error()) == 0) {
            check(false, "an error without a message at truncation " + std::to_string(n));
        }
    }
    check(truncated_ok == 0, "every truncation is rejected (" + std::to_string(truncated_ok) + " accepted)");

    std::mt19937_64 rng(20261123);
    int rejected = 0, accepted = 0, checksum = 0;
    for (int i = 0; i < 3000; i++) {
        std::vector<char> buf = data;
        int flips = 1 + int(rng() % 3);
        for (int k = 0; k < flips; k++) buf[rng() % buf.size()] ^= char(1 + rng() % 255);
        write_file(tmp, buf.data(), buf.size());
        sqllm_model *m = nullptr;
        sqllm_load_params p = sqllm_load_params_default();
        p.verify_checksums = int(i % 2);
        sqllm_status s = sqllm_model_load(tmp.c_str(), &p, &m);
        if (s == SQLLM_OK) {
            accepted++;
            sqllm_model_free(m);
        } else {
            rejected++;
            checksum += s == SQLLM_ERR_CHECKSUM;
        }
    }
    std::remove(tmp.c_str());
    check(rejected > 1000 && checksum > 100, "random flips: " + std::to_string(rejected) + " rejected (" +
                                                 std::to_string(checksum) + " by checksum), " + std::to_string(accepted) + " accepted");
    std::printf("%d passed, %d failed\n", g_passed, g_failed);
    return g_failed ? 1 : 0;
}
