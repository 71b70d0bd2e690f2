// The tokenizer pipeline on its own, for the sanitizers: a hand-made vocabulary behind a
// pipeline that uses every component gives the expected ids and text back, and thousands of
// seeded corruptions of the pipeline JSON and of the input text each end in a clean error or a
// tokenization (never a crash, hang or sanitizer report). Conformance with Hugging Face
// `tokenizers` is tested from Python (tests/test_tokenizer_conformance.py).
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "src/tokenizer.h"

static int g_passed = 0, g_failed = 0;

static void check(bool ok, const std::string &what) {
    if (ok) {
        g_passed++;
    } else {
        g_failed++;
        std::printf("FAIL: %s\n", what.c_str());
    }
}

// Byte-level symbols of the printable ASCII bytes, "Ġ" (space), "Ċ" (newline), a few merges,
// two added tokens; every normalizer, pre-tokenizer and decoder type appears once.
static const char *kPipeline = R"JSON({
  "normalizer": {"type": "Sequence", "normalizers": [
    {"type": "NFKC"}, {"type": "NFD"}, {"type": "NFC"}, {"type": "NFKD"}, {"type": "NFC"},
    {"type": "Strip", "strip_left": false, "strip_right": true}, {"type": "Lowercase"},
    {"type": "Replace", "pattern": {"Regex": "\\s{2,}"}, "content": " "},
    {"type": "Replace", "pattern": {"String": "\u00e9"}, "content": "e"},
    {"type": "Prepend", "prepend": "x"}]},
  "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
    {"type": "Split", "pattern": {"Regex": "(?i:'s)|\\p{L}+(?=\\d)|\\s+(?!\\S)"}, "behavior": "Isolated", "invert": false},
    {"type": "Split", "pattern": {"String": "-"}, "behavior": "Removed", "invert": false},
    {"type": "Split", "pattern": {"Regex": "\\."}, "behavior": "MergedWithPrevious", "invert": false},
    {"type": "Split", "pattern": {"Regex": ","}, "behavior": "MergedWithNext", "invert": false},
    {"type": "Split", "pattern": {"Regex": "z+"}, "behavior": "Contiguous", "invert": true},
    {"type": "Digits", "individual_digits": true}, {"type": "Punctuation", "behavior": "Isolated"},
    {"type": "Whitespace"}, {"type": "WhitespaceSplit"},
    {"type": "Metaspace", "replacement": "_", "prepend_scheme": "first", "split": true},
    {"type": "ByteLevel", "add_prefix_space": false, "use_regex": true}]},
  "model": {"type": "BPE", "byte_fallback": false, "ignore_merges": true, "fuse_unk": true, "unk_token": "<unk>"},
  "added_tokens": [
    {"id": 0, "content": "<unk>", "special": true, "normalized": false},
    {"id": 1, "content": "<S>", "special": true, "lstrip": true, "rstrip": true, "normalized": false},
    {"id": 2, "content": "Hi", "special": false, "single_word": true, "normalized": true, "in_model_vocab": false}],
  "decoder": {"type": "Sequence", "decoders": [
    {"type": "ByteFallback"}, {"type": "ByteLevel"}, {"type": "Metaspace", "replacement": "_", "prepend_scheme": "first"},
    {"type": "Replace", "pattern": {"String": "q"}, "content": "Q"}, {"type": "Fuse"},
    {"type": "Strip", "content": "x", "start": 1, "stop": 0}]}
})JSON";

static sqllm::TokenizerData data_with(const std::string &pipeline) {
    sqllm::TokenizerData d;
    d.model = "gpt2";
    d.pipeline = pipeline;
    d.tokens = {"<unk>", "<S>", "Hi"};
    for (int c = 0x21; c < 0x7F; c++) d.tokens.emplace_back(1, char(c));
    d.tokens.emplace_back("\xC4\xA0");  // "Ġ"
    d.tokens.emplace_back("\xC4\x8A");  // "Ċ"
    for (const char *t : {"xa", "xab", "ab", "abc"}) d.tokens.emplace_back(t);
    d.merges = {"x a", "xa b", "a b", "ab c"};
    d.types.assign(d.tokens.size(), sqllm::TOKEN_NORMAL);
    d.types[0] = sqllm::TOKEN_UNKNOWN;
    d.types[1] = sqllm::TOKEN_CONTROL;
    d.types[2] = sqllm::TOKEN_USER_DEFINED;
    d.unk_id = 0;
    return d;
}

static int32_t id_of(const sqllm::TokenizerData &d, const std::string &text) {
    for (size_t i = 0; i < d.tokens.size(); i++)
        if (d.tokens[i] == text) return int32_t(i);
    return -1;
}

int main() {
    const sqllm::TokenizerData data = data_with(kPipeline);
    sqllm::Tokenizer tok;
    std::string error;
    check(sqllm::Tokenizer::build(data, tok, error), "the pipeline builds: " + error);

    // "ab" normalizes to "xab" (Prepend), which merges whole after the "_" Metaspace puts at the
    // start of the text only; "<S>" takes the spaces around it.
    const int32_t xab = id_of(data, "xab"), mark = id_of(data, "_");
    const std::vector<int32_t> ab = tok.encode("ab", false, true);
    check(ab == std::vector<int32_t>{mark, xab}, "Prepend, Metaspace and merges");
    check(tok.encode("ab  <S>  ab", false, true) == std::vector<int32_t>{mark, xab, 1, xab}, "a special token with lstrip/rstrip");
    check(tok.encode("ab  <S>  ab", false, false).size() > 3, "without parse_special it is text");
    check(tok.decode(ab, false) == "ab", "decode drops the prepended x (Strip)");
    check(tok.token_to_piece(1) == "" && tok.token_to_piece(1, true) == "<S>", "special pieces");
    // An unknown character fuses into one <unk>; bytes with no symbol at all are dropped.
    const std::vector<int32_t> unknown = tok.encode("\xe2\x82\xac\xe2\x82\xac", false, true);
    check(!unknown.empty() && unknown.size() <= 4, "unknown characters");

    // Every kind of malformed pipeline is an error with a message, never a crash.
    for (const char *bad : {"", "{", "[]", "{\"model\": 1}", "{\"model\": {\"type\": \"Unigram\"}}",
                            "{\"model\": {\"type\": \"BPE\"}, \"normalizer\": {\"type\": \"Nope\"}}",
                            "{\"model\": {\"type\": \"BPE\"}, \"pre_tokenizer\": {\"type\": \"Split\", \"pattern\": {\"Regex\": \"(\"}}}",
                            "{\"model\": {\"type\": \"BPE\"}, \"added_tokens\": [{\"id\": 99, \"content\": \"x\"}]}"}) {
        sqllm::Tokenizer t;
        std::string e;
        check(!sqllm::Tokenizer::build(data_with(bad), t, e) && !e.empty(), std::string("refused: ") + bad);
    }

    std::mt19937 rng(1234);
    const std::string pipeline = kPipeline;
    int built = 0;
    for (int trial = 0; trial < 3000; trial++) {
        std::string corrupt = pipeline;
        const int edits = 1 + int(rng() % 4);
        for (int k = 0; k < edits; k++) {
            const size_t pos = rng() % corrupt.size();
            switch (rng() % 3) {
            case 0: corrupt[pos] = char(rng() % 256); break;
            case 1: corrupt.erase(pos, 1 + rng() % 8); break;
            default: corrupt.resize(pos); break;
            }
            if (corrupt.empty()) break;
        }
        sqllm::Tokenizer t;
        std::string e;
        if (sqllm::Tokenizer::build(data_with(corrupt), t, e)) {
            built++;
            std::string text;
            for (int i = 0, n = int(rng() % 40); i < n; i++) text += char(rng() % 256);
            std::vector<int32_t> ids = t.encode(text, true, trial % 2 == 0);
            t.decode(ids, trial % 3 == 0);
        } else {
            check(!e.empty(), "a refused pipeline says why");
        }
    }
    check(built > 0 && built < 3000, "some corruptions still build, most do not");
    for (int trial = 0; trial < 2000; trial++) {
        std::string text;
        for (int i = 0, n = int(rng() % 64); i < n; i++) text += char(rng() % 256);
        std::vector<int32_t> ids = tok.encode(text, true, true);
        std::vector<int32_t> random_ids;
        for (int i = 0, n = int(rng() % 16); i < n; i++) random_ids.push_back(int32_t(rng() % uint32_t(tok.vocab_size())));
        const std::string decoded = tok.decode(random_ids, false) + tok.decode(ids, true);
        for (int32_t id : ids) check(id >= 0 && id < tok.vocab_size(), "ids in range");
        (void)decoded;
    }

    std::printf("%d passed, %d failed\n", g_passed, g_failed);
    return g_failed ? 1 : 0;
}
