// libFuzzer target: the tokenizer of each bundled vocabulary (tests/data: stories260K's
// SentencePiece BPE, the golden file's) through the C API. The first byte picks the vocabulary
// and the flags; the rest is text to encode, and, read as int32 ids, ids to decode.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "sqllm/sqllm.h"

namespace {

// The bundled models, loaded once and freed at exit.
struct Models {
    std::vector<sqllm_model *> all;
    Models() {
        for (const char *name : {"/tests/data/stories260K-q4.sqf", "/tests/data/golden.sqf"}) {
            sqllm_model *m = nullptr;
            if (sqllm_model_load((std::string(SQLLM_SOURCE_DIR) + name).c_str(), nullptr, &m) != SQLLM_OK) __builtin_trap();
            all.push_back(m);
        }
    }
    ~Models() {
        for (sqllm_model *m : all) sqllm_model_free(m);
    }
};

const std::vector<sqllm_model *> &models() {
    static const Models loaded;
    return loaded.all;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size == 0) return 0;
    const uint8_t flags = data[0];
    sqllm_model *model = models()[flags % models().size()];
    const char *text = reinterpret_cast<const char *>(data + 1);
    const size_t length = size - 1;

    size_t count = 0;
    sqllm_tokenize(model, text, length, flags & 2, flags & 4, nullptr, 0, &count);
    std::vector<int32_t> ids(count);
    if (sqllm_tokenize(model, text, length, flags & 2, flags & 4, ids.data(), ids.size(), &count) != SQLLM_OK) __builtin_trap();
    size_t bytes = 0;
    sqllm_detokenize(model, ids.data(), ids.size(), flags & 8, nullptr, 0, &bytes);
    std::vector<char> out(bytes);
    if (sqllm_detokenize(model, ids.data(), ids.size(), flags & 8, out.data(), out.size(), &bytes) != SQLLM_OK) __builtin_trap();

    // The same bytes as ids, in range or not.
    std::vector<int32_t> raw(length / 4);
    if (!raw.empty()) std::memcpy(raw.data(), text, raw.size() * 4);
    sqllm_detokenize(model, raw.data(), raw.size(), flags & 8, nullptr, 0, &bytes);
    return 0;
}
