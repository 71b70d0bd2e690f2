// Constants of the .sqf format, mirroring formats/SPEC.md and formats/constants.py name for name
// and value for value (tests/test_formats.py parses this file and compares).
#pragma once
#include <cstdint>
#include <string_view>

namespace sqllm::format {

inline constexpr char GGUF_MAGIC[4] = {'G', 'G', 'U', 'F'};
inline constexpr uint32_t GGUF_VERSION = 3;
inline constexpr uint32_t FORMAT_VERSION = 3;
inline constexpr const char *ARCHITECTURE = "sqllm";
inline constexpr uint32_t ALIGNMENT = 64;  // what writers use
inline constexpr uint32_t MIN_ALIGNMENT = 64;
inline constexpr uint32_t MAX_ALIGNMENT = 1048576;

// GGUF value types (SPEC §1.1)
enum ValueType : uint32_t {
    VT_UINT8 = 0, VT_INT8 = 1, VT_UINT16 = 2, VT_INT16 = 3, VT_UINT32 = 4, VT_INT32 = 5,
    VT_FLOAT32 = 6, VT_BOOL = 7, VT_STRING = 8, VT_ARRAY = 9, VT_UINT64 = 10, VT_INT64 = 11,
    VT_FLOAT64 = 12,
};
inline constexpr uint32_t VALUE_TYPE_COUNT = 13;

// GGML tensor types used by version 1 (SPEC §1.2)
enum TensorType : uint32_t { TYPE_F32 = 0, TYPE_F16 = 1, TYPE_I8 = 24, TYPE_I32 = 26 };

inline constexpr uint32_t ALLOWED_BITS[] = {2, 3, 4, 5, 6, 8};
inline constexpr uint32_t CODE_BLOCK = 32;  // rows of codes are padded to a multiple of this many columns

// general
inline constexpr const char *KEY_ARCHITECTURE = "general.architecture";
inline constexpr const char *KEY_ALIGNMENT = "general.alignment";
inline constexpr const char *KEY_NAME = "general.name";
inline constexpr const char *KEY_FORMAT_VERSION = "sqllm.format_version";

// model configuration (SPEC §3)
inline constexpr const char *KEY_FAMILY = "sqllm.model.family";
inline constexpr const char *KEY_HF_ARCHITECTURE = "sqllm.model.hf_architecture";
inline constexpr const char *KEY_HF_CONFIG = "sqllm.model.hf_config";
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

inline constexpr const char *FAMILY_LLAMA = "llama";
inline constexpr const char *FAMILY_MISTRAL = "mistral";
inline constexpr const char *FAMILY_QWEN2 = "qwen2";
inline constexpr const char *FAMILIES[] = {FAMILY_LLAMA, FAMILY_MISTRAL, FAMILY_QWEN2};
inline constexpr const char *ROPE_SCALING_NONE = "none";
inline constexpr const char *ROPE_SCALING_LINEAR = "linear";
inline constexpr const char *ROPE_SCALING_DYNAMIC = "dynamic";
inline constexpr const char *ROPE_SCALING_LLAMA3 = "llama3";
inline constexpr const char *ROPE_SCALING_TYPES[] = {ROPE_SCALING_NONE, ROPE_SCALING_LINEAR, ROPE_SCALING_DYNAMIC,
                                                     ROPE_SCALING_LLAMA3};

// tensors of the model (SPEC §3.1); layer L's are LAYER_PREFIX + L + "." + one of LAYER_*
inline constexpr const char *TENSOR_EMBED = "model.embed_tokens.weight";
inline constexpr const char *TENSOR_FINAL_NORM = "model.norm.weight";
inline constexpr const char *TENSOR_LM_HEAD = "lm_head.weight";
inline constexpr const char *LAYER_PREFIX = "model.layers.";
inline constexpr const char *LAYER_ATTN_NORM = "input_layernorm.weight";
inline constexpr const char *LAYER_FFN_NORM = "post_attention_layernorm.weight";
inline constexpr const char *LAYER_Q = "self_attn.q_proj.weight";
inline constexpr const char *LAYER_K = "self_attn.k_proj.weight";
inline constexpr const char *LAYER_V = "self_attn.v_proj.weight";
inline constexpr const char *LAYER_O = "self_attn.o_proj.weight";
inline constexpr const char *LAYER_Q_BIAS = "self_attn.q_proj.bias";
inline constexpr const char *LAYER_K_BIAS = "self_attn.k_proj.bias";
inline constexpr const char *LAYER_V_BIAS = "self_attn.v_proj.bias";
inline constexpr const char *LAYER_GATE = "mlp.gate_proj.weight";
inline constexpr const char *LAYER_UP = "mlp.up_proj.weight";
inline constexpr const char *LAYER_DOWN = "mlp.down_proj.weight";

// quantized linears (SPEC §4)
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

// recipe, provenance, checksums (SPEC §6)
inline constexpr const char *KEY_TOOL_VERSION = "sqllm.tool.version";
inline constexpr const char *KEY_SOURCE_FILES = "sqllm.source.files";
inline constexpr const char *KEY_SOURCE_SHA256 = "sqllm.source.sha256";
inline constexpr const char *KEY_RECIPE_METHOD = "sqllm.recipe.method";
inline constexpr const char *KEY_RECIPE_BITS = "sqllm.recipe.bits";
inline constexpr const char *KEY_RECIPE_FISHER = "sqllm.recipe.fisher";
inline constexpr const char *KEY_RECIPE_JSON = "sqllm.recipe.json";
inline constexpr const char *KEY_TENSOR_CRC32 = "sqllm.tensor_crc32";

// small Hugging Face side files, verbatim (SPEC §6)
inline constexpr const char *KEY_HF_FILE_PREFIX = "sqllm.hf.";
inline constexpr const char *HF_SIDE_FILES[] = {"tokenizer_config.json", "generation_config.json", "special_tokens_map.json"};

// KV-cache quantization (SPEC §7)
inline constexpr const char *KV_NAMESPACE = "sqllm.kv.";
inline constexpr const char *KEY_KV_BITS = "sqllm.kv.bits";
inline constexpr const char *KEY_KV_OUTLIERS = "sqllm.kv.outliers";
inline constexpr const char *KEY_KV_SINK = "sqllm.kv.sink";
inline constexpr const char *KEY_KV_CALIBRATION = "sqllm.kv.calibration";
inline constexpr const char *KV_TENSOR_PREFIX = "kv.";

// GGUF-standard tokenizer keys (SPEC §5)
inline constexpr const char *KEY_TOKENIZER_MODEL = "tokenizer.ggml.model";
inline constexpr const char *KEY_TOKENIZER_PRE = "tokenizer.ggml.pre";
inline constexpr const char *KEY_TOKENIZER_TOKENS = "tokenizer.ggml.tokens";
inline constexpr const char *KEY_TOKENIZER_SCORES = "tokenizer.ggml.scores";
inline constexpr const char *KEY_TOKENIZER_TOKEN_TYPE = "tokenizer.ggml.token_type";
inline constexpr const char *KEY_TOKENIZER_MERGES = "tokenizer.ggml.merges";
inline constexpr const char *KEY_TOKENIZER_BOS = "tokenizer.ggml.bos_token_id";
inline constexpr const char *KEY_TOKENIZER_EOS = "tokenizer.ggml.eos_token_id";
inline constexpr const char *KEY_TOKENIZER_UNK = "tokenizer.ggml.unknown_token_id";
inline constexpr const char *KEY_TOKENIZER_PAD = "tokenizer.ggml.padding_token_id";
inline constexpr const char *KEY_TOKENIZER_ADD_BOS = "tokenizer.ggml.add_bos_token";
inline constexpr const char *KEY_TOKENIZER_ADD_EOS = "tokenizer.ggml.add_eos_token";
inline constexpr const char *KEY_TOKENIZER_ADD_SPACE_PREFIX = "tokenizer.ggml.add_space_prefix";
inline constexpr const char *KEY_CHAT_TEMPLATE = "tokenizer.chat_template";
inline constexpr const char *KEY_HF_TOKENIZER_JSON = "tokenizer.huggingface.json";
inline constexpr const char *KEY_TOKENIZER_PIPELINE = "sqllm.tokenizer.pipeline";

// SPEC §8: every string in a file is UTF-8 except the items of these arrays, which are token
// pieces (any bytes).
inline constexpr const char *BYTE_STRING_KEYS[] = {KEY_TOKENIZER_TOKENS, KEY_TOKENIZER_MERGES};

inline bool is_byte_string_array(std::string_view key) {
    for (const char *k : BYTE_STRING_KEYS)
        if (key == k) return true;
    return false;
}
inline constexpr bool linear_bits_allowed(uint32_t bits) {
    for (uint32_t b : ALLOWED_BITS)
        if (bits == b) return true;
    return false;
}
inline uint64_t padded_cols(uint64_t cols) { return (cols + CODE_BLOCK - 1) / CODE_BLOCK * CODE_BLOCK; }
inline uint64_t row_bytes(uint64_t cols, uint32_t bits) { return padded_cols(cols) * bits / 8; }

}  // namespace sqllm::format
