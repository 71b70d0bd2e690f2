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
# New units go to the first corpus folder libFuzzer is given: build/fuzz/corpus/TARGET, never
# the seed folders of tests/fuzz.
run() {  # target, "seed folders", command...
    local target=$1 seeds=$2
    shift 2
    mkdir -p "build/fuzz/corpus/$target"
    # shellcheck disable=SC2086  # the seed folders are words
    if ! "$@" -max_total_time="$SECONDS_EACH" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
            -artifact_prefix="build/fuzz/artifacts/$target-" "build/fuzz/corpus/$target" $seeds \
            > "build/fuzz/$target.log" 2>&1; then
        tail -n 40 "build/fuzz/$target.log"
        echo "fuzz $target: FAILED (input in build/fuzz/artifacts/)"
        exit 1
    fi
    echo "fuzz $target: $(grep -o 'Done [0-9]* runs in [0-9]* second(s)' "build/fuzz/$target.log")"
}
for target in sqf_load tokenizer tokenizer_pipeline kv_sampler; do
    run "$target" "tests/fuzz/corpus/$target $(ls -d "tests/fuzz/crashers/$target" 2> /dev/null)" "$BUILD/fuzz_$target"
done
run inspect tests/fuzz/corpus/sqf_load "$PYTHON" tests/fuzz/fuzz_inspect.py
for target in safetensors_header chat_template; do
    run "$target" "tests/fuzz/corpus/$target" "$PYTHON" "tests/fuzz/fuzz_$target.py"
done
