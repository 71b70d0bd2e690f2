// Each area of the library registers its Python bindings into the one `sqllm._sqllm` module.
#pragma once
#include <pybind11/pybind11.h>

#include <string>

namespace sqllm_py {
void register_format(pybind11::module_ &m);
void register_tokenizer(pybind11::module_ &m);
void register_runtime(pybind11::module_ &m);

// The bytes of text: str as UTF-8 (lone surrogates from the "surrogateescape" error handler
// become the bytes they stand for) or bytes as they are.
inline std::string text_bytes(const pybind11::object &text) {
    if (pybind11::isinstance<pybind11::bytes>(text)) return text.cast<std::string>();
    if (pybind11::isinstance<pybind11::str>(text)) return text.attr("encode")("utf-8", "surrogateescape").cast<std::string>();
    throw pybind11::type_error("text must be str or bytes");
}
}  // namespace sqllm_py
