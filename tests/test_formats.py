"""The .sqf format: Python writer -> C++ loader round trips, the golden file, gguf-py, and corrupt files."""

import json
import re
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from sqllm.formats import SqfWriter, pack_codes, unpack_codes
from sqllm.formats import constants as C
from sqllm.errors import (ChecksumError, FileError, FormatError, OutputExistsError, SqllmError,
                                  UnsupportedError)
from sqllm.formats.inspect import inspect_file
from sqllm.formats.packing import decode_lut8, dequantize_dense, encode_lut8
from sqllm.formats.reader import SqfReader
from sqllm.runtime import Model

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = ROOT / "tests" / "data" / "golden.sqf"
sys.path.insert(0, str(ROOT / "tools"))
import make_golden  # noqa: E402


# -- a minimal GGUF walker that records where every field lives, to corrupt it precisely -------
def walk(buf: bytes) -> dict:
    pos = 24
    n_tensors, n_kv = struct.unpack_from("<QQ", buf, 8)
    sizes = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
    kvs, tensors = {}, {}

    def string(p):
        (n,) = struct.unpack_from("<Q", buf, p)
        return buf[p + 8:p + 8 + n].decode(), p + 8 + n

    for _ in range(n_kv):
        start = pos
        key, pos = string(pos)
        (vt,) = struct.unpack_from("<I", buf, pos)
        field = {"start": start, "type_at": pos, "value_at": pos + 4}
        pos += 4
        if vt == 8:
            _, pos = string(pos)
        elif vt == 9:
            it, count = struct.unpack_from("<IQ", buf, pos)
            field["count_at"] = pos + 4
            pos += 12
            if it == 8:
                field["first_item_at"] = pos
                for _ in range(count):
                    _, pos = string(pos)
            else:
                field["first_item_at"] = pos
                pos += count * sizes[it]
        else:
            pos += sizes[vt]
        kvs[key] = field
    for _ in range(n_tensors):
        start = pos
        name, pos = string(pos)
        (nd,) = struct.unpack_from("<I", buf, pos)
        tensors[name] = {"start": start, "ndims_at": pos, "ne_at": pos + 4, "type_at": pos + 4 + 8 * nd,
                         "offset_at": pos + 8 + 8 * nd}
        pos += 4 + 8 * nd + 4 + 8
    data_start = (pos + 63) // 64 * 64
    for name, t in tensors.items():
        t["data_at"] = data_start + struct.unpack_from("<Q", buf, t["offset_at"])[0]
    return {"kv": kvs, "tensors": tensors, "header_end": pos, "data_start": data_start}


def load_bytes(tmp_path: Path, data: bytes, verify=False) -> SqfReader:
    p = tmp_path / "x.sqf"
    p.write_bytes(data)
    return SqfReader(p, verify_checksums=verify)


# -- golden file ------------------------------------------------------------------------------
def test_golden_file_is_reproduced_byte_for_byte(tmp_path):
    make_golden.write_golden(tmp_path / "g.sqf")
    assert (tmp_path / "g.sqf").read_bytes() == GOLDEN.read_bytes()


def test_golden_inspect_json_matches_cli():
    expected = json.loads((GOLDEN.parent / "golden.inspect.json").read_text())
    assert inspect_file(GOLDEN) == expected
    out = subprocess.run([sys.executable, "-m", "sqllm.converter", "inspect", str(GOLDEN), "--json"],
                         check=True, capture_output=True, text=True).stdout
    assert json.loads(out) == expected
    assert expected["bits_per_weight"]["quantized_linears"] > 0
    sizes = expected["totals"]
    assert sizes["dense_codes"] + sizes["luts"] + sizes["sparse"] + sizes["unquantized"] + sizes["metadata_and_padding"] == sizes["file"]


def test_golden_checksums_verify():
    SqfReader(GOLDEN, verify_checksums=True)


# -- the two mirrors of the spec ------------------------------------------------------------------
def parse_format_h() -> dict:
    """The constants of cpp/src/format.h as Python values: strings, integers, the magic as bytes,
    arrays as tuples (of literals or of constants named before), enumerators as integers."""
    text = (ROOT / "cpp" / "src" / "format.h").read_text()
    values: dict = {}

    def value(expr: str):
        expr = expr.strip()
        if expr.startswith('"'):
            return expr.strip('"')
        if expr[0].isdigit():
            return int(expr.rstrip("u"), 0)
        return values[expr]

    for body in re.findall(r"enum \w+ : uint32_t \{([^}]*)\}", text):
        for name, number in re.findall(r"([A-Z][A-Z0-9_]*) = (\d+)", body):
            values[name] = int(number)
    magic = re.search(r"constexpr char GGUF_MAGIC\[4\] = \{([^}]*)\};", text).group(1)
    values["GGUF_MAGIC"] = "".join(c.strip().strip("'") for c in magic.split(",")).encode()
    for kind, name, rest in re.findall(r"inline constexpr (const char \*|uint32_t )([A-Z][A-Z0-9_]*)(\[\] = \{[^}]*\}| = [^;]+);",
                                       text):
        if rest.startswith("[]"):
            values[name] = tuple(value(item) for item in rest[rest.index("{") + 1:-1].split(","))
        else:
            values[name] = value(rest[3:])
    return values


def test_format_h_and_constants_py_agree():
    """Every constant of format.h is in constants.py with the same value, and the other way round."""
    cpp = parse_format_h()
    py = {k: v for k, v in vars(C).items() if k.isupper() and isinstance(v, (str, int, bytes, tuple))}
    assert sorted(set(py) - set(cpp)) == [] and sorted(set(cpp) - set(py)) == []
    assert {k: v for k, v in cpp.items() if py[k] != v} == {}
    assert len(cpp) > 100 and cpp["FAMILIES"] == ("llama", "mistral", "qwen2") and cpp["VT_FLOAT64"] == 12


def test_one_version(tmp_path):
    """CMakeLists.txt's project version is sqllm.__version__, sqllm_version() and what the writer records."""
    import sqllm
    from sqllm import _sqllm

    cmake = re.search(r"project\(sqllm VERSION ([0-9.]+)", (ROOT / "CMakeLists.txt").read_text()).group(1)
    assert sqllm.__version__ == _sqllm.version() == cmake
    make_golden.write_golden(tmp_path / "g.sqf")
    assert SqfReader(tmp_path / "g.sqf").metadata[C.KEY_TOOL_VERSION] == cmake


# -- round trip -------------------------------------------------------------------------------
ALL_SCALARS = [
    ("t.u8", 200, C.VT_UINT8), ("t.i8", -100, C.VT_INT8), ("t.u16", 60000, C.VT_UINT16),
    ("t.i16", -30000, C.VT_INT16), ("t.u32", 4_000_000_000, C.VT_UINT32), ("t.i32", -2_000_000_000, C.VT_INT32),
    ("t.f32", 0.5, C.VT_FLOAT32), ("t.bool", True, C.VT_BOOL), ("t.str", "héllo ✓", C.VT_STRING),
    ("t.u64", 2**63 + 5, C.VT_UINT64), ("t.i64", -(2**40), C.VT_INT64), ("t.f64", 1e300, C.VT_FLOAT64),
]
ALL_ARRAYS = [
    ("a.u8", [0, 255], C.VT_UINT8), ("a.i8", [-1, 1], C.VT_INT8), ("a.u16", [1, 65535], C.VT_UINT16),
    ("a.i16", [-5, 5], C.VT_INT16), ("a.u32", [7, 8, 9], C.VT_UINT32), ("a.i32", [-7, 8], C.VT_INT32),
    ("a.f32", [0.25, -1.5], C.VT_FLOAT32), ("a.bool", [True, False], C.VT_BOOL),
    ("a.str", ["x", "", "▁y"], C.VT_STRING), ("a.u64", [2**64 - 1], C.VT_UINT64),
    ("a.i64", [-(2**63)], C.VT_INT64), ("a.f64", [1e-300], C.VT_FLOAT64), ("a.empty", [], C.VT_UINT32),
]


def test_round_trip_every_kind(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "rt.sqf"
    written = {}
    with SqfWriter(path) as w:
        src = SqfReader(GOLDEN)  # a valid model, copied; every other kind is added on top
        for key, value in src.metadata.items():
            if key in (C.KEY_TENSOR_CRC32, C.KEY_LINEAR_NAMES, C.KEY_LINEAR_BITS, C.KEY_LINEAR_GROUP_SIZE,
                       C.KEY_LINEAR_COLS):
                continue
            vt, it = src.metadata_types[key]
            w.add(key, value.tolist() if isinstance(value, np.ndarray) else value, vt, it)
        for key, value, vt in ALL_SCALARS:
            w.add(key, value, vt)
        for key, value, it in ALL_ARRAYS:
            w.add(key, value, C.VT_ARRAY, it)
        for name in src.weight_names():
            if name in src.linears:
                L = src.linears[name]
                csr = src.csr(name)
                w.add_linear(name, np.array(src.tensor(name + C.SUFFIX_CODES)), _copy(src.stored_lut(name)),
                             bits=L.bits, group_size=L.group_size, cols=L.cols,
                             csr=None if csr is None else tuple(np.array(a) for a in csr))
                written[name + C.SUFFIX_CODES] = np.array(src.tensor(name + C.SUFFIX_CODES))
            else:
                written[name] = np.array(src.tensor(name))
                w.add_tensor(name, written[name])
        extra = {
            "extra.f32": rng.standard_normal((3, 5, 7)).astype(np.float32),
            "extra.f16": rng.standard_normal((2, 3, 4, 5)).astype(np.float16),
            "extra.i8": rng.integers(0, 256, 33, dtype=np.uint8),
            "extra.i32": rng.integers(-2**31, 2**31 - 1, (4, 9), dtype=np.int32),
        }
        for name, arr in extra.items():
            w.add_tensor(name, arr)
        written.update(extra)
    r = SqfReader(path, verify_checksums=True)
    for name, arr in written.items():
        got = r.tensor(name)
        assert got.shape == arr.shape and got.dtype == arr.dtype.newbyteorder("=") or got.dtype == np.uint8
        assert got.tobytes() == arr.tobytes(), name
        assert not got.flags.writeable
    md = r.metadata
    for key, value, vt in ALL_SCALARS:
        assert md[key] == pytest.approx(value) if vt in (C.VT_FLOAT32, C.VT_FLOAT64) else md[key] == value, key
        assert r.metadata_types[key] == (vt, None)
    for key, value, it in ALL_ARRAYS:
        got = md[key]
        assert list(got) == pytest.approx(value) if it in (C.VT_FLOAT32, C.VT_FLOAT64) else list(got) == value, key
        assert r.metadata_types[key] == (C.VT_ARRAY, it)
    for name in src.linears:
        np.testing.assert_array_equal(r.weight(name), src.weight(name))


@pytest.mark.parametrize("bits", C.ALLOWED_BITS)
@pytest.mark.parametrize("cols", [1, 7, 8, 31, 32, 33, 100, 172])
def test_pack_unpack(bits, cols):
    rng = np.random.default_rng(bits * 1000 + cols)
    codes = rng.integers(0, 1 << bits, size=(5, cols), dtype=np.uint8)
    packed = pack_codes(codes, bits)
    assert packed.shape == (5, C.row_bytes(cols, bits))
    np.testing.assert_array_equal(unpack_codes(packed, bits, cols), codes)
    # The SPEC's bit-stream rule, checked literally on row 0.
    stream = np.unpackbits(packed[0], bitorder="little")
    for j in range(cols):
        assert int(sum(int(stream[j * bits + b]) << b for b in range(bits))) == codes[0, j]
    assert not stream[cols * bits:].any()  # padding codes are 0


def test_dense_and_sparse_meaning():
    """SPEC §4: a sparse entry replaces the dense value; everything else is the LUT value."""
    r = SqfReader(GOLDEN)
    name = "model.layers.0.mlp.down_proj.weight"
    L = r.linears[name]
    codes, lut = r.codes(name), r.lut(name).astype(np.float32)
    W = r.weight(name)
    rowptr, cols, vals = r.csr(name)
    sparse = np.zeros(W.shape, bool)
    for i in range(L.rows):
        for k in range(rowptr[i], rowptr[i + 1]):
            sparse[i, cols[k]] = True
            assert W[i, cols[k]] == np.float32(vals[k])
    dense = dequantize_dense(codes, lut, L.group_size)
    np.testing.assert_array_equal(W[~sparse], dense[~sparse])
    assert sparse.sum() == L.nnz > 0


# -- gguf-py compatibility ----------------------------------------------------------------------
def test_gguf_py_lists_everything():
    import gguf

    g = gguf.GGUFReader(GOLDEN)
    ours = SqfReader(GOLDEN)
    assert [t.name for t in g.tensors] == ours.tensor_names
    keys = [k for k in g.fields if not k.startswith("GGUF.")]
    assert keys == list(ours.metadata)
    for t in g.tensors:
        assert bytes(t.data.tobytes()) == ours.tensor(t.name).tobytes()


# -- writer behaviour ----------------------------------------------------------------------------
def test_writer_refuses_to_overwrite_and_cleans_up(tmp_path):
    out = tmp_path / "m.sqf"
    out.write_bytes(b"keep me")
    with pytest.raises(OutputExistsError):
        SqfWriter(out)
    with pytest.raises(RuntimeError):
        with SqfWriter(out, overwrite=True) as w:
            w.add_tensor("a", np.zeros(3, np.float32))
            raise RuntimeError("boom")
    assert out.read_bytes() == b"keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.sqf"]


def test_writer_rejects_bad_tensors(tmp_path):
    with SqfWriter(tmp_path / "m.sqf") as w:
        with pytest.raises(TypeError):
            w.add_tensor("a", np.zeros(3, np.float64))
        with pytest.raises(ValueError):
            w.add_tensor("b", np.zeros((0,), np.float32))
        w.add_tensor("c", np.zeros(3, np.float32))
        with pytest.raises(ValueError):
            w.add_tensor("c", np.zeros(3, np.float32))
        w.abort()
    assert list(tmp_path.iterdir()) == []


# -- corrupt files ---------------------------------------------------------------------------
def test_missing_and_non_regular_files(tmp_path):
    with pytest.raises(FileError, match="cannot open"):
        SqfReader(tmp_path / "nope.sqf")
    with pytest.raises(FileError, match="not a regular file"):
        SqfReader(tmp_path)


def test_truncation_at_every_byte(tmp_path):
    data = GOLDEN.read_bytes()
    p = tmp_path / "t.sqf"
    for n in range(len(data)):
        p.write_bytes(data[:n])
        with pytest.raises(FormatError):
            SqfReader(p)


def test_random_byte_flips(tmp_path):
    data = GOLDEN.read_bytes()
    original = SqfReader(GOLDEN)
    ranges = [(i["file_offset"], i["file_offset"] + i["n_bytes"]) for i in map(original.tensor_info, original.tensor_names)]
    rng = np.random.default_rng(20261123)
    p = tmp_path / "f.sqf"
    outcomes = {"ok": 0, "error": 0, "checksum": 0}
    for _ in range(1500):
        buf = bytearray(data)
        for pos in rng.integers(0, len(buf), size=rng.integers(1, 4)):
            buf[pos] ^= int(rng.integers(1, 256))
        p.write_bytes(bytes(buf))
        try:
            SqfReader(p)
        except SqllmError:
            outcomes["error"] += 1
            continue
        outcomes["ok"] += 1
        # A file the structural checks accept is caught by the checksums if its data changed.
        if any(bytes(buf[a:b]) != data[a:b] for a, b in ranges):
            with pytest.raises((ChecksumError, FormatError)):
                SqfReader(p, verify_checksums=True)
            outcomes["checksum"] += 1
    assert outcomes["error"] > 100 and outcomes["checksum"] > 100, outcomes


def patched(data: bytes, at: int, fmt: str, value) -> bytes:
    buf = bytearray(data)
    struct.pack_into(fmt, buf, at, value)
    return bytes(buf)


CASES = {
    "wrong magic": lambda d, L: b"GGUG" + d[4:],
    "GGUF version 2": lambda d, L: patched(d, 4, "<I", 2),
    "huge tensor count": lambda d, L: patched(d, 8, "<Q", 2**63),
    "huge kv count": lambda d, L: patched(d, 16, "<Q", 2**64 - 1),
    "huge key length": lambda d, L: patched(d, L["kv"]["general.name"]["start"], "<Q", 2**64 - 2),
    "unknown value type": lambda d, L: patched(d, L["kv"]["general.name"]["type_at"], "<I", 13),
    "huge string length": lambda d, L: patched(d, L["kv"]["general.name"]["value_at"], "<Q", 2**62),
    "huge array count": lambda d, L: patched(d, L["kv"][C.KEY_TENSOR_CRC32]["count_at"], "<Q", 2**61),
    "huge string-array count": lambda d, L: patched(d, L["kv"][C.KEY_TOKENIZER_TOKENS]["count_at"], "<Q", 2**60),
    "linear bits 7": lambda d, L: patched(d, L["kv"][C.KEY_LINEAR_BITS]["first_item_at"], "<I", 7),
    "bool not 0/1": lambda d, L: patched(d, L["kv"][C.KEY_TIE_EMBEDDINGS]["value_at"], "<B", 2),
    "alignment not a power of two": lambda d, L: patched(d, L["kv"][C.KEY_ALIGNMENT]["value_at"], "<I", 96),
    "n_dims 5": lambda d, L: patched(d, L["tensors"]["model.norm.weight"]["ndims_at"], "<I", 5),
    "zero extent": lambda d, L: patched(d, L["tensors"]["model.norm.weight"]["ne_at"], "<Q", 0),
    "huge extent": lambda d, L: patched(d, L["tensors"]["model.norm.weight"]["ne_at"], "<Q", 2**62),
    "unknown tensor type": lambda d, L: patched(d, L["tensors"]["model.norm.weight"]["type_at"], "<I", 2),
    "offset past the end": lambda d, L: patched(d, L["tensors"]["model.norm.weight"]["offset_at"], "<Q", 1 << 40),
    "offset overflowing": lambda d, L: patched(d, L["tensors"]["model.norm.weight"]["offset_at"], "<Q", 2**64 - 64),
    "misaligned offset": lambda d, L: patched(d, L["tensors"]["model.norm.weight"]["offset_at"], "<Q",
                                              struct.unpack_from("<Q", d, L["tensors"]["model.norm.weight"]["offset_at"])[0] + 4),
    "overlapping tensors": lambda d, L: patched(d, L["tensors"]["model.norm.weight"]["offset_at"], "<Q", 0),
    "string not UTF-8": lambda d, L: patched(d, L["kv"][C.KEY_RECIPE_JSON]["value_at"] + 8, "<B", 0x8A),
    "string-array item not UTF-8": lambda d, L: patched(d, L["kv"][C.KEY_LINEAR_NAMES]["first_item_at"] + 8, "<B", 0xC0),
    "key not ASCII": lambda d, L: patched(d, L["kv"]["general.name"]["start"] + 9, "<B", 0xE9),
    "tensor name not UTF-8": lambda d, L: patched(d, L["tensors"]["model.norm.weight"]["start"] + 8, "<B", 0xFF),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_crafted_corruptions(tmp_path, case):
    data = GOLDEN.read_bytes()
    bad = CASES[case](data, walk(data))
    with pytest.raises(FormatError) as e:
        load_bytes(tmp_path, bad)
    assert "x.sqf" in str(e.value)


def test_bad_utf8_is_a_format_error_naming_the_key(tmp_path):
    """SPEC §8: every string is UTF-8 (token pieces excepted); a bad one is an error line from
    `sqconvert inspect`, never a UnicodeDecodeError traceback."""
    data = GOLDEN.read_bytes()
    bad = CASES["string not UTF-8"](data, walk(data))
    with pytest.raises(FormatError, match=r"x\.sqf: key sqllm\.recipe\.json: string is not valid UTF-8"):
        load_bytes(tmp_path, bad)
    p = subprocess.run([sys.executable, "-m", "sqllm.converter", "inspect", str(tmp_path / "x.sqf")],
                       capture_output=True, text=True)
    assert p.returncode == 1 and "not valid UTF-8" in p.stderr and "Traceback" not in p.stderr, p.stderr


def test_token_pieces_are_bytes(tmp_path):
    """Token pieces may be any bytes (half a UTF-8 character): they load, and read back as bytes."""
    def m(key, value, vt, it):
        if key == C.KEY_TOKENIZER_TOKENS:
            value = [*value[:-1], b"\xe2\x96"]
        return key, value, vt, it

    r = SqfReader(rewrite_golden(tmp_path, mutate_kv=m))
    tokens = r.metadata[C.KEY_TOKENIZER_TOKENS]
    assert all(isinstance(t, bytes) for t in tokens) and tokens[-1] == b"\xe2\x96"
    assert tokens[:-1] == SqfReader(GOLDEN).metadata[C.KEY_TOKENIZER_TOKENS][:-1]
    assert isinstance(r.metadata[C.KEY_TOKENIZER_MODEL], str)
    with pytest.raises(TypeError, match="must be str"):
        SqfWriter(tmp_path / "w.sqf").add(C.KEY_RECIPE_METHOD, b"sqllm")


def test_random_mutations_give_errors_not_tracebacks(tmp_path):
    """Seeded random mutations of the golden file, mostly in the header where the strings are:
    `inspect_file` and `Model` either work or raise an SqllmError (what the CLIs print as one
    line), nothing else."""
    from sqllm.runtime import Model

    data = GOLDEN.read_bytes()
    header_end = walk(data)["header_end"]
    rng = np.random.default_rng(18)
    p = tmp_path / "m.sqf"
    errors = 0
    for _ in range(600):
        buf = bytearray(data)
        for _ in range(rng.integers(1, 5)):
            pos = int(rng.integers(0, header_end if rng.random() < 0.8 else len(buf)))
            buf[pos] = int(rng.integers(0, 256))
        p.write_bytes(bytes(buf))
        for load in (inspect_file, Model):
            try:
                load(p)
            except SqllmError:
                errors += 1
    assert errors > 300


def rewrite_golden(tmp_path, mutate_kv=None, mutate_tensor=None) -> Path:
    """Copy golden.sqf through the writer, letting a test change a key or a tensor on the way."""
    src = SqfReader(GOLDEN)
    out = tmp_path / "m.sqf"
    skip = {C.KEY_TENSOR_CRC32, C.KEY_LINEAR_NAMES, C.KEY_LINEAR_BITS, C.KEY_LINEAR_GROUP_SIZE, C.KEY_LINEAR_COLS}
    with SqfWriter(out, overwrite=True) as w:
        for key, value in src.metadata.items():
            if key in skip:
                continue
            vt, it = src.metadata_types[key]
            value = value.tolist() if isinstance(value, np.ndarray) else value
            if mutate_kv:
                key, value, vt, it = mutate_kv(key, value, vt, it)
            if key is not None:
                w.add(key, value, vt, it)
        for name in src.weight_names():
            if name in src.linears:
                L = src.linears[name]
                parts = {"codes": np.array(src.tensor(name + C.SUFFIX_CODES)), "lut": _copy(src.stored_lut(name)),
                         "csr": None if src.csr(name) is None else [np.array(a) for a in src.csr(name)]}
                if mutate_tensor:
                    mutate_tensor(name, parts)
                if "raw_lut" in parts:  # past the writer's own checks, tensor by tensor
                    w.add_tensor(name + C.SUFFIX_CODES, parts["codes"])
                    for suffix, t in zip((C.SUFFIX_LUT, C.SUFFIX_LUT_SCALE), _as_tuple(parts["raw_lut"])):
                        w.add_tensor(name + suffix, t)
                    for suffix, t in zip((C.SUFFIX_ROWPTR, C.SUFFIX_COLS, C.SUFFIX_VALS), parts["csr"] or ()):
                        w.add_tensor(name + suffix, t)
                    w._linears.append((name, L.bits, L.group_size, L.cols))
                    continue
                w.add_linear(name, parts["codes"], parts["lut"], bits=L.bits, group_size=L.group_size, cols=L.cols,
                             csr=parts["csr"])
                if "extra_scale" in parts:
                    w.add_tensor(name + C.SUFFIX_LUT_SCALE, parts["extra_scale"])
            else:
                arr = {"data": np.array(src.tensor(name))}
                if mutate_tensor:
                    mutate_tensor(name, arr)
                if arr["data"] is not None:
                    w.add_tensor(name, arr["data"])
    return out


DOWN = "model.layers.0.mlp.down_proj.weight"


def _copy(lut):
    return tuple(np.array(a) for a in lut) if isinstance(lut, tuple) else np.array(lut)


def _as_tuple(lut):
    return lut if isinstance(lut, tuple) else (lut,)


@pytest.mark.parametrize("where", ["decreasing", "past nnz"])
def test_rowptr_not_monotone(tmp_path, where):
    def m(name, parts):
        if name == DOWN:
            if where == "decreasing":
                parts["csr"][0][1] = -1
            else:
                parts["csr"][0][-1] += 1
    with pytest.raises(FormatError, match="row pointers"):
        SqfReader(rewrite_golden(tmp_path, mutate_tensor=m))


def test_csr_column_out_of_range(tmp_path):
    def m(name, parts):
        if name == DOWN:
            parts["csr"][1][-1] = 40
    with pytest.raises(FormatError, match="column index"):
        SqfReader(rewrite_golden(tmp_path, mutate_tensor=m))


def test_csr_columns_unsorted(tmp_path):
    def m(name, parts):
        if name == DOWN:
            rowptr, cols, _ = parts["csr"]
            row = int(np.argmax(np.diff(rowptr) >= 2))
            a = rowptr[row]
            cols[a], cols[a + 1] = cols[a + 1], cols[a]
    with pytest.raises(FormatError, match="out of order"):
        SqfReader(rewrite_golden(tmp_path, mutate_tensor=m))


def _fp16_lut(name, parts):
    if isinstance(parts.get("lut"), tuple):
        parts["lut"] = decode_lut8(*parts["lut"])


def test_nan_in_lut(tmp_path):
    def m(name, parts):
        if name == DOWN:
            _fp16_lut(name, parts)
            parts["lut"][0, 0, 0] = np.nan
    with pytest.raises(FormatError, match="NaN"):
        SqfReader(rewrite_golden(tmp_path, mutate_tensor=m))


def test_fp16_and_8bit_luts_read_back_alike(tmp_path):
    """SPEC §4: an 8-bit LUT decodes to fp16(lo + step * level); a file that stores the decoded
    values as fp16 tables instead is the same model, weight for weight and logit for logit on the
    exact path. (The default path's integer kernels take an 8-bit LUT's own levels and requantize
    an fp16 one, so there the two agree only closely.)"""
    src = SqfReader(GOLDEN)
    assert isinstance(src.stored_lut(DOWN), tuple), "the golden file stores 8-bit LUTs"
    f = rewrite_golden(tmp_path, mutate_tensor=_fp16_lut)
    r = SqfReader(f)
    assert r.stored_lut(DOWN).dtype == np.float16
    for name in src.linears:
        np.testing.assert_array_equal(r.weight(name), src.weight(name))
    ids = [i % 16 for i in range(1, 40)]
    np.testing.assert_array_equal(Model(f, exact=True).logits(ids), Model(GOLDEN, exact=True).logits(ids))
    fp16_default, lut8_default = Model(f).logits(ids), Model(GOLDEN).logits(ids)
    assert np.abs(fp16_default - lut8_default).max() <= 5e-3 * np.abs(lut8_default).max()


def test_lut8_round_trip_accuracy():
    rng = np.random.default_rng(0)
    values = np.sort(rng.standard_normal((500, 3, 16)).astype(np.float32) * rng.uniform(1e-3, 10, (500, 1, 1)), axis=-1)
    values[0, 0] = 0.25  # a constant table: step 0
    levels, scale = encode_lut8(values)
    decoded = decode_lut8(levels, scale).astype(np.float32)
    span = values.max(-1, keepdims=True) - values.min(-1, keepdims=True)
    assert np.all(np.abs(decoded - values) <= span / 510 * 1.01 + np.abs(values) * 2.0 ** -11 + 1e-7)
    np.testing.assert_array_equal(decoded[0, 0], np.float32(0.25))


@pytest.mark.parametrize("case", ["no scale", "nan scale", "scale shape", "scale beside fp16", "decodes to inf"])
def test_bad_8bit_lut(tmp_path, case):
    def m(name, parts):
        if name != DOWN:
            return
        levels, scale = parts["lut"]
        if case == "no scale":
            parts["lut"] = levels
        elif case == "nan scale":
            scale[1, 0, 1] = np.nan
        elif case == "scale shape":
            parts["lut"] = (levels, scale[:-1])
        elif case == "scale beside fp16":
            parts["extra_scale"] = scale
            parts["lut"] = decode_lut8(levels, scale)
        else:
            scale[2, 0] = (60000.0, 100.0)
            levels[2, 0, -1] = 255
    if case != "scale beside fp16":
        # The writer refuses these itself; write the tensors by hand to reach the loader.
        def m2(name, parts):
            m(name, parts)
            if name == DOWN:
                lut = parts.pop("lut")
                parts["raw_lut"] = lut
        mutate = m2
    else:
        mutate = m
    match = {"no scale": "lut_scale is missing", "nan scale": "NaN", "scale shape": "has shape",
             "scale beside fp16": "only allowed beside", "decodes to inf": "decodes to infinity"}[case]
    with pytest.raises(FormatError, match=match):
        SqfReader(rewrite_golden(tmp_path, mutate_tensor=mutate))


def test_missing_required_tensor(tmp_path):
    def m(name, arr):
        if name == "model.norm.weight":
            arr["data"] = None
    with pytest.raises(FormatError, match="model.norm.weight is missing"):
        SqfReader(rewrite_golden(tmp_path, mutate_tensor=m))


def test_shape_against_config(tmp_path):
    def m(key, value, vt, it):
        return key, (48 if key == C.KEY_INTERMEDIATE_SIZE else value), vt, it
    with pytest.raises(FormatError, match="the config needs"):
        SqfReader(rewrite_golden(tmp_path, mutate_kv=m))


def test_newer_format_version_is_refused(tmp_path):
    def m(key, value, vt, it):
        return key, (C.FORMAT_VERSION + 1 if key == C.KEY_FORMAT_VERSION else value), vt, it
    with pytest.raises(UnsupportedError, match=f"format version {C.FORMAT_VERSION + 1}; this reader supports up to {C.FORMAT_VERSION}"):
        SqfReader(rewrite_golden(tmp_path, mutate_kv=m))


def test_kv_keys_without_their_tensors_are_refused(tmp_path):
    def m(key, value, vt, it):
        return ("sqllm.kv.bits", 4, C.VT_UINT32, None) if key == C.KEY_RECIPE_FISHER else (key, value, vt, it)
    with pytest.raises(FormatError, match="KV-cache data needs"):
        SqfReader(rewrite_golden(tmp_path, mutate_kv=m))


def test_unknown_kv_key_is_refused(tmp_path):
    def m(key, value, vt, it):
        return ("sqllm.kv.method", "nuq", C.VT_STRING, None) if key == C.KEY_RECIPE_FISHER else (key, value, vt, it)
    with pytest.raises(UnsupportedError, match="unknown KV-cache quantization data"):
        SqfReader(rewrite_golden(tmp_path, mutate_kv=m))


def test_wrong_architecture_is_refused(tmp_path):
    def m(key, value, vt, it):
        return key, ("llama" if key == C.KEY_ARCHITECTURE else value), vt, it
    with pytest.raises(UnsupportedError, match="not an .sqf file"):
        SqfReader(rewrite_golden(tmp_path, mutate_kv=m))


def test_duplicate_key_and_tensor(tmp_path):
    data = GOLDEN.read_bytes()
    L = walk(data)
    # Rename general.name to general.arch... (same length) so that two keys collide.
    k = L["kv"]["general.name"]["start"]
    buf = bytearray(data)
    struct.pack_into("<Q", buf, k, len(C.KEY_ARCHITECTURE))
    new = bytearray(data[:k]) + struct.pack("<Q", len(C.KEY_ARCHITECTURE)) + C.KEY_ARCHITECTURE.encode()
    rest_at = k + 8 + len("general.name")
    new += data[rest_at:]
    with pytest.raises(FormatError, match="duplicate key"):
        load_bytes(tmp_path, bytes(new))
    t = L["tensors"]["model.layers.0.input_layernorm.weight"]["start"]
    buf = bytearray(data)
    name = b"model.layers.0.post_attention_layernorm.weight"
    old = b"model.layers.0.input_layernorm.weight"
    buf = buf[:t] + struct.pack("<Q", len(name)) + name + buf[t + 8 + len(old):]
    with pytest.raises(FormatError, match="duplicate tensor|truncated|offset|overlap|aligned"):
        load_bytes(tmp_path, bytes(buf))


def test_checksum_mismatch(tmp_path):
    data = bytearray(GOLDEN.read_bytes())
    data[-1] ^= 0x40
    r = load_bytes(tmp_path, bytes(data))  # structure is fine...
    with pytest.raises(ChecksumError, match="CRC-32 mismatch"):
        r.verify_checksums()
    with pytest.raises(ChecksumError):
        load_bytes(tmp_path, bytes(data), verify=True)
