"""The command lines as a newcomer meets them: versions, usage errors that name the flag and exit 2,
mistyped subcommands, sampling checked before anything is printed, context notes, broken pipes."""

import subprocess
import sys

import pytest

from conftest import ROOT, STORIES, sqconvert

MODEL = ROOT / "tests" / "data" / "stories260K-q4.sqf"


def sqrun(*args, **kw):
    return subprocess.run([sys.executable, "-m", "sqllm.runtime", *map(str, args)], capture_output=True, text=True, **kw)


def sqllm(*args):
    return subprocess.run([sys.executable, "-m", "sqllm.runtime.serve_cli", *map(str, args)], capture_output=True,
                          text=True)


def test_versions():
    from sqllm import __version__

    assert sqconvert("--version").stdout.strip() == f"sqconvert (sqllm) {__version__}"
    assert sqrun("--version").stdout.strip() == f"sqrun (sqllm) {__version__}"
    assert sqllm("--version").stdout.strip() == f"sqllm {__version__}"


def test_shell_completion_is_offered():
    for help_text in (sqconvert("--help").stdout, sqrun("--help").stdout, sqllm("--help").stdout):
        assert "--install-completion" in help_text


@pytest.mark.parametrize("word, hint", [("inpsect", "did you mean `sqconvert inspect`"),
                                        ("version", "`sqconvert --version`"),
                                        ("fishr", "did you mean `sqconvert fisher`")])
def test_a_mistyped_subcommand_is_named(word, hint, tmp_path):
    r = sqconvert(word, tmp_path / "f.sqf", check=False, cwd=tmp_path)
    assert r.returncode == 2 and hint in r.stderr and "Missing option" not in r.stderr


@pytest.mark.parametrize("flag, value", [("--method", "squeezlm"), ("--kmeans", "slow"), ("--rounding", "gtpq")])
def test_converter_choices_are_usage_errors(flag, value, tmp_path):
    r = sqconvert(STORIES, "-o", tmp_path / "x.sqf", flag, value, check=False)
    assert r.returncode == 2 and flag in r.stderr and not (tmp_path / "x.sqf").exists()
    assert "squeezellm" in sqconvert("convert", "--help").stdout  # the choices are listed


def test_fisher_help_keeps_its_brackets():
    assert "E[x^2]" in sqconvert("fisher", "--help").stdout


@pytest.mark.parametrize("flag", ["--keep", "--bits-for"])
def test_a_glob_that_matches_nothing_is_an_error(flag, tmp_path):
    value = "model.layer.*.mlp.*" if flag == "--keep" else "model.layer.*.mlp.*=4"
    r = sqconvert(STORIES, "-o", tmp_path / "x.sqf", flag, value, check=False)
    assert r.returncode == 1 and "matches no tensor" in r.stderr and not (tmp_path / "x.sqf").exists()


def test_the_summary_names_the_method_that_ran(tmp_path):
    r = sqconvert(STORIES, "-o", tmp_path / "x.sqf", "--bits", 4)
    assert "with kmeans 4-bit" in r.stderr and "falls back to unweighted k-means" in r.stderr
    assert sqconvert("inspect", tmp_path / "x.sqf", "--json").stdout.count('"kmeans"') >= 1


@pytest.mark.parametrize("args, flag", [(["-n", "-5"], "-n"), (["--kv-cache", "f8"], "--kv-cache"),
                                        (["--temp", "-1"], "--temp"), (["--top-p", "2"], "--top-p"),
                                        (["--top-p", "0"], "--top-p"), (["--kv-method", "int"], "--kv-method"),
                                        (["--kv-bits", "5"], "--kv-bits"), (["--repeat-penalty", "0"], "--repeat-penalty")])
def test_sampling_flags_are_checked_before_the_prompt_is_echoed(args, flag):
    r = sqrun(MODEL, "-p", "hi", *args)
    assert r.returncode == 2 and flag in r.stderr and r.stdout == "" and "Traceback" not in r.stderr


def test_context_notes():
    r = sqrun(MODEL, "-p", "Once upon a time", "--ctx-size", 8, "-n", 50, "--temp", 0)
    assert r.returncode == 0 and "the context of 8 tokens is full" in r.stderr
    r = sqrun(MODEL, "-p", "Once", "--ctx-size", 100000, "-n", 2)
    assert r.returncode == 0 and "longer than the 512 tokens" in r.stderr


def test_a_closed_pipe_ends_quietly():
    """`sqrun ... | head -c 5`: the reader is gone before sqrun writes (closed while it loads)."""
    proc = subprocess.Popen([sys.executable, "-m", "sqllm.runtime", str(MODEL), "-p", "Once upon a time", "-n", "400",
                             "--temp", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0 and b"Broken pipe" not in err and b"Traceback" not in err


def test_serve_refuses_a_bad_file(tmp_path):
    bad = tmp_path / "bad.sqf"
    bad.write_bytes(b"GGUF" + bytes(20))
    r = sqllm("serve", bad, "--port", 1)
    assert r.returncode == 1 and str(bad) in r.stderr and "Traceback" not in r.stderr


def test_int8_and_exact_exclude_each_other():
    for r in (sqrun(MODEL, "-p", "hi", "--int8", "--exact"), sqllm("serve", MODEL, "--int8", "--exact", "--port", 1)):
        assert r.returncode == 2 and "--exact" in r.stderr and r.stdout == "" and "Traceback" not in r.stderr
