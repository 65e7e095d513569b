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
        test-fuzz test-package wheels test-wheels test-py-wheel test-browser \
        bench demo demo-fleet format format-check clean

help:
	@echo "make demo    — the cpuledger story on this machine: a Django shop, a rollout, a flag"
	@echo "make test    — every test: C++ (plain and ASan+UBSan) and Python"
	@echo "make bench   — the benchmarks (figures beside their targets)"
	@echo "make build   — build/cpuledger and the Python package into .venv"
	@echo "make wheels  — wheels for CPython 3.11, 3.12, 3.13 and an sdist, into dist/"
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

test: build build-asan wheels
	@$(MAKE) --no-print-directory test-cpp test-asan test-fuzz test-wheels test-package test-py \
	  test-py-wheel test-browser

test-cpp:
	@cd $(BUILD) && ctest --output-on-failure -j $(JOBS) --timeout 300

test-asan:
	@cd $(ASAN) && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  ctest --output-on-failure -j $(JOBS) --timeout 600

# The record decoders under libFuzzer (clang, ASan+UBSan) for a bounded time.
test-fuzz:
	@scripts/fuzz $${FUZZ_SECONDS:-30}

# The dashboard (web/, bundled into build/cpuledger by `make build`) in
# Debian's Chromium driven by playwright-core, against a real server holding a
# simulated shop, and the demo story's two alert pages (its --short run, about
# 5 min); screenshots of every page in build/browser-screenshots/.
# Bounded: each test by --test-timeout, the whole run by timeout(1).
test-browser:
	@CPULEDGER=$(BUILD)/cpuledger SCREENSHOTS=$(BUILD)/browser-screenshots \
	  PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 timeout 1200 node --test --test-timeout=420000 tests/browser/*.test.mjs

# Self-contained wheels for each supported CPython (scripts/build-wheels): the
# cpuledger binary is built once, each interpreter compiles the native module.
wheels: bootstrap
	@scripts/build-wheels

# Each wheel in dist/ installed into a fresh venv on a minimal Debian root
# without the build's libraries: import, doctor, serve, one record, a profile.
test-wheels:
	@scripts/check-wheels

# The sdist in dist/ installed with pip into a fresh virtualenv, as a user
# with the build dependencies does.
test-package:
	@scripts/check-package

test-py:
	@PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(PY) -m pytest -q

# The Python suite again on CPython $(WHEEL_PY), against its wheel from dist/,
# in its own venv (.venv-$(WHEEL_PY)) with the pinned requirements; the demo's
# story (marker `story`, minutes of real load) runs once, in test-py.
WHEEL_PY ?= 3.13
test-py-wheel:
	@scripts/wheel-venv $(WHEEL_PY)
	@PATH="$(CURDIR)/.venv-$(WHEEL_PY)/bin:$$PATH" .venv-$(WHEEL_PY)/bin/python -m pytest -q -m "not story"

bench: build
	@$(BUILD)/bench/counters_bench --benchmark_min_time=0.2
	@$(BUILD)/bench/client_bench --benchmark_min_time=0.2
	@$(BUILD)/bench/store/store_bench
	@$(BUILD)/bench/store/store_compare_bench --cpuledger $(BUILD)/cpuledger
	@$(BUILD)/bench/ingest_bench $(BUILD)/cpuledger
	@$(PY) bench/ingest/profiled_ingest_bench.py --cpuledger $(BUILD)/cpuledger
	@$(PY) bench/ingest/slow_client_bench.py --cpuledger $(BUILD)/cpuledger
	@$(PY) bench/middleware/inprocess_bench.py
	@$(PY) bench/middleware/wrk_bench.py
	@$(PY) bench/profiler/overhead_bench.py
	@$(PY) bench/profiler/request_cost_bench.py
	@$(BUILD)/bench/detect/detect_bench --days 2
	@$(BUILD)/bench/detect/function_bench
	@node bench/dashboard/page_data_bench.mjs --cpuledger $(BUILD)/cpuledger
	@$(PY) bench/changepoints/changepoints_bench.py --cpuledger $(BUILD)/cpuledger

# The story on the demo Django shop (scripts/demo_story.py); DEMO_ARGS=--keep
# leaves the server and the shop running. demo-fleet: a simulated day of a
# three-service fleet through the ingest API, the second act.
demo: build
	@scripts/demo $(DEMO_ARGS)

demo-fleet: build
	@scripts/demo --fleet

format:
	@clang-format -i $$(git ls-files '*.cc' '*.h')

format-check:
	@clang-format --dry-run -Werror $$(git ls-files '*.cc' '*.h')

clean:
	rm -rf $(BUILD) $(ASAN)
