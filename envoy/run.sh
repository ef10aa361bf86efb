#!/usr/bin/env bash
# Started by `make run`: Envoy + Tollgate on 127.0.0.1:10000.
# With OPENAI_API_KEY or ANTHROPIC_API_KEY in the environment it serves envoy/gateway.yaml
# (real providers over TLS); otherwise envoy/demo.yaml, or ENVOY_CONFIG if set, against the
# local mock provider. BUILD=native (`make run BUILD=native`) serves envoy/native.yaml, Tollgate's
# native build as an Envoy dynamic module, against the mock (or ENVOY_CONFIG if set).
set -euo pipefail
cd "$(dirname "$0")/.."
ENVOY_BIN=${ENVOY_BIN:-.venv/bin/envoy}
mkdir -p .run

cleanup() {
  [ -n "${MOCK_PID:-}" ] && kill "$MOCK_PID" 2>/dev/null || true
  [ -n "${NUDGE_PID:-}" ] && kill "$NUDGE_PID" 2>/dev/null || true
}
trap cleanup EXIT INT TERM

if [ "${BUILD:-wasm}" = native ]; then
  export ENVOY_DYNAMIC_MODULES_SEARCH_PATH=${ENVOY_DYNAMIC_MODULES_SEARCH_PATH:-$PWD/target/native}
  ENVOY_CONFIG=${ENVOY_CONFIG:-envoy/native.yaml}
fi

if [ -z "${ENVOY_CONFIG:-}" ] && [ -n "${OPENAI_API_KEY:-}${ANTHROPIC_API_KEY:-}" ]; then
  config=envoy/gateway.yaml
  model=$([ -n "${ANTHROPIC_API_KEY:-}" ] && echo claude-sonnet || echo gpt-4o-mini)
  echo "Real providers: keys found for $( [ -n "${OPENAI_API_KEY:-}" ] && echo -n 'OpenAI ')$( [ -n "${ANTHROPIC_API_KEY:-}" ] && echo -n 'Anthropic')"
else
  config=${ENVOY_CONFIG:-envoy/demo.yaml}
  model=claude-sonnet
  export OPENAI_API_KEY=test-openai-key ANTHROPIC_API_KEY=test-anthropic-key
  target/release/mock-provider --listen 127.0.0.1:8081 > .run/mock.log 2>&1 &
  MOCK_PID=$!
  echo "Demo mode: mock provider on 127.0.0.1:8081 (set OPENAI_API_KEY / ANTHROPIC_API_KEY for real providers)"
fi

# envoy/demo.yaml takes Tollgate's configuration from envoy/demo/tollgate.ecds.yaml by ECDS. Envoy's
# watch fires when a file is moved into envoy/demo (an atomic replace), not when an editor saves
# in place; so while the demo runs, a save is turned into such a move of a marker file.
if [ "$config" = envoy/demo.yaml ]; then
  (
    seen=$(stat -c %y envoy/demo/tollgate.ecds.yaml)
    while sleep 1; do
      now=$(stat -c %y envoy/demo/tollgate.ecds.yaml 2>/dev/null) || continue
      if [ "$now" != "$seen" ]; then
        seen=$now
        touch envoy/demo/.reload.new && mv -f envoy/demo/.reload.new envoy/demo/.reload
      fi
    done
  ) &
  NUDGE_PID=$!
  reload_hint="
Edit envoy/demo/tollgate.ecds.yaml (add a model, change a price) while it runs: the change applies
within seconds, without a restart (README, \"Configuration changes without a restart\").
"
fi

cat <<MSG

Tollgate is starting on http://127.0.0.1:10000 (Envoy admin: http://127.0.0.1:9901). Try:

  curl -s http://127.0.0.1:10000/v1/models
  curl -s http://127.0.0.1:10000/v1/chat/completions -H 'content-type: application/json' \\
    -d '{"model":"$model","messages":[{"role":"user","content":"Hello from Tollgate"}]}'

${reload_hint:-}
Ctrl-C stops it.
MSG
# Access-log entries are written as each request ends, not buffered for a second: a killed
# Envoy keeps every entry of an answered request (README, "Access log durability").
"$ENVOY_BIN" -c "$config" --disable-hot-restart --concurrency 2 -l warn --component-log-level wasm:info,dynamic_modules:info \
  --file-flush-min-size-kb 0 --file-flush-interval-msec 100
