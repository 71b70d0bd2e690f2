"""Hugging Face config.json -> the model configuration keys of formats/SPEC.md §3."""

from __future__ import annotations

import json
from pathlib import Path

from sqllm.formats import constants as C
from sqllm.errors import ConversionError

ARCHITECTURES = {
    "LlamaForCausalLM": "llama",
    "MistralForCausalLM": "mistral",
    "Qwen2ForCausalLM": "qwen2",
}

# A config without `architectures` names its class by model_type.
CLASS_OF_MODEL_TYPE = {"llama": "LlamaForCausalLM", "mistral": "MistralForCausalLM", "qwen2": "Qwen2ForCausalLM"}

LINEAR_SUFFIXES = (
    "self_attn.q_proj.weight", "self_attn.k_proj.weight", "self_attn.v_proj.weight", "self_attn.o_proj.weight",
    "mlp.gate_proj.weight", "mlp.up_proj.weight", "mlp.down_proj.weight",
)


EMBEDDING_MATRICES = ("model.embed_tokens.weight", "lm_head.weight")


def is_layer_linear(name: str) -> bool:
    """The projections SqueezeLLM quantizes: every linear inside the decoder layers."""
    return name.startswith("model.layers.") and name.endswith(LINEAR_SUFFIXES)


def is_quantizable(name: str) -> bool:
    """Every matrix the converter quantizes by default: the decoder linears, the token
    embedding and the output head (SPEC §3.1: any two-dimensional weight may be quantized)."""
    return is_layer_linear(name) or name in EMBEDDING_MATRICES


def _rope(cfg: dict, where: Path) -> dict:
    params = cfg.get("rope_parameters") or {}
    theta = cfg.get("rope_theta", params.get("rope_theta", 10000.0))
    scaling = cfg.get("rope_scaling") or ({k: v for k, v in params.items() if k != "rope_theta"} if params else None)
    out = {"theta": float(theta), "type": "none", "factor": 1.0, "orig": 0, "low": 0.0, "high": 0.0}
    if not scaling:
        return out
    kind = scaling.get("rope_type", scaling.get("type", "default"))
    if kind == "default":
        return out
    if kind not in ("linear", "dynamic", "llama3"):
        raise ConversionError(f"{where}: rope scaling '{kind}' is not supported (linear, dynamic, llama3 are)")
    out["type"] = kind
    out["factor"] = float(scaling.get("factor", 1.0))
    if kind == "llama3":
        out["orig"] = int(scaling["original_max_position_embeddings"])
        out["low"] = float(scaling.get("low_freq_factor", 1.0))
        out["high"] = float(scaling.get("high_freq_factor", 4.0))
    elif kind == "dynamic":
        out["orig"] = int(scaling.get("original_max_position_embeddings", cfg.get("max_position_embeddings", 0)))
    return out


def _sliding_window(cfg: dict, family: str, layers: int, where: Path) -> int:
    """The attention window of every layer (0: none), as transformers reads the config: Mistral's
    `sliding_window`; Qwen2's only with `use_sliding_window`, and then from layer
    `max_window_layers` on, which the runtime supports only when that is all layers or none."""
    window = cfg.get("sliding_window") or 0
    types = cfg.get("layer_types")
    if family == "qwen2":
        if not cfg.get("use_sliding_window") or not window:
            window = 0
        else:
            first = int(cfg.get("max_window_layers", 28))
            types = types or ["sliding_attention" if i >= first else "full_attention" for i in range(layers)]
    elif family != "mistral":
        window = 0
    if types and window and len(set(types)) > 1:
        raise ConversionError(f"{where}: sliding-window attention in only some layers is not supported")
    if types and window and types[0] != "sliding_attention":
        window = 0
    return int(window)


def model_metadata(cfg: dict, folder: Path) -> dict:
    """Returns {"family": ..., "shapes_cfg": {...}, "keys": {gguf key: value}}; raises ConversionError."""
    where = folder / "config.json"
    archs = cfg.get("architectures") or []
    arch = archs[0] if archs else CLASS_OF_MODEL_TYPE.get(cfg.get("model_type"), cfg.get("model_type", "?"))
    family = ARCHITECTURES.get(arch)
    if family is None:
        raise ConversionError(f"{where}: architecture {arch} is not supported (supported: {', '.join(ARCHITECTURES)})")
    if cfg.get("mlp_bias"):
        raise ConversionError(f"{where}: mlp_bias=true is not supported")
    if cfg.get("hidden_act", "silu") != "silu":
        raise ConversionError(f"{where}: hidden_act {cfg.get('hidden_act')} is not supported (silu is)")
    try:
        H, heads = int(cfg["hidden_size"]), int(cfg["num_attention_heads"])
        shapes_cfg = {
            "vocab_size": int(cfg["vocab_size"]),
            "hidden_size": H,
            "intermediate_size": int(cfg["intermediate_size"]),
            "num_layers": int(cfg["num_hidden_layers"]),
            "num_heads": heads,
            "num_kv_heads": int(cfg.get("num_key_value_heads") or heads),
            "head_dim": int(cfg.get("head_dim") or H // heads),
            "tie_embeddings": bool(cfg.get("tie_word_embeddings", False)),
            "attention_bias": True if family == "qwen2" else bool(cfg.get("attention_bias", False)),
        }
    except (KeyError, TypeError, ValueError) as e:
        raise ConversionError(f"{where}: missing or invalid field {e}") from e
    rope = _rope(cfg, where)
    window = _sliding_window(cfg, family, shapes_cfg["num_layers"], where)
    keys = {
        C.KEY_FAMILY: family,
        C.KEY_HF_ARCHITECTURE: arch,
        C.KEY_HF_CONFIG: json.dumps(cfg, indent=2, sort_keys=True),
        C.KEY_VOCAB_SIZE: shapes_cfg["vocab_size"],
        C.KEY_HIDDEN_SIZE: H,
        C.KEY_INTERMEDIATE_SIZE: shapes_cfg["intermediate_size"],
        C.KEY_NUM_LAYERS: shapes_cfg["num_layers"],
        C.KEY_NUM_HEADS: heads,
        C.KEY_NUM_KV_HEADS: shapes_cfg["num_kv_heads"],
        C.KEY_HEAD_DIM: shapes_cfg["head_dim"],
        C.KEY_CONTEXT_LENGTH: int(cfg.get("max_position_embeddings", 2048)),
        C.KEY_NORM_EPS: float(cfg.get("rms_norm_eps", 1e-6)),
        C.KEY_ROPE_THETA: rope["theta"],
        C.KEY_ROPE_SCALING_TYPE: rope["type"],
        C.KEY_ROPE_SCALING_FACTOR: rope["factor"],
        C.KEY_ROPE_SCALING_ORIG_CTX: rope["orig"],
        C.KEY_ROPE_SCALING_LOW_FREQ: rope["low"],
        C.KEY_ROPE_SCALING_HIGH_FREQ: rope["high"],
        C.KEY_TIE_EMBEDDINGS: shapes_cfg["tie_embeddings"],
        C.KEY_ATTENTION_BIAS: shapes_cfg["attention_bias"],
        C.KEY_SLIDING_WINDOW: int(window or 0),
    }
    return {"family": family, "shapes_cfg": shapes_cfg, "keys": keys}


# Types the SPEC fixes for keys whose Python value alone would be ambiguous.
KEY_TYPES = {
    C.KEY_VOCAB_SIZE: C.VT_UINT32, C.KEY_HIDDEN_SIZE: C.VT_UINT32, C.KEY_INTERMEDIATE_SIZE: C.VT_UINT32,
    C.KEY_NUM_LAYERS: C.VT_UINT32, C.KEY_NUM_HEADS: C.VT_UINT32, C.KEY_NUM_KV_HEADS: C.VT_UINT32,
    C.KEY_HEAD_DIM: C.VT_UINT32, C.KEY_CONTEXT_LENGTH: C.VT_UINT32, C.KEY_ROPE_SCALING_ORIG_CTX: C.VT_UINT32,
    C.KEY_SLIDING_WINDOW: C.VT_UINT32, C.KEY_NORM_EPS: C.VT_FLOAT32, C.KEY_ROPE_THETA: C.VT_FLOAT32,
    C.KEY_ROPE_SCALING_FACTOR: C.VT_FLOAT32, C.KEY_ROPE_SCALING_LOW_FREQ: C.VT_FLOAT32,
    C.KEY_ROPE_SCALING_HIGH_FREQ: C.VT_FLOAT32, C.KEY_TOKENIZER_BOS: C.VT_UINT32,
    C.KEY_TOKENIZER_EOS: C.VT_UINT32, C.KEY_TOKENIZER_UNK: C.VT_UINT32, C.KEY_TOKENIZER_PAD: C.VT_UINT32,
    C.KEY_RECIPE_BITS: C.VT_UINT32,
}
ARRAY_ITEM_TYPES = {
    C.KEY_TOKENIZER_TOKENS: C.VT_STRING, C.KEY_TOKENIZER_SCORES: C.VT_FLOAT32,
    C.KEY_TOKENIZER_TOKEN_TYPE: C.VT_INT32, C.KEY_TOKENIZER_MERGES: C.VT_STRING,
    C.KEY_SOURCE_FILES: C.VT_STRING, C.KEY_SOURCE_SHA256: C.VT_STRING,
}
