// The forward pass of Llama / Mistral / Qwen2 over a loaded .sqf: weights stay in the mapping,
// quantized linears run through the LUT + CSR kernels, activations are fp32.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "kernels/ops.h"
#include "kvcache.h"
#include "rope.h"
#include "sqf.h"
#include "threadpool.h"
#include "tokenizer.h"

namespace sqllm {

// One weight matrix of the forward pass: a quantized linear, or an fp16/fp32 dense matrix.
struct Matrix {
    std::string name;
    int64_t rows = 0, cols = 0;
    const LinearInfo *quant = nullptr;
    std::vector<float> corrections;  // CSR values minus the dense value there (SPEC §4), fp32
    const TensorInfo *dense = nullptr;
    std::vector<float> bias;         // empty: none
    // LUTs as integer levels for the integer kernels, built by Model::prepare_int8 /
    // prepare_default when the kernels support this matrix; empty otherwise. q8 (lut_matvec_q8.h,
    // 255 levels): the int8 path; w8 (lut_matvec_w8a16.h, 256 levels): the default path's single
    // tokens; q16 (lut_gemm_q16.h): the default path's batches. An 8-bit LUT gives w8 and q16 its
    // own levels, which makes them exact.
    template <typename Level>
    struct Requantized {
        std::vector<Level> levels;
        std::vector<float> lo, step;
        bool empty() const { return levels.empty(); }
    };
    Requantized<uint8_t> q8, w8;
    Requantized<int16_t> q16;

    kernels::LutMatrixView lut_view() const;  // requires quant
    kernels::LutQ8Tables q8_tables() const { return {q8.levels.data(), q8.lo.data(), q8.step.data()}; }
    kernels::LutQ8Tables w8_tables() const { return {w8.levels.data(), w8.lo.data(), w8.step.data()}; }
    kernels::LutQ16Tables q16_tables() const { return {q16.levels.data(), q16.lo.data(), q16.step.data()}; }
};

struct LayerWeights {
    std::vector<float> attn_norm, ffn_norm;
    Matrix q, k, v, o, gate, up, down;
};

class Model {
public:
    // params: the C API's load parameters (sqllm.h).
    static std::unique_ptr<Model> load(const std::string &path, const sqllm_load_params &params);

    const SqfFile &file() const { return *file_; }
    const ModelConfig &config() const { return file_->config(); }
    const Tokenizer &tokenizer() const { return tokenizer_; }
    const std::vector<LayerWeights> &layers() const { return layers_; }
    const Matrix &lm_head() const { return lm_head_; }
    const std::vector<float> &final_norm() const { return final_norm_; }
    const std::string &chat_template() const { return chat_template_; }
    // Row `token` of the embedding as fp32.
    void embed(int32_t token, float *out) const;
    // Builds the int8 LUTs (Matrix::q8) of every quantized linear the int8 kernels support, once;
    // safe to call from several threads. Costs 1 + 8 / 2^bits bytes per LUT entry of those matrices.
    void prepare_int8() const;
    // Builds what the default path's kernels need, likewise: the batch GEMM's LUTs (Matrix::q16,
    // 2 + 8 / 2^bits bytes per LUT entry) when the active kernels have the GEMM, and the single
    // tokens' (Matrix::w8, 1 + 8 / 2^bits bytes) when they have lut_matvec_w8a16.
    void prepare_default() const;

private:
    Model() = default;
    mutable std::once_flag int8_once_, default_once_;
    std::unique_ptr<SqfFile> file_;
    Tokenizer tokenizer_;
    mutable std::vector<LayerWeights> layers_;  // mutable: prepare_int8 fills the int8 LUTs
    mutable Matrix lm_head_;
    Matrix embed_;  // gathered row by row, never multiplied
    std::vector<float> final_norm_;
    std::string chat_template_;
};

// The parameters are the C API's struct (sqllm.h documents each field), used as they are; the
// Context constructor is the one place that checks them.
using ContextParams = sqllm_context_params;

ContextParams default_context_params();

// The state of one sequence: KV cache, scratch buffers, thread pool. One thread at a time per
// context; several contexts may share one Model from different threads.
class Context {
public:
    Context(const Model &model, const ContextParams &params);
    const Model &model() const { return model_; }
    int32_t vocab_size() const { return int32_t(model_.config().vocab_size); }
    int32_t n_ctx() const { return n_ctx_; }
    int32_t n_past() const { return n_past_; }
    int32_t n_threads() const { return pool_.size(); }
    // The tokens of the sequence, n_past() of them (what the repetition penalty looks at).
    const std::vector<int32_t> &tokens() const { return tokens_; }
    void reset() { truncate(0); }
    // Keeps the first n tokens of the sequence (n <= n_past()): the next eval continues from
    // position n, overwriting what the cache held after it. Throws Error(INVALID_ARGUMENT).
    void truncate(int32_t n);
    int kv_bits() const { return kv_->bits(); }
    // Bytes the KV cache holds for the current sequence.
    uint64_t kv_bytes() const;
    // Runs tokens at positions n_past() .. n_past()+n-1 and appends them to the cache. Writes
    // logits [n][vocab] when all_logits, else only the last token's [vocab]. Throws Error.
    void eval(const int32_t *tokens, int32_t n, float *logits, bool all_logits);

private:
    void forward_batch(const int32_t *tokens, int32_t n, float *logits, bool all_logits);
    // reuse_input: x is the input of the previous matmul, unchanged (its int8 form is reused).
    void matmul(const Matrix &m, const float *x, int32_t n, float *y, bool reuse_input = false);
    void attention(int layer, int32_t n);

    const Model &model_;
    ContextParams params_;
    std::vector<int32_t> tokens_;
    int32_t n_ctx_;
    int32_t n_past_ = 0;
    ThreadPool pool_;
    Rope rope_;
    std::unique_ptr<KvCache> kv_;
    std::vector<float> partial_, decoded_;
    // The quantized forms of the last quantized-linear input: int8 in a kernel's column order
    // (and that order) for the int8 path; on the default path 14-bit integers for the GEMM
    // (batches) and those split into planes for lut_matvec_w8a16 (single tokens).
    ops::Q8Buffer q8_;
    kernels::Q8Activations q8_input_{};
    const uint8_t *q8_order_ = nullptr;
    ops::Q16Buffer q16_;
    kernels::Q16Activations q16_input_{};
    kernels::W8A16Activations w8a16_input_{};
    // Scratch for one batch.
    std::vector<float> x_, xn_, q_, k_, v_, att_, gate_, up_, scores_;
};

}  // namespace sqllm
