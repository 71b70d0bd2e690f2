#!/usr/bin/env python3
"""Quality per byte against llama.cpp: one model through both tools, every file scored by one program.

    python tools/compare_llamacpp.py --model dev                   # Qwen2.5-Coder-0.5B, 16 chunks of WikiText-2
    python tools/compare_llamacpp.py --model dev --chunks 64 --threads 4
    python tools/compare_llamacpp.py --model dev --sqllm-recipes "--bits 3" --sqllm-recipes "--bits 4 --outliers 0"
    python tools/compare_llamacpp.py --model PATH/TO/HF_FOLDER --work /data/compare --peer ~/llama.cpp/build/bin

Each step is cached in the work folder (default ~/.cache/sqllm-compare/NAME), so a rerun skips what is done:
  1. the peer: shared/tools/get_llamacpp_peer.sh builds llama.cpp's tools (idempotent; --peer BIN skips it);
  2. convert_hf_to_gguf.py writes the model as GGUF f32 (the reference every ratio divides by) and f16;
  3. llama-imatrix on the calibration text (tinystories_train.txt, the text sqllm's Fisher uses, never the
     evaluation text), --calib-chunks sequences of --ctx tokens;
  4. llama-quantize with that imatrix into each of LLAMACPP_TYPES (a type that fails is reported, not fatal);
  5. sqconvert fisher on the same calibration text (the same number of sequences of the same length), then
     sqconvert for each sqllm recipe (SQLLM_RECIPES, or --sqllm-recipes, repeatable);
  6. one scorer for every file: llama-perplexity -c CTX --chunks N on the evaluation text. sqllm files go
     through sqconvert dequant -> convert_hf_to_gguf.py --outtype f32 first, so both tools are scored by
     the same program on the same chunks. sqllm's own runtime perplexity (Model.perplexity, its own
     windows: every token of the first N windows) is a second column, as a ratio to an unquantized .sqf
     (made and scored too, which also checks the dequant path; --runtime-windows 0 leaves both out);
  7. bits per weight = file bytes * 8 / the parameter count of the model's safetensors (the same
     denominator for both tools; `sqconvert inspect` counts the weights of the .sqf and is noted apart).
The table replaces the block between <!-- compare:NAME --> markers in docs/RESULTS.md (a new section
before "## KV cache" the first time), and docs/compare_NAME.png plots ratio against bits per weight.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shlex
import shutil
import struct
import subprocess
import sys
import time
from pathlib import Path

from common import DATA, ROOT, SHARED, model_dir

PEER_SCRIPT = SHARED / "tools" / "get_llamacpp_peer.sh"
CALIBRATION = DATA / "tinystories_train.txt"
EVALUATION = DATA / "wikitext2_valid.txt"
RESULTS = ROOT / "docs" / "RESULTS.md"
SECTION_BEFORE = "\n## KV cache"
PEER_TOOLS = ("imatrix", "quantize", "perplexity")

# llama.cpp's file types compared, each made with the imatrix.
LLAMACPP_TYPES = ["Q2_K", "Q3_K_S", "Q3_K_M", "IQ3_S", "IQ4_XS", "Q4_K_M"]
# sqllm's recipes compared by default, as sqconvert argument strings (the Fisher file is added).
SQLLM_RECIPES = ["--bits 3", "--bits 4"] + [f"--target-bpw {b}" for b in (4.0, 4.6, 5.0, 5.5, 6.0, 6.5)]
# The unquantized .sqf: the runtime column's reference, and a check of the dequant -> GGUF path.
SQLLM_UNQUANTIZED = "--keep *"

MODEL_NOTES = {
    "dev": "**The dev model favours llama.cpp's 4–5-bit types.** Its weights are Qwen's Q4_K_M GGUF "
           "(Q5_0 for most linears and the embeddings, Q4_K/Q6_K for ffn_down, Q8_0 for half of v), "
           "dequantized: they already lie on those types' grids, so requantizing to Q4_K/Q5_0-like types "
           "loses less than it would from the original bf16 checkpoint, and it favours llama.cpp's 4–5-bit "
           "files over sqllm's non-uniform levels. Read its 4–5-bit rows with that in mind.",
}


class StepFailed(RuntimeError):
    """A step's program failed; the message names the step and shows its stderr tail."""

    @property
    def short(self) -> str:
        """The step and the last line of its output, for a table cell."""
        lines = str(self).splitlines()
        return (lines[0].split(":")[0] + ": " + (lines[-2] if len(lines) > 2 else ""))[:200]


class Work:
    """The work folder: cached files, the scores and timings of earlier runs, and one log per step."""

    def __init__(self, path: Path):
        self.path = path
        self.logs = path / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.state_file = path / "results.json"
        self.state = json.loads(self.state_file.read_text()) if self.state_file.exists() else {}
        self.state.setdefault("scores", {})
        self.state.setdefault("timings", {})

    def save(self) -> None:
        tmp = self.state_file.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(self.state, indent=1, sort_keys=True))
        os.replace(tmp, self.state_file)

    def timing(self, step: str) -> float | None:
        return self.state["timings"].get(step)

    def log_path(self, step: str) -> Path:
        return self.logs / (re.sub(r"[^A-Za-z0-9_.-]+", "_", step).strip("_") + ".log")

    def log(self, step: str) -> str:
        path = self.log_path(step)
        return path.read_text() if path.exists() else ""

    def run(self, step: str, cmd: list[str], *, env: dict | None = None) -> subprocess.CompletedProcess:
        """Run one step's program, log its output, time it; raise StepFailed with the stderr tail."""
        print(f"[compare] {step} ...", file=sys.stderr, flush=True)
        t0 = time.perf_counter()
        try:
            p = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, **(env or {})})
        except OSError as e:
            raise StepFailed(f"step '{step}' could not start {cmd[0]}: {e}") from e
        seconds = time.perf_counter() - t0
        log = self.log_path(step)
        log.write_text(f"$ {shlex.join(cmd)}\n--- stdout ---\n{p.stdout}\n--- stderr ---\n{p.stderr}")
        if p.returncode != 0:
            tail = "\n".join((p.stderr or p.stdout).rstrip().splitlines()[-25:])
            raise StepFailed(f"step '{step}' failed (exit {p.returncode}) after {seconds:.0f} s: {shlex.join(cmd)}\n"
                             f"--- last lines of its output ---\n{tail}\n--- full log: {log}")
        self.state["timings"][step] = round(seconds, 1)
        self.save()
        print(f"[compare] {step}: {seconds:.1f} s", file=sys.stderr, flush=True)
        return p

    def make(self, step: str, out: Path, cmd_for, **kw) -> Path:
        """Make `out` by running cmd_for(partial_path) unless it exists; the partial file is renamed
        into place only on success, so an interrupted step is redone."""
        if out.exists():
            return out
        partial = out.with_name(out.stem + ".partial" + out.suffix)
        _remove(partial)
        try:
            self.run(step, cmd_for(partial), **kw)
            os.replace(partial, out)
        finally:
            _remove(partial)
        return out


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9.]+", "-", text.lower()).strip("-") or "default"


def parameter_count(model: Path) -> int:
    """Elements of every tensor in the folder's safetensors files (a tied lm_head is stored once)."""
    files = sorted(model.glob("*.safetensors"))
    if not files:
        raise SystemExit(f"{model}: no .safetensors files; the bits-per-weight denominator is read from them")
    total = 0
    for f in files:
        with open(f, "rb") as fh:
            (n,) = struct.unpack("<Q", fh.read(8))
            header = json.loads(fh.read(n))
        total += sum(math.prod(v["shape"]) for k, v in header.items() if k != "__metadata__")
    return total


def peer_bin(args, work: Work) -> Path:
    if args.peer:
        return Path(args.peer).expanduser()
    p = work.run("build llama.cpp (get_llamacpp_peer.sh)", ["bash", str(PEER_SCRIPT)],
                 env={"PYTHON": sys.executable, "JOBS": str(args.threads)})
    return Path(p.stdout.strip().splitlines()[-1])


def check_peer(bin_dir: Path) -> Path:
    """The llama.cpp programs this tool runs, and convert_hf_to_gguf.py two folders above them."""
    convert_script = bin_dir.parent.parent / "src" / "convert_hf_to_gguf.py"
    missing = [str(p) for p in [*(bin_dir / f"llama-{t}" for t in PEER_TOOLS), convert_script] if not p.exists()]
    if missing:
        raise StepFailed("llama.cpp's tools are missing: " + ", ".join(missing) + f" (build them with {PEER_SCRIPT})")
    return convert_script


def final_ppl(step: str, output: str) -> float:
    m = re.search(r"Final estimate: PPL = ([0-9.]+)", output)
    if not m:
        raise StepFailed(f"step '{step}' printed no 'Final estimate' line")
    return float(m.group(1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="dev", help="dev, stories260K, or a Hugging Face folder")
    ap.add_argument("--work", type=Path, default=None, help="cache folder (default ~/.cache/sqllm-compare/NAME)")
    ap.add_argument("--peer", default=None, help="llama.cpp's bin folder (default: built by get_llamacpp_peer.sh)")
    ap.add_argument("--chunks", type=int, default=16, help="llama-perplexity chunks (and runtime windows)")
    ap.add_argument("--ctx", type=int, default=512)
    ap.add_argument("--eval-text", type=Path, default=EVALUATION)
    ap.add_argument("--calib-text", type=Path, default=CALIBRATION)
    ap.add_argument("--calib-chunks", type=int, default=16,
                    help="calibration sequences of --ctx tokens, for llama-imatrix and sqconvert fisher alike")
    ap.add_argument("--types", nargs="*", default=LLAMACPP_TYPES, help="llama-quantize types")
    ap.add_argument("--sqllm-recipes", action="append", default=None, metavar="ARGS",
                    help=f"sqconvert options of one recipe, repeatable (default: {SQLLM_RECIPES})")
    ap.add_argument("--runtime-windows", type=int, default=None,
                    help="windows of sqllm's runtime perplexity column (default: --chunks; 0 leaves it out)")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    recipes = args.sqllm_recipes or SQLLM_RECIPES
    runtime_windows = args.chunks if args.runtime_windows is None else args.runtime_windows
    if args.calib_text.resolve() == args.eval_text.resolve():
        raise SystemExit("the calibration text must not be the evaluation text")

    model = model_dir(args.model)
    name = args.model if args.model in ("dev", "stories260K") else model.name
    work = Work(args.work or Path.home() / ".cache" / "sqllm-compare" / name)
    threads = str(args.threads)
    params = parameter_count(model)
    try:
        rows, notes = compare(args, model, name, work, threads, params, recipes, runtime_windows)
    except StepFailed as e:
        raise SystemExit(f"error: {e}")
    write_report(name, args, recipes, rows, notes, params, work)
    print_timings(work)
    failed = [r for r in rows if r["tool"] == "sqllm" and r.get("error")]
    if failed:
        raise SystemExit(f"error: {len(failed)} sqllm recipe(s) failed: " + "; ".join(r["label"] for r in failed))


def compare(args, model: Path, name: str, work: Work, threads: str, params: int, recipes: list[str],
            runtime_windows: int) -> tuple[list[dict], list[str]]:
    bin_dir = peer_bin(args, work)
    convert_script = check_peer(bin_dir)
    tool = {t: str(bin_dir / f"llama-{t}") for t in PEER_TOOLS}
    py = sys.executable
    sq = [py, "-m", "sqllm.converter"]
    torch_env = {"OMP_NUM_THREADS": threads}
    calib = f"{args.calib_text.stem}-{args.calib_chunks}x{args.ctx}"
    eval_key = f"{args.eval_text.name}|c{args.ctx}|chunks{args.chunks}"

    def to_gguf(step: str, hf: Path, out: Path, outtype: str) -> Path:
        return work.make(step, out, lambda o: [py, str(convert_script), str(hf), "--outtype", outtype, "--outfile", str(o)])

    def score(label: str, gguf_for, key_file: Path) -> float:
        """llama-perplexity of a file, cached by the file it scores (name, size and mtime) and the windows."""
        st = key_file.stat()
        key = f"{key_file.name}|{st.st_size}|{int(st.st_mtime)}|{eval_key}"
        if key not in work.state["scores"]:
            gguf = gguf_for()
            try:
                p = work.run(f"llama-perplexity {label}", [tool["perplexity"], "-m", str(gguf), "-f", str(args.eval_text),
                                                           "-c", str(args.ctx), "--chunks", str(args.chunks), "-t", threads])
            finally:
                if gguf != key_file:
                    _remove(gguf)
            work.state["scores"][key] = final_ppl(f"llama-perplexity {label}", p.stderr + p.stdout)
            work.save()
        return work.state["scores"][key]

    f32 = to_gguf("convert_hf_to_gguf f32", model, work.path / "model-f32.gguf", "f32")
    f16 = to_gguf("convert_hf_to_gguf f16", model, work.path / "model-f16.gguf", "f16")
    imatrix = work.make(f"llama-imatrix {calib}", work.path / f"imatrix-{calib}.gguf", lambda o: [
        tool["imatrix"], "-m", str(f16), "-f", str(args.calib_text), "-o", str(o), "-c", str(args.ctx),
        "--chunks", str(args.calib_chunks), "-t", threads])
    base = score("f32", lambda: f32, f32)
    rows = [dict(tool="llama.cpp", label="F32 (reference)", file=f32, ppl=base),
            dict(tool="llama.cpp", label="F16", file=f16, ppl=score("f16", lambda: f16, f16))]

    for qtype in args.types:
        step = f"llama-quantize {qtype}"
        try:
            out = work.make(step, work.path / f"llamacpp-{qtype}-{calib}.gguf", lambda o: [
                tool["quantize"], "--imatrix", str(imatrix), str(f32), str(o), qtype, threads])
            m = re.search(r"WARNING: (\d+) of (\d+) tensor\(s\) required fallback", work.log(step))
            rows.append(dict(tool="llama.cpp", label=qtype, file=out, seconds=work.timing(step),
                             fallback=f"{m.group(1)}/{m.group(2)}" if m else "0", ppl=score(qtype, lambda: out, out)))
        except StepFailed as e:
            print(f"[compare] {e}", file=sys.stderr)
            rows.append(dict(tool="llama.cpp", label=qtype, error=e.short))

    fisher = work.make(f"sqconvert fisher {calib}", work.path / f"fisher-{calib}.safetensors", lambda o: [
        *sq, "fisher", str(model), "--data", str(args.calib_text), "-o", str(o), "--samples", str(args.calib_chunks),
        "--seq-len", str(args.ctx), "--quiet"], env=torch_env)

    def dequant_gguf(sqf: Path, recipe: str) -> Path:
        """The .sqf's exact weights as an f32 GGUF, removed by `score` once scored (4 bytes a weight)."""
        hf, gguf = work.path / (sqf.stem + "-hf"), work.path / (sqf.stem + "-dequant-f32.gguf")
        _remove(hf)
        try:
            work.run(f"sqconvert dequant {recipe}", [*sq, "dequant", str(sqf), "-o", str(hf), "--dtype", "float32"])
            return to_gguf(f"convert_hf_to_gguf dequant {recipe}", hf, gguf, "f32")
        finally:
            _remove(hf)

    runtime_base = None
    # the unquantized .sqf is the runtime column's reference: made only for that column
    for recipe in [SQLLM_UNQUANTIZED, *recipes] if runtime_windows else recipes:
        label = "unquantized (" + recipe + ")" if recipe == SQLLM_UNQUANTIZED else recipe
        step = f"sqconvert {recipe}"
        try:
            sqf = work.make(step, work.path / f"sqllm-{slug(recipe)}-{calib}.sqf", lambda o: [
                *sq, "convert", str(model), "-o", str(o), "--fisher", str(fisher), "--threads", threads, "--quiet",
                *shlex.split(recipe)], env=torch_env)
            info = json.loads(work.run(f"sqconvert inspect {recipe}", [*sq, "inspect", str(sqf), "--json"]).stdout)
            ppl = score(f"sqllm {recipe}", lambda: dequant_gguf(sqf, recipe), sqf)
        except StepFailed as e:
            print(f"[compare] {e}", file=sys.stderr)
            rows.append(dict(tool="sqllm", label=label, error=e.short))
            continue
        row = dict(tool="sqllm", label=label, file=sqf, seconds=work.timing(step), ppl=ppl,
                   inspect_bpw=info["bits_per_weight"]["whole_file"],
                   linears_bpw=info["bits_per_weight"]["quantized_linears"])
        if runtime_windows:
            key = f"runtime|{sqf.name}|{int(sqf.stat().st_mtime)}|{args.eval_text.name}|c{args.ctx}|w{runtime_windows}"
            try:
                if key not in work.state["scores"]:
                    work.state["scores"][key] = runtime_perplexity(work, f"sqllm runtime perplexity {recipe}", sqf,
                                                                   args, runtime_windows)
                    work.save()
            except StepFailed as e:
                print(f"[compare] {e}", file=sys.stderr)
            row["runtime_ppl"] = work.state["scores"].get(key)
            if recipe == SQLLM_UNQUANTIZED:
                runtime_base = row["runtime_ppl"]
            row["runtime_base"] = runtime_base
        rows.append(row)

    for r in rows:
        if "file" in r:
            r["bytes"] = r["file"].stat().st_size
            r["bpw"] = r["bytes"] * 8 / params
            r["ratio"] = r["ppl"] / base
    seconds = {k: work.timing(f"{k} {calib}") for k in ("llama-imatrix", "sqconvert fisher")}
    notes = [f"{k}: " + (f"{t:.0f} s" if t else "made outside this tool") for k, t in seconds.items()]
    notes[-1] += f" ({args.calib_chunks} × {args.ctx} tokens of {args.calib_text.name} for both; wall times on this machine)"
    return rows, notes


def runtime_perplexity(work: Work, step: str, sqf: Path, args, windows: int) -> float:
    from sqllm.runtime import Model

    print(f"[compare] {step} ...", file=sys.stderr, flush=True)
    t0 = time.perf_counter()
    try:
        ppl = Model(sqf, threads=args.threads, exact=True).perplexity(args.eval_text.read_text(encoding="utf-8"), ctx=args.ctx,
                                                          max_windows=windows)
    except Exception as e:
        raise StepFailed(f"step '{step}' failed: {type(e).__name__}: {e}") from e
    work.state["timings"][step] = round(time.perf_counter() - t0, 1)
    print(f"[compare] {step}: {work.state['timings'][step]:.1f} s", file=sys.stderr, flush=True)
    return ppl


def write_report(name: str, args, recipes: list[str], rows: list[dict], notes: list[str], params: int,
                 work: Work) -> None:
    command = f"python tools/compare_llamacpp.py --model {args.model} --chunks {args.chunks}"
    if args.runtime_windows is not None:
        command += f" --runtime-windows {args.runtime_windows}"
    if recipes != SQLLM_RECIPES:
        command += "".join(f" --sqllm-recipes {shlex.quote(r)}" for r in recipes)
    runtime = any("runtime_ppl" in r for r in rows)
    lines = [
        f"Every file scored by llama.cpp's `llama-perplexity` on the first {args.chunks} chunks of {args.ctx} tokens "
        f"of {args.eval_text.name} (it scores the second half of each chunk); ratio = PPL / the same scorer's PPL of "
        f"the unquantized model as a GGUF F32. sqllm's files are scored as `sqconvert dequant` → "
        f"`convert_hf_to_gguf.py --outtype f32`. Bits per weight = file bytes × 8 / {params:,} (the parameters "
        f"of the model's safetensors), the same denominator for both tools. llama.cpp files use an imatrix and "
        f"sqllm files a Fisher, both from {args.calib_chunks} × {args.ctx} tokens of {args.calib_text.name}. "
        f"Regenerate: `{command}`",
        "",
    ]
    if name in MODEL_NOTES:
        lines += [MODEL_NOTES[name], ""]
    header = "| tool | type / recipe | size | bits/weight (file) | PPL | ratio |"
    rule = "|---|---|---|---|---|---|"
    if runtime:
        header += f" sqllm runtime PPL, {args.chunks} windows (ratio) |"
        rule += "---|"
    header += " made in (s) | fallback tensors |"
    rule += "---|---|"
    lines += [header, rule]
    for r in sorted(rows, key=lambda r: (r["tool"] != "llama.cpp", -r.get("bpw", 0))):
        if r.get("error"):
            lines.append(f"| {r['tool']} | {r['label']} | failed: {r['error'].replace('|', '/')} |" + " |" * (
                6 if runtime else 5))
            continue
        cells = [r["tool"], f"`{r['label']}`" if r["tool"] == "sqllm" else r["label"], f"{r['bytes'] / 2**20:.2f} MiB",
                 f"{r['bpw']:.3f}", f"{r['ppl']:.4f}", f"{r['ratio']:.3f}"]
        if runtime:
            rt = r.get("runtime_ppl")
            cells.append(f"{rt:.4f} ({rt / r['runtime_base']:.3f})" if rt and r.get("runtime_base") else "")
        cells += [f"{r['seconds']:.0f}" if r.get("seconds") else "", r.get("fallback", "")]
        lines.append("| " + " | ".join(cells) + " |")
    sq = [r for r in rows if r["tool"] == "sqllm" and "inspect_bpw" in r]
    if sq:
        lines += ["", "`sqconvert inspect` counts bits per weight over the .sqf's own weights: " + ", ".join(
            f"`{r['label']}` {r['inspect_bpw']:.3f} (linears {r['linears_bpw'] or 16:.3f})" for r in sq) + "."]
    lines += ["", "; ".join(notes) + ". \"fallback tensors\": tensors whose row length is not a multiple of the "
              "type's block, which llama-quantize stores in another type (printed in its log).",
              "", f"![ratio against bits per weight, both tools](compare_{name}.png)"]
    start, end = f"<!-- compare:{name} -->", f"<!-- /compare:{name} -->"
    block = f"{start}\n" + "\n".join(lines) + f"\n{end}"
    text = RESULTS.read_text()
    if start in text:
        text = re.sub(re.escape(start) + ".*?" + re.escape(end), lambda _: block, text, flags=re.S)
    else:
        section = f"\n### Quality per byte against llama.cpp: {name}\n\n{block}\n"
        at = text.find(SECTION_BEFORE)
        text = text + section if at < 0 else text[:at] + section + text[at:]
    RESULTS.write_text(text)
    plot(name, args, rows, ROOT / "docs" / f"compare_{name}.png")


def pareto(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """The points no other point beats on both size and ratio, by size."""
    front, best = [], math.inf
    for bpw, ratio in sorted(points):
        if ratio < best:
            front.append((bpw, ratio))
            best = ratio
    return front


def plot(name: str, args, rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    fig, ax = plt.subplots(figsize=(8, 5))
    colors = {"llama.cpp": "tab:blue", "sqllm": "tab:red"}
    for tool, color in colors.items():
        pts = [r for r in rows if r["tool"] == tool and "ratio" in r and r["ratio"] > 0 and r["bpw"] < 12]
        if not pts:
            continue
        ax.scatter([r["bpw"] for r in pts], [r["ratio"] for r in pts], color=color, label=tool, zorder=3)
        for r in pts:
            ax.annotate(r["label"], (r["bpw"], r["ratio"]), textcoords="offset points", xytext=(4, 4), fontsize=7,
                        color=color)
        ax.plot(*zip(*pareto([(r["bpw"], r["ratio"]) for r in pts])), color=color, alpha=0.6)
    ax.axhline(1.0, color="k", ls=":", label="unquantized (F32)")
    ax.set_xlabel("bits per weight (whole file / parameters)")
    ax.set_ylabel(f"perplexity ratio to F32 (llama-perplexity, {args.chunks} x {args.ctx})")
    ax.set_yscale("log")
    plain = matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}")
    ax.yaxis.set_major_formatter(plain)
    ax.yaxis.set_minor_formatter(plain)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    ax.set_title(f"{name}: quality per byte, llama.cpp and sqllm (lines: Pareto fronts)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def print_timings(work: Work) -> None:
    for step, seconds in work.state["timings"].items():
        print(f"[compare] timing: {step}: {seconds:.1f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
