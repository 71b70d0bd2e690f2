#!/usr/bin/env python3
"""Seeded random mutations of tests/data/golden.sqf through `sqconvert inspect` (inspect_file +
format_report) and `Model(...)`, in one process: each must work or raise SqllmError (the one error
line the CLIs print). Any other exception is printed with its input saved; a crash ends the
process. Prints the counts (docs/RESULTS.md).

    python tools/mutate_golden.py [--count 100000] [--seed 18]
"""

import argparse
import struct
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from common import ROOT
from sqllm.errors import SqllmError
from sqllm.formats.inspect import format_report, inspect_file
from sqllm.runtime import Model


EXTREMES = (0, 1, 2**31, 2**63, 2**64 - 1)


def header_end() -> int:
    """Where the tensor infos end: mutations go there four times in five (the strings, counts and
    offsets), the rest anywhere."""
    from sqllm.formats.reader import SqfReader

    r = SqfReader(ROOT / "tests" / "data" / "golden.sqf")
    return min(r.tensor_info(n)["file_offset"] for n in r.tensor_names)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--count", type=int, default=100000)
    ap.add_argument("--seed", type=int, default=18)
    args = ap.parse_args()
    data = (ROOT / "tests" / "data" / "golden.sqf").read_bytes()
    end = header_end()
    rng = np.random.default_rng(args.seed)
    path = Path(tempfile.mkdtemp(prefix="sqllm-mutate-")) / "m.sqf"
    counts = {"inspect ok": 0, "inspect error": 0, "model ok": 0, "model error": 0, "other exception": 0}
    t0 = time.perf_counter()
    for i in range(args.count):
        buf = bytearray(data)
        for _ in range(int(rng.integers(1, 5))):
            kind = rng.random()
            pos = int(rng.integers(0, end if rng.random() < 0.8 else len(buf)))
            if kind < 0.6:
                buf[pos] = int(rng.integers(0, 256))
            elif kind < 0.8:  # a length, count or offset field set to an extreme
                struct.pack_into("<Q", buf, min(pos, len(buf) - 8), EXTREMES[int(rng.integers(0, len(EXTREMES)))])
            elif kind < 0.9:
                del buf[pos:pos + int(rng.integers(1, 64))]
            else:
                buf[pos:pos] = bytes(rng.integers(0, 256, int(rng.integers(1, 64)), dtype=np.uint8))
        path.write_bytes(bytes(buf))
        for name, load in (("inspect", lambda p: format_report(inspect_file(p))), ("model", lambda p: Model(p, threads=1))):
            try:
                load(path)
                counts[f"{name} ok"] += 1
            except SqllmError:
                counts[f"{name} error"] += 1
            except Exception as e:  # what must never happen: save the input
                counts["other exception"] += 1
                keep = path.with_name(f"other-{i}.sqf")
                keep.write_bytes(bytes(buf))
                print(f"mutation {i}: {name}: {type(e).__name__}: {e} (input: {keep})", file=sys.stderr)
    print(f"{args.count} mutations (seed {args.seed}) in {time.perf_counter() - t0:.0f} s: " +
          ", ".join(f"{k} {v}" for k, v in counts.items()))
    return 1 if counts["other exception"] else 0


if __name__ == "__main__":
    sys.exit(main())
