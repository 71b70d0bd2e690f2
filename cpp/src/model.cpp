#include "model.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "kernels/fp16.h"
#include "kernels/ops.h"
#include "tokenizer_metadata.h"

namespace sqllm {
namespace {

std::vector<float> to_f32(const TensorInfo &t) {
    std::vector<float> out(t.n_elements);
    if (t.type == format::TYPE_F32) {
        std::memcpy(out.data(), t.data, t.n_bytes);
    } else {
        kernels::fp16_to_fp32_array(reinterpret_cast<const uint16_t *>(t.data), out.data(), int64_t(t.n_elements));
    }
    return out;
}

// The dense value at (row, col) of a quantized linear (SPEC §4), to turn CSR values into
// corrections that the SpMV adds on top of the LUT matvec.
float dense_value(const LinearInfo &L, uint64_t row, uint64_t col) {
    const uint8_t *codes = L.codes->data + row * format::row_bytes(L.cols, L.bits);
    const uint32_t code = kernels::lut_code_at(codes, int64_t(col), int(L.bits));
    uint64_t group = col / L.group_size;
    return kernels::fp16_to_fp32(L.lut16[(row * L.groups + group) << L.bits | code]);
}

Matrix make_matrix(const SqfFile &f, const std::string &name, const std::string &bias_name) {
    Matrix m;
    m.name = name;
    if (const LinearInfo *L = f.find_linear(name)) {
        m.quant = L;
        m.rows = int64_t(L->rows);
        m.cols = int64_t(L->cols);
        if (L->nnz) {
            m.corrections.resize(L->nnz);
            for (uint64_t r = 0; r < L->rows; r++) {
                int32_t b, e;
                std::memcpy(&b, L->rowptr->data + 4 * r, 4);
                std::memcpy(&e, L->rowptr->data + 4 * (r + 1), 4);
                for (int32_t k = b; k < e; k++) {
                    int32_t col;
                    uint16_t h;
                    std::memcpy(&col, L->colidx->data + 4 * uint64_t(k), 4);
                    std::memcpy(&h, L->vals->data + 2 * uint64_t(k), 2);
                    m.corrections[size_t(k)] = kernels::fp16_to_fp32(h) - dense_value(*L, r, uint64_t(col));
                }
            }
        }
    } else {
        m.dense = f.find_tensor(name);  // presence and shape were validated by the loader
        m.rows = int64_t(m.dense->shape[0]);
        m.cols = int64_t(m.dense->shape[1]);
    }
    if (!bias_name.empty())
        if (const TensorInfo *b = f.find_tensor(bias_name)) m.bias = to_f32(*b);
    return m;
}

// The tokenizer keys of an .sqf file, for read_tokenizer_metadata.
class FileTokenizerKeys {
public:
    explicit FileTokenizerKeys(const SqfFile &f) : f_(f) {}
    bool has(const char *key) const { return f_.find_meta(key) != nullptr; }
    [[noreturn]] void fail(const std::string &what) const { throw Error(SQLLM_ERR_FORMAT, f_.path() + ": tokenizer: " + what); }
    std::string string(const char *key) const { return std::string(entry(key, format::VT_STRING).strings[0]); }
    std::vector<std::string> strings(const char *key) const {
        const MetaEntry &e = array(key, format::VT_STRING);
        return std::vector<std::string>(e.strings.begin(), e.strings.end());
    }
    std::vector<float> floats(const char *key) const { return items<float>(array(key, format::VT_FLOAT32)); }
    std::vector<int32_t> ints(const char *key) const { return items<int32_t>(array(key, format::VT_INT32)); }
    int64_t integer(const char *key) const {
        const format::ValueType t = f_.find_meta(key)->type;
        if (t == format::VT_STRING || t == format::VT_ARRAY || t == format::VT_BOOL || t == format::VT_FLOAT32 || t == format::VT_FLOAT64)
            fail(std::string(key) + " has the wrong type");
        return f_.meta_int(key);
    }
    bool flag(const char *key) const { return entry(key, format::VT_BOOL).raw[0] != 0; }

private:
    const MetaEntry &entry(const char *key, format::ValueType type) const {
        const MetaEntry &e = *f_.find_meta(key);
        if (e.type != type) fail(std::string(key) + " has the wrong type");
        return e;
    }
    const MetaEntry &array(const char *key, format::ValueType item) const {
        const MetaEntry &e = entry(key, format::VT_ARRAY);
        if (e.item_type != item) fail(std::string(key) + " has the wrong item type");
        return e;
    }
    template <typename T>
    static std::vector<T> items(const MetaEntry &e) {
        std::vector<T> out(e.count);
        if (e.count) std::memcpy(out.data(), e.raw, e.count * sizeof(T));
        return out;
    }
    const SqfFile &f_;
};

void rmsnorm(const float *x, const float *w, int64_t n, float eps, float *out) {
    double ss = 0.0;
    for (int64_t i = 0; i < n; i++) ss += double(x[i]) * x[i];
    float scale = float(1.0 / std::sqrt(ss / double(n) + double(eps)));
    for (int64_t i = 0; i < n; i++) out[i] = x[i] * scale * w[i];
}

}  // namespace

std::unique_ptr<Model> Model::load(const std::string &path, const sqllm_load_params &params) {
    std::unique_ptr<Model> m(new Model());
    m->file_ = SqfFile::open(path, params.verify_checksums != 0, params.guard_mapping != 0);
    const SqfFile &f = *m->file_;
    const ModelConfig &c = f.config();
    std::string error;
    FileTokenizerKeys keys(f);
    if (!Tokenizer::build(read_tokenizer_metadata(keys), m->tokenizer_, error))
        throw Error(SQLLM_ERR_FORMAT, path + ": tokenizer: " + error);
    if (m->tokenizer_.vocab_size() != int32_t(c.vocab_size))
        throw Error(SQLLM_ERR_FORMAT, path + ": the tokenizer has " + std::to_string(m->tokenizer_.vocab_size()) +
                                          " tokens, the model " + std::to_string(c.vocab_size));
    if (const MetaEntry *e = f.find_meta(format::KEY_CHAT_TEMPLATE); e && e->type == format::VT_STRING)
        m->chat_template_ = std::string(e->strings[0]);
    m->embed_ = make_matrix(f, format::TENSOR_EMBED, "");
    m->final_norm_ = to_f32(*f.find_tensor(format::TENSOR_FINAL_NORM));
    m->lm_head_ = make_matrix(f, c.tie_embeddings ? format::TENSOR_EMBED : format::TENSOR_LM_HEAD, "");
    for (uint32_t l = 0; l < c.num_layers; l++) {
        std::string p = format::LAYER_PREFIX + std::to_string(l) + ".";
        LayerWeights w;
        w.attn_norm = to_f32(*f.find_tensor(p + format::LAYER_ATTN_NORM));
        w.ffn_norm = to_f32(*f.find_tensor(p + format::LAYER_FFN_NORM));
        w.q = make_matrix(f, p + format::LAYER_Q, c.attention_bias ? p + format::LAYER_Q_BIAS : "");
        w.k = make_matrix(f, p + format::LAYER_K, c.attention_bias ? p + format::LAYER_K_BIAS : "");
        w.v = make_matrix(f, p + format::LAYER_V, c.attention_bias ? p + format::LAYER_V_BIAS : "");
        w.o = make_matrix(f, p + format::LAYER_O, "");
        w.gate = make_matrix(f, p + format::LAYER_GATE, "");
        w.up = make_matrix(f, p + format::LAYER_UP, "");
        w.down = make_matrix(f, p + format::LAYER_DOWN, "");
        m->layers_.push_back(std::move(w));
    }
    f.check_unchanged();  // what was copied out of the mapping above came from the file as validated
    return m;
}

void Model::embed(int32_t token, float *out) const {
    const uint64_t H = config().hidden_size;
    if (const LinearInfo *L = embed_.quant) {
        // A quantized embedding row: each code through its group's LUT, then the row's CSR
        // corrections (SPEC §4), gathered one token at a time.
        const uint8_t *codes = L->codes->data + uint64_t(token) * format::row_bytes(L->cols, L->bits);
        const uint16_t *lut = L->lut16 + (uint64_t(token) * L->groups << L->bits);
        for (uint64_t j = 0; j < H; j++) {
            out[j] = kernels::fp16_to_fp32(lut[((j / L->group_size) << L->bits) + kernels::lut_code_at(codes, int64_t(j), int(L->bits))]);
        }
        if (L->nnz) {
            int32_t b, e;
            std::memcpy(&b, L->rowptr->data + 4 * uint64_t(token), 4);
            std::memcpy(&e, L->rowptr->data + 4 * (uint64_t(token) + 1), 4);
            for (int32_t k = b; k < e; k++) {
                int32_t col;
                std::memcpy(&col, L->colidx->data + 4 * uint64_t(k), 4);
                out[col] += embed_.corrections[size_t(k)];
            }
        }
        return;
    }
    const TensorInfo *t = embed_.dense;
    const uint8_t *row = t->data + uint64_t(token) * H * (t->type == format::TYPE_F32 ? 4 : 2);
    if (t->type == format::TYPE_F32) {
        std::memcpy(out, row, H * 4);
    } else {
        kernels::fp16_to_fp32_array(reinterpret_cast<const uint16_t *>(row), out, int64_t(H));
    }
}

kernels::LutMatrixView Matrix::lut_view() const {
    const LinearInfo &L = *quant;
    kernels::LutMatrixView view{};
    view.codes = L.codes->data;
    view.lut = L.lut16;
    view.rows = int64_t(L.rows);
    view.cols = int64_t(L.cols);
    view.group_size = int64_t(L.group_size);
    view.bits = int(L.bits);
    if (L.nnz) {
        view.rowptr = reinterpret_cast<const int32_t *>(L.rowptr->data);
        view.colidx = reinterpret_cast<const int32_t *>(L.colidx->data);
        view.corr = corrections.data();
    }
    return view;
}

namespace {

// f on every matrix of the forward pass that may be quantized: the layers' linears and the head.
template <typename F>
void each_linear(std::vector<LayerWeights> &layers, Matrix &lm_head, F &&f) {
    for (LayerWeights &w : layers)
        for (Matrix *m : {&w.q, &w.k, &w.v, &w.o, &w.gate, &w.up, &w.down}) f(*m);
    f(lm_head);
}

// Fills (m.*tables) for every quantized matrix that `supported` takes: with the levels of an
// 8-bit LUT where they fit (top >= 255), else with requantize(view, ...).
template <typename Level, typename Supported, typename Requantize>
void integer_tables(std::vector<LayerWeights> &layers, Matrix &lm_head, Matrix::Requantized<Level> Matrix::*tables,
                    int top, Supported supported, Requantize requantize) {
    each_linear(layers, lm_head, [&](Matrix &m) {
        if (!m.quant) return;
        const kernels::LutMatrixView view = m.lut_view();
        if (!supported(view)) return;
        Matrix::Requantized<Level> &r = m.*tables;
        const size_t n_tables = size_t(view.rows * view.groups()), entries = size_t(1) << view.bits;
        r.levels.resize(n_tables * entries);
        r.lo.resize(n_tables);
        r.step.resize(n_tables);
        const LinearInfo &L = *m.quant;
        if (L.lut->type == format::TYPE_I8 && top >= 255) {
            // Validated at load: lo and step finite (sqf.cpp).
            const uint8_t *levels = L.lut->data, *scale = L.lut_scale->data;
            for (size_t k = 0; k < n_tables * entries; k++) r.levels[k] = Level(levels[k]);
            for (size_t t = 0; t < n_tables; t++) {
                uint16_t lo, step;
                std::memcpy(&lo, scale + 4 * t, 2);
                std::memcpy(&step, scale + 4 * t + 2, 2);
                r.lo[t] = kernels::fp16_to_fp32(lo);
                r.step[t] = kernels::fp16_to_fp32(step);
            }
        } else {
            requantize(view, r.levels.data(), r.lo.data(), r.step.data());
        }
    });
}

}  // namespace

void Model::prepare_int8() const {
    std::call_once(int8_once_, [this] {
        const int max_bits = kernels::active_kernels().q8_max_bits;
        // 255 levels (lut_matvec_q8.h says why): always requantized.
        integer_tables(layers_, lm_head_, &Matrix::q8, kernels::kQ8Levels - 1,
                       [max_bits](const kernels::LutMatrixView &v) { return kernels::q8_supported(v, max_bits); },
                       kernels::q8_requantize_lut);
    });
}

void Model::prepare_default() const {
    std::call_once(default_once_, [this] {
        const kernels::KernelTable &k = kernels::active_kernels();
        if (k.lut_matvec_w8a16)
            integer_tables(layers_, lm_head_, &Matrix::w8, kernels::kW8Levels - 1,
                           [](const kernels::LutMatrixView &v) { return kernels::q8_supported(v, 6); },
                           kernels::w8a16_requantize_lut);
        if (k.lut_gemm_q16)
            integer_tables(layers_, lm_head_, &Matrix::q16, kernels::kQ16Levels - 1, kernels::q16_supported,
                           kernels::q16_requantize_lut);
    });
}

ContextParams default_context_params() {
    ContextParams p;
    p.n_ctx = 0;
    p.n_threads = 0;
    p.n_batch = 64;
    p.kv_fp32 = 0;
    p.kv_bits = -1;
    p.kv_method = SQLLM_KV_NUQ;
    p.int8 = 0;
    p.exact = 0;
    return p;
}

namespace {

const ContextParams &checked(const ContextParams &p) {
    auto fail = [](const std::string &what) { throw Error(SQLLM_ERR_INVALID_ARGUMENT, "context: " + what); };
    if (p.n_ctx < 0) fail("n_ctx must be >= 0 (0: the model's context length), got " + std::to_string(p.n_ctx));
    if (p.n_threads < 0 || p.n_threads > 1024) fail("n_threads must be in [0, 1024] (0: all cores), got " + std::to_string(p.n_threads));
    if (p.n_batch < 1) fail("n_batch must be >= 1, got " + std::to_string(p.n_batch));
    if (p.kv_bits != -1 && p.kv_bits != 0 && (p.kv_bits < 2 || p.kv_bits > 4))
        fail("kv_bits must be -1 (the file's choice), 0 (none), 2, 3 or 4; got " + std::to_string(p.kv_bits));
    if (p.kv_method != SQLLM_KV_NUQ && p.kv_method != SQLLM_KV_UNIFORM) fail("kv_method must be SQLLM_KV_NUQ or SQLLM_KV_UNIFORM");
    if (p.int8 && p.exact) fail("int8 and exact exclude each other");
    return p;
}

}  // namespace

Context::Context(const Model &model, const ContextParams &params)
    : model_(model),
      params_(checked(params)),
      n_ctx_(params.n_ctx > 0 ? params.n_ctx : int32_t(model.config().context_length)),
      pool_(params.n_threads > 0 ? params.n_threads : ThreadPool::default_threads()),
      rope_(model.config()),
      kv_(make_kv_cache(model.file(), n_ctx_, params)) {
    if (params.int8) model.prepare_int8();
    if (!params.exact && !params.int8) model.prepare_default();
}

uint64_t Context::kv_bytes() const { return kv_->bytes_used(n_past_); }

void Context::truncate(int32_t n) {
    if (n < 0 || n > n_past_)
        throw Error(SQLLM_ERR_INVALID_ARGUMENT, "cannot keep " + std::to_string(n) + " tokens of a sequence of " + std::to_string(n_past_));
    n_past_ = n;
    tokens_.resize(size_t(n));
}

void Context::matmul(const Matrix &m, const float *x, int32_t n, float *y, bool reuse_input) {
    if (!reuse_input) q8_input_ = {}, q16_input_ = {}, w8a16_input_ = {};  // a new input: its quantized forms are still to be made
    const kernels::KernelTable &k = kernels::active_kernels();
    const bool quantized_default = m.quant && !params_.exact && !params_.int8;
    auto q16_input = [&] {
        if (!(q16_input_.q && q16_input_.n == n && q16_input_.cols == m.cols)) q16_input_ = q16_.quantize(pool_, x, n, m.cols);
        return q16_input_;
    };
    if (m.quant && params_.int8 && !m.q8.empty()) {
        const kernels::LutMatrixView view = m.lut_view();
        const uint8_t *order = k.q8_order(view.bits);
        if (!(q8_input_.q && q8_order_ == order && q8_input_.n == n && q8_input_.cols == m.cols)) {
            q8_input_ = q8_.quantize(x, n, m.cols, order);
            q8_order_ = order;
        }
        ops::lut_matmat_q8(pool_, view, m.q8_tables(), q8_input_, x, y);
    } else if (quantized_default && n == 1 && k.lut_matvec_w8a16 && !m.w8.empty()) {
        if (!(w8a16_input_.hi && w8a16_input_.cols == m.cols)) w8a16_input_ = q16_.split(q16_input());
        ops::lut_matvec_w8a16(pool_, m.lut_view(), m.w8_tables(), w8a16_input_, x, y);
    } else if (quantized_default && n > 1 && !m.q16.empty()) {
        ops::lut_gemm_q16(pool_, m.lut_view(), m.q16_tables(), q16_input(), x, y);
    } else if (m.quant) {
        ops::lut_matmat(pool_, m.lut_view(), x, n, y);
    } else if (m.dense->type == format::TYPE_F16) {
        ops::dense_matmat_f16(pool_, reinterpret_cast<const uint16_t *>(m.dense->data), m.rows, m.cols, x, n, y);
    } else {
        ops::dense_matmat_f32(pool_, reinterpret_cast<const float *>(m.dense->data), m.rows, m.cols, x, n, y);
    }
    if (!m.bias.empty())
        for (int32_t t = 0; t < n; t++)
            for (int64_t r = 0; r < m.rows; r++) y[size_t(t) * m.rows + r] += m.bias[size_t(r)];
}

void Context::attention(int layer, int32_t n) {
    const ModelConfig &c = model_.config();
    const int D = int(c.head_dim), Hq = int(c.num_heads), Hkv = int(c.num_kv_heads), group = Hq / Hkv;
    const float scale = 1.0f / std::sqrt(float(D));
    const int32_t pos0 = n_past_, end = pos0 + n, window = int32_t(c.sliding_window);
    auto first = [&](int32_t pos) { return window > 0 && pos >= window ? pos - window + 1 : 0; };
    // The batch reads positions [lo, end), split into chunks spread over the threads, per kv
    // head. A chunk is read a block of positions at a time, each key and value once per batch,
    // into a small [position][D] fp32 buffer (KvCache::read_keys / read_values: widened,
    // or dequantized and rotated) that the query heads of the group then read with
    // small products (kernels/attention: scores, softmax, weighted values). Each chunk
    // accumulates its share of the outputs; the shares are summed at the end.
    constexpr int32_t kBlock = 64;
    const int32_t lo = first(pos0), span = end - lo;
    const int n_chunks = std::max(1, std::min(int((span + 31) / 32), 4 * pool_.size()));
    const int32_t chunk = (span + n_chunks - 1) / n_chunks, block = std::min(chunk, kBlock);
    const size_t out_size = size_t(n) * Hq * D, per_thread = size_t(block) * D;
    scores_.resize(size_t(n) * Hq * size_t(span));
    partial_.resize(size_t(n_chunks) * out_size);
    decoded_.resize(size_t(pool_.size()) * per_thread);
    const kernels::KernelTable &kt = kernels::active_kernels();
    // One pass over the batch's positions: each (kv head, chunk) task reads its chunk a block at a
    // time (keys or values) and calls visit(block, b0, m, ch, t0, t1, g) with the batch tokens
    // [t0, t1) that read some position of the block [b0, b0 + m) of kv head g.
    auto for_each_block = [&](bool keys, auto &&visit) {
        pool_.parallel_for(Hkv * n_chunks, [&](int task, int thread) {
            const int g = task / n_chunks, ch = task % n_chunks;
            const int32_t j0 = lo + ch * chunk, j1 = std::min(end, j0 + chunk);
            float *buf = decoded_.data() + size_t(thread) * per_thread;
            for (int32_t b0 = j0; b0 < j1; b0 += block) {
                const int32_t m = std::min(block, j1 - b0);
                if (keys) kv_->read_keys(layer, g, b0, m, rope_, buf);
                else kv_->read_values(layer, g, b0, m, buf);
                const int32_t t0 = std::max(0, b0 - pos0);
                const int32_t t1 = window > 0 ? std::max(t0, std::min(n, b0 + m - 1 + window - pos0)) : n;
                if (t0 < t1) visit(buf, b0, m, ch, t0, t1, g);
            }
        });
    };
    // The query rows (row t * Hq + h of q_, scores_ and the outputs) of tokens [t0, t1) and kv
    // head g, as f(first row, count, stride in rows): per query head across the tokens of a
    // prompt batch, or per token across the heads of the group, whichever gives longer runs.
    auto for_query_rows = [&](int32_t t0, int32_t t1, int g, auto &&f) {
        if (t1 - t0 >= group)
            for (int h = g * group; h < (g + 1) * group; h++) f(size_t(t0) * Hq + size_t(h), t1 - t0, size_t(Hq));
        else
            for (int32_t t = t0; t < t1; t++) f(size_t(t) * Hq + size_t(g) * group, group, size_t(1));
    };
    // Scores of positions a token does not read are set but never used.
    for_each_block(true, [&](const float *keys, int32_t b0, int32_t m, int, int32_t t0, int32_t t1, int g) {
        for_query_rows(t0, t1, g, [&](size_t row, int count, size_t stride) {
            kt.gemm_nt_f32(count, m, D, scale, q_.data() + row * D, int64_t(stride) * D, keys, D,
                           scores_.data() + row * span + size_t(b0 - lo), int64_t(stride * span));
        });
    });
    pool_.parallel_for(n * Hq, [&](int task, int) {
        const int32_t pos = pos0 + task / Hq, a = first(pos);
        float *s = scores_.data() + size_t(task) * span - lo;
        kt.softmax_f32(s + a, pos - a + 1);
        // Positions the token does not read weigh zero in the value products below.
        std::fill(s + lo, s + a, 0.0f);
        std::fill(s + pos + 1, s + end, 0.0f);
    });
    std::fill(partial_.begin(), partial_.end(), 0.0f);
    for_each_block(false, [&](const float *values, int32_t b0, int32_t m, int ch, int32_t t0, int32_t t1, int g) {
        float *out = partial_.data() + size_t(ch) * out_size;
        for_query_rows(t0, t1, g, [&](size_t row, int count, size_t stride) {
            kt.gemm_nn_add_f32(count, D, m, scores_.data() + row * span + size_t(b0 - lo), int64_t(stride * span),
                               values, D, out + row * D, int64_t(stride) * D);
        });
    });
    pool_.parallel_for(n * Hq, [&](int task, int) {
        float *out = att_.data() + size_t(task) * D;
        std::fill_n(out, D, 0.0f);
        for (int ch = 0; ch < n_chunks; ch++) {
            const float *p = partial_.data() + size_t(ch) * out_size + size_t(task) * D;
            for (int d = 0; d < D; d++) out[d] += p[d];
        }
    });
}

void Context::eval(const int32_t *tokens, int32_t n, float *logits, bool all_logits) {
    if (n <= 0) throw Error(SQLLM_ERR_INVALID_ARGUMENT, "no tokens to evaluate");
    if (int64_t(n_past_) + n > n_ctx_)
        throw Error(SQLLM_ERR_INVALID_ARGUMENT, "context full: " + std::to_string(n_past_) + " + " + std::to_string(n) +
                                                    " tokens exceed the context of " + std::to_string(n_ctx_));
    const int32_t vocab = int32_t(model_.config().vocab_size);
    for (int32_t i = 0; i < n; i++)
        if (tokens[i] < 0 || tokens[i] >= vocab)
            throw Error(SQLLM_ERR_INVALID_ARGUMENT, "token id " + std::to_string(tokens[i]) + " is outside the vocabulary of " + std::to_string(vocab));
    model_.file().check_unchanged();
    for (int32_t done = 0; done < n; done += params_.n_batch) {
        int32_t m = std::min(params_.n_batch, n - done);
        bool last = done + m == n;
        float *out = all_logits ? logits + size_t(done) * vocab : (last ? logits : nullptr);
        forward_batch(tokens + done, m, out, all_logits);
        tokens_.insert(tokens_.end(), tokens + done, tokens + done + m);
    }
    model_.file().check_unchanged();  // the weights read during this call were the file's
}

void Context::forward_batch(const int32_t *tokens, int32_t n, float *logits, bool all_logits) {
    const ModelConfig &c = model_.config();
    const int64_t H = c.hidden_size, I = c.intermediate_size, D = c.head_dim;
    const int Hq = int(c.num_heads), Hkv = int(c.num_kv_heads);
    const size_t kv_row = size_t(Hkv) * D;
    x_.resize(size_t(n) * H);
    xn_.resize(size_t(n) * H);
    q_.resize(size_t(n) * Hq * D);
    k_.resize(size_t(n) * kv_row);
    v_.resize(size_t(n) * kv_row);
    att_.resize(size_t(n) * Hq * D);
    gate_.resize(size_t(n) * I);
    up_.resize(size_t(n) * I);
    rope_.update(n_past_ + n);
    for (int32_t t = 0; t < n; t++) model_.embed(tokens[t], x_.data() + size_t(t) * H);

    for (size_t l = 0; l < model_.layers().size(); l++) {
        const LayerWeights &w = model_.layers()[l];
        for (int32_t t = 0; t < n; t++) rmsnorm(x_.data() + t * H, w.attn_norm.data(), H, c.norm_eps, xn_.data() + t * H);
        matmul(w.q, xn_.data(), n, q_.data());
        matmul(w.k, xn_.data(), n, k_.data(), true);
        matmul(w.v, xn_.data(), n, v_.data(), true);
        rope_.apply(q_.data(), n, Hq, n_past_);
        kv_->store(int(l), n_past_, n, k_.data(), v_.data(), rope_);
        attention(int(l), n);
        matmul(w.o, att_.data(), n, xn_.data());
        for (size_t i = 0; i < size_t(n) * H; i++) x_[i] += xn_[i];

        for (int32_t t = 0; t < n; t++) rmsnorm(x_.data() + t * H, w.ffn_norm.data(), H, c.norm_eps, xn_.data() + t * H);
        matmul(w.gate, xn_.data(), n, gate_.data());
        matmul(w.up, xn_.data(), n, up_.data(), true);
        for (size_t i = 0; i < size_t(n) * I; i++) {
            float g = gate_[i];
            gate_[i] = g / (1.0f + std::exp(-g)) * up_[i];
        }
        matmul(w.down, gate_.data(), n, xn_.data());
        for (size_t i = 0; i < size_t(n) * H; i++) x_[i] += xn_[i];
    }
    n_past_ += n;
    if (!logits) return;
    int32_t first = all_logits ? 0 : n - 1;
    int32_t count = n - first;
    for (int32_t t = first; t < n; t++)
        rmsnorm(x_.data() + t * H, model_.final_norm().data(), H, c.norm_eps, xn_.data() + (t - first) * H);
    matmul(model_.lm_head(), xn_.data(), count, logits);
}

}  // namespace sqllm
