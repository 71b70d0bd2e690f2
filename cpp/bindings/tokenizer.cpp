// Python view of the tokenizer on its own, built from the tokenizer keys of formats/SPEC.md §5
// as a dict: what sqllm.converter.tokenizer.tokenizer_metadata returns, or an .sqf file's
// metadata. Bad metadata raises ValueError with the reason Tokenizer::build gives.
#include <pybind11/stl.h>

#include <optional>

#include "bindings.h"
#include "src/tokenizer.h"
#include "src/tokenizer_metadata.h"

namespace py = pybind11;

namespace {

// The tokenizer keys of a metadata dict, for read_tokenizer_metadata; None counts as absent.
class DictTokenizerKeys {
public:
    explicit DictTokenizerKeys(const py::dict &metadata) : metadata_(metadata) {}
    bool has(const char *key) const { return metadata_.contains(key) && !metadata_[key].is_none(); }
    [[noreturn]] void fail(const std::string &what) const { throw py::value_error("tokenizer metadata: " + what); }
    std::string string(const char *key) const { return get<std::string>(key); }
    std::vector<std::string> strings(const char *key) const { return get<std::vector<std::string>>(key); }
    std::vector<float> floats(const char *key) const { return get<std::vector<float>>(key); }
    std::vector<int32_t> ints(const char *key) const { return get<std::vector<int32_t>>(key); }
    int64_t integer(const char *key) const { return get<int64_t>(key); }
    bool flag(const char *key) const { return get<bool>(key); }

private:
    template <typename T>
    T get(const char *key) const {
        try {
            return metadata_[key].cast<T>();
        } catch (const py::cast_error &) {
            fail(std::string(key) + " has the wrong type");
        }
    }
    const py::dict &metadata_;
};

sqllm::Tokenizer from_metadata(const py::dict &metadata) {
    DictTokenizerKeys keys(metadata);
    sqllm::Tokenizer t;
    std::string error;
    if (!sqllm::Tokenizer::build(sqllm::read_tokenizer_metadata(keys), t, error)) keys.fail(error);
    return t;
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
