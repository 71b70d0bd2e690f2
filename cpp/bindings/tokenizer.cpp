// Python view of the tokenizer on its own, built from the tokenizer keys of formats/SPEC.md §5
// as a dict: what sqllm.converter.tokenizer.tokenizer_metadata returns, or an .sqf file's
// metadata. Bad metadata raises ValueError with the reason Tokenizer::build gives.
#include <pybind11/stl.h>

#include <optional>

#include "bindings.h"
#include "src/format.h"
#include "src/tokenizer.h"

namespace py = pybind11;

namespace {

template <typename T>
bool read_key(const py::dict &metadata, const char *key, T &out) {
    if (!metadata.contains(key) || metadata[key].is_none()) return false;
    try {
        out = metadata[key].cast<T>();
    } catch (const py::cast_error &) {
        throw py::value_error(std::string("tokenizer metadata: ") + key + " has the wrong type");
    }
    return true;
}

int32_t read_id(const py::dict &metadata, const char *key) {
    int64_t id = -1;
    if (read_key(metadata, key, id) && (id < 0 || id > INT32_MAX))
        throw py::value_error(std::string("tokenizer metadata: ") + key + " " + std::to_string(id) + " is not a token id");
    return int32_t(id);
}

sqllm::Tokenizer from_metadata(const py::dict &metadata) {
    sqllm::TokenizerData d;
    if (!read_key(metadata, "tokenizer.ggml.model", d.model)) throw py::value_error("tokenizer metadata: no tokenizer.ggml.model");
    if (!read_key(metadata, "tokenizer.ggml.tokens", d.tokens)) throw py::value_error("tokenizer metadata: no tokenizer.ggml.tokens");
    read_key(metadata, "tokenizer.ggml.pre", d.pre);
    read_key(metadata, sqllm::format::KEY_TOKENIZER_PIPELINE, d.pipeline);
    read_key(metadata, "tokenizer.ggml.scores", d.scores);
    read_key(metadata, "tokenizer.ggml.token_type", d.types);
    read_key(metadata, "tokenizer.ggml.merges", d.merges);
    d.bos_id = read_id(metadata, "tokenizer.ggml.bos_token_id");
    d.eos_id = read_id(metadata, "tokenizer.ggml.eos_token_id");
    d.unk_id = read_id(metadata, "tokenizer.ggml.unknown_token_id");
    d.pad_id = read_id(metadata, "tokenizer.ggml.padding_token_id");
    read_key(metadata, "tokenizer.ggml.add_bos_token", d.add_bos);
    read_key(metadata, "tokenizer.ggml.add_eos_token", d.add_eos);
    d.add_space_prefix = d.model == "llama";  // SentencePiece's default, as the .sqf loader has it
    read_key(metadata, "tokenizer.ggml.add_space_prefix", d.add_space_prefix);
    sqllm::Tokenizer t;
    std::string error;
    if (!sqllm::Tokenizer::build(std::move(d), t, error)) throw py::value_error("tokenizer metadata: " + error);
    return t;
}

// str (UTF-8; lone surrogates from the "surrogateescape" error handler become the bytes they
// stand for) or bytes, as is.
std::string text_bytes(const py::object &text) {
    if (py::isinstance<py::bytes>(text)) return text.cast<std::string>();
    if (py::isinstance<py::str>(text)) return text.attr("encode")("utf-8", "surrogateescape").cast<std::string>();
    throw py::type_error("text must be str or bytes");
}

}  // namespace

namespace sqllm_py {

void register_tokenizer(py::module_ &m) {
    py::class_<sqllm::Tokenizer>(m, "Tokenizer",
                                 "Text <-> token ids, identical to Hugging Face tokenizers, from the GGUF tokenizer keys.")
        .def(py::init(&from_metadata), py::arg("metadata"))
        .def(
            "encode",
            [](const sqllm::Tokenizer &t, const py::object &text, std::optional<bool> add_bos, bool parse_special) {
                const std::string bytes = text_bytes(text);
                py::gil_scoped_release release;
                return t.encode(bytes, add_bos.value_or(t.add_bos()), parse_special);
            },
            py::arg("text"), py::arg("add_bos") = py::none(), py::arg("parse_special") = true,
            "Token ids of text (str or bytes). add_bos: None follows tokenizer.ggml.add_bos_token. With "
            "parse_special, special tokens written in the text (<|im_start|>) become their ids.")
        .def(
            "decode",
            [](const sqllm::Tokenizer &t, const std::vector<int32_t> &ids, bool skip_special) {
                for (int32_t id : ids)
                    if (id < 0 || id >= t.vocab_size())
                        throw py::value_error("token id " + std::to_string(id) + " is outside the vocabulary of " + std::to_string(t.vocab_size()));
                std::string text;
                {
                    py::gil_scoped_release release;
                    text = t.decode(ids, skip_special);
                }
                return py::str(text);
            },
            py::arg("ids"), py::arg("skip_special") = false, "Text of ids, as Hugging Face decode gives it.")
        .def(
            "token_to_piece",
            [](const sqllm::Tokenizer &t, int32_t id, bool special) {
                if (id < 0 || id >= t.vocab_size()) throw py::value_error("token id " + std::to_string(id) + " is outside the vocabulary");
                return py::bytes(t.token_to_piece(id, special));
            },
            py::arg("id"), py::arg("special") = false,
            "The bytes of one token (possibly part of a UTF-8 character); control tokens give b'' unless special.")
        .def_property_readonly("vocab_size", &sqllm::Tokenizer::vocab_size)
        .def_property_readonly("bos_id", &sqllm::Tokenizer::bos_id)
        .def_property_readonly("eos_id", &sqllm::Tokenizer::eos_id)
        .def_property_readonly("add_bos", &sqllm::Tokenizer::add_bos);
}

}  // namespace sqllm_py
