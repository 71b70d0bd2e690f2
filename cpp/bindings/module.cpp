#include "bindings.h"
#include "sqllm/sqllm.h"

PYBIND11_MODULE(_sqllm, m) {
    m.doc() = "sqllm native runtime: .sqf loader, tokenizer, forward pass";
    m.def("version", &sqllm_version, "The C library's version (sqllm_version()).");
    sqllm_py::register_format(m);
    sqllm_py::register_tokenizer(m);
    sqllm_py::register_runtime(m);
}
