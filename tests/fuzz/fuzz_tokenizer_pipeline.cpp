// libFuzzer target: a tokenizer pipeline (the JSON of sqllm.tokenizer.pipeline, SPEC §5) read
// from the input, over a small fixed vocabulary, then text through it. The input is the
// pipeline's JSON, a NUL byte, and the text. A pipeline the tokenizer refuses is fine; a crash,
// a hang or a sanitizer report is not, and neither is an exception other than sqllm::Error.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "src/sqf.h"
#include "src/tokenizer.h"

namespace {

// <unk> <s> </s>, the 256 byte tokens, a few pieces and two added tokens: what Metaspace /
// byte-fallback pipelines use. Byte-level pipelines find it a vocabulary lacking most byte symbols.
sqllm::TokenizerData vocabulary() {
    sqllm::TokenizerData d;
    d.model = "gpt2";
    d.tokens = {"<unk>", "<s>", "</s>"};
    d.types = {2, 3, 3};
    for (int b = 0; b < 256; b++) {
        char name[8];
        std::snprintf(name, sizeof name, "<0x%02X>", b);
        d.tokens.push_back(name);
        d.types.push_back(6);
    }
    for (const char *piece : {"\xe2\x96\x81", "a", "b", "ab", "\xe2\x96\x81" "a", "\xc4\xa0", "\xc4\xa0" "a", "1", "2", "12", "<tool>"}) {
        d.tokens.push_back(piece);
        d.types.push_back(1);
    }
    d.types.back() = 4;
    d.merges = {"a b", "\xe2\x96\x81 a", "\xc4\xa0 a", "1 2"};
    d.unk_id = 0;
    d.bos_id = 1;
    d.eos_id = 2;
    return d;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const auto *begin = reinterpret_cast<const char *>(data);
    const auto *nul = static_cast<const char *>(std::memchr(begin, 0, size));
    if (!nul) return 0;
    sqllm::TokenizerData d = vocabulary();
    d.pipeline.assign(begin, nul);
    const std::string_view text(nul + 1, size - size_t(nul + 1 - begin));
    sqllm::Tokenizer tokenizer;
    std::string error;
    if (!sqllm::Tokenizer::build(std::move(d), tokenizer, error)) return 0;
    try {
        for (bool special : {true, false}) {
            const std::vector<int32_t> ids = tokenizer.encode(text, special, special);
            tokenizer.decode(ids, !special);
        }
    } catch (const sqllm::Error &) {
        // a pattern over its match limit: an error, as it should be
    }
    return 0;
}
