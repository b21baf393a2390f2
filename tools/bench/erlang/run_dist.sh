#!/usr/bin/env bash
# Runs dist_counter_bench: a gen_server counter on one BEAM node, cast to
# from another node over Erlang distribution on 127.0.0.1 (mesh_bench's
# Erlang row). Starts its own epmd on a free port (ERL_EPMD_PORT; the nodes
# never start or use a system-wide one) and stops everything it started.
# Erlang is not a build or test dependency of meshd: apt-get install
# erlang-nox to get the row.
#
#   tools/bench/erlang/run_dist.sh [--seconds S] [--trials N] [--events N]
#
# S = time budget (default 3), split over N timed runs (default 3); each run
# also stops after events/N events unless --events is 0 (the default).
# Prints "RESULT cast <median events/s> <events> <seconds>" and an INFO line
# on stdout (mesh_bench parses them).
set -euo pipefail

seconds=3
trials=3
events=0
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) seconds="${2:?--seconds needs a value}"; shift 2 ;;
    --trials) trials="${2:?--trials needs a value}"; shift 2 ;;
    --events) events="${2:?--events needs a value}"; shift 2 ;;
    -h|--help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "run_dist.sh: unknown argument '$1'" >&2; exit 2 ;;
  esac
done

for tool in erl erlc epmd; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "erlang: not installed (apt-get install erlang-nox)" >&2
    exit 127
  fi
done

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
tmp="$(mktemp -d "${TMPDIR:-/tmp}/dist_counter_bench.XXXXXX")"
epmd_pid=""
server_pid=""
cleanup() {
  # Only the processes this script started, by pid.
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null || true
  [ -n "$epmd_pid" ] && kill "$epmd_pid" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT

erlc -o "$tmp" "$here/dist_counter_bench.erl"

# A private epmd on a free port: try a few random ones (another epmd or
# service may hold one).
for _ in 1 2 3 4 5; do
  port=$(( 20000 + RANDOM % 30000 ))
  epmd -port "$port" >/dev/null 2>&1 &
  epmd_pid=$!
  for _ in $(seq 50); do
    if epmd -port "$port" -names >/dev/null 2>&1; then break; fi
    kill -0 "$epmd_pid" 2>/dev/null || break
    sleep 0.05
  done
  if kill -0 "$epmd_pid" 2>/dev/null \
      && epmd -port "$port" -names >/dev/null 2>&1; then
    break
  fi
  kill "$epmd_pid" 2>/dev/null || true
  wait "$epmd_pid" 2>/dev/null || true
  epmd_pid=""
done
if [ -z "$epmd_pid" ]; then
  echo "run_dist.sh: could not start epmd" >&2
  exit 1
fi
export ERL_EPMD_PORT="$port"

cookie="mesh_bench_$$_$RANDOM"
server="mb_server_$$@127.0.0.1"
client="mb_client_$$@127.0.0.1"
common=(-noshell -start_epmd false -setcookie "$cookie" -pa "$tmp")

erl "${common[@]}" -name "$server" -run dist_counter_bench serve </dev/null &
server_pid=$!
erl "${common[@]}" -name "$client" \
  -run dist_counter_bench main "$server" "$seconds" "$trials" "$events"
# The client stops the server node; give it a moment before cleanup kills it.
for _ in $(seq 40); do
  kill -0 "$server_pid" 2>/dev/null || break
  sleep 0.05
done
