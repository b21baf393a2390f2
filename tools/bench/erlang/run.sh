#!/usr/bin/env bash
# Compiles counter_bench.erl into a temporary directory and runs it with
# `erl -noshell`. Erlang is not a build or test dependency of meshd: install
# it by hand (apt-get install erlang-nox) to get the comparison rows.
#
#   tools/bench/erlang/run.sh [--seconds S] [--trials N]
#
# S = time budget per row (default 1.5), split over N timed runs (default 3).
# Prints "RESULT <row> <median events/s> <events> <seconds>" lines on stdout
# (runtime_bench parses them) and an INFO line.
set -euo pipefail

seconds=1.5
trials=3
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) seconds="${2:?--seconds needs a value}"; shift 2 ;;
    --trials) trials="${2:?--trials needs a value}"; shift 2 ;;
    -h|--help) sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "run.sh: unknown argument '$1'" >&2; exit 2 ;;
  esac
done

if ! command -v erl >/dev/null 2>&1 || ! command -v erlc >/dev/null 2>&1; then
  echo "Erlang: not installed (apt-get install erlang-nox)" >&2
  exit 127
fi

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
tmp="$(mktemp -d "${TMPDIR:-/tmp}/counter_bench.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT

erlc -o "$tmp" "$here/counter_bench.erl"
erl -noshell -pa "$tmp" -run counter_bench main "$seconds" "$trials"
