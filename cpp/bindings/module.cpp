#include "bindings.h"

PYBIND11_MODULE(_sqllm, m) {
    m.doc() = "sqllm native runtime: .sqf loader, kernels, tokenizer, forward pass";
    sqllm_py::register_format(m);
}
