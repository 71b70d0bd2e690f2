/*
 * sqllm — public C API.
 *
 * Load a .sqf model (formats/SPEC.md), read its metadata, tokenize, evaluate, score and
 * generate. Every function returns a status code (or a value that cannot fail); none aborts or
 * prints on bad input. After a failure, sqllm_last_error() tells what went wrong, naming the
 * file, key or tensor. Parameters are checked by the library, in one place, whatever the caller
 * (the Python package runs the same code and raises one exception class per status).
 *
 * Handles are opaque. A loaded model is immutable and may be used from several threads. Loading
 * installs no signal handler unless sqllm_load_params.guard_mapping asks for one.
 *
 * Installed by `cmake --install`: link with -lsqllm (pkg-config sqllm) or, from CMake,
 * find_package(sqllm) and the target sqllm::sqllm (or sqllm::sqllm_static).
 */
#ifndef SQLLM_H
#define SQLLM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SQLLM_API_VERSION 1

/* Every function of this header is exported from libsqllm; nothing else is (the library is
 * built with hidden visibility and SQLLM_BUILD defined). */
#if defined(SQLLM_BUILD) && (defined(__GNUC__) || defined(__clang__))
#define SQLLM_API __attribute__((visibility("default")))
#else
#define SQLLM_API
#endif

typedef enum sqllm_status {
    SQLLM_OK = 0,
    SQLLM_ERR_INVALID_ARGUMENT = 1, /* a NULL pointer, an out-of-range index or option */
    SQLLM_ERR_IO = 2,               /* the file cannot be opened, read or mapped */
    SQLLM_ERR_FORMAT = 3,           /* the file is malformed, truncated or inconsistent */
    SQLLM_ERR_UNSUPPORTED = 4,      /* a valid file this build cannot use (newer version, ...) */
    SQLLM_ERR_CHECKSUM = 5,         /* a tensor's CRC-32 does not match */
    SQLLM_ERR_NOT_FOUND = 6,        /* no such key or tensor */
    SQLLM_ERR_TYPE = 7,             /* the key exists with another type */
    SQLLM_ERR_OUT_OF_MEMORY = 8,
    SQLLM_ERR_INTERNAL = 9
} sqllm_status;

/* The library's version, "MAJOR.MINOR.PATCH" (the project version of CMakeLists.txt, which the
 * Python package reports as sqllm.__version__ and writes into every .sqf it makes). */
SQLLM_API const char *sqllm_version(void);

/* A short, static description of a status code ("format error", ...). */
SQLLM_API const char *sqllm_status_string(sqllm_status status);

/* The message of the last failure on the calling thread ("" if none). Valid until the next
 * sqllm call on this thread. */
SQLLM_API const char *sqllm_last_error(void);

typedef struct sqllm_model sqllm_model;

typedef struct sqllm_load_params {
    int verify_checksums; /* non-zero: check every tensor's CRC-32 (reads the whole file) */
    int guard_mapping;    /* non-zero: survive the file being truncated while mapped (default 0).
                           * The model's weights are read from a memory mapping of the file; if
                           * another program truncates or rewrites it in place, reading a page
                           * past its new end raises SIGBUS, which kills the process. A guarded
                           * mapping installs, once per process, a SIGBUS handler (chaining to
                           * the handler installed before it, for faults outside sqllm's
                           * mappings) that maps zeros over the missing page, so the read in
                           * flight finishes; the next call on the model then fails with
                           * SQLLM_ERR_IO. Leave it 0 when the application owns SIGBUS. Whether
                           * guarded or not, a change of the file is reported by the next call
                           * (SQLLM_ERR_IO) whenever the process survives it. */
} sqllm_load_params;

SQLLM_API sqllm_load_params sqllm_load_params_default(void);

/* Map and validate a .sqf file. On success *out_model owns the mapping. params may be NULL. */
SQLLM_API sqllm_status sqllm_model_load(const char *path, const sqllm_load_params *params, sqllm_model **out_model);
SQLLM_API void sqllm_model_free(sqllm_model *model);

/* Model configuration (formats/SPEC.md §3). */
typedef struct sqllm_model_config {
    char family[16];              /* "llama", "mistral", "qwen2" */
    uint32_t vocab_size;
    uint32_t hidden_size;
    uint32_t intermediate_size;
    uint32_t num_layers;
    uint32_t num_heads;
    uint32_t num_kv_heads;
    uint32_t head_dim;
    uint32_t context_length;
    float norm_eps;
    float rope_theta;
    char rope_scaling_type[16];   /* "none", "linear", "dynamic", "llama3" */
    float rope_scaling_factor;
    uint32_t rope_original_context_length;
    float rope_low_freq_factor;
    float rope_high_freq_factor;
    int tie_embeddings;
    int attention_bias;
    uint32_t sliding_window;
} sqllm_model_config;

SQLLM_API sqllm_status sqllm_model_get_config(const sqllm_model *model, sqllm_model_config *out_config);

/* Metadata: keys are enumerated by index; scalar values are read by key. */
typedef enum sqllm_value_type {
    SQLLM_TYPE_UINT8 = 0, SQLLM_TYPE_INT8 = 1, SQLLM_TYPE_UINT16 = 2, SQLLM_TYPE_INT16 = 3,
    SQLLM_TYPE_UINT32 = 4, SQLLM_TYPE_INT32 = 5, SQLLM_TYPE_FLOAT32 = 6, SQLLM_TYPE_BOOL = 7,
    SQLLM_TYPE_STRING = 8, SQLLM_TYPE_ARRAY = 9, SQLLM_TYPE_UINT64 = 10, SQLLM_TYPE_INT64 = 11,
    SQLLM_TYPE_FLOAT64 = 12
} sqllm_value_type;

SQLLM_API size_t sqllm_model_meta_count(const sqllm_model *model);
/* Key i; *out_type is its value type, *out_count the array length (1 for scalars). */
SQLLM_API sqllm_status sqllm_model_meta_key(const sqllm_model *model, size_t index, const char **out_key,
                                  sqllm_value_type *out_type, uint64_t *out_count);
/* Integer scalars (any integer type or BOOL), widened. */
SQLLM_API sqllm_status sqllm_model_meta_int(const sqllm_model *model, const char *key, int64_t *out_value);
/* FLOAT32/FLOAT64 scalars. */
SQLLM_API sqllm_status sqllm_model_meta_float(const sqllm_model *model, const char *key, double *out_value);
/* A STRING scalar: a pointer into the mapped file (not NUL-terminated) and its length. */
SQLLM_API sqllm_status sqllm_model_meta_string(const sqllm_model *model, const char *key, const char **out_data,
                                     size_t *out_length);

/* Tensors. */
typedef enum sqllm_tensor_type {
    SQLLM_TENSOR_F32 = 0,
    SQLLM_TENSOR_F16 = 1,
    SQLLM_TENSOR_I8 = 24,
    SQLLM_TENSOR_I32 = 26
} sqllm_tensor_type;

typedef struct sqllm_tensor_info {
    const char *name;       /* NUL-terminated, owned by the model */
    sqllm_tensor_type type;
    uint32_t n_dims;
    uint64_t shape[4];      /* numpy order: shape[0] is the outermost (slowest) dimension */
    uint64_t n_bytes;
    uint64_t file_offset;   /* absolute offset of the data in the file */
    const void *data;       /* into the read-only mapping */
} sqllm_tensor_info;

SQLLM_API size_t sqllm_model_tensor_count(const sqllm_model *model);
SQLLM_API sqllm_status sqllm_model_tensor(const sqllm_model *model, size_t index, sqllm_tensor_info *out_info);
SQLLM_API sqllm_status sqllm_model_find_tensor(const sqllm_model *model, const char *name, sqllm_tensor_info *out_info);

/* Quantized linears (formats/SPEC.md §4). */
typedef struct sqllm_linear_info {
    const char *name;
    uint32_t bits;          /* 2, 3, 4, 5, 6 or 8 */
    uint32_t group_size;
    uint64_t rows;
    uint64_t cols;
    uint64_t nnz;           /* 0 without a sparse part */
} sqllm_linear_info;

SQLLM_API size_t sqllm_model_linear_count(const sqllm_model *model);
SQLLM_API sqllm_status sqllm_model_linear(const sqllm_model *model, size_t index, sqllm_linear_info *out_info);

/* ---- Tokenizer (the model's own, from its metadata) ----------------------------------- */

SQLLM_API int32_t sqllm_model_vocab_size(const sqllm_model *model);
SQLLM_API int32_t sqllm_model_bos(const sqllm_model *model); /* -1 if the model has none */
SQLLM_API int32_t sqllm_model_eos(const sqllm_model *model); /* -1 if the model has none */

/* Tokenize text[0..length). Writes at most `capacity` ids; *out_count is the number the text
 * needs, so a call with capacity 0 measures. Returns SQLLM_ERR_INVALID_ARGUMENT when the
 * buffer is too small. */
SQLLM_API sqllm_status sqllm_tokenize(const sqllm_model *model, const char *text, size_t length, int add_bos,
                            int parse_special, int32_t *out_tokens, size_t capacity, size_t *out_count);
/* The bytes of tokens (special tokens skipped when skip_special), same capacity rule. */
SQLLM_API sqllm_status sqllm_detokenize(const sqllm_model *model, const int32_t *tokens, size_t n_tokens, int skip_special,
                              char *out_text, size_t capacity, size_t *out_length);

/* ---- Contexts: one sequence each; several may share one model from different threads ---- */

typedef struct sqllm_context sqllm_context;

typedef struct sqllm_context_params {
    int32_t n_ctx;     /* 0: the model's context length */
    int32_t n_threads; /* 0: all cores */
    int32_t n_batch;   /* prompt tokens per forward batch (default 64) */
    int kv_fp32;       /* non-zero: fp32 KV cache instead of fp16 (when not quantized) */
    int32_t kv_bits;   /* KVQuant cache: -1 (default) the file's choice, none if it holds no KV
                          calibration; 0 none (fp16/fp32); 2, 3 or 4 bits */
    int32_t kv_method; /* SQLLM_KV_NUQ (default: the file's calibrated datatype) or SQLLM_KV_UNIFORM
                          (evenly spaced levels; on a file without KV calibration the key ranges
                          come from the sequence, and kv_bits must be 2, 3 or 4) */
    int int8;          /* non-zero: quantized linears run with int8 activations and LUTs (faster
                          decode, approximate: docs/RESULTS.md); 0 (default): see exact */
    int exact;         /* non-zero: every product on the fp32 path, the reference. 0 (default):
                          where the CPU has the kernels (AVX-512 VNNI), quantized linears run with
                          14-bit activations, prompt batches as an integer GEMM with 11-bit LUT
                          levels and single tokens with 8-bit LUT levels: faster, close to fp32
                          (docs/RESULTS.md); the rest in fp32. int8 and exact exclude each other. */
} sqllm_context_params;

enum { SQLLM_KV_NUQ = 0, SQLLM_KV_UNIFORM = 1 };

SQLLM_API sqllm_context_params sqllm_context_params_default(void);
SQLLM_API sqllm_status sqllm_context_create(const sqllm_model *model, const sqllm_context_params *params, sqllm_context **out_ctx);
SQLLM_API void sqllm_context_free(sqllm_context *ctx);
/* Forget the sequence (the KV cache is reused). */
SQLLM_API sqllm_status sqllm_context_reset(sqllm_context *ctx);
SQLLM_API int32_t sqllm_context_n_past(const sqllm_context *ctx);
/* Keep the first n tokens of the sequence (0 <= n <= n_past) and forget the rest: the next
 * evaluation continues at position n. A chat or a server reuses a shared prompt prefix this way. */
SQLLM_API sqllm_status sqllm_context_truncate(sqllm_context *ctx, int32_t n);
SQLLM_API int32_t sqllm_context_n_ctx(const sqllm_context *ctx);
/* Bits per KV-cache entry when the cache is quantized, else 0. */
SQLLM_API int32_t sqllm_context_kv_bits(const sqllm_context *ctx);
/* Bytes the KV cache holds for the current sequence (codes, scales, outliers, sink). */
SQLLM_API uint64_t sqllm_context_kv_bytes(const sqllm_context *ctx);

/* Append n tokens to the sequence and compute logits: [n][vocab] when all_logits, else the
 * last token's [vocab]. Fails cleanly (nothing appended) if the context would overflow. */
SQLLM_API sqllm_status sqllm_eval(sqllm_context *ctx, const int32_t *tokens, size_t n, float *out_logits, int all_logits);

/* ---- Scoring ----------------------------------------------------------------------------- */

/* Append n >= 2 tokens to the sequence and write out_nll[n - 1]: out_nll[i] is the negative
 * log-likelihood (natural log) of tokens[i + 1] given what the context held and tokens[0..i]. */
SQLLM_API sqllm_status sqllm_nll(sqllm_context *ctx, const int32_t *tokens, size_t n, double *out_nll);

/* The NLL of a text as `sqrun --perplexity` scores it: its tokens (without BOS) cut into
 * windows of `window` tokens, each BOS (when the model adds one) followed by the next
 * window - 1 tokens, each window evaluated from an empty context (the context is reset), every
 * token after a window's first scored. max_windows 0: all. *out_nll is the sum over the
 * *out_count scored tokens: perplexity = exp(*out_nll / *out_count). */
SQLLM_API sqllm_status sqllm_text_nll(sqllm_context *ctx, const char *text, size_t length, int32_t window, int32_t max_windows,
                            double *out_nll, int64_t *out_count);

/* ---- Sampling and generation ------------------------------------------------------------ */

typedef struct sqllm_sampler_params {
    float temperature;        /* 0: greedy (default 0.8) */
    int32_t top_k;            /* 0: off (default 40) */
    float top_p;              /* 1: off (default 0.95) */
    float min_p;              /* 0: off (default 0.05) */
    float repetition_penalty; /* 1: off (default 1) */
    int32_t repetition_window;/* recent tokens the penalties see (default 64) */
    uint64_t seed;
    float presence_penalty;   /* subtracted from the logit of each token in the window (default 0) */
    float frequency_penalty;  /* subtracted once per occurrence in the window (default 0) */
} sqllm_sampler_params;

SQLLM_API sqllm_sampler_params sqllm_sampler_params_default(void);

/* Pick a token from logits[vocab] given the sequence so far (for the repetition penalty). The
 * draw is a function of the seed and the history length, so a seeded run is reproducible. */
SQLLM_API sqllm_status sqllm_sample(const sqllm_sampler_params *params, const float *logits, int32_t vocab,
                          const int32_t *history, size_t n_history, int32_t *out_token);

/* Called with each generated token and its bytes (which may end inside a UTF-8 character);
 * return non-zero to stop. */
typedef int (*sqllm_token_callback)(int32_t token, const char *piece, size_t length, void *user_data);

/* Why generation ended. */
enum { SQLLM_END_NONE = 0,        /* it has not */
       SQLLM_END_MAX_TOKENS = 1,  /* max_tokens generated (or the callback stopped it) */
       SQLLM_END_TOKEN = 2,       /* EOS or a control token sampled */
       SQLLM_END_CONTEXT_FULL = 3 };

typedef struct sqllm_generate_stats {
    int32_t prompt_tokens;
    int32_t generated_tokens;
    double prompt_seconds;
    double decode_seconds;
    int32_t end_reason;       /* SQLLM_END_* */
} sqllm_generate_stats;

/* Generation, step by step. Creating a generator tokenizes the prompt (BOS first when the
 * context is empty and the model adds one; special tokens written in the prompt become their
 * ids) and evaluates it after what the context already holds; it fails with
 * SQLLM_ERR_INVALID_ARGUMENT for bad sampler parameters (params NULL: the defaults),
 * max_tokens < 0, or a prompt that does not fit. The context must outlive the generator and not
 * be used otherwise while it runs. */
typedef struct sqllm_generator sqllm_generator;

SQLLM_API sqllm_status sqllm_generator_create(sqllm_context *ctx, const char *prompt, size_t prompt_length, int32_t max_tokens,
                                    const sqllm_sampler_params *params, sqllm_generator **out_gen);
/* The next token and its bytes (valid until the next call; may end inside a UTF-8 character),
 * or *out_token = -1 at the end: max_tokens generated, EOS or a control token sampled (not
 * returned), or the context full. Every token returned is in the context by the next call. */
SQLLM_API sqllm_status sqllm_generator_next(sqllm_generator *gen, int32_t *out_token, const char **out_piece, size_t *out_length);
SQLLM_API sqllm_status sqllm_generator_stats(const sqllm_generator *gen, sqllm_generate_stats *out_stats);
SQLLM_API void sqllm_generator_free(sqllm_generator *gen);

/* The whole loop of a generator in one call: each token goes to the callback, which may stop it. */
SQLLM_API sqllm_status sqllm_generate(sqllm_context *ctx, const char *prompt, size_t prompt_length, int32_t max_tokens,
                            const sqllm_sampler_params *params, sqllm_token_callback callback, void *user_data,
                            sqllm_generate_stats *out_stats);

#ifdef __cplusplus
}
#endif

#endif /* SQLLM_H */
