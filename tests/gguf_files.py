"""GGUF files of Hugging Face folders for the input tests: made by llama.cpp's convert_hf_to_gguf.py
where it is importable, otherwise written here with gguf's GGUFWriter the way that script writes
them (llama.cpp's tensor names from gguf's own name map, the llama architecture's Q/K rows in
llama.cpp's rotary order, the tokenizer as `tokenizer.ggml.*` keys)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import gguf
import numpy as np
from safetensors.numpy import load_file

from sqllm.converter.tokenizer import _from_sentencepiece
from sqllm.formats import constants as C

LLAMACPP_SRC = Path(os.environ.get("SQLLM_LLAMACPP_SRC", Path.home() / ".cache" / "sqllm-peer" / "llama.cpp" / "src"))
CONVERT_SCRIPT = LLAMACPP_SRC / "convert_hf_to_gguf.py"

ARCHS = {"LlamaForCausalLM": gguf.MODEL_ARCH.LLAMA, "Qwen2ForCausalLM": gguf.MODEL_ARCH.QWEN2}
PRE = {"LlamaForCausalLM": "default", "Qwen2ForCausalLM": "qwen2"}


def llamacpp_converter_available() -> bool:
    """convert_hf_to_gguf.py is present and its imports (torch, sentencepiece, its gguf-py) load."""
    if not CONVERT_SCRIPT.is_file():
        return False
    probe = "import sys; sys.path.insert(0, sys.argv[1]); import torch, sentencepiece, conversion"
    return subprocess.run([sys.executable, "-c", probe, str(LLAMACPP_SRC)], capture_output=True).returncode == 0


def convert_with_llamacpp(folder: Path, out: Path, outtype: str = "f32") -> Path:
    subprocess.run([sys.executable, str(CONVERT_SCRIPT), str(folder), "--outtype", outtype, "--outfile", str(out)],
                   check=True, capture_output=True, text=True)
    return out


def llamacpp_permute(w: np.ndarray, heads: int) -> np.ndarray:
    """convert_hf_to_gguf.py's LlamaModel.permute."""
    return w.reshape(heads, 2, w.shape[0] // heads // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def write_gguf(folder: Path, out: Path, *, dtype=np.float32, quantize: dict | None = None,
               arch: str | None = None) -> Path:
    """`folder` (Llama or Qwen2, model.safetensors) as convert_hf_to_gguf.py would write it.
    `quantize` maps Hugging Face tensor names to a GGMLQuantizationType; `arch` overrides the
    GGUF architecture name."""
    cfg = json.loads((folder / "config.json").read_text())
    hf_arch = cfg["architectures"][0]
    arch_id = ARCHS[hf_arch]
    names = gguf.get_tensor_name_map(arch_id, cfg["num_hidden_layers"])
    w = gguf.GGUFWriter(out, arch or gguf.MODEL_ARCH_NAMES[arch_id])
    heads, kv_heads = cfg["num_attention_heads"], cfg.get("num_key_value_heads", cfg["num_attention_heads"])
    head_dim = cfg.get("head_dim") or cfg["hidden_size"] // heads
    w.add_name(folder.name)
    w.add_block_count(cfg["num_hidden_layers"])
    w.add_context_length(cfg["max_position_embeddings"])
    w.add_embedding_length(cfg["hidden_size"])
    w.add_feed_forward_length(cfg["intermediate_size"])
    w.add_head_count(heads)
    w.add_head_count_kv(kv_heads)
    w.add_rope_freq_base(cfg.get("rope_theta", cfg.get("rope_parameters", {}).get("rope_theta", 10000.0)))
    w.add_layer_norm_rms_eps(cfg["rms_norm_eps"])
    w.add_key_length(head_dim)
    w.add_value_length(head_dim)
    w.add_rope_dimension_count(head_dim)
    w.add_vocab_size(cfg["vocab_size"])
    _add_tokenizer(w, folder, cfg, PRE[hf_arch])

    for name, t in load_file(folder / "model.safetensors").items():
        t = t.astype(np.float32 if t.ndim == 1 or quantize and name in quantize else dtype, copy=False)
        if hf_arch == "LlamaForCausalLM" and ".q_proj." in name:
            t = llamacpp_permute(t, heads)
        elif hf_arch == "LlamaForCausalLM" and ".k_proj." in name:
            t = llamacpp_permute(t, kv_heads)
        gname = names.get_name(name, try_suffixes=(".weight", ".bias"))
        qtype = (quantize or {}).get(name)
        if qtype is not None:
            try:
                data = gguf.quants.quantize(t, qtype)
            except NotImplementedError:  # a type gguf-py cannot write: zero blocks of its size
                data = np.zeros(gguf.quant_shape_to_byte_shape(t.shape, qtype), np.uint8)
            w.add_tensor(gname, data, raw_dtype=qtype)
        else:
            w.add_tensor(gname, t)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return out


def _add_tokenizer(w: gguf.GGUFWriter, folder: Path, cfg: dict, pre: str) -> None:
    if (folder / "tokenizer.model").is_file():  # SentencePiece, as _set_vocab_sentencepiece writes it
        sp = _from_sentencepiece(folder / "tokenizer.model")
        w.add_tokenizer_model("llama")
        w.add_tokenizer_pre("default")
        w.add_token_list(sp[C.KEY_TOKENIZER_TOKENS])
        w.add_token_scores(sp[C.KEY_TOKENIZER_SCORES])
        w.add_token_types(sp[C.KEY_TOKENIZER_TOKEN_TYPE])
        w.add_bos_token_id(sp[C.KEY_TOKENIZER_BOS])
        w.add_eos_token_id(sp[C.KEY_TOKENIZER_EOS])
        w.add_unk_token_id(sp[C.KEY_TOKENIZER_UNK])
        w.add_add_bos_token(True)
        w.add_add_eos_token(False)
        return
    tj = json.loads((folder / "tokenizer.json").read_text(encoding="utf-8"))  # byte-level BPE (_set_vocab_gpt2)
    tokens = [f"[PAD{i}]" for i in range(cfg["vocab_size"])]
    types = [gguf.TokenType.UNUSED] * cfg["vocab_size"]
    for text, i in tj["model"]["vocab"].items():
        tokens[i], types[i] = text, gguf.TokenType.NORMAL
    for a in tj["added_tokens"]:
        tokens[a["id"]] = a["content"]
        types[a["id"]] = gguf.TokenType.CONTROL if a["special"] else gguf.TokenType.USER_DEFINED
    merges = [m if isinstance(m, str) else " ".join(m) for m in tj["model"]["merges"]]
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre(pre)
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges(merges)
    w.add_bos_token_id(cfg["bos_token_id"])
    w.add_eos_token_id(cfg["eos_token_id"] if isinstance(cfg["eos_token_id"], int) else cfg["eos_token_id"][0])
    generation = json.loads((folder / "generation_config.json").read_text()) \
        if (folder / "generation_config.json").is_file() else {}
    pad = cfg.get("pad_token_id", generation.get("pad_token_id"))
    if isinstance(pad, int):
        w.add_pad_token_id(pad)
    w.add_add_bos_token(False)
