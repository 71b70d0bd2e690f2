// The C API (cpp/include/sqllm/sqllm.h): every entry point catches everything and turns it
// into a status code plus a thread-local message; nothing escapes, nothing aborts.
#include <cstring>
#include <new>
#include <string>

#include "generator.h"
#include "model.h"
#include "sampler.h"
#include "sqf.h"
#include "sqllm/sqllm.h"

struct sqllm_model {
    std::unique_ptr<sqllm::Model> model;
    const sqllm::SqfFile *file;
};

struct sqllm_context {
    std::unique_ptr<sqllm::Context> ctx;
};

struct sqllm_generator {
    std::unique_ptr<sqllm::Generator> gen;
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

const char *sqllm_version(void) { return SQLLM_VERSION; }

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
    p.guard_mapping = 0;
    return p;
}

sqllm_status sqllm_model_load(const char *path, const sqllm_load_params *params, sqllm_model **out_model) {
    return guarded([&] {
        if (!path || !out_model) return set_error(SQLLM_ERR_INVALID_ARGUMENT, "sqllm_model_load: path and out_model must not be NULL");
        *out_model = nullptr;
        sqllm_load_params p = params ? *params : sqllm_load_params_default();
        auto model = std::make_unique<sqllm_model>();
        model->model = sqllm::Model::load(path, p);
        model->file = &model->model->file();
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

int32_t sqllm_model_vocab_size(const sqllm_model *model) { return model ? int32_t(model->model->config().vocab_size) : 0; }
int32_t sqllm_model_bos(const sqllm_model *model) { return model ? model->model->tokenizer().bos_id() : -1; }
int32_t sqllm_model_eos(const sqllm_model *model) { return model ? model->model->tokenizer().eos_id() : -1; }

sqllm_status sqllm_tokenize(const sqllm_model *model, const char *text, size_t length, int add_bos, int parse_special,
                            int32_t *out_tokens, size_t capacity, size_t *out_count) {
    return guarded([&] {
        if (!model || (!text && length) || !out_count || (capacity && !out_tokens))
            return set_error(SQLLM_ERR_INVALID_ARGUMENT, "sqllm_tokenize: NULL argument");
        std::vector<int32_t> ids = model->model->tokenizer().encode(std::string_view(text ? text : "", length), add_bos != 0, parse_special != 0);
        *out_count = ids.size();
        if (ids.size() > capacity)
            return set_error(SQLLM_ERR_INVALID_ARGUMENT, "sqllm_tokenize: " + std::to_string(ids.size()) + " tokens do not fit in " + std::to_string(capacity));
        std::copy(ids.begin(), ids.end(), out_tokens);
        return SQLLM_OK;
    });
}

sqllm_status sqllm_detokenize(const sqllm_model *model, const int32_t *tokens, size_t n_tokens, int skip_special,
                              char *out_text, size_t capacity, size_t *out_length) {
    return guarded([&] {
        if (!model || (!tokens && n_tokens) || !out_length || (capacity && !out_text))
            return set_error(SQLLM_ERR_INVALID_ARGUMENT, "sqllm_detokenize: NULL argument");
        int32_t vocab = model->model->tokenizer().vocab_size();
        for (size_t i = 0; i < n_tokens; i++)
            if (tokens[i] < 0 || tokens[i] >= vocab)
                return set_error(SQLLM_ERR_INVALID_ARGUMENT, "token id " + std::to_string(tokens[i]) + " is outside the vocabulary");
        std::string text = model->model->tokenizer().decode(std::vector<int32_t>(tokens, tokens + n_tokens), skip_special != 0);
        *out_length = text.size();
        if (text.size() > capacity)
            return set_error(SQLLM_ERR_INVALID_ARGUMENT, "sqllm_detokenize: " + std::to_string(text.size()) + " bytes do not fit in " + std::to_string(capacity));
        if (!text.empty()) std::memcpy(out_text, text.data(), text.size());
        return SQLLM_OK;
    });
}

sqllm_context_params sqllm_context_params_default(void) { return sqllm::default_context_params(); }

sqllm_status sqllm_context_create(const sqllm_model *model, const sqllm_context_params *params, sqllm_context **out_ctx) {
    return guarded([&] {
        if (!model || !out_ctx) return set_error(SQLLM_ERR_INVALID_ARGUMENT, "sqllm_context_create: NULL argument");
        *out_ctx = nullptr;
        auto ctx = std::make_unique<sqllm_context>();
        ctx->ctx = std::make_unique<sqllm::Context>(*model->model, params ? *params : sqllm::default_context_params());
        *out_ctx = ctx.release();
        return SQLLM_OK;
    });
}

void sqllm_context_free(sqllm_context *ctx) { delete ctx; }

sqllm_status sqllm_context_reset(sqllm_context *ctx) {
    return guarded([&] {
        if (!ctx) return set_error(SQLLM_ERR_INVALID_ARGUMENT, "sqllm_context_reset: NULL context");
        ctx->ctx->reset();
        return SQLLM_OK;
    });
}

int32_t sqllm_context_n_past(const sqllm_context *ctx) { return ctx ? ctx->ctx->n_past() : 0; }

sqllm_status sqllm_context_truncate(sqllm_context *ctx, int32_t n) {
    return guarded([&] {
        if (!ctx) return set_error(SQLLM_ERR_INVALID_ARGUMENT, "sqllm_context_truncate: NULL context");
        ctx->ctx->truncate(n);
        return SQLLM_OK;
    });
}
int32_t sqllm_context_n_ctx(const sqllm_context *ctx) { return ctx ? ctx->ctx->n_ctx() : 0; }
int32_t sqllm_context_kv_bits(const sqllm_context *ctx) { return ctx ? ctx->ctx->kv_bits() : 0; }
uint64_t sqllm_context_kv_bytes(const sqllm_context *ctx) { return ctx ? ctx->ctx->kv_bytes() : 0; }

sqllm_status sqllm_eval(sqllm_context *ctx, const int32_t *tokens, size_t n, float *out_logits, int all_logits) {
    return guarded([&] {
        if (!ctx || !tokens || !out_logits) return set_error(SQLLM_ERR_INVALID_ARGUMENT, "sqllm_eval: NULL argument");
        if (n == 0 || n > size_t(INT32_MAX)) return set_error(SQLLM_ERR_INVALID_ARGUMENT, "sqllm_eval: bad token count");
        ctx->ctx->eval(tokens, int32_t(n), out_logits, all_logits != 0);
        return SQLLM_OK;
    });
}

sqllm_status sqllm_nll(sqllm_context *ctx, const int32_t *tokens, size_t n, double *out_nll) {
    return guarded([&] {
        if (!ctx || !tokens || !out_nll) return set_error(SQLLM_ERR_INVALID_ARGUMENT, "sqllm_nll: NULL argument");
        if (n < 2 || n > size_t(INT32_MAX)) return set_error(SQLLM_ERR_INVALID_ARGUMENT, "sqllm_nll: needs at least two tokens");
        sqllm::token_nll(*ctx->ctx, tokens, int32_t(n), out_nll);
        return SQLLM_OK;
    });
}

sqllm_status sqllm_text_nll(sqllm_context *ctx, const char *text, size_t length, int32_t window, int32_t max_windows,
                            double *out_nll, int64_t *out_count) {
    return guarded([&] {
        if (!ctx || (!text && length) || !out_nll || !out_count) return set_error(SQLLM_ERR_INVALID_ARGUMENT, "sqllm_text_nll: NULL argument");
        const sqllm::NllSum sum = sqllm::text_nll(*ctx->ctx, std::string_view(text ? text : "", length), window, max_windows);
        *out_nll = sum.nll;
        *out_count = sum.count;
        return SQLLM_OK;
    });
}

sqllm_sampler_params sqllm_sampler_params_default(void) { return sqllm::default_sampler_params(); }

sqllm_status sqllm_sample(const sqllm_sampler_params *params, const float *logits, int32_t vocab,
                          const int32_t *history, size_t n_history, int32_t *out_token) {
    return guarded([&] {
        if (!params || !logits || vocab <= 0 || (!history && n_history) || !out_token)
            return set_error(SQLLM_ERR_INVALID_ARGUMENT, "sqllm_sample: bad argument");
        sqllm::Sampler sampler(*params);
        *out_token = sampler.sample(logits, vocab, std::vector<int32_t>(history, history + n_history));
        return SQLLM_OK;
    });
}

static sqllm_generate_stats to_c(const sqllm::Generator &g) {
    const sqllm::GenerationStats &s = g.stats();
    return {s.prompt_tokens, s.generated_tokens, s.prompt_seconds, s.decode_seconds, int32_t(g.end_reason())};
}

sqllm_status sqllm_generator_create(sqllm_context *ctx, const char *prompt, size_t prompt_length, int32_t max_tokens,
                                    const sqllm_sampler_params *params, sqllm_generator **out_gen) {
    return guarded([&] {
        if (!ctx || (!prompt && prompt_length) || !out_gen) return set_error(SQLLM_ERR_INVALID_ARGUMENT, "sqllm_generator_create: NULL argument");
        *out_gen = nullptr;
        auto gen = std::make_unique<sqllm_generator>();
        gen->gen = std::make_unique<sqllm::Generator>(*ctx->ctx, std::string_view(prompt ? prompt : "", prompt_length), max_tokens,
                                                      params ? *params : sqllm::default_sampler_params());
        *out_gen = gen.release();
        return SQLLM_OK;
    });
}

sqllm_status sqllm_generator_next(sqllm_generator *gen, int32_t *out_token, const char **out_piece, size_t *out_length) {
    return guarded([&] {
        if (!gen || !out_token) return set_error(SQLLM_ERR_INVALID_ARGUMENT, "sqllm_generator_next: NULL argument");
        *out_token = gen->gen->next();
        if (out_piece) *out_piece = gen->gen->piece().data();
        if (out_length) *out_length = gen->gen->piece().size();
        return SQLLM_OK;
    });
}

sqllm_status sqllm_generator_stats(const sqllm_generator *gen, sqllm_generate_stats *out_stats) {
    return guarded([&] {
        if (!gen || !out_stats) return set_error(SQLLM_ERR_INVALID_ARGUMENT, "sqllm_generator_stats: NULL argument");
        *out_stats = to_c(*gen->gen);
        return SQLLM_OK;
    });
}

void sqllm_generator_free(sqllm_generator *gen) { delete gen; }

sqllm_status sqllm_generate(sqllm_context *ctx, const char *prompt, size_t prompt_length, int32_t max_tokens,
                            const sqllm_sampler_params *params, sqllm_token_callback callback, void *user_data,
                            sqllm_generate_stats *out_stats) {
    return guarded([&] {
        if (!ctx || (!prompt && prompt_length)) return set_error(SQLLM_ERR_INVALID_ARGUMENT, "sqllm_generate: NULL argument");
        sqllm::Generator gen(*ctx->ctx, std::string_view(prompt ? prompt : "", prompt_length), max_tokens,
                             params ? *params : sqllm::default_sampler_params());
        for (int32_t token; (token = gen.next()) >= 0;)
            if (callback && callback(token, gen.piece().data(), gen.piece().size(), user_data)) break;
        if (out_stats) {
            *out_stats = to_c(gen);
            if (out_stats->end_reason == SQLLM_END_NONE) out_stats->end_reason = SQLLM_END_MAX_TOKENS;  // the callback stopped it
        }
        return SQLLM_OK;
    });
}

}  // extern "C"
