#!/usr/bin/env python3
"""Write a synthetic Llama checkpoint with real LLaMA shapes for benchmarks (never committed).

    python tools/make_synthetic_model.py OUT_DIR [--shape 7b|tiny] [--layers N] [--dtype bfloat16|float16]
                                         [--fisher [--no-hessian]] [--seed N]

The weights are random but heavy-tailed like trained ones (Gaussian bulk, 0.5% of entries
scaled up 8x), the Fisher file (with --fisher) random positive with a heavy tail, for every
matrix the converter quantizes, plus (unless --no-hessian) a random positive definite input
second-moment matrix per distinct linear input, as `sqconvert fisher` writes them. Tensors are
generated and written one at a time, so memory stays at one tensor whatever the shape. The
tokenizer is the bundled model's, padded to the vocabulary by the converter.
"""

import argparse
import json
import shutil
import struct
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
SHAPES = {
    "7b": dict(hidden_size=4096, intermediate_size=11008, num_hidden_layers=32, num_attention_heads=32,
               num_key_value_heads=32, vocab_size=32000, max_position_embeddings=2048),
    "tiny": dict(hidden_size=256, intermediate_size=688, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=4, vocab_size=512, max_position_embeddings=512),
}


def tensor_shapes(c: dict) -> dict[str, tuple[int, ...]]:
    H, I, V = c["hidden_size"], c["intermediate_size"], c["vocab_size"]
    shapes = {"model.embed_tokens.weight": (V, H)}
    for L in range(c["num_hidden_layers"]):
        p = f"model.layers.{L}."
        shapes.update({
            p + "input_layernorm.weight": (H,), p + "post_attention_layernorm.weight": (H,),
            p + "self_attn.q_proj.weight": (H, H), p + "self_attn.k_proj.weight": (H, H),
            p + "self_attn.v_proj.weight": (H, H), p + "self_attn.o_proj.weight": (H, H),
            p + "mlp.gate_proj.weight": (I, H), p + "mlp.up_proj.weight": (I, H), p + "mlp.down_proj.weight": (H, I),
        })
    shapes["model.norm.weight"] = (H,)
    shapes["lm_head.weight"] = (V, H)
    return shapes


def to_bits(x: np.ndarray, dtype: str) -> np.ndarray:
    if dtype == "float16":
        return x.astype(np.float16).view(np.uint16)
    return (x.view(np.uint32) >> 16).astype(np.uint16)  # bfloat16 by truncation


def write_streaming(path: Path, shapes: dict, dtype: str, make) -> None:
    st = {"bfloat16": "BF16", "float16": "F16"}[dtype]
    header, offset = {}, 0
    for name, shape in shapes.items():
        n = int(np.prod(shape)) * 2
        header[name] = {"dtype": st, "shape": list(shape), "data_offsets": [offset, offset + n]}
        offset += n
    blob = json.dumps(header).encode()
    blob += b" " * (-len(blob) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(blob)) + blob)
        for name, shape in shapes.items():
            f.write(to_bits(make(name, shape), dtype).tobytes())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", type=Path)
    ap.add_argument("--shape", choices=sorted(SHAPES), default="7b")
    ap.add_argument("--layers", type=int, help="decoder layers (default: the shape's); fewer for quick profiles")
    ap.add_argument("--dtype", choices=["bfloat16", "float16"], default="bfloat16")
    ap.add_argument("--fisher", action="store_true", help="also write fisher.safetensors beside the model")
    ap.add_argument("--no-hessian", action="store_true", help="with --fisher: leave out the input statistics")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    cfg = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_act": "silu", "rms_norm_eps": 1e-5,
           "rope_theta": 10000.0, "tie_word_embeddings": False, "bos_token_id": 1, "eos_token_id": 2,
           "torch_dtype": args.dtype, **SHAPES[args.shape]}
    if args.layers is not None:
        if args.layers < 1:
            raise SystemExit("--layers must be >= 1")
        cfg["num_hidden_layers"] = args.layers
    (args.out / "config.json").write_text(json.dumps(cfg, indent=2))
    for f in ("tokenizer.json", "tokenizer_config.json", "tokenizer.model"):
        shutil.copy(ROOT / "models" / "stories260K" / f, args.out / f)
    shapes = tensor_shapes(cfg)
    rng = np.random.default_rng(args.seed)

    def weight(name, shape):
        if len(shape) == 1:
            return np.ones(shape, np.float32)
        w = rng.standard_normal(shape, dtype=np.float32) * np.float32(0.02)
        flat = w.reshape(-1)
        idx = rng.integers(0, flat.size, flat.size // 200)
        flat[idx] *= np.float32(8.0)
        return w

    write_streaming(args.out / "model.safetensors", shapes, args.dtype, weight)
    if args.fisher:
        from sqllm.converter.gptq import hessian_name

        linear = {n: s for n, s in shapes.items() if len(s) == 2}
        if not args.no_hessian:
            linear |= {hessian_name(n): (s[1], s[1]) for n, s in shapes.items()
                       if len(s) == 2 and n != "model.embed_tokens.weight"}

        def fisher(name, shape):
            if name.endswith(".hessian"):  # low rank plus a diagonal, like correlated activations
                B = rng.standard_normal((shape[0], 256), dtype=np.float32)
                H = B @ B.T / np.float32(256)
                H[np.diag_indices_from(H)] += rng.random(shape[0], dtype=np.float32)
                return H
            g = rng.standard_normal(shape, dtype=np.float32)
            return g * g * np.float32(1e-6)

        write_streaming(args.out / "fisher.safetensors", linear, args.dtype, fisher)
    print(args.out)


if __name__ == "__main__":
    main()
