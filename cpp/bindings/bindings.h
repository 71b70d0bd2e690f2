// Each area of the library registers its Python bindings into the one `sqllm._sqllm` module.
#pragma once
#include <pybind11/pybind11.h>

namespace sqllm_py {
void register_format(pybind11::module_ &m);
void register_tokenizer(pybind11::module_ &m);
void register_runtime(pybind11::module_ &m);
}  // namespace sqllm_py
