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
    // The int8 path's LUT (lut_matvec_q8.h), built by Model::prepare_int8 when the kernels
    // support this matrix; empty otherwise.
    std::vector<uint8_t> q8_levels;
    std::vector<float> q8_lo, q8_step;

    kernels::LutMatrixView lut_view() const;  // requires quant
    bool has_int8() const { return !q8_levels.empty(); }
    kernels::LutQ8Tables int8_tables() const { return {q8_levels.data(), q8_lo.data(), q8_step.data()}; }
    // The batch GEMM's LUT (lut_gemm_q16.h), likewise.
    std::vector<int16_t> q16_levels;
    std::vector<float> q16_lo, q16_step;
    bool has_q16() const { return !q16_levels.empty(); }
    kernels::LutQ16Tables q16_tables() const { return {q16_levels.data(), q16_lo.data(), q16_step.data()}; }
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
    // Builds the int8 LUTs of every quantized linear the int8 kernels support, once; safe to
    // call from several threads. Costs 1 + 8 / 2^bits bytes per LUT entry of those matrices.
    void prepare_int8() const;
    // Builds the batch GEMM's LUTs (lut_gemm_q16.h) likewise, when the active kernels have the
    // GEMM; 2 + 8 / 2^bits bytes per LUT entry.
    void prepare_gemm() const;

private:
    Model() = default;
    mutable std::once_flag int8_once_, gemm_once_;
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
    // (and that order) for the int8 path, int16 for the GEMM. The GEMM takes batches of
    // kGemmMinTokens or more, and single tokens of matrices of kGemmMinBitsOneToken bits or more:
    // for one token of 2-4 bits the fp32 LUT kernels are as fast, at 5-6 bits the GEMM is about
    // twice as fast (bench_kernels).
    static constexpr int32_t kGemmMinTokens = 2;
    static constexpr uint32_t kGemmMinBitsOneToken = 5;
    ops::Q8Buffer q8_;
    kernels::Q8Activations q8_input_{};
    const uint8_t *q8_order_ = nullptr;
    ops::Q16Buffer q16_;
    kernels::Q16Activations q16_input_{};
    // Scratch for one batch.
    std::vector<float> x_, xn_, q_, k_, v_, att_, gate_, up_, scores_;
};

}  // namespace sqllm
