"""Constants of the .sqf format. Mirrors formats/SPEC.md name for name (the single source of truth), as
cpp/src/format.h does; tests/test_formats.py checks that the two agree."""

GGUF_MAGIC = b"GGUF"
GGUF_VERSION = 3
FORMAT_VERSION = 3
ARCHITECTURE = "sqllm"
ALIGNMENT = 64  # what writers use
MIN_ALIGNMENT = 64
MAX_ALIGNMENT = 1048576

# GGUF value types (SPEC §1.1)
VT_UINT8, VT_INT8, VT_UINT16, VT_INT16, VT_UINT32, VT_INT32, VT_FLOAT32, VT_BOOL = range(8)
VT_STRING, VT_ARRAY, VT_UINT64, VT_INT64, VT_FLOAT64 = 8, 9, 10, 11, 12
VALUE_TYPE_COUNT = 13

# GGML tensor types used by version 1 (SPEC §1.2)
TYPE_F32 = 0
TYPE_F16 = 1
TYPE_I8 = 24
TYPE_I32 = 26
TYPE_NUMPY = {TYPE_F32: "float32", TYPE_F16: "float16", TYPE_I8: "uint8", TYPE_I32: "int32"}
TYPE_NAMES = {TYPE_F32: "F32", TYPE_F16: "F16", TYPE_I8: "I8", TYPE_I32: "I32"}

ALLOWED_BITS = (2, 3, 4, 5, 6, 8)
CODE_BLOCK = 32  # rows of codes are padded to a multiple of this many columns

# general
KEY_ARCHITECTURE = "general.architecture"
KEY_ALIGNMENT = "general.alignment"
KEY_NAME = "general.name"
KEY_FORMAT_VERSION = "sqllm.format_version"

# model configuration (SPEC §3)
KEY_FAMILY = "sqllm.model.family"
KEY_HF_ARCHITECTURE = "sqllm.model.hf_architecture"
KEY_HF_CONFIG = "sqllm.model.hf_config"
KEY_VOCAB_SIZE = "sqllm.model.vocab_size"
KEY_HIDDEN_SIZE = "sqllm.model.hidden_size"
KEY_INTERMEDIATE_SIZE = "sqllm.model.intermediate_size"
KEY_NUM_LAYERS = "sqllm.model.num_layers"
KEY_NUM_HEADS = "sqllm.model.num_heads"
KEY_NUM_KV_HEADS = "sqllm.model.num_kv_heads"
KEY_HEAD_DIM = "sqllm.model.head_dim"
KEY_CONTEXT_LENGTH = "sqllm.model.context_length"
KEY_NORM_EPS = "sqllm.model.norm_eps"
KEY_ROPE_THETA = "sqllm.model.rope.theta"
KEY_ROPE_SCALING_TYPE = "sqllm.model.rope.scaling.type"
KEY_ROPE_SCALING_FACTOR = "sqllm.model.rope.scaling.factor"
KEY_ROPE_SCALING_ORIG_CTX = "sqllm.model.rope.scaling.original_context_length"
KEY_ROPE_SCALING_LOW_FREQ = "sqllm.model.rope.scaling.low_freq_factor"
KEY_ROPE_SCALING_HIGH_FREQ = "sqllm.model.rope.scaling.high_freq_factor"
KEY_TIE_EMBEDDINGS = "sqllm.model.tie_embeddings"
KEY_ATTENTION_BIAS = "sqllm.model.attention_bias"
KEY_SLIDING_WINDOW = "sqllm.model.sliding_window"

FAMILY_LLAMA = "llama"
FAMILY_MISTRAL = "mistral"
FAMILY_QWEN2 = "qwen2"
FAMILIES = (FAMILY_LLAMA, FAMILY_MISTRAL, FAMILY_QWEN2)
ROPE_SCALING_NONE = "none"
ROPE_SCALING_LINEAR = "linear"
ROPE_SCALING_DYNAMIC = "dynamic"
ROPE_SCALING_LLAMA3 = "llama3"
ROPE_SCALING_TYPES = (ROPE_SCALING_NONE, ROPE_SCALING_LINEAR, ROPE_SCALING_DYNAMIC, ROPE_SCALING_LLAMA3)

# tensors of the model (SPEC §3.1); layer L's are LAYER_PREFIX + f"{L}." + one of LAYER_*
TENSOR_EMBED = "model.embed_tokens.weight"
TENSOR_FINAL_NORM = "model.norm.weight"
TENSOR_LM_HEAD = "lm_head.weight"
LAYER_PREFIX = "model.layers."
LAYER_ATTN_NORM = "input_layernorm.weight"
LAYER_FFN_NORM = "post_attention_layernorm.weight"
LAYER_Q = "self_attn.q_proj.weight"
LAYER_K = "self_attn.k_proj.weight"
LAYER_V = "self_attn.v_proj.weight"
LAYER_O = "self_attn.o_proj.weight"
LAYER_Q_BIAS = "self_attn.q_proj.bias"
LAYER_K_BIAS = "self_attn.k_proj.bias"
LAYER_V_BIAS = "self_attn.v_proj.bias"
LAYER_GATE = "mlp.gate_proj.weight"
LAYER_UP = "mlp.up_proj.weight"
LAYER_DOWN = "mlp.down_proj.weight"

# quantized linears (SPEC §4)
KEY_LINEAR_NAMES = "sqllm.linear.names"
KEY_LINEAR_BITS = "sqllm.linear.bits"
KEY_LINEAR_GROUP_SIZE = "sqllm.linear.group_size"
KEY_LINEAR_COLS = "sqllm.linear.cols"
SUFFIX_CODES = ".codes"
SUFFIX_LUT = ".lut"
SUFFIX_LUT_SCALE = ".lut_scale"
SUFFIX_ROWPTR = ".csr.rowptr"
SUFFIX_COLS = ".csr.cols"
SUFFIX_VALS = ".csr.vals"

# recipe, provenance, checksums (SPEC §6)
KEY_TOOL_VERSION = "sqllm.tool.version"
KEY_SOURCE_FILES = "sqllm.source.files"
KEY_SOURCE_SHA256 = "sqllm.source.sha256"
KEY_RECIPE_METHOD = "sqllm.recipe.method"
KEY_RECIPE_BITS = "sqllm.recipe.bits"
KEY_RECIPE_FISHER = "sqllm.recipe.fisher"
KEY_RECIPE_JSON = "sqllm.recipe.json"
KEY_TENSOR_CRC32 = "sqllm.tensor_crc32"

# small Hugging Face side files, verbatim (SPEC §6), for `sqconvert dequant`
KEY_HF_FILE_PREFIX = "sqllm.hf."
HF_SIDE_FILES = ("tokenizer_config.json", "generation_config.json", "special_tokens_map.json")

# KV-cache quantization (SPEC §7)
KV_NAMESPACE = "sqllm.kv."
KEY_KV_BITS = "sqllm.kv.bits"
KEY_KV_OUTLIERS = "sqllm.kv.outliers"
KEY_KV_SINK = "sqllm.kv.sink"
KEY_KV_CALIBRATION = "sqllm.kv.calibration"
KV_TENSOR_PREFIX = "kv."


def kv_bytes_per_token(channels: int, n_layers: int, bits: int, outliers_pct: float) -> float:
    """KV-cache bytes per token past the sink (all layers, keys and values) at the nominal
    outlier rate: packed codes, a value zero and scale (fp16), two outlier offsets (u32) and
    4 bytes (u16 index, fp16 value) per outlier. bits 16: the plain fp16 cache."""
    if bits == 16:
        return float(n_layers * 2 * channels * 2)
    packed = (channels * bits + 7) // 8
    return n_layers * (2 * packed + 4 + 8 + 4 * 2 * outliers_pct / 100.0 * channels)


def kv_tensor_name(layer: int, what: str) -> str:
    """`kv.L.key_range`, `kv.L.key_centroids.B`, `kv.L.value_centroids.B`."""
    return f"{KV_TENSOR_PREFIX}{layer}.{what}"

# GGUF-standard tokenizer keys (SPEC §5)
KEY_TOKENIZER_MODEL = "tokenizer.ggml.model"
KEY_TOKENIZER_PRE = "tokenizer.ggml.pre"
KEY_TOKENIZER_TOKENS = "tokenizer.ggml.tokens"
KEY_TOKENIZER_SCORES = "tokenizer.ggml.scores"
KEY_TOKENIZER_TOKEN_TYPE = "tokenizer.ggml.token_type"
KEY_TOKENIZER_MERGES = "tokenizer.ggml.merges"
KEY_TOKENIZER_BOS = "tokenizer.ggml.bos_token_id"
KEY_TOKENIZER_EOS = "tokenizer.ggml.eos_token_id"
KEY_TOKENIZER_UNK = "tokenizer.ggml.unknown_token_id"
KEY_TOKENIZER_PAD = "tokenizer.ggml.padding_token_id"
KEY_TOKENIZER_ADD_BOS = "tokenizer.ggml.add_bos_token"
KEY_TOKENIZER_ADD_EOS = "tokenizer.ggml.add_eos_token"
KEY_TOKENIZER_ADD_SPACE_PREFIX = "tokenizer.ggml.add_space_prefix"
KEY_CHAT_TEMPLATE = "tokenizer.chat_template"
KEY_HF_TOKENIZER_JSON = "tokenizer.huggingface.json"
KEY_TOKENIZER_PIPELINE = "sqllm.tokenizer.pipeline"

# SPEC §8: every string in a file is UTF-8 except the items of these arrays, token pieces that
# may be any bytes (the reader returns them as bytes).
BYTE_STRING_KEYS = (KEY_TOKENIZER_TOKENS, KEY_TOKENIZER_MERGES)


def padded_cols(cols: int) -> int:
    return (cols + CODE_BLOCK - 1) // CODE_BLOCK * CODE_BLOCK


def row_bytes(cols: int, bits: int) -> int:
    return padded_cols(cols) * bits // 8


def n_groups(cols: int, group_size: int) -> int:
    return (cols + group_size - 1) // group_size


def model_tensor_shapes(cfg: dict) -> dict[str, tuple[int, ...]]:
    """The tensors SPEC §3.1 requires for a model configuration (keys as in §3, short names)."""
    H, I, V = cfg["hidden_size"], cfg["intermediate_size"], cfg["vocab_size"]
    D, Nq, Nkv = cfg["head_dim"], cfg["num_heads"], cfg["num_kv_heads"]
    shapes = {TENSOR_EMBED: (V, H), TENSOR_FINAL_NORM: (H,)}
    if not cfg["tie_embeddings"]:
        shapes[TENSOR_LM_HEAD] = (V, H)
    for L in range(cfg["num_layers"]):
        p = f"{LAYER_PREFIX}{L}."
        shapes[p + LAYER_ATTN_NORM] = (H,)
        shapes[p + LAYER_FFN_NORM] = (H,)
        shapes[p + LAYER_Q] = (Nq * D, H)
        shapes[p + LAYER_K] = (Nkv * D, H)
        shapes[p + LAYER_V] = (Nkv * D, H)
        shapes[p + LAYER_O] = (H, Nq * D)
        if cfg["attention_bias"]:
            shapes[p + LAYER_Q_BIAS] = (Nq * D,)
            shapes[p + LAYER_K_BIAS] = (Nkv * D,)
            shapes[p + LAYER_V_BIAS] = (Nkv * D,)
        shapes[p + LAYER_GATE] = (I, H)
        shapes[p + LAYER_UP] = (I, H)
        shapes[p + LAYER_DOWN] = (H, I)
    return shapes
