#!/usr/bin/env bash
# Runs the official OpenAI Python and Node SDKs against a real gateway in front of the mock provider
# (spoken to as OpenAI, Anthropic and Azure OpenAI),
# and the official OpenAI and Anthropic Python SDKs straight against the mock's other dialects.
# Installs a pinned SDK into tests/sdk/.venv on first use.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cd "$root"

venv="$here/.venv"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$here/requirements.txt"

bin_dir="${CARGO_TARGET_DIR:-$root/target}/debug"
cargo build --quiet -p gatecast -p gatecast-mock --bins

free_port() { "$venv/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
work="$(mktemp -d)"
export SDK_MOCK_PORT="$(free_port)" SDK_GATEWAY_PORT="$(free_port)" SDK_TRACES="$work/traces.jsonl" SDK_WORK="$work"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

"$bin_dir/gatecast-mock" --listen "127.0.0.1:$SDK_MOCK_PORT" >"$work/mock.log" 2>&1 &
pids+=($!)
"$bin_dir/gatecast" serve --config "$here/gatecast.toml" >"$work/gateway.log" 2>&1 &
pids+=($!)

# A second gateway whose store holds a virtual key: the SDKs authenticate with it.
export SDK_KEYED_PORT="$(free_port)" SDK_KEYED_WORK="$work/keyed"
mkdir -p "$SDK_KEYED_WORK"
sed -e "s|\${SDK_GATEWAY_PORT}|\${SDK_KEYED_PORT}|" -e "s|\${SDK_WORK}|\${SDK_KEYED_WORK}|g" \
  -e "s|\${SDK_TRACES}|\${SDK_KEYED_WORK}/traces.jsonl|" \
  "$here/gatecast.toml" >"$work/keyed.toml"
SDK_VIRTUAL_KEY="$("$bin_dir/gatecast" keys create sdk-tests --create --config "$work/keyed.toml" 2>"$work/keys.log")" \
  || { echo "gatecast keys create failed:" >&2; cat "$work/keys.log" >&2; exit 1; }
export SDK_VIRTUAL_KEY
"$bin_dir/gatecast" serve --config "$work/keyed.toml" >"$work/keyed.log" 2>&1 &
pids+=($!)

for _ in $(seq 1 100); do
  if curl -fsS "http://127.0.0.1:$SDK_GATEWAY_PORT/health" >/dev/null 2>&1 && \
     curl -fsS "http://127.0.0.1:$SDK_KEYED_PORT/health" >/dev/null 2>&1 && \
     curl -fsS "http://127.0.0.1:$SDK_MOCK_PORT/health" >/dev/null 2>&1; then break; fi
  sleep 0.1
done

export GATECAST_URL="http://127.0.0.1:$SDK_GATEWAY_PORT/v1" MOCK_URL="http://127.0.0.1:$SDK_MOCK_PORT" \
  GATECAST_KEYED_URL="http://127.0.0.1:$SDK_KEYED_PORT/v1"
node_dir="$here/node"
(cd "$node_dir" && npm ci --no-audit --no-fund --silent)
status=0
"$venv/bin/python" -m pytest -q -p no:cacheprovider "$here/test_openai_sdk.py" "$here/test_mock_dialects.py" \
  "$here/test_openai_sdk_dialects.py" || status=1
(cd "$node_dir" && node --test test_openai_sdk.mjs test_openai_sdk_dialects.mjs) || status=1
if [ "$status" -ne 0 ]; then
  echo "--- gateway log"; tail -n 50 "$work/gateway.log"
  echo "--- mock log"; tail -n 20 "$work/mock.log"
  exit 1
fi
