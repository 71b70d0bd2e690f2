// The components of a Hugging Face `tokenizers` pipeline, one class per component type, built
// from their tokenizer.json objects (formats/SPEC.md §5) and applied with the semantics of
// `tokenizers`: normalizers rewrite text, pre-tokenizers split it into pieces (and may rewrite
// them), decoders turn token texts back into text.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "json.h"

namespace sqllm::pipeline {

// A piece of text on its way to the model. `at_start`: it begins at offset 0 of the text given
// to encode, which Metaspace's prepend_scheme "first" tests.
struct Piece {
    std::string text;
    bool at_start;
};

class Normalizer {
public:
    virtual ~Normalizer() = default;
    virtual void normalize(std::string &text) const = 0;
};

class PreTokenizer {
public:
    virtual ~PreTokenizer() = default;
    // Splits each piece, in order; empty pieces are dropped.
    virtual void pre_tokenize(std::vector<Piece> &pieces) const = 0;
};

class Decoder {
public:
    virtual ~Decoder() = default;
    // HF's decode_chain: token texts in, texts out (joined by the caller).
    virtual void decode_chain(std::vector<std::string> &tokens) const = 0;
    // What the decoder makes of one token in the middle of a text, as raw bytes (a byte-level
    // or byte-fallback token may be part of a UTF-8 character): the streaming view of a token.
    virtual void piece(std::string &token) const = 0;
};

// Each returns nullptr with a message naming the component in `error` when the object is not a
// supported component, or is malformed. A JSON null is no component: nullptr, error empty.
std::unique_ptr<Normalizer> make_normalizer(const Json &spec, std::string &error);
std::unique_ptr<PreTokenizer> make_pre_tokenizer(const Json &spec, std::string &error);
std::unique_ptr<Decoder> make_decoder(const Json &spec, std::string &error);

}  // namespace sqllm::pipeline
