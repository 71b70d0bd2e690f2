// Constants of the .sqf format, mirroring formats/SPEC.md (and formats/constants.py) name for name.
#pragma once
#include <cstdint>

namespace sqllm::format {

inline constexpr char kMagic[4] = {'G', 'G', 'U', 'F'};
inline constexpr uint32_t kGgufVersion = 3;
inline constexpr uint32_t kFormatVersion = 3;
inline constexpr const char *kArchitecture = "sqllm";
inline constexpr uint32_t kMinAlignment = 64;
inline constexpr uint32_t kMaxAlignment = 1u << 20;
inline constexpr int kCodeBlock = 32;
inline constexpr bool linear_bits_allowed(uint32_t bits) { return (bits >= 2 && bits <= 6) || bits == 8; }

enum ValueType : uint32_t {
    VT_UINT8 = 0, VT_INT8 = 1, VT_UINT16 = 2, VT_INT16 = 3, VT_UINT32 = 4, VT_INT32 = 5,
    VT_FLOAT32 = 6, VT_BOOL = 7, VT_STRING = 8, VT_ARRAY = 9, VT_UINT64 = 10, VT_INT64 = 11,
    VT_FLOAT64 = 12,
};
inline constexpr uint32_t kValueTypeCount = 13;

enum TensorType : uint32_t { TYPE_F32 = 0, TYPE_F16 = 1, TYPE_I8 = 24, TYPE_I32 = 26 };

inline constexpr const char *KEY_ARCHITECTURE = "general.architecture";
inline constexpr const char *KEY_ALIGNMENT = "general.alignment";
inline constexpr const char *KEY_FORMAT_VERSION = "sqllm.format_version";

inline constexpr const char *KEY_FAMILY = "sqllm.model.family";
inline constexpr const char *KEY_VOCAB_SIZE = "sqllm.model.vocab_size";
inline constexpr const char *KEY_HIDDEN_SIZE = "sqllm.model.hidden_size";
inline constexpr const char *KEY_INTERMEDIATE_SIZE = "sqllm.model.intermediate_size";
inline constexpr const char *KEY_NUM_LAYERS = "sqllm.model.num_layers";
inline constexpr const char *KEY_NUM_HEADS = "sqllm.model.num_heads";
inline constexpr const char *KEY_NUM_KV_HEADS = "sqllm.model.num_kv_heads";
inline constexpr const char *KEY_HEAD_DIM = "sqllm.model.head_dim";
inline constexpr const char *KEY_CONTEXT_LENGTH = "sqllm.model.context_length";
inline constexpr const char *KEY_NORM_EPS = "sqllm.model.norm_eps";
inline constexpr const char *KEY_ROPE_THETA = "sqllm.model.rope.theta";
inline constexpr const char *KEY_ROPE_SCALING_TYPE = "sqllm.model.rope.scaling.type";
inline constexpr const char *KEY_ROPE_SCALING_FACTOR = "sqllm.model.rope.scaling.factor";
inline constexpr const char *KEY_ROPE_SCALING_ORIG_CTX = "sqllm.model.rope.scaling.original_context_length";
inline constexpr const char *KEY_ROPE_SCALING_LOW_FREQ = "sqllm.model.rope.scaling.low_freq_factor";
inline constexpr const char *KEY_ROPE_SCALING_HIGH_FREQ = "sqllm.model.rope.scaling.high_freq_factor";
inline constexpr const char *KEY_TIE_EMBEDDINGS = "sqllm.model.tie_embeddings";
inline constexpr const char *KEY_ATTENTION_BIAS = "sqllm.model.attention_bias";
inline constexpr const char *KEY_SLIDING_WINDOW = "sqllm.model.sliding_window";

inline constexpr const char *KEY_LINEAR_NAMES = "sqllm.linear.names";
inline constexpr const char *KEY_LINEAR_BITS = "sqllm.linear.bits";
inline constexpr const char *KEY_LINEAR_GROUP_SIZE = "sqllm.linear.group_size";
inline constexpr const char *KEY_LINEAR_COLS = "sqllm.linear.cols";
inline constexpr const char *SUFFIX_CODES = ".codes";
inline constexpr const char *SUFFIX_LUT = ".lut";
inline constexpr const char *SUFFIX_LUT_SCALE = ".lut_scale";
inline constexpr const char *SUFFIX_ROWPTR = ".csr.rowptr";
inline constexpr const char *SUFFIX_COLS = ".csr.cols";
inline constexpr const char *SUFFIX_VALS = ".csr.vals";

inline constexpr const char *KEY_TOKENIZER_PIPELINE = "sqllm.tokenizer.pipeline";

inline constexpr const char *KEY_TENSOR_CRC32 = "sqllm.tensor_crc32";
inline constexpr const char *KV_NAMESPACE = "sqllm.kv.";
inline constexpr const char *KEY_KV_BITS = "sqllm.kv.bits";
inline constexpr const char *KEY_KV_OUTLIERS = "sqllm.kv.outliers";
inline constexpr const char *KEY_KV_SINK = "sqllm.kv.sink";
inline constexpr const char *KEY_KV_CALIBRATION = "sqllm.kv.calibration";
inline constexpr const char *KV_TENSOR_PREFIX = "kv.";

inline uint64_t padded_cols(uint64_t cols) { return (cols + kCodeBlock - 1) / kCodeBlock * kCodeBlock; }
inline uint64_t row_bytes(uint64_t cols, uint32_t bits) { return padded_cols(cols) * bits / 8; }

}  // namespace sqllm::format
