#!/usr/bin/env python3
"""Write an .sqf with LLaMA-7B shapes and random codes, for runtime speed benchmarks (never committed).

    python tools/make_synthetic_sqf.py OUT.sqf --bits 3 [--sparse 0.45] [--shape 7b|tiny]
    python tools/make_synthetic_sqf.py OUT.sqf --fp16          # the same model with fp16 linears

The codes are uniform random and the LUTs sorted Gaussians, so the numbers it produces are
meaningless but the bytes the kernels stream are exactly those of a real model of that shape.
Tensors are generated and written one at a time.
"""

import argparse
from pathlib import Path

import numpy as np

from common import ROOT
from make_synthetic_model import SHAPES
from sqllm.converter.config import KEY_TYPES, ARRAY_ITEM_TYPES, is_layer_linear, model_metadata
from sqllm.converter.tokenizer import tokenizer_metadata
from sqllm.formats import SqfWriter, constants as C, pack_codes


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", type=Path)
    ap.add_argument("--shape", choices=sorted(SHAPES), default="7b")
    ap.add_argument("--bits", type=int, default=3, choices=C.ALLOWED_BITS)
    ap.add_argument("--sparse", type=float, default=0.45, help="percent of each linear in the CSR part")
    ap.add_argument("--fp16", action="store_true", help="store the linears unquantized in fp16")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    cfg = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_act": "silu", "rms_norm_eps": 1e-5,
           "rope_theta": 10000.0, "tie_word_embeddings": False, **SHAPES[args.shape]}
    meta = model_metadata(cfg, ROOT / "models" / "stories260K")
    shapes = C.model_tensor_shapes(meta["shapes_cfg"])
    tok = tokenizer_metadata(ROOT / "models" / "stories260K", vocab_size=cfg["vocab_size"])
    rng = np.random.default_rng(args.seed)
    with SqfWriter(args.out, overwrite=True) as w:
        for key, value in {**meta["keys"], **tok}.items():
            w.add(key, value, KEY_TYPES.get(key), ARRAY_ITEM_TYPES.get(key))
        w.add(C.KEY_RECIPE_METHOD, "none" if args.fp16 else "squeezellm")
        w.add(C.KEY_RECIPE_BITS, 0 if args.fp16 else args.bits, C.VT_UINT32)
        w.add(C.KEY_RECIPE_JSON, '{"synthetic": true}')
        for name, shape in shapes.items():
            if len(shape) == 1:
                w.add_tensor(name, np.ones(shape, np.float32))
            elif not is_layer_linear(name) or args.fp16:
                w.add_tensor(name, (rng.standard_normal(shape, dtype=np.float32) * 0.02).astype(np.float16))
            else:
                rows, cols = shape
                codes = rng.integers(0, 1 << args.bits, size=shape, dtype=np.uint8)
                lut = np.sort(rng.standard_normal((rows, 1, 1 << args.bits), dtype=np.float32) * 0.02, axis=-1)
                csr = None
                nnz = int(round(args.sparse / 100 * rows * cols))
                if nnz:
                    flat = np.sort(rng.choice(rows * cols, nnz, replace=False))
                    r, c = np.divmod(flat, cols)
                    rowptr = np.zeros(rows + 1, np.int32)
                    np.cumsum(np.bincount(r, minlength=rows), out=rowptr[1:])
                    csr = (rowptr, c.astype(np.int32), (rng.standard_normal(nnz) * 0.1).astype(np.float16))
                w.add_linear(name, pack_codes(codes, args.bits), lut.astype(np.float16), bits=args.bits,
                             group_size=cols, cols=cols, csr=csr)
    print(args.out)


if __name__ == "__main__":
    main()
