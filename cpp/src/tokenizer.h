// The runtime's tokenizer: text <-> token ids, from the GGUF-standard tokenizer keys of
// formats/SPEC.md §5, giving the same ids as Hugging Face `tokenizers` for the two kinds the
// converter writes:
//   "llama": SentencePiece-style BPE over text with " " written as "▁", optional dummy-prefix
//            "▁", `<0xXX>` byte fallback; merge ranks from `merges`, else token scores;
//   "gpt2":  byte-level BPE with merges after a pre-tokenizer split ("gpt2", "llama-bpe",
//            "qwen2"; "qwen2" normalizes to NFC first).
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

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
    std::string pre;                   // tokenizer.ggml.pre (gpt2 only)
    std::vector<std::string> tokens;   // one per id
    std::vector<float> scores;         // empty, or one per token
    std::vector<int32_t> types;        // empty (all normal), or one TokenType per token
    std::vector<std::string> merges;   // "left right", highest priority first
    int32_t bos_id = -1, eos_id = -1, unk_id = -1, pad_id = -1;
    bool add_bos = false, add_eos = false, add_space_prefix = false;
};

class Tokenizer {
public:
    // Checks `data` and builds the lookup tables. On bad data returns false and says why in
    // `error`; `out` is then left as it was.
    static bool build(TokenizerData data, Tokenizer &out, std::string &error);

    // Token ids of `text` (any bytes; invalid UTF-8 is kept byte by byte). add_bos puts BOS
    // first when there is one; EOS is never appended (see add_eos()). With parse_special,
    // control and unknown tokens written literally in the text (`<|im_start|>`, `<s>`) become
    // their ids; user-defined tokens always do, as in Hugging Face tokenizers.
    std::vector<int32_t> encode(std::string_view text, bool add_bos, bool parse_special) const;

    // The bytes a token stands for: "▁" -> " ", `<0xXX>` -> that byte, byte-level characters ->
    // their bytes. Control and unknown tokens give their text only with `special`, unused
    // tokens nothing. May be an incomplete UTF-8 sequence; concatenating pieces gives the text.
    std::string token_to_piece(int32_t id, bool special = false) const;

    // Text of `ids` as Hugging Face `Tokenizer.decode` gives it: always valid UTF-8 (invalid
    // bytes become U+FFFD as it does), the dummy-prefix space dropped. Ids outside the
    // vocabulary are skipped.
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
    enum class Kind { sentencepiece, byte_level };
    enum class PreTokenizer { none, gpt2, llama3, qwen2 };
    struct Merge {
        int32_t rank;    // lower merges first
        int32_t result;  // the merged token
    };
    struct Special {
        int32_t id;
        bool always;  // user-defined: matched even without parse_special
    };

    void encode_segment(std::string_view text, std::vector<int32_t> &out) const;
    void encode_sentencepiece(std::string_view text, std::vector<int32_t> &out) const;
    void encode_byte_level(std::string_view text, std::vector<int32_t> &out) const;
    void apply_merges(std::vector<int32_t> &symbols) const;
    int32_t find_token(std::string_view text) const;

    Kind kind_ = Kind::sentencepiece;
    PreTokenizer pre_ = PreTokenizer::none;
    std::vector<std::string> tokens_;
    std::vector<int32_t> types_;
    std::unordered_map<std::string, int32_t> ids_;     // text -> lowest id with that text
    std::unordered_map<uint64_t, Merge> merges_;       // (left id << 32 | right id) -> merge
    std::vector<Special> specials_;                    // added tokens, longest first
    std::array<bool, 256> special_first_bytes_{};      // bytes an added token starts with
    std::array<int32_t, 256> byte_tokens_{};           // byte -> `<0xXX>` or byte-level token, -1 if none
    int32_t bos_id_ = -1, eos_id_ = -1, unk_id_ = -1, pad_id_ = -1;
    bool add_bos_ = false, add_eos_ = false, add_space_prefix_ = false;
};

}  // namespace sqllm
