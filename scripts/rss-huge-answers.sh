#!/usr/bin/env bash
# One-off: the gateway's peak RSS (VmHWM) while a provider sends an 800 MiB non-streamed answer,
# and while it sends one 800 MiB SSE event that never ends, each on a fresh gateway process
# with the default limits. Not a CI test.
#
#   scripts/rss-huge-answers.sh [GATEWAY_BINARY] [MOCK_BINARY]
#
# Both default to the debug builds in target/debug (cargo build -p gatecast -p gatecast-mock).
set -euo pipefail
gateway=${1:-target/debug/gatecast}
mock=${2:-target/debug/gatecast-mock}
size=${SIZE:-838860800}
dir=$(mktemp -d)
mock_port=18391
gw_port=18392
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    rm -rf "$dir"
}
trap cleanup EXIT

"$mock" --listen "127.0.0.1:$mock_port" >"$dir/mock.log" 2>&1 &
pids+=($!)
cat >"$dir/gatecast.toml" <<TOML
[server]
listen = "127.0.0.1:$gw_port"

[store]
url = "sqlite://$dir/gatecast.db"

[providers.up]
kind = "openai"
base_url = "http://127.0.0.1:$mock_port/v1"

[[destinations]]
name = "file"
type = "file"
path = "$dir/traces.jsonl"
privacy_mode = false
TOML

wait_for() {
    for _ in $(seq 1 200); do
        curl -sf "$1" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    echo "no answer from $1" >&2
    return 1
}
wait_for "http://127.0.0.1:$mock_port/health"

hwm_kb() { awk '/VmHWM/ {print $2}' "/proc/$1/status"; }

run() {
    local label=$1 body=$2
    "$gateway" serve --config "$dir/gatecast.toml" >"$dir/gw.log" 2>&1 &
    local pid=$!
    pids+=("$pid")
    wait_for "http://127.0.0.1:$gw_port/health"
    local idle
    idle=$(hwm_kb "$pid")
    local started=$SECONDS
    local result status=0
    result=$(curl -s -o /dev/null -w '%{http_code}, %{size_download} B' --max-time 600 \
        -H 'content-type: application/json' -d "$body" \
        "http://127.0.0.1:$gw_port/v1/chat/completions") || status=$?
    [ "$status" = 0 ] || result="$result, broken (curl $status)"
    sleep 1
    local peak
    peak=$(hwm_kb "$pid")
    printf '%-40s client: %-34s VmHWM idle %6d MB, peak %6d MB (%ds)\n' \
        "$label" "$result" $((idle / 1024)) $((peak / 1024)) $((SECONDS - started))
    kill "$pid"
    wait "$pid" 2>/dev/null || true
}

run "800 MiB answer" \
    "{\"model\":\"up/m\",\"messages\":[{\"role\":\"user\",\"content\":\"#mock:answer_bytes=$size big\"}]}"
run "800 MiB unterminated event" \
    "{\"model\":\"up/m\",\"stream\":true,\"messages\":[{\"role\":\"user\",\"content\":\"#mock:event_bytes=$size big\"}]}"
run "800 MiB unterminated event, usage on" \
    "{\"model\":\"up/m\",\"stream\":true,\"stream_options\":{\"include_usage\":true},\"messages\":[{\"role\":\"user\",\"content\":\"#mock:event_bytes=$size big\"}]}"
