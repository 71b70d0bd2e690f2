// Python view of the .sqf loader: the same validated SqfFile the C API uses, with tensors as
// read-only numpy arrays over the mapping (zero copy) and each status raised as its exception
// class (sqllm.errors.error_for_status).
#include <pybind11/numpy.h>
#include <pybind11/stl.h>

#include <cstring>

#include "bindings.h"
#include "src/sqf.h"

namespace py = pybind11;
using sqllm::SqfFile;
namespace fmt = sqllm::format;

namespace {

template <typename T>
py::array numeric_array(const uint8_t *raw, uint64_t count) {
    py::array_t<T> out(static_cast<py::ssize_t>(count));
    if (count) std::memcpy(out.mutable_data(), raw, count * sizeof(T));
    return out;
}

py::object scalar(fmt::ValueType type, const uint8_t *raw) {
    auto get = [&](auto v) { std::memcpy(&v, raw, sizeof v); return v; };
    switch (type) {
        case fmt::VT_UINT8: return py::int_(get(uint8_t{}));
        case fmt::VT_INT8: return py::int_(get(int8_t{}));
        case fmt::VT_UINT16: return py::int_(get(uint16_t{}));
        case fmt::VT_INT16: return py::int_(get(int16_t{}));
        case fmt::VT_UINT32: return py::int_(get(uint32_t{}));
        case fmt::VT_INT32: return py::int_(get(int32_t{}));
        case fmt::VT_UINT64: return py::int_(get(uint64_t{}));
        case fmt::VT_INT64: return py::int_(get(int64_t{}));
        case fmt::VT_FLOAT32: return py::float_(get(float{}));
        case fmt::VT_FLOAT64: return py::float_(get(double{}));
        case fmt::VT_BOOL: return py::bool_(raw[0] != 0);
        default: return py::none();
    }
}

py::object meta_value(const sqllm::MetaEntry &e) {
    if (e.type == fmt::VT_STRING) return py::str(e.strings[0].data(), e.strings[0].size());
    if (e.type != fmt::VT_ARRAY) return scalar(e.type, e.raw);
    switch (e.item_type) {
        case fmt::VT_STRING: {
            // Token pieces may be any bytes (SPEC §8) and stay bytes; every other string was
            // checked to be UTF-8 by the loader.
            const bool pieces = fmt::is_byte_string_array(e.key);
            py::list out(e.strings.size());
            for (size_t i = 0; i < e.strings.size(); i++)
                out[i] = pieces ? py::object(py::bytes(e.strings[i].data(), e.strings[i].size()))
                                : py::object(py::str(e.strings[i].data(), e.strings[i].size()));
            return out;
        }
        case fmt::VT_UINT8: return numeric_array<uint8_t>(e.raw, e.count);
        case fmt::VT_INT8: return numeric_array<int8_t>(e.raw, e.count);
        case fmt::VT_UINT16: return numeric_array<uint16_t>(e.raw, e.count);
        case fmt::VT_INT16: return numeric_array<int16_t>(e.raw, e.count);
        case fmt::VT_UINT32: return numeric_array<uint32_t>(e.raw, e.count);
        case fmt::VT_INT32: return numeric_array<int32_t>(e.raw, e.count);
        case fmt::VT_UINT64: return numeric_array<uint64_t>(e.raw, e.count);
        case fmt::VT_INT64: return numeric_array<int64_t>(e.raw, e.count);
        case fmt::VT_FLOAT32: return numeric_array<float>(e.raw, e.count);
        case fmt::VT_FLOAT64: return numeric_array<double>(e.raw, e.count);
        case fmt::VT_BOOL: return numeric_array<bool>(e.raw, e.count);
        default: return py::none();
    }
}

py::dtype tensor_dtype(fmt::TensorType type) {
    switch (type) {
        case fmt::TYPE_F32: return py::dtype("float32");
        case fmt::TYPE_F16: return py::dtype("float16");
        case fmt::TYPE_I8: return py::dtype("uint8");
        case fmt::TYPE_I32: return py::dtype("int32");
    }
    return py::dtype("uint8");
}

}  // namespace

namespace sqllm_py {

void register_format(py::module_ &m) {
    py::register_exception_translator([](std::exception_ptr p) {
        try {
            if (p) std::rethrow_exception(p);
        } catch (const sqllm::Error &e) {
            py::object errors = py::module_::import("sqllm.errors");
            py::object cls = errors.attr("error_for_status")(int(e.status()));
            // A message may quote bytes of the file (a token piece): never fail to decode it.
            const std::string what = e.what();
            py::object message = py::reinterpret_steal<py::object>(
                PyUnicode_DecodeUTF8(what.data(), Py_ssize_t(what.size()), "backslashreplace"));
            PyErr_SetObject(cls.ptr(), message.ptr());
        }
    });

    py::class_<SqfFile>(m, "SqfFile", "A validated, memory-mapped .sqf file (formats/SPEC.md).")
        .def(py::init([](const std::string &path, bool verify_checksums) {
                 py::gil_scoped_release release;
                 return SqfFile::open(path, verify_checksums);
             }),
             py::arg("path"), py::arg("verify_checksums") = false)
        .def_property_readonly("path", &SqfFile::path)
        .def_property_readonly("file_size", &SqfFile::file_size)
        .def("verify_checksums", [](const SqfFile &f) {
            py::gil_scoped_release release;
            f.verify_checksums();
        })
        .def("metadata", [](const SqfFile &f) {
            py::dict d;
            for (const auto &e : f.metadata()) d[py::str(e.key)] = meta_value(e);
            return d;
        }, "Every key/value pair, in file order: scalars as Python values, numeric arrays as numpy arrays.")
        .def("metadata_types", [](const SqfFile &f) {
            py::dict d;
            for (const auto &e : f.metadata())
                d[py::str(e.key)] = py::make_tuple(int(e.type), e.type == fmt::VT_ARRAY ? py::object(py::int_(int(e.item_type))) : py::object(py::none()));
            return d;
        }, "key -> (GGUF value type, item type or None)")
        .def("tensor_names", [](const SqfFile &f) {
            std::vector<std::string> names;
            for (const auto &t : f.tensors()) names.push_back(t.name);
            return names;
        })
        .def("tensor_info", [](const SqfFile &f, const std::string &name) {
            const sqllm::TensorInfo *t = f.find_tensor(name);
            if (!t) throw py::key_error("no tensor named " + name);
            py::dict d;
            d["type"] = int(t->type);
            d["shape"] = py::tuple(py::cast(std::vector<uint64_t>(t->shape, t->shape + t->n_dims)));
            d["n_bytes"] = t->n_bytes;
            d["file_offset"] = t->file_offset;
            return d;
        })
        .def("tensor", [](py::object self, const std::string &name) {
            const SqfFile &f = self.cast<const SqfFile &>();
            const sqllm::TensorInfo *t = f.find_tensor(name);
            if (!t) throw py::key_error("no tensor named " + name);
            std::vector<py::ssize_t> shape(t->shape, t->shape + t->n_dims);
            py::array a(tensor_dtype(t->type), shape, t->data, self);  // keeps the file alive
            py::detail::array_proxy(a.ptr())->flags &= ~py::detail::npy_api::NPY_ARRAY_WRITEABLE_;
            return a;
        }, "A read-only numpy view of one tensor's bytes in the mapping.")
        .def("linears", [](const SqfFile &f) {
            py::list out;
            for (const auto &L : f.linears()) {
                py::dict d;
                d["name"] = L.name;
                d["bits"] = L.bits;
                d["group_size"] = L.group_size;
                d["rows"] = L.rows;
                d["cols"] = L.cols;
                d["groups"] = L.groups;
                d["nnz"] = L.nnz;
                out.append(d);
            }
            return out;
        })
        .def("config", [](const SqfFile &f) {
            const sqllm::ModelConfig &c = f.config();
            py::dict d;
            d["family"] = c.family;
            d["vocab_size"] = c.vocab_size;
            d["hidden_size"] = c.hidden_size;
            d["intermediate_size"] = c.intermediate_size;
            d["num_layers"] = c.num_layers;
            d["num_heads"] = c.num_heads;
            d["num_kv_heads"] = c.num_kv_heads;
            d["head_dim"] = c.head_dim;
            d["context_length"] = c.context_length;
            d["norm_eps"] = c.norm_eps;
            d["rope_theta"] = c.rope_theta;
            d["rope_scaling_type"] = c.rope_scaling_type;
            d["rope_scaling_factor"] = c.rope_scaling_factor;
            d["rope_original_context_length"] = c.rope_original_context_length;
            d["rope_low_freq_factor"] = c.rope_low_freq_factor;
            d["rope_high_freq_factor"] = c.rope_high_freq_factor;
            d["tie_embeddings"] = c.tie_embeddings;
            d["attention_bias"] = c.attention_bias;
            d["sliding_window"] = c.sliding_window;
            return d;
        });
}

}  // namespace sqllm_py
