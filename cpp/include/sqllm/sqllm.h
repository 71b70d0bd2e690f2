/*
 * sqllm — public C API.
 *
 * Load a .sqf model (formats/SPEC.md) and read its metadata. Every function returns a status
 * code (or a value that cannot fail); none aborts on bad input. After a failure,
 * sqllm_last_error() tells what went wrong, naming the file, key or tensor.
 *
 * Handles are opaque. A loaded model is immutable and may be used from several threads.
 */
#ifndef SQLLM_H
#define SQLLM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SQLLM_API_VERSION 1

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

/* A short, static description of a status code ("format error", ...). */
const char *sqllm_status_string(sqllm_status status);

/* The message of the last failure on the calling thread ("" if none). Valid until the next
 * sqllm call on this thread. */
const char *sqllm_last_error(void);

typedef struct sqllm_model sqllm_model;

typedef struct sqllm_load_params {
    int verify_checksums; /* non-zero: check every tensor's CRC-32 (reads the whole file) */
} sqllm_load_params;

sqllm_load_params sqllm_load_params_default(void);

/* Map and validate a .sqf file. On success *out_model owns the mapping. params may be NULL. */
sqllm_status sqllm_model_load(const char *path, const sqllm_load_params *params, sqllm_model **out_model);
void sqllm_model_free(sqllm_model *model);

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

sqllm_status sqllm_model_get_config(const sqllm_model *model, sqllm_model_config *out_config);

/* Metadata: keys are enumerated by index; scalar values are read by key. */
typedef enum sqllm_value_type {
    SQLLM_TYPE_UINT8 = 0, SQLLM_TYPE_INT8 = 1, SQLLM_TYPE_UINT16 = 2, SQLLM_TYPE_INT16 = 3,
    SQLLM_TYPE_UINT32 = 4, SQLLM_TYPE_INT32 = 5, SQLLM_TYPE_FLOAT32 = 6, SQLLM_TYPE_BOOL = 7,
    SQLLM_TYPE_STRING = 8, SQLLM_TYPE_ARRAY = 9, SQLLM_TYPE_UINT64 = 10, SQLLM_TYPE_INT64 = 11,
    SQLLM_TYPE_FLOAT64 = 12
} sqllm_value_type;

size_t sqllm_model_meta_count(const sqllm_model *model);
/* Key i; *out_type is its value type, *out_count the array length (1 for scalars). */
sqllm_status sqllm_model_meta_key(const sqllm_model *model, size_t index, const char **out_key,
                                  sqllm_value_type *out_type, uint64_t *out_count);
/* Integer scalars (any integer type or BOOL), widened. */
sqllm_status sqllm_model_meta_int(const sqllm_model *model, const char *key, int64_t *out_value);
/* FLOAT32/FLOAT64 scalars. */
sqllm_status sqllm_model_meta_float(const sqllm_model *model, const char *key, double *out_value);
/* A STRING scalar: a pointer into the mapped file (not NUL-terminated) and its length. */
sqllm_status sqllm_model_meta_string(const sqllm_model *model, const char *key, const char **out_data,
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

size_t sqllm_model_tensor_count(const sqllm_model *model);
sqllm_status sqllm_model_tensor(const sqllm_model *model, size_t index, sqllm_tensor_info *out_info);
sqllm_status sqllm_model_find_tensor(const sqllm_model *model, const char *name, sqllm_tensor_info *out_info);

/* Quantized linears (formats/SPEC.md §4). */
typedef struct sqllm_linear_info {
    const char *name;
    uint32_t bits;
    uint32_t group_size;
    uint64_t rows;
    uint64_t cols;
    uint64_t nnz;           /* 0 without a sparse part */
} sqllm_linear_info;

size_t sqllm_model_linear_count(const sqllm_model *model);
sqllm_status sqllm_model_linear(const sqllm_model *model, size_t index, sqllm_linear_info *out_info);

#ifdef __cplusplus
}
#endif

#endif /* SQLLM_H */
