// The tokenizer keys of formats/SPEC.md §5 read into TokenizerData by one set of rules, whether
// they come from an .sqf file (Model::load) or from the Python binding's metadata dict: which
// keys are required, their types, what makes an id invalid, the defaults.
//
// A Source has: has(key) (present and not null); string, strings, floats, ints, integer and flag
// (key), each reading a present key as that type and calling fail() when it has another; and
// fail(what), which throws the error of its edge and does not return.
#pragma once

#include <cstdint>
#include <string>

#include "format.h"
#include "tokenizer.h"

namespace sqllm {

template <class Source>
TokenizerData read_tokenizer_metadata(Source &src) {
    using namespace format;
    TokenizerData d;
    for (const char *key : {KEY_TOKENIZER_MODEL, KEY_TOKENIZER_TOKENS})
        if (!src.has(key)) src.fail(std::string("no ") + key);
    d.model = src.string(KEY_TOKENIZER_MODEL);
    d.tokens = src.strings(KEY_TOKENIZER_TOKENS);
    if (src.has(KEY_TOKENIZER_PRE)) d.pre = src.string(KEY_TOKENIZER_PRE);
    if (src.has(KEY_TOKENIZER_PIPELINE)) d.pipeline = src.string(KEY_TOKENIZER_PIPELINE);
    if (src.has(KEY_TOKENIZER_SCORES)) d.scores = src.floats(KEY_TOKENIZER_SCORES);
    if (src.has(KEY_TOKENIZER_TOKEN_TYPE)) d.types = src.ints(KEY_TOKENIZER_TOKEN_TYPE);
    if (src.has(KEY_TOKENIZER_MERGES)) d.merges = src.strings(KEY_TOKENIZER_MERGES);
    auto id = [&](const char *key) -> int32_t {
        if (!src.has(key)) return -1;
        const int64_t v = src.integer(key);
        if (v < 0 || v > INT32_MAX) src.fail(std::string(key) + " " + std::to_string(v) + " is not a token id");
        return int32_t(v);
    };
    d.bos_id = id(KEY_TOKENIZER_BOS);
    d.eos_id = id(KEY_TOKENIZER_EOS);
    d.unk_id = id(KEY_TOKENIZER_UNK);
    d.pad_id = id(KEY_TOKENIZER_PAD);
    auto flag = [&](const char *key, bool absent) { return src.has(key) ? src.flag(key) : absent; };
    d.add_bos = flag(KEY_TOKENIZER_ADD_BOS, false);
    d.add_eos = flag(KEY_TOKENIZER_ADD_EOS, false);
    d.add_space_prefix = flag(KEY_TOKENIZER_ADD_SPACE_PREFIX, d.model == "llama");  // SentencePiece's default
    return d;
}

}  // namespace sqllm
