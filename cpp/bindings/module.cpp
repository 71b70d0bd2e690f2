#include "bindings.h"

PYBIND11_MODULE(_sqllm, m) {
    m.doc() = "sqllm native runtime: .sqf loader, tokenizer, forward pass";
    sqllm_py::register_format(m);
    sqllm_py::register_tokenizer(m);
    sqllm_py::register_runtime(m);
}
