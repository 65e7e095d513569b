# cpuledger front door. `make demo` and `make test` are all a fresh machine needs:
# both run scripts/bootstrap first (idempotent), then build.
.DEFAULT_GOAL := help
SHELL := /bin/bash

VENV   := .venv
PY     := $(VENV)/bin/python
BUILD  := build
ASAN   := build-asan
JOBS   ?= $(shell nproc)
CMAKE_FLAGS ?=

.PHONY: help bootstrap build build-cpp build-py build-asan test test-cpp test-asan test-py \
        test-fuzz test-package \
        bench demo format format-check clean

help:
	@echo "make demo    — the cpuledger story on this machine"
	@echo "make test    — every test: C++ (plain and ASan+UBSan) and Python"
	@echo "make bench   — the benchmarks (figures beside their targets)"
	@echo "make build   — build/cpuledger and the Python package into .venv"
	@echo "make format  — clang-format the C++"

bootstrap:
	@scripts/bootstrap

build: bootstrap build-cpp build-py

build-cpp:
	@cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo $(CMAKE_FLAGS) >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)

# The package as a user gets it: `pip install .` (scikit-build-core builds the
# native module and ships the cpuledger binary). No build isolation: the pinned
# build requirements are already in .venv, and build/py keeps it incremental.
build-py:
	@$(PY) -m pip install -q --no-build-isolation . 2>&1 | grep -v "^WARNING: Location" || true
	@$(PY) -c "import cpuledger" || { echo "cpuledger did not install" >&2; exit 1; }

build-asan:
	@cmake -S . -B $(ASAN) -G Ninja -DCMAKE_BUILD_TYPE=Debug -DCPULEDGER_SANITIZE=ON \
	       -DCPULEDGER_BENCH=OFF $(CMAKE_FLAGS) >/dev/null
	@cmake --build $(ASAN) -j $(JOBS)

test: build build-asan
	@$(MAKE) --no-print-directory test-cpp test-asan test-fuzz test-package test-py

test-cpp:
	@cd $(BUILD) && ctest --output-on-failure -j $(JOBS) --timeout 300

test-asan:
	@cd $(ASAN) && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  ctest --output-on-failure -j $(JOBS) --timeout 600

# The record decoders under libFuzzer (clang, ASan+UBSan) for a bounded time.
test-fuzz:
	@scripts/fuzz $${FUZZ_SECONDS:-30}

# `pip install .` into a fresh virtualenv, as a user does.
test-package:
	@scripts/check-package

test-py:
	@PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(PY) -m pytest -q

bench: build
	@$(BUILD)/bench/counters_bench --benchmark_min_time=0.2
	@$(BUILD)/bench/client_bench --benchmark_min_time=0.2
	@$(BUILD)/bench/store/store_bench
	@$(BUILD)/bench/ingest_bench $(BUILD)/cpuledger
	@$(PY) bench/ingest/profiled_ingest_bench.py --cpuledger $(BUILD)/cpuledger
	@$(PY) bench/ingest/slow_client_bench.py --cpuledger $(BUILD)/cpuledger
	@$(PY) bench/middleware/inprocess_bench.py
	@$(PY) bench/middleware/wrk_bench.py
	@$(PY) bench/profiler/overhead_bench.py
	@$(PY) bench/profiler/request_cost_bench.py
	@$(BUILD)/bench/detect/detect_bench --days 2

demo: build
	@scripts/demo

format:
	@clang-format -i $$(git ls-files '*.cc' '*.h')

format-check:
	@clang-format --dry-run -Werror $$(git ls-files '*.cc' '*.h')

clean:
	rm -rf $(BUILD) $(ASAN)
