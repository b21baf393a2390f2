#!/usr/bin/env bash
# A guided tour of meshseg, the offline segment-log tool: write a log, read it,
# tear the last append the way a crash would, find the damage, repair it.
#   tools/demo_meshseg.sh                         builds in build/ (like tools/test.sh)
#   MESHD_BUILD_DIR=/tmp/b tools/demo_meshseg.sh  builds somewhere else
# Everything it writes lives in a temp directory that is removed on exit.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
build="${MESHD_BUILD_DIR:-$root/build}"

if [ -t 1 ]; then
  bold=$'\033[1m' dim=$'\033[2m' off=$'\033[0m'
else
  bold="" dim="" off=""
fi

section() { printf '\n%s== %s ==%s\n' "$bold" "$*" "$off"; }
say() { printf '%s# %s%s\n' "$dim" "$*" "$off"; }
# Quotes one argument for display the way a person would type it.
quote() {
  if [[ $1 =~ ^[A-Za-z0-9_./:=@%+,-]+$ ]]; then
    printf '%s' "$1"
  else
    printf "'%s'" "${1//\'/\'\\\'\'}"
  fi
}
# Prints a command, then runs it.
show() {
  local line='$' arg
  for arg in "$@"; do line+=" $(quote "$arg")"; done
  printf '%s\n' "$line"
  "$@"
}

section "1. Dependencies (tools/bootstrap.sh)"
bash "$root/tools/bootstrap.sh"

section "2. Build meshseg"
cmake -S "$root" -B "$build" >/dev/null
cmake --build "$build" --target meshseg -j "$(nproc)"
bin="$build/tools/meshseg/meshseg"
meshseg() { "$bin" "$@"; }

work="$(mktemp -d "${TMPDIR:-/tmp}/meshseg-demo.XXXXXX")"
trap 'rm -rf "$work"' EXIT
cd "$work"
say "working in $work (removed when the demo ends)"

section "3. Write a log"
say "append creates the log directory and prints the seqs it assigned."
show meshseg append log "deposit alice 100" "withdraw bob 20" "ok"
say "--hex appends raw bytes; --from-file appends one record per line."
show meshseg append --hex log 00ff10fe
printf 'transfer alice->carol 40\nclose account bob\n' >events.txt
show meshseg append log --from-file events.txt
say "A log directory: the manifest names the live generation v1/."
show ls -l log log/v1

section "4. Read it back"
show meshseg dump log
say "--json prints one JSON object per line, for scripts:"
show meshseg dump log --json
show meshseg verify log

section "5. Simulate a crash in the middle of an append"
say "An append writes dat, then idx, then ts; the log fsyncs per policy, so"
say "on power loss the kernel may have flushed some unsynced pages and not"
say "others. Suppose the machine died while seq 7 was being appended:"
say " - seq 7's payload reached dat only partly, 13 of the 32 bytes of its"
say "   idx record reached idx, and its timestamp never reached ts;"
say " - seq 6's idx and ts pages were flushed but dat got only 8 of its 17"
say "   payload bytes."
show meshseg append log "the seventh record, about to be torn"
show ls -l log/v1
say "Cutting the files back to that state:"
show truncate -s -$((36 + 9)) log/v1/dat
show truncate -s -19 log/v1/idx
show truncate -s -8 log/v1/ts
show ls -l log/v1
sha256sum log/manifest log/v1/* >"$work/before.sha256"

section "6. verify finds the damage (read-only)"
say "verify exits 1 and says what recovery would drop, and why."
rc=0
show meshseg verify log || rc=$?
printf 'exit code: %s\n' "$rc"
if [ "$rc" -ne 1 ]; then
  echo "demo: expected verify to exit 1 on a damaged log" >&2
  exit 1
fi
say "dump shows the records recovery would keep, and warns on stderr:"
show meshseg dump log
say "Neither command changed a byte:"
show sha256sum --quiet -c "$work/before.sha256" && echo "files unchanged"

section "7. Repair"
say "verify --repair runs the recovery: the torn tail is cut off and fsynced."
show meshseg verify --repair log
show meshseg verify log
show meshseg dump log
say "Appends continue after the surviving prefix; seqs 6 and 7 never became"
say "durable, so the next append is seq 6 again:"
show meshseg append log "after the repair"

section "8. Compact"
say "Retention drops the oldest records into a new generation (v2)."
show meshseg compact log --keep-last 3
show meshseg dump log
show ls log

section "Done"
say "Exit codes: 0 ok, 1 verify found damage, 2 bad usage or input. See docs/meshseg.md."
