"""A GGUF file (as llama.cpp's convert_hf_to_gguf.py writes it) read as a Hugging Face checkpoint.

The `gguf` package's reader parses the header; the tensors are then read with positional reads,
one at a time, like safetensors (checkpoint.py). Names map back to Hugging Face names, the
configuration is rebuilt from the `{arch}.*` keys, and the tokenizer from the `tokenizer.ggml.*`
keys (gguf_tokenizer.py). For the llama architecture, llama.cpp stores the rows of the query and
key projections in its own rotary order: they are put back in Hugging Face's. Quantized tensors
are dequantized with gguf-py's dequantizer (with a warning: quantizing them again adds error).
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from sqllm.formats import constants as C
from sqllm.errors import ConversionError

from .checkpoint import Checkpoint, _Entry

log = logging.getLogger("sqllm.convert")

GGUF_MAGIC = b"GGUF"

# general.architecture -> the Hugging Face class whose weights it holds.
ARCHITECTURES = {"llama": "LlamaForCausalLM", "qwen2": "Qwen2ForCausalLM"}

TOP_LEVEL_NAMES = {
    "token_embd.weight": "model.embed_tokens.weight",
    "output_norm.weight": "model.norm.weight",
    "output.weight": "lm_head.weight",
}
LAYER_NAMES = {
    "attn_norm.weight": "input_layernorm.weight",
    "ffn_norm.weight": "post_attention_layernorm.weight",
    "attn_q.weight": "self_attn.q_proj.weight", "attn_q.bias": "self_attn.q_proj.bias",
    "attn_k.weight": "self_attn.k_proj.weight", "attn_k.bias": "self_attn.k_proj.bias",
    "attn_v.weight": "self_attn.v_proj.weight", "attn_v.bias": "self_attn.v_proj.bias",
    "attn_output.weight": "self_attn.o_proj.weight",
    "ffn_gate.weight": "mlp.gate_proj.weight",
    "ffn_up.weight": "mlp.up_proj.weight",
    "ffn_down.weight": "mlp.down_proj.weight",
}
LAYER_TENSOR = re.compile(r"blk\.(\d+)\.(.+)")
ROPE_FREQS = "rope_freqs.weight"


def is_gguf(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(4) == GGUF_MAGIC
    except OSError:
        return False


@dataclass
class GgufCheckpoint(Checkpoint):
    """The tensors of a GGUF under Hugging Face names; Q/K rows of the llama architecture are
    reordered on reading (`_row_order`), quantized types dequantized. `folder` is the GGUF file
    itself: messages name it, and nothing (a Fisher file, config.json) is looked for beside it."""

    path: Path = Path()
    _config: dict = field(default_factory=dict)
    _tokenizer: tuple[dict, dict] | None = None
    _row_order: dict[str, np.ndarray] = field(default_factory=dict)
    _qtypes: dict[str, object] = field(default_factory=dict)

    def config(self) -> dict:
        return json.loads(json.dumps(self._config))

    def tokenizer_metadata(self, vocab_size: int | None) -> dict[str, object]:
        """The tokenizer keys through the entry point of a model folder: the tokenizer.json and
        tokenizer_config.json rebuilt from the GGUF are written, for it, to a temporary folder,
        which error messages then name as the GGUF."""
        import tempfile

        from .tokenizer import TokenizerError, tokenizer_metadata

        tokenizer_json, tokenizer_config = self._tokenizer
        with tempfile.TemporaryDirectory(prefix="sqllm-gguf-tokenizer-") as tmp:
            folder = Path(tmp)
            (folder / "tokenizer.json").write_text(json.dumps(tokenizer_json, ensure_ascii=False), encoding="utf-8")
            (folder / "tokenizer_config.json").write_text(json.dumps(tokenizer_config, ensure_ascii=False),
                                                          encoding="utf-8")
            try:
                return tokenizer_metadata(folder, vocab_size)
            except TokenizerError as e:
                message = str(e).replace(str(folder / "tokenizer.json"), f"{self.path} (its tokenizer.ggml.* keys)")
                raise TokenizerError(message.replace(str(folder), str(self.path))) from None

    def side_files(self) -> dict[str, str]:
        generation = {k: self._config[k] for k in ("bos_token_id", "eos_token_id") if k in self._config}
        return {"tokenizer_config.json": json.dumps(self._tokenizer[1], indent=2, ensure_ascii=False),
                "generation_config.json": json.dumps(generation, indent=2)}

    def transformers_folder(self, what: str) -> Path:
        raise ConversionError(f"{self.path}: {what} runs the model in transformers, which needs its Hugging Face "
                              f"folder, not a GGUF")

    def read(self, name: str) -> np.ndarray:
        W = self._dequantize(name, None) if name in self._qtypes else super().read(name)
        order = self._row_order.get(name)
        return W if order is None else W[order]

    def read_rows(self, name: str, rows: np.ndarray) -> np.ndarray:
        order = self._row_order.get(name)
        stored = np.asarray(rows) if order is None else order[np.asarray(rows)]
        return self._dequantize(name, stored) if name in self._qtypes else super().read_rows(name, stored)

    def _dequantize(self, name: str, rows: np.ndarray | None) -> np.ndarray:
        """A quantized tensor, or some rows of it (a row is whole blocks), as float32."""
        from gguf import GGML_QUANT_SIZES

        e, qtype = self._entries[name], self._qtypes[name]
        if rows is None:
            buf = np.empty(e.end - e.start, np.uint8)
            self._read_into(name, e, buf)
            return self._dequantized(name, buf, qtype).reshape(e.shape)
        block, block_bytes = GGML_QUANT_SIZES[qtype]
        cols = e.shape[1]
        row_bytes = cols // block * block_bytes
        buf = np.empty((len(rows), row_bytes), np.uint8)
        with open(e.path, "rb", buffering=0) as f:
            for i, r in enumerate(rows):
                got = os.pread(f.fileno(), row_bytes, e.start + int(r) * row_bytes)
                if len(got) != row_bytes:
                    raise ConversionError(f"{e.path}: truncated while reading {name}")
                buf[i] = np.frombuffer(got, np.uint8)
        return self._dequantized(name, buf, qtype).reshape(len(rows), cols)

    def _dequantized(self, name: str, buf: np.ndarray, qtype) -> np.ndarray:
        from gguf.quants import dequantize

        try:
            return dequantize(buf, qtype).astype(np.float32, copy=False)
        except (NotImplementedError, ValueError) as e:
            raise ConversionError(f"{self.path}: tensor {name} of type {qtype.name} cannot be dequantized by gguf-py "
                                  f"({e or 'not implemented'})") from None


def open_gguf(path: Path) -> GgufCheckpoint:
    """A GGUF of a supported architecture, lazily; ConversionError naming the file otherwise."""
    from gguf import GGML_QUANT_SIZES, GGMLQuantizationType, GGUFReader
    from gguf.quants import dequantize

    try:
        reader = GGUFReader(path)
        fields = {k: f.contents() for k, f in reader.fields.items() if not k.startswith("GGUF.")}
    except (OSError, ValueError, KeyError, IndexError, TypeError, UnicodeDecodeError) as e:
        raise ConversionError(f"{path}: not a readable GGUF file: {e}") from e
    arch = fields.get("general.architecture")
    if C.KEY_FORMAT_VERSION in fields:
        raise ConversionError(f"{path}: an .sqf file, already quantized (`sqconvert dequant` turns it into a Hugging "
                              f"Face folder)")
    if arch not in ARCHITECTURES:
        raise ConversionError(f"{path}: GGUF architecture {arch!r} is not supported (supported: "
                              f"{', '.join(ARCHITECTURES)})")
    if fields.get(f"{arch}.expert_count"):
        raise ConversionError(f"{path}: a mixture-of-experts GGUF ({fields[f'{arch}.expert_count']} experts) is "
                              f"not supported")

    size = path.stat().st_size
    entries: dict[str, _Entry] = {}
    qtypes: dict[str, object] = {}
    stored: dict[str, object] = {}
    plain = {GGMLQuantizationType.F32: "F32", GGMLQuantizationType.F16: "F16", GGMLQuantizationType.BF16: "BF16"}
    for t in reader.tensors:
        if t.name == ROPE_FREQS:
            stored[t.name] = t
            continue
        hf = _hf_name(t.name)
        if hf is None:
            raise ConversionError(f"{path}: tensor {t.name} has no counterpart in a {ARCHITECTURES[arch]} checkpoint")
        shape = tuple(int(d) for d in reversed(t.shape.tolist()))  # GGUF lists the fastest dimension first
        qtype = GGMLQuantizationType(t.tensor_type)
        if qtype in plain:
            dtype = plain[qtype]
        elif qtype in GGML_QUANT_SIZES and qtype not in (GGMLQuantizationType.F64, GGMLQuantizationType.I8,
                                                         GGMLQuantizationType.I16, GGMLQuantizationType.I32,
                                                         GGMLQuantizationType.I64):
            dtype = qtype.name
            qtypes[hf] = qtype
        else:
            raise ConversionError(f"{path}: tensor {t.name} has type {qtype.name}, which is not supported")
        start = int(t.data_offset)
        if start + int(t.n_bytes) > size:
            raise ConversionError(f"{path}: tensor {t.name} runs past the end of the file")
        entries[hf] = _Entry(path, dtype, shape, start, start + int(t.n_bytes))
        stored[t.name] = t
    for qtype in set(qtypes.values()):  # one block of zeros: fail now, not halfway through the file
        try:
            dequantize(np.zeros(GGML_QUANT_SIZES[qtype][1], np.uint8), qtype)
        except (NotImplementedError, ValueError) as e:
            name = next(t.name for t in reader.tensors if t.tensor_type == qtype)
            raise ConversionError(f"{path}: tensor {name} has type {qtype.name}, which gguf-py cannot dequantize "
                                  f"({e})") from None
    if qtypes:
        kinds = sorted({q.name for q in qtypes.values()})
        log.warning("%s: %d tensors are quantized (%s); they are dequantized first, and quantizing them again adds "
                    "its error to theirs: convert from an F32, F16 or BF16 file where you can", path, len(qtypes),
                    ", ".join(kinds))

    config = _config(path, arch, fields, entries, stored)
    order = {}
    if arch == "llama":  # convert_hf_to_gguf.py's LlamaModel.permute, undone
        heads, kv_heads = config["num_attention_heads"], config["num_key_value_heads"]
        for name, e in entries.items():
            if ".self_attn.q_proj." in name or ".self_attn.k_proj." in name:
                order[name] = rope_row_order(e.shape[0], heads if ".q_proj." in name else kv_heads)

    from .gguf_tokenizer import tokenizer_from_gguf
    tokenizer = tokenizer_from_gguf(fields, path)
    for role in ("bos", "eos", "pad"):
        if f"{role}_token" in tokenizer[1]:
            config[f"{role}_token_id"] = int(fields[f"tokenizer.ggml.{'padding' if role == 'pad' else role}_token_id"])
    return GgufCheckpoint(path, [path], entries, None, path=path, _config=config, _tokenizer=tokenizer,
                          _row_order=order, _qtypes=qtypes)


def rope_row_order(rows: int, heads: int) -> np.ndarray:
    """Stored row of each Hugging Face row of a query or key projection. llama.cpp interleaves
    each head's two rotary halves: its row 2j + i of a head is row i * half + j of Hugging Face's."""
    if heads <= 0 or rows % (2 * heads):
        raise ConversionError(f"{rows} rows cannot be {heads} heads of rotary pairs")
    per_head = rows // heads
    half = per_head // 2
    r = np.arange(rows)
    head, within = np.divmod(r, per_head)
    i, j = np.divmod(within, half)
    return head * per_head + 2 * j + i


def _hf_name(name: str) -> str | None:
    if name in TOP_LEVEL_NAMES:
        return TOP_LEVEL_NAMES[name]
    m = LAYER_TENSOR.fullmatch(name)
    if m and m.group(2) in LAYER_NAMES:
        return f"model.layers.{m.group(1)}.{LAYER_NAMES[m.group(2)]}"
    return None


def _tidy(x: float) -> float:
    """A float32 key as the decimal it was written from (9.99999975e-06 -> 1e-05)."""
    return float(f"{x:.7g}")


def _config(path: Path, arch: str, fields: dict, entries: dict[str, _Entry], stored: dict) -> dict:
    """The config.json of the checkpoint the GGUF was made from, as far as the keys tell."""
    def key(name: str, default=None, required: bool = False):
        value = fields.get(f"{arch}.{name}", default)
        if required and value is None:
            raise ConversionError(f"{path}: the GGUF has no {arch}.{name}")
        return value

    embed = entries.get("model.embed_tokens.weight")
    if embed is None:
        raise ConversionError(f"{path}: the GGUF has no token_embd.weight")
    hidden, heads = int(key("embedding_length", required=True)), int(key("attention.head_count", required=True))
    kv_heads = key("attention.head_count_kv", heads)
    if isinstance(kv_heads, list):
        if len(set(kv_heads)) != 1:
            raise ConversionError(f"{path}: a different number of key/value heads per layer is not supported")
        kv_heads = kv_heads[0]
    head_dim = int(key("attention.key_length", hidden // heads))
    for other in ("attention.value_length", "rope.dimension_count"):
        if key(other) is not None and int(key(other)) != head_dim:
            raise ConversionError(f"{path}: {arch}.{other} = {key(other)} differs from the head size {head_dim} "
                                  f"(partial rotary embeddings are not supported)")
    cfg = {
        "architectures": [ARCHITECTURES[arch]],
        "model_type": arch,
        "hidden_act": "silu",
        "hidden_size": hidden,
        "intermediate_size": int(key("feed_forward_length", required=True)),
        "num_hidden_layers": int(key("block_count", required=True)),
        "num_attention_heads": heads,
        "num_key_value_heads": int(kv_heads),
        "head_dim": head_dim,
        "max_position_embeddings": int(key("context_length", 2048)),
        "rms_norm_eps": _tidy(float(key("attention.layer_norm_rms_epsilon", required=True))),
        "rope_theta": _tidy(float(key("rope.freq_base", 10000.0))),
        "tie_word_embeddings": "lm_head.weight" not in entries,
        "vocab_size": embed.shape[0],
    }
    if arch == "llama":
        cfg["attention_bias"] = "model.layers.0.self_attn.q_proj.bias" in entries
        cfg["mlp_bias"] = False
    window = key("attention.sliding_window")
    if window:
        if arch != "llama":
            raise ConversionError(f"{path}: a sliding window with the {arch} architecture is not supported")
        cfg["architectures"], cfg["model_type"], cfg["sliding_window"] = ["MistralForCausalLM"], "mistral", int(window)
    elif arch == "qwen2":
        cfg["use_sliding_window"] = False
    scaling = key("rope.scaling.type")
    if ROPE_FREQS in stored:
        cfg["rope_scaling"] = _llama3_rope_scaling(path, stored[ROPE_FREQS], cfg)
    elif scaling == "linear":
        cfg["rope_scaling"] = {"rope_type": "linear", "factor": _tidy(float(key("rope.scaling.factor", 1.0)))}
    elif scaling not in (None, "none"):
        raise ConversionError(f"{path}: rope scaling {scaling!r} is not supported (linear and Llama-3's are)")
    if fields.get("general.name"):
        cfg["_name_or_path"] = str(fields["general.name"])
    return cfg


def _llama3_rope_scaling(path: Path, tensor, cfg: dict) -> dict:
    """Llama-3.1's rope scaling from the per-frequency factors llama.cpp stores instead of its
    parameters. Each factor is 1, `factor`, or 1 / ((1 - s) / factor + s) where s is linear in the
    inverse wavelength x: s = slope * x + offset, with s = 0 at orig / low and 1 at orig / high
    (x = low / orig, high / orig). Two factors in between fix the line; with fewer, any line
    through them that keeps the others on their side gives the same factors. orig is then free:
    the one the scaled context implies is taken."""
    factors = np.asarray(tensor.data, dtype=np.float64).reshape(-1)
    dim = cfg["head_dim"]
    if factors.size != dim // 2 or not np.all(np.isfinite(factors)) or factors.min() < 1 - 1e-6 \
            or factors.max() <= 1 + 1e-6:
        raise ConversionError(f"{path}: rope_freqs.weight is not a set of Llama-3 rope factors")
    factor = float(factors.max())
    x = (1.0 / (cfg["rope_theta"] ** (np.arange(0, dim, 2) / dim))) / (2 * math.pi)
    unscaled, scaled = factors <= 1 + 1e-5, factors >= factor * (1 - 1e-5)
    middle = ~unscaled & ~scaled
    smooth = (1 / factors - 1 / factor) / (1 - 1 / factor)
    lo_end = x[scaled].max() if scaled.any() else 0.0       # the largest x still fully scaled
    hi_end = x[unscaled].min() if unscaled.any() else 2 * x.max()
    if middle.sum() >= 2:
        slope, offset = np.polyfit(x[middle], smooth[middle], 1)
    else:
        x_m, s_m = (float(x[middle][0]), float(smooth[middle][0])) if middle.any() else ((lo_end + hi_end) / 2, 0.5)
        k = 0.5 * min((x_m - lo_end) / s_m, (hi_end - x_m) / (1 - s_m))  # s: 0 at x_m - s_m k, 1 at x_m + (1 - s_m) k
        slope, offset = 1 / k, -(x_m - s_m * k) / k
    orig = round(cfg["max_position_embeddings"] / factor)
    low, high = -offset * orig / slope, (1 - offset) * orig / slope
    return {"rope_type": "llama3", "factor": _tidy(factor), "original_max_position_embeddings": int(orig),
            "low_freq_factor": _tidy(low), "high_freq_factor": _tidy(high)}
