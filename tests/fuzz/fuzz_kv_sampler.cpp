// libFuzzer target: the KV caches (fp16, fp32, KVQuant with online key ranges, 2-4 bits) and the
// sampler, fed arbitrary floats (NaN and infinities included) and arbitrary parameters.
//
// Input: byte 0 picks the cache; then up to four stores, each 2 bytes (token count, first
// position) and that many tokens' keys and values as floats; the rest is a sampler call:
// sqllm_sampler_params, then logits (floats) and history (int32 ids).
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "sqllm/sqllm.h"
#include "src/kvcache.h"
#include "src/model.h"

namespace {

struct Input {
    const uint8_t *p;
    size_t left;
    template <typename T>
    T take() {
        T v{};
        const size_t n = std::min(left, sizeof v);
        std::memcpy(&v, p, n);
        p += n;
        left -= n;
        return v;
    }
};

const sqllm::Model &model() {
    static const std::unique_ptr<sqllm::Model> m =
        sqllm::Model::load(std::string(SQLLM_SOURCE_DIR) + "/tests/data/golden.sqf", sqllm_load_params_default());
    return *m;
}

constexpr int32_t kCtx = 96;  // past the online-ranges warm-up window (sink + 64 positions)

void fuzz_cache(Input &in) {
    const sqllm::ModelConfig &c = model().config();
    sqllm_context_params p = sqllm_context_params_default();
    const uint8_t kind = in.take<uint8_t>() % 5;
    p.kv_fp32 = kind == 1;
    p.kv_bits = kind >= 2 ? kind : 0;
    p.kv_method = SQLLM_KV_UNIFORM;
    std::unique_ptr<sqllm::KvCache> cache = sqllm::make_kv_cache(model().file(), kCtx, p);
    sqllm::Rope rope(c);
    rope.update(kCtx);
    const size_t channels = size_t(c.num_kv_heads) * c.head_dim;
    std::vector<float> k, v, out(size_t(kCtx) * c.head_dim);
    int32_t stored = 0;
    for (int s = 0; s < 4 && in.left >= 2; s++) {
        const int32_t n = 1 + in.take<uint8_t>() % 70;
        const int32_t pos0 = in.take<uint8_t>() % (kCtx - n + 1);
        k.assign(size_t(n) * channels, 0.0f);
        v.assign(size_t(n) * channels, 0.0f);
        for (float &x : k) x = in.take<float>();
        for (float &x : v) x = in.take<float>();
        try {
            for (int layer = 0; layer < int(c.num_layers); layer++) cache->store(layer, pos0, n, k.data(), v.data(), rope);
        } catch (const sqllm::Error &) {
            continue;  // positions out of order, which the cache refuses
        }
        stored = std::max(stored, pos0 + n);
    }
    // Every position ever stored, the dropped ones too.
    for (int layer = 0; layer < int(c.num_layers); layer++)
        for (int head = 0; head < int(c.num_kv_heads); head++) {
            cache->read_keys(layer, head, 0, stored, rope, out.data());
            cache->read_values(layer, head, 0, stored, out.data());
        }
    cache->bytes_used(stored);
}

void fuzz_sampler(Input &in) {
    sqllm_sampler_params sp = in.take<sqllm_sampler_params>();
    const int32_t vocab = 1 + in.take<uint8_t>();
    std::vector<float> logits(static_cast<size_t>(vocab));
    for (float &x : logits) x = in.take<float>();
    std::vector<int32_t> history(in.left / 4);
    for (int32_t &t : history) t = in.take<int32_t>();
    int32_t token = -1;
    const sqllm_status st = sqllm_sample(&sp, logits.data(), vocab, history.data(), history.size(), &token);
    if (st == SQLLM_OK ? token < 0 || token >= vocab : st != SQLLM_ERR_INVALID_ARGUMENT || !sqllm_last_error()[0]) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    Input in{data, size};
    fuzz_cache(in);
    fuzz_sampler(in);
    return 0;
}
