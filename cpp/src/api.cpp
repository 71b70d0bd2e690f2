// The C API (cpp/include/sqllm/sqllm.h): every entry point catches everything and turns it
// into a status code plus a thread-local message; nothing escapes, nothing aborts.
#include <cstring>
#include <new>
#include <string>

#include "sqf.h"
#include "sqllm/sqllm.h"

struct sqllm_model {
    std::unique_ptr<sqllm::SqfFile> file;
};

namespace {

thread_local std::string g_last_error;

sqllm_status set_error(sqllm_status status, const std::string &message) {
    g_last_error = message;
    return status;
}

template <typename F>
sqllm_status guarded(F &&body) {
    try {
        g_last_error.clear();
        return body();
    } catch (const sqllm::Error &e) {
        return set_error(e.status(), e.what());
    } catch (const std::bad_alloc &) {
        return set_error(SQLLM_ERR_OUT_OF_MEMORY, "out of memory");
    } catch (const std::exception &e) {
        return set_error(SQLLM_ERR_INTERNAL, e.what());
    } catch (...) {
        return set_error(SQLLM_ERR_INTERNAL, "unknown internal error");
    }
}

void fill_tensor(const sqllm::TensorInfo &t, sqllm_tensor_info *out) {
    out->name = t.name.c_str();
    out->type = static_cast<sqllm_tensor_type>(t.type);
    out->n_dims = t.n_dims;
    for (int d = 0; d < 4; d++) out->shape[d] = d < int(t.n_dims) ? t.shape[d] : 1;
    out->n_bytes = t.n_bytes;
    out->file_offset = t.file_offset;
    out->data = t.data;
}

void copy_name(char *dst, size_t cap, const std::string &src) {
    size_t n = std::min(cap - 1, src.size());
    std::memcpy(dst, src.data(), n);
    dst[n] = '\0';
}

}  // namespace

extern "C" {

const char *sqllm_status_string(sqllm_status status) {
    switch (status) {
        case SQLLM_OK: return "ok";
        case SQLLM_ERR_INVALID_ARGUMENT: return "invalid argument";
        case SQLLM_ERR_IO: return "i/o error";
        case SQLLM_ERR_FORMAT: return "format error";
        case SQLLM_ERR_UNSUPPORTED: return "unsupported";
        case SQLLM_ERR_CHECKSUM: return "checksum mismatch";
        case SQLLM_ERR_NOT_FOUND: return "not found";
        case SQLLM_ERR_TYPE: return "wrong type";
        case SQLLM_ERR_OUT_OF_MEMORY: return "out of memory";
        case SQLLM_ERR_INTERNAL: return "internal error";
    }
    return "unknown status";
}

const char *sqllm_last_error(void) { return g_last_error.c_str(); }

sqllm_load_params sqllm_load_params_default(void) {
    sqllm_load_params p;
    p.verify_checksums = 0;
    return p;
}

sqllm_status sqllm_model_load(const char *path, const sqllm_load_params *params, sqllm_model **out_model) {
    return guarded([&] {
        if (!path || !out_model) return set_error(SQLLM_ERR_INVALID_ARGUMENT, "sqllm_model_load: path and out_model must not be NULL");
        *out_model = nullptr;
        sqllm_load_params p = params ? *params : sqllm_load_params_default();
        auto model = std::make_unique<sqllm_model>();
        model->file = sqllm::SqfFile::open(path, p.verify_checksums != 0);
        *out_model = model.release();
        return SQLLM_OK;
    });
}

void sqllm_model_free(sqllm_model *model) { delete model; }

sqllm_status sqllm_model_get_config(const sqllm_model *model, sqllm_model_config *out) {
    return guarded([&] {
        if (!model || !out) return set_error(SQLLM_ERR_INVALID_ARGUMENT, "sqllm_model_get_config: NULL argument");
        const sqllm::ModelConfig &c = model->file->config();
        std::memset(out, 0, sizeof *out);
        copy_name(out->family, sizeof out->family, c.family);
        copy_name(out->rope_scaling_type, sizeof out->rope_scaling_type, c.rope_scaling_type);
        out->vocab_size = c.vocab_size;
        out->hidden_size = c.hidden_size;
        out->intermediate_size = c.intermediate_size;
        out->num_layers = c.num_layers;
        out->num_heads = c.num_heads;
        out->num_kv_heads = c.num_kv_heads;
        out->head_dim = c.head_dim;
        out->context_length = c.context_length;
        out->norm_eps = c.norm_eps;
        out->rope_theta = c.rope_theta;
        out->rope_scaling_factor = c.rope_scaling_factor;
        out->rope_original_context_length = c.rope_original_context_length;
        out->rope_low_freq_factor = c.rope_low_freq_factor;
        out->rope_high_freq_factor = c.rope_high_freq_factor;
        out->tie_embeddings = c.tie_embeddings;
        out->attention_bias = c.attention_bias;
        out->sliding_window = c.sliding_window;
        return SQLLM_OK;
    });
}

size_t sqllm_model_meta_count(const sqllm_model *model) { return model ? model->file->metadata().size() : 0; }

sqllm_status sqllm_model_meta_key(const sqllm_model *model, size_t index, const char **out_key,
                                  sqllm_value_type *out_type, uint64_t *out_count) {
    return guarded([&] {
        if (!model || !out_key) return set_error(SQLLM_ERR_INVALID_ARGUMENT, "sqllm_model_meta_key: NULL argument");
        const auto &meta = model->file->metadata();
        if (index >= meta.size()) return set_error(SQLLM_ERR_INVALID_ARGUMENT, "metadata index " + std::to_string(index) + " out of range");
        *out_key = meta[index].key.c_str();
        if (out_type) *out_type = static_cast<sqllm_value_type>(meta[index].type);
        if (out_count) *out_count = meta[index].count;
        return SQLLM_OK;
    });
}

sqllm_status sqllm_model_meta_int(const sqllm_model *model, const char *key, int64_t *out_value) {
    return guarded([&] {
        if (!model || !key || !out_value) return set_error(SQLLM_ERR_INVALID_ARGUMENT, "sqllm_model_meta_int: NULL argument");
        *out_value = model->file->meta_int(key);
        return SQLLM_OK;
    });
}

sqllm_status sqllm_model_meta_float(const sqllm_model *model, const char *key, double *out_value) {
    return guarded([&] {
        if (!model || !key || !out_value) return set_error(SQLLM_ERR_INVALID_ARGUMENT, "sqllm_model_meta_float: NULL argument");
        *out_value = model->file->meta_float(key);
        return SQLLM_OK;
    });
}

sqllm_status sqllm_model_meta_string(const sqllm_model *model, const char *key, const char **out_data, size_t *out_length) {
    return guarded([&] {
        if (!model || !key || !out_data || !out_length) return set_error(SQLLM_ERR_INVALID_ARGUMENT, "sqllm_model_meta_string: NULL argument");
        std::string_view s = model->file->meta_string(key);
        *out_data = s.data();
        *out_length = s.size();
        return SQLLM_OK;
    });
}

size_t sqllm_model_tensor_count(const sqllm_model *model) { return model ? model->file->tensors().size() : 0; }

sqllm_status sqllm_model_tensor(const sqllm_model *model, size_t index, sqllm_tensor_info *out_info) {
    return guarded([&] {
        if (!model || !out_info) return set_error(SQLLM_ERR_INVALID_ARGUMENT, "sqllm_model_tensor: NULL argument");
        const auto &ts = model->file->tensors();
        if (index >= ts.size()) return set_error(SQLLM_ERR_INVALID_ARGUMENT, "tensor index " + std::to_string(index) + " out of range");
        fill_tensor(ts[index], out_info);
        return SQLLM_OK;
    });
}

sqllm_status sqllm_model_find_tensor(const sqllm_model *model, const char *name, sqllm_tensor_info *out_info) {
    return guarded([&] {
        if (!model || !name || !out_info) return set_error(SQLLM_ERR_INVALID_ARGUMENT, "sqllm_model_find_tensor: NULL argument");
        const sqllm::TensorInfo *t = model->file->find_tensor(name);
        if (!t) return set_error(SQLLM_ERR_NOT_FOUND, std::string("no tensor named ") + name);
        fill_tensor(*t, out_info);
        return SQLLM_OK;
    });
}

size_t sqllm_model_linear_count(const sqllm_model *model) { return model ? model->file->linears().size() : 0; }

sqllm_status sqllm_model_linear(const sqllm_model *model, size_t index, sqllm_linear_info *out_info) {
    return guarded([&] {
        if (!model || !out_info) return set_error(SQLLM_ERR_INVALID_ARGUMENT, "sqllm_model_linear: NULL argument");
        const auto &ls = model->file->linears();
        if (index >= ls.size()) return set_error(SQLLM_ERR_INVALID_ARGUMENT, "linear index " + std::to_string(index) + " out of range");
        const sqllm::LinearInfo &L = ls[index];
        out_info->name = L.name.c_str();
        out_info->bits = L.bits;
        out_info->group_size = L.group_size;
        out_info->rows = L.rows;
        out_info->cols = L.cols;
        out_info->nnz = L.nnz;
        return SQLLM_OK;
    });
}

}  // extern "C"
