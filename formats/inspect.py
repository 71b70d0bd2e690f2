"""`sqconvert inspect`: what a .sqf holds and where its bytes go."""

from __future__ import annotations

import json
import os

import numpy as np

from . import constants as C
from sqllm.errors import FormatError
from .reader import SqfReader


def _tensor_bytes(r: SqfReader, name: str) -> int:
    return r.tensor_info(name)["n_bytes"]


def _json(path, md: dict, key: str):
    if key not in md:
        return None
    try:
        return json.loads(md[key])
    except json.JSONDecodeError as e:
        raise FormatError(f"{os.fspath(path)}: key {key} is not valid JSON: {e}") from e


def inspect_file(path: str | os.PathLike) -> dict:
    r = SqfReader(path)
    md = r.metadata
    rows = []
    totals = {"dense_codes": 0, "luts": 0, "sparse": 0, "unquantized": 0}
    linear_weights = all_weights = layer_weights = layer_bytes = 0
    for name in r.weight_names():
        if name in r.linears:
            L = r.linears[name]
            codes = _tensor_bytes(r, name + C.SUFFIX_CODES)
            lut = _tensor_bytes(r, name + C.SUFFIX_LUT)
            if r.tensor(name + C.SUFFIX_LUT).dtype == np.uint8:
                lut += _tensor_bytes(r, name + C.SUFFIX_LUT_SCALE)
            sparse = sum(_tensor_bytes(r, name + s) for s in (C.SUFFIX_ROWPTR, C.SUFFIX_COLS, C.SUFFIX_VALS)) if L.nnz else 0
            n = L.rows * L.cols
            rows.append({"name": name, "kind": "quantized", "shape": [L.rows, L.cols], "bits": L.bits,
                         "group_size": L.group_size, "nnz": L.nnz, "codes_bytes": codes, "lut_bytes": lut,
                         "sparse_bytes": sparse, "bytes": codes + lut + sparse,
                         "bits_per_weight": round(8 * (codes + lut + sparse) / n, 4)})
            totals["dense_codes"] += codes
            totals["luts"] += lut
            totals["sparse"] += sparse
            linear_weights += n
            all_weights += n
            if name.startswith(C.LAYER_PREFIX):
                layer_weights += n
                layer_bytes += codes + lut + sparse
        else:
            info = r.tensor_info(name)
            n = int(np.prod(info["shape"]))
            rows.append({"name": name, "kind": "unquantized", "shape": list(info["shape"]),
                         "type": C.TYPE_NAMES[info["type"]], "bytes": info["n_bytes"],
                         "bits_per_weight": round(8 * info["n_bytes"] / n, 4)})
            totals["unquantized"] += info["n_bytes"]
            all_weights += n
    kv = None
    if C.KEY_KV_BITS in md:
        kv_names = [n for n in r.tensor_names if n.startswith(C.KV_TENSOR_PREFIX)]
        totals["kv_calibration"] = sum(_tensor_bytes(r, n) for n in kv_names)
        ch, nl = r.config["num_kv_heads"] * r.config["head_dim"], r.config["num_layers"]
        kv = {"bits": md[C.KEY_KV_BITS], "outliers_pct": round(md[C.KEY_KV_OUTLIERS], 4), "sink": md[C.KEY_KV_SINK],
              "calibration": md.get(C.KEY_KV_CALIBRATION),
              "bytes_per_token": {f"nuq{b}": round(C.kv_bytes_per_token(ch, nl, b, md[C.KEY_KV_OUTLIERS]), 1) for b in (2, 3, 4)}
              | {"fp16": C.kv_bytes_per_token(ch, nl, 16, 0.0)}}
    totals["metadata_and_padding"] = r.file_size - sum(totals.values())
    totals["file"] = r.file_size
    quant_bytes = totals["dense_codes"] + totals["luts"] + totals["sparse"]
    tokens = md.get(C.KEY_TOKENIZER_TOKENS, [])
    return {
        "file": os.path.basename(os.fspath(path)),
        "format_version": md[C.KEY_FORMAT_VERSION],
        "tool_version": md.get(C.KEY_TOOL_VERSION),
        "architecture": r.config["family"],
        "hf_architecture": md.get(C.KEY_HF_ARCHITECTURE),
        "config": r.config,
        "tokenizer": {
            "model": md.get(C.KEY_TOKENIZER_MODEL),
            "pre": md.get(C.KEY_TOKENIZER_PRE),
            "tokens": len(tokens),
            "merges": len(md.get(C.KEY_TOKENIZER_MERGES, [])),
            "bos_token_id": md.get(C.KEY_TOKENIZER_BOS),
            "eos_token_id": md.get(C.KEY_TOKENIZER_EOS),
            "chat_template": C.KEY_CHAT_TEMPLATE in md,
            "pipeline": _pipeline_summary(md.get(C.KEY_TOKENIZER_PIPELINE)),
        },
        "recipe": {
            "method": md.get(C.KEY_RECIPE_METHOD),
            "bits": md.get(C.KEY_RECIPE_BITS),
            "fisher": md.get(C.KEY_RECIPE_FISHER),
            "parameters": _json(path, md, C.KEY_RECIPE_JSON) or None,
        },
        "source": {"files": md.get(C.KEY_SOURCE_FILES), "sha256": md.get(C.KEY_SOURCE_SHA256)},
        "kv_cache": kv,
        "tensors": rows,
        "totals": totals,
        "weights": {"quantized_linears": linear_weights, "layer_linears": layer_weights, "all": all_weights},
        "bits_per_weight": {
            "quantized_linears": round(8 * quant_bytes / linear_weights, 4) if linear_weights else None,
            "layer_linears": round(8 * layer_bytes / layer_weights, 4) if layer_weights else None,
            "whole_file": round(8 * r.file_size / all_weights, 4) if all_weights else None,
        },
    }


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.2f} {unit}"
        n /= 1024
    return str(n)


def _pipeline_summary(pipeline: str | None) -> str | None:
    """The tokenizer pipeline's components in order: "NFC | Split+ByteLevel | BPE | ByteLevel"."""
    if pipeline is None:
        return None
    spec = json.loads(pipeline)

    def names(component) -> str:
        if not isinstance(component, dict):
            return "-"
        parts = component.get("normalizers") or component.get("pretokenizers") or component.get("decoders")
        return "+".join(names(c) for c in parts) if component.get("type") == "Sequence" else str(component.get("type"))

    model = spec.get("model") or {}
    options = [k for k in ("byte_fallback", "ignore_merges") if model.get(k)]
    bpe = f"BPE({', '.join(options)})" if options else "BPE"
    return " | ".join([names(spec.get("normalizer")), names(spec.get("pre_tokenizer")), bpe, names(spec.get("decoder"))])


def format_report(info: dict) -> str:
    c, t, r = info["config"], info["tokenizer"], info["recipe"]
    lines = [
        f"{info['file']}: sqf v{info['format_version']} (written by sqllm {info['tool_version']})",
        f"model      {info['hf_architecture']} ({c['family']}): {c['num_layers']} layers, hidden {c['hidden_size']}, "
        f"ffn {c['intermediate_size']}, heads {c['num_heads']}/{c['num_kv_heads']} x {c['head_dim']}, vocab {c['vocab_size']}, "
        f"context {c['context_length']}, rope theta {c['rope_theta']:g} ({c['rope_scaling_type']}), "
        f"{'tied' if c['tie_embeddings'] else 'untied'} embeddings{', qkv bias' if c['attention_bias'] else ''}",
        f"tokenizer  {t['model']}{'/' + t['pre'] if t['pre'] else ''}: {t['tokens']} tokens, {t['merges']} merges, "
        f"bos {t['bos_token_id']}, eos {t['eos_token_id']}{', chat template' if t['chat_template'] else ''}",
        *([f"           pipeline {t['pipeline']}"] if t["pipeline"] else []),
        f"recipe     {r['method']} {r['bits']}-bit, fisher: {r['fisher']}",
        f"           {json.dumps(r['parameters'], sort_keys=True) if r['parameters'] else ''}",
    ]
    if info["kv_cache"]:
        kv = info["kv_cache"]
        per = ", ".join(f"{k} {v:g}" for k, v in kv["bytes_per_token"].items())
        lines += [f"kv cache   KVQuant {kv['bits']}-bit by default, {kv['outliers_pct']:g}% outliers, sink {kv['sink']}; "
                  f"calibration: {kv['calibration']}",
                  f"           bytes/token: {per}"]
    lines += [
        "",
        f"{'tensor':<48} {'shape':>14} {'kind':>9} {'bits':>4} {'nnz':>8} {'bytes':>12} {'bpw':>7}",
    ]
    for row in info["tensors"]:
        kind = f"q{row['bits']}" if row["kind"] == "quantized" else row["type"]
        lines.append(f"{row['name']:<48} {'x'.join(map(str, row['shape'])):>14} {kind:>9} "
                     f"{row.get('bits', ''):>4} {row.get('nnz', ''):>8} {row['bytes']:>12} {row['bits_per_weight']:>7.3f}")
    tot, bpw = info["totals"], info["bits_per_weight"]
    lines += [
        "",
        f"dense codes {_size(tot['dense_codes'])}, LUTs {_size(tot['luts'])}, sparse {_size(tot['sparse'])}, "
        f"unquantized {_size(tot['unquantized'])}, "
        + (f"KV calibration {_size(tot['kv_calibration'])}, " if "kv_calibration" in tot else "")
        + f"metadata+padding {_size(tot['metadata_and_padding'])}; file {_size(tot['file'])}",
        f"bits per weight: {bpw['quantized_linears']} over the quantized matrices "
        f"({info['weights']['quantized_linears']} weights), {bpw['layer_linears']} over the decoder layers' linears "
        f"({info['weights']['layer_linears']} weights), {bpw['whole_file']} over the whole file "
        f"({info['weights']['all']} weights)",
    ]
    return "\n".join(lines)
