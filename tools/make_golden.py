#!/usr/bin/env python3
"""Write the test data files of tests/data:

- golden.sqf: a tiny, deterministic .sqf with every tensor kind the format has (2/3/4/8-bit
  codes, per-row and per-group LUTs, CSR parts, fp16 and fp32 tensors), and its expected
  `sqconvert inspect --json` next to it. Tests regenerate it and compare byte for byte.
- stories260K-q4.sqf: the bundled model converted (4-bit k-means + 0.40% outliers), which the
  C example programs run under ctest.

    python tools/make_golden.py [OUT_DIR]   (default tests/data)
"""

import json
import sys
from pathlib import Path

import numpy as np

from sqllm.formats import SqfWriter, pack_codes
from sqllm.formats.packing import encode_lut8
from sqllm.formats import constants as C

CONFIG = {"vocab_size": 16, "hidden_size": 32, "intermediate_size": 40, "num_layers": 1, "num_heads": 2,
          "num_kv_heads": 1, "head_dim": 16, "tie_embeddings": True, "attention_bias": True}
# name -> (bits, group_size or None for per-row, sparse fraction)
LINEARS = {
    "model.layers.0.self_attn.q_proj.weight": (3, None, 0.05),
    "model.layers.0.self_attn.k_proj.weight": (8, None, 0.02),
    "model.layers.0.self_attn.v_proj.weight": (4, 32, 0.0),
    "model.layers.0.self_attn.o_proj.weight": (2, None, 0.0),
    "model.layers.0.mlp.up_proj.weight": (3, None, 0.0),
    "model.layers.0.mlp.down_proj.weight": (4, None, 0.1),
}
# Linears whose LUTs are 8-bit tables; the others keep fp16 tables.
LUT8 = {"model.layers.0.self_attn.v_proj.weight", "model.layers.0.mlp.up_proj.weight",
        "model.layers.0.mlp.down_proj.weight"}


def write_golden(path: Path) -> None:
    rng = np.random.default_rng(1234)
    shapes = C.model_tensor_shapes(CONFIG)
    with SqfWriter(path, overwrite=True) as w:
        w.add(C.KEY_NAME, "golden")
        for key, value, vt in [
            (C.KEY_FAMILY, "qwen2", None), (C.KEY_HF_ARCHITECTURE, "Qwen2ForCausalLM", None),
            (C.KEY_VOCAB_SIZE, 16, C.VT_UINT32), (C.KEY_HIDDEN_SIZE, 32, C.VT_UINT32),
            (C.KEY_INTERMEDIATE_SIZE, 40, C.VT_UINT32), (C.KEY_NUM_LAYERS, 1, C.VT_UINT32),
            (C.KEY_NUM_HEADS, 2, C.VT_UINT32), (C.KEY_NUM_KV_HEADS, 1, C.VT_UINT32),
            (C.KEY_HEAD_DIM, 16, C.VT_UINT32), (C.KEY_CONTEXT_LENGTH, 64, C.VT_UINT32),
            (C.KEY_NORM_EPS, 1e-6, C.VT_FLOAT32), (C.KEY_ROPE_THETA, 10000.0, C.VT_FLOAT32),
            (C.KEY_ROPE_SCALING_TYPE, "none", None), (C.KEY_ROPE_SCALING_FACTOR, 1.0, C.VT_FLOAT32),
            (C.KEY_ROPE_SCALING_ORIG_CTX, 0, C.VT_UINT32), (C.KEY_ROPE_SCALING_LOW_FREQ, 0.0, C.VT_FLOAT32),
            (C.KEY_ROPE_SCALING_HIGH_FREQ, 0.0, C.VT_FLOAT32), (C.KEY_TIE_EMBEDDINGS, True, None),
            (C.KEY_ATTENTION_BIAS, True, None), (C.KEY_SLIDING_WINDOW, 0, C.VT_UINT32),
            (C.KEY_TOKENIZER_MODEL, "llama", None),
            (C.KEY_RECIPE_METHOD, "squeezellm", None), (C.KEY_RECIPE_BITS, 3, C.VT_UINT32),
            (C.KEY_RECIPE_FISHER, "none", None), (C.KEY_RECIPE_JSON, json.dumps({"golden": True}), None),
        ]:
            w.add(key, value, vt)
        w.add(C.KEY_TOKENIZER_TOKENS, ["<unk>", "<s>", "</s>", "▁", "a", "b", "c", "d", "e", "ab", "cd", "▁a",
                                       "▁ab", "de", "bc", "ca"], item_type=C.VT_STRING)
        w.add(C.KEY_TOKENIZER_TOKEN_TYPE, [2, 3, 3] + [1] * 13, item_type=C.VT_INT32)
        w.add(C.KEY_TOKENIZER_MERGES, ["a b", "c d", "▁ a", "▁a b", "d e", "b c", "c a"], item_type=C.VT_STRING)
        w.add(C.KEY_TOKENIZER_UNK, 0, C.VT_UINT32)
        w.add(C.KEY_TOKENIZER_BOS, 1, C.VT_UINT32)
        w.add(C.KEY_TOKENIZER_EOS, 2, C.VT_UINT32)
        w.add(C.KEY_TOKENIZER_ADD_BOS, True)
        w.add(C.KEY_TOKENIZER_ADD_SPACE_PREFIX, True)
        for name, shape in shapes.items():
            if name in LINEARS:
                bits, gs, frac = LINEARS[name]
                rows, cols = shape
                gs = gs or cols
                groups = C.n_groups(cols, gs)
                codes = rng.integers(0, 1 << bits, size=(rows, cols), dtype=np.uint8)
                lut = np.sort(rng.standard_normal((rows, groups, 1 << bits)), axis=-1).astype(np.float16)
                if name in LUT8:  # stored as 8-bit levels and a scale (SPEC §4)
                    lut = encode_lut8(lut.astype(np.float32))
                csr = None
                if frac:
                    mask = rng.random((rows, cols)) < frac
                    mask[1] = False  # an empty sparse row
                    rowptr = np.concatenate([[0], np.cumsum(mask.sum(axis=1))]).astype(np.int32)
                    cols_idx = np.nonzero(mask)[1].astype(np.int32)
                    vals = (rng.standard_normal(len(cols_idx)) * 4).astype(np.float16)
                    csr = (rowptr, cols_idx, vals)
                w.add_linear(name, pack_codes(codes, bits), lut, bits=bits, group_size=gs, cols=cols, csr=csr)
            elif len(shape) == 1:
                w.add_tensor(name, rng.standard_normal(shape).astype(np.float32))
            else:
                w.add_tensor(name, rng.standard_normal(shape).astype(np.float16))


def main() -> None:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent.parent / "tests" / "data"
    write_golden(out / "golden.sqf")
    from sqllm.formats.inspect import inspect_file
    (out / "golden.inspect.json").write_text(json.dumps(inspect_file(out / "golden.sqf"), indent=2) + "\n")
    from sqllm.converter.convert import convert
    from sqllm.converter.quantize import Recipe
    root = Path(__file__).resolve().parent.parent
    convert(root / "models" / "stories260K", out / "stories260K-q4.sqf", Recipe(method="kmeans", bits=4),
            overwrite=True, progress=False)
    print(out / "golden.sqf", out / "stories260K-q4.sqf")


if __name__ == "__main__":
    main()
