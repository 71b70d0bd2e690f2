// The runtime's tokenizer: text <-> token ids with the semantics of Hugging Face `tokenizers`.
// It interprets the pipeline of a tokenizer.json (formats/SPEC.md §5): added tokens, the
// normalizer, the pre-tokenizer, the BPE model and the decoder, component by component
// (tokenizer_pipeline.h). A file without the pipeline key (written before it existed) names
// one of a few pipelines with the GGUF keys `tokenizer.ggml.model` / `pre`, which build()
// spells out as the same data.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "tokenizer_pipeline.h"

namespace sqllm {

// tokenizer.ggml.token_type values.
enum TokenType : int32_t {
    TOKEN_NORMAL = 1,
    TOKEN_UNKNOWN = 2,
    TOKEN_CONTROL = 3,
    TOKEN_USER_DEFINED = 4,
    TOKEN_UNUSED = 5,
    TOKEN_BYTE = 6,
};

// The tokenizer keys as read from a file; ids are -1 where the key is absent.
struct TokenizerData {
    std::string model;                 // tokenizer.ggml.model: "llama" or "gpt2"
    std::string pre;                   // tokenizer.ggml.pre
    std::string pipeline;              // sqllm.tokenizer.pipeline (JSON), empty if absent
    std::vector<std::string> tokens;   // one per id
    std::vector<float> scores;         // empty, or one per token
    std::vector<int32_t> types;        // empty (all normal), or one TokenType per token
    std::vector<std::string> merges;   // "left right", highest priority first
    int32_t bos_id = -1, eos_id = -1, unk_id = -1, pad_id = -1;
    bool add_bos = false, add_eos = false, add_space_prefix = false;
};

class Tokenizer {
public:
    Tokenizer();
    ~Tokenizer();
    Tokenizer(Tokenizer &&) noexcept;
    Tokenizer &operator=(Tokenizer &&) noexcept;

    // Checks `data` and builds the pipeline and lookup tables. On bad data (a component that
    // is not supported, a malformed one) returns false and says why in `error`; `out` is then
    // left as it was.
    static bool build(TokenizerData data, Tokenizer &out, std::string &error);

    // Token ids of `text` (any bytes; invalid UTF-8 is kept byte by byte where the vocabulary
    // can spell it). add_bos puts BOS first when there is one; EOS is never appended (see
    // add_eos()). Without parse_special, special added tokens written in the text
    // (`<|im_start|>`, `<s>`) are plain text, as with HF's encode_special_tokens; other added
    // tokens are always matched.
    std::vector<int32_t> encode(std::string_view text, bool add_bos, bool parse_special) const;

    // The bytes a token stands for in the middle of a text: what the decoder makes of it alone
    // ("▁the" -> " the", `<0x0A>` -> "\n", byte-level characters -> their bytes). Special
    // tokens give their text only with `special`, unused tokens nothing. May be an incomplete
    // UTF-8 sequence.
    std::string token_to_piece(int32_t id, bool special = false) const;

    // Text of `ids` as Hugging Face `Tokenizer.decode` gives it: always valid UTF-8. Ids outside
    // the vocabulary and unused padding rows are skipped.
    std::string decode(const std::vector<int32_t> &ids, bool skip_special) const;

    int32_t vocab_size() const { return int32_t(tokens_.size()); }
    const std::string &token_text(int32_t id) const { return tokens_[size_t(id)]; }
    TokenType token_type(int32_t id) const { return TokenType(types_[size_t(id)]); }
    int32_t bos_id() const { return bos_id_; }
    int32_t eos_id() const { return eos_id_; }
    int32_t unk_id() const { return unk_id_; }
    int32_t pad_id() const { return pad_id_; }
    bool add_bos() const { return add_bos_; }
    bool add_eos() const { return add_eos_; }

private:
    struct Merge {
        int32_t rank;    // lower merges first
        int32_t result;  // the merged token
    };
    struct AddedToken {
        int32_t id;
        std::string match;  // the text it is found as: its content, normalized if `normalized`
        bool special, lstrip, rstrip, single_word, normalized;
    };
    struct Segment {
        std::string_view text;
        int32_t id;     // an added token, or -1 for text
        bool at_start;  // the text begins at offset 0 of the input
    };

    bool build_pipeline(const std::string &json, std::string &error);
    void split_added(std::string_view text, bool normalized, bool parse_special, bool at_start, std::vector<Segment> &out) const;
    void encode_text(std::string_view text, bool at_start, std::vector<int32_t> &out) const;
    void encode_word(std::string_view word, std::vector<int32_t> &out) const;
    void apply_merges(std::vector<int32_t> &symbols) const;
    const std::string &decoder_text(int32_t id) const;
    int32_t find_token(std::string_view text) const;

    std::vector<std::string> tokens_;
    std::vector<int32_t> types_;
    std::vector<bool> special_;                        // per id: a special added token
    // Added tokens whose text the normalizer changes are decoded from their normalized text.
    std::unordered_map<int32_t, std::string> normalized_texts_;
    std::unordered_map<std::string, int32_t> vocab_;   // the BPE model's vocabulary: text -> id
    std::unordered_map<uint64_t, Merge> merges_;       // (left id << 32 | right id) -> merge
    std::array<int32_t, 256> byte_tokens_{};           // byte -> `<0xXX>`, -1 if none
    bool byte_fallback_ = false, ignore_merges_ = false, fuse_unk_ = false;
    int32_t model_unk_id_ = -1;                        // the BPE model's unk_token

    std::vector<AddedToken> added_;
    // Per first byte, the added tokens matched in raw / normalized text, longest first.
    std::array<std::vector<int32_t>, 256> raw_added_by_byte_, normalized_added_by_byte_;

    std::unique_ptr<pipeline::Normalizer> normalizer_;
    std::unique_ptr<pipeline::PreTokenizer> pre_tokenizer_;
    std::unique_ptr<pipeline::Decoder> decoder_;

    int32_t bos_id_ = -1, eos_id_ = -1, unk_id_ = -1, pad_id_ = -1;
    bool add_bos_ = false, add_eos_ = false;
};

}  // namespace sqllm
