#!/usr/bin/env bash
# make fuzz: each libFuzzer target of $1 (a SQLLM_FUZZ build) and each atheris target of
# tests/fuzz for $2 seconds, from the seeds of tests/fuzz/corpus and the crashers of
# tests/fuzz/crashers. A crash, hang (10 s), sanitizer report or uncaught Python exception fails
# the run and leaves the input in build/fuzz/artifacts; keep it as tests/fuzz/crashers/TARGET/NAME.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=$1
SECONDS_EACH=$2
PYTHON=${PYTHON:-.venv/bin/python}
mkdir -p build/fuzz/artifacts
run() {  # target, command...
    local target=$1
    shift
    mkdir -p "build/fuzz/corpus/$target"
    if ! "$@" -max_total_time="$SECONDS_EACH" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
            -artifact_prefix="build/fuzz/artifacts/$target-" "build/fuzz/corpus/$target" \
            > "build/fuzz/$target.log" 2>&1; then
        tail -n 40 "build/fuzz/$target.log"
        echo "fuzz $target: FAILED (input in build/fuzz/artifacts/)"
        exit 1
    fi
    echo "fuzz $target: $(grep -o 'Done [0-9]* runs in [0-9]* second(s)' "build/fuzz/$target.log")"
}
for target in sqf_load tokenizer tokenizer_pipeline kv_sampler; do
    run "$target" "$BUILD/fuzz_$target" "tests/fuzz/corpus/$target" $(ls -d "tests/fuzz/crashers/$target" 2> /dev/null)
done
run inspect "$PYTHON" tests/fuzz/fuzz_inspect.py tests/fuzz/corpus/sqf_load
for target in safetensors_header chat_template; do
    run "$target" "$PYTHON" "tests/fuzz/fuzz_$target.py" "tests/fuzz/corpus/$target"
done
