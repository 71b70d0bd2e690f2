# The two commands of the README: `make demo` and `make test`. Both set up .venv from scratch.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
JOBS ?= 2
DEPS_STAMP := $(VENV)/.deps-installed
BUILD_STAMP := $(VENV)/.sqllm-built
NATIVE_SOURCES := $(shell find cpp -name '*.cpp' -o -name '*.h' -o -name '*.inc') CMakeLists.txt pyproject.toml
# PCRE2, the regex engine of the tokenizer's Split / Replace patterns, from the system's packages.
PCRE2_HEADER := /usr/include/pcre2.h
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
DEMO_DIR := build/demo
PROMPT ?= Once upon a time
# Calibration text for the demo's Fisher (without it the demo converts with unweighted k-means).
CALIBRATION ?= ../shared/data/tinystories_train.txt

.PHONY: setup demo test test-python test-cpp test-asan test-tsan check-install check-c-install fuzz golden clean

setup: $(BUILD_STAMP)

$(PCRE2_HEADER):
	$(SUDO) apt-get install -y --no-install-recommends libpcre2-dev || \
	    { $(SUDO) apt-get update && $(SUDO) apt-get install -y --no-install-recommends libpcre2-dev; }

$(DEPS_STAMP): pyproject.toml $(PCRE2_HEADER)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet "scikit-build-core>=0.10" "pybind11>=2.12" ninja cmake
	$(BIN)/python -m pip install --quiet --no-build-isolation -e ".[torch,test,plot]"
	touch $@

$(BUILD_STAMP): $(DEPS_STAMP) $(NATIVE_SOURCES)
	$(BIN)/python -m pip install --quiet --no-build-isolation --no-deps -e .
	touch $@

demo: $(BUILD_STAMP)
	mkdir -p $(DEMO_DIR)
	if [ -f "$(CALIBRATION)" ]; then \
	    $(BIN)/sqconvert fisher models/stories260K --data $(CALIBRATION) -o $(DEMO_DIR)/fisher.safetensors \
	        --samples 32 --seq-len 256 --force && \
	    $(BIN)/sqconvert models/stories260K -o $(DEMO_DIR)/stories260K.sqf --fisher $(DEMO_DIR)/fisher.safetensors --force; \
	else \
	    $(BIN)/sqconvert models/stories260K -o $(DEMO_DIR)/stories260K.sqf --force; \
	fi
	$(BIN)/sqconvert inspect $(DEMO_DIR)/stories260K.sqf
	$(BIN)/sqrun $(DEMO_DIR)/stories260K.sqf --prompt "$(PROMPT)" -n 96 --seed 1

test: test-python test-cpp

test-python: $(BUILD_STAMP)
	$(BIN)/python -m pytest -q tests

test-cpp: $(DEPS_STAMP)
	$(BIN)/cmake -S . -B build/ctest -G Ninja -DCMAKE_BUILD_TYPE=Release -DSQLLM_TESTS=ON
	$(BIN)/cmake --build build/ctest -j $(JOBS)
	$(BIN)/ctest --test-dir build/ctest --output-on-failure -j $(JOBS)

# The C/C++ tests again under AddressSanitizer + UndefinedBehaviorSanitizer.
test-asan: $(DEPS_STAMP)
	$(BIN)/cmake -S . -B build/asan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSQLLM_TESTS=ON -DSQLLM_SANITIZE=ON
	$(BIN)/cmake --build build/asan -j $(JOBS)
	ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 $(BIN)/ctest --test-dir build/asan --output-on-failure -j $(JOBS)

# A normal (non-editable) install must import the same code as the editable one.
# The multi-context test (several contexts generating at once over one model) under ThreadSanitizer.
test-tsan: $(DEPS_STAMP)
	$(BIN)/cmake -S . -B build/tsan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSQLLM_TESTS=ON -DSQLLM_TSAN=ON -DSQLLM_INSTALL=OFF
	$(BIN)/cmake --build build/tsan -j $(JOBS) --target test_threads
	TSAN_OPTIONS=halt_on_error=1 $(BIN)/ctest --test-dir build/tsan --output-on-failure -R '^test_threads$$'

check-install: $(BUILD_STAMP)
	$(BIN)/python tools/check_install.py

# The C library as other projects get it: cmake --install, then examples/ built against the
# installed copy (find_package, shared and static; pkg-config) and run.
check-c-install: $(DEPS_STAMP)
	$(BIN)/cmake -S . -B build/ctest -G Ninja -DCMAKE_BUILD_TYPE=Release -DSQLLM_TESTS=ON
	$(BIN)/cmake --build build/ctest -j $(JOBS)
	CMAKE=$(BIN)/cmake JOBS=$(JOBS) tools/check_c_install.sh build/ctest

# Fuzzing (tests/fuzz): the libFuzzer targets built with clang, ASan and UBSan (clang and
# libFuzzer from the system packages, installed here when missing), and the atheris targets;
# FUZZ_SECONDS per target. A longer campaign: docs/RESULTS.md.
FUZZ_SECONDS ?= 60
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
fuzz: $(BUILD_STAMP)
	dpkg -s clang libclang-rt-dev > /dev/null 2>&1 || \
	    ($(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq --no-install-recommends clang libclang-rt-dev)
	$(BIN)/python -c "import atheris" 2> /dev/null || $(BIN)/python -m pip install --quiet atheris
	CC=clang CXX=clang++ $(BIN)/cmake -S . -B build/fuzz -G Ninja -DCMAKE_BUILD_TYPE=None \
	    "-DCMAKE_CXX_FLAGS=-O1 -gline-tables-only" "-DCMAKE_C_FLAGS=-O1 -gline-tables-only" \
	    -DSQLLM_FUZZ=ON -DSQLLM_SANITIZE=ON -DSQLLM_TESTS=OFF -DSQLLM_INSTALL=OFF
	$(BIN)/cmake --build build/fuzz -j $(JOBS)
	PYTHON=$(BIN)/python tools/run_fuzz.sh build/fuzz $(FUZZ_SECONDS)

golden: $(BUILD_STAMP)
	$(BIN)/python tools/make_golden.py

clean:
	rm -rf build $(VENV)
