#!/usr/bin/env bash
# The meshd demo: one node, a counter and a sliding-window daemon, a stream of
# events, a SIGKILL in the middle of it, a restart, and proof that every
# acknowledged event is in the state exactly once.
#   tools/demo.sh                         builds in build/ (like tools/test.sh)
#   MESHD_BUILD_DIR=/tmp/b tools/demo.sh  builds somewhere else
# Everything it writes lives in a temp directory removed on exit, and every
# process it starts is stopped on exit. tools/demo_meshseg.sh tours the
# offline log tool on its own.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
build="${MESHD_BUILD_DIR:-$root/build}"
events="${MESHD_DEMO_EVENTS:-300000}"

if [ -t 1 ]; then
  bold=$'\033[1m' dim=$'\033[2m' green=$'\033[32m' red=$'\033[31m' off=$'\033[0m'
else
  bold="" dim="" green="" red="" off=""
fi
section() { printf '\n%s== %s ==%s\n' "$bold" "$*" "$off"; }
say() { printf '%s# %s%s\n' "$dim" "$*" "$off"; }
show() {
  printf '$ %s\n' "$*"
  "$@"
}

section "1. Dependencies and build"
bash "$root/tools/bootstrap.sh"
cmake -S "$root" -B "$build" >/dev/null
cmake --build "$build" --target meshd meshctl meshseg -j "$(nproc)"
meshd_bin="$build/tools/meshd/meshd"
meshctl_bin="$build/tools/meshctl/meshctl"
meshseg_bin="$build/tools/meshseg/meshseg"

work="$(mktemp -d "${TMPDIR:-/tmp}/meshd-demo.XXXXXX")"
node_pid=""
cleanup() {
  if [ -n "$node_pid" ] && kill -0 "$node_pid" 2>/dev/null; then
    kill -TERM "$node_pid" 2>/dev/null || true
    wait "$node_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT
say "working in $work (removed when the demo ends)"

# The mesh's pre-shared key: every connection proves it (and encrypts with
# it); meshctl's own key lives in the work directory too.
"$meshctl_bin" new-psk "$work/mesh.psk" >/dev/null
export MESHCTL_CLIENT_KEY="$work/client.key"

# start_node [HOST:PORT]: starts meshd in the background and waits until it
# listens; sets node_pid and addr.
start_node() {
  local listen="${1:-127.0.0.1:0}"
  rm -f "$work/ready"
  "$meshd_bin" --data-dir "$work/node" --listen "$listen" --psk-file "$work/mesh.psk" \
    --ready-file "$work/ready" --log-level warn >"$work/meshd.out" 2>>"$work/meshd.log" &
  node_pid=$!
  for _ in $(seq 1 200); do
    [ -s "$work/ready" ] && break
    if ! kill -0 "$node_pid" 2>/dev/null; then
      echo "meshd exited during start-up:" >&2
      cat "$work/meshd.log" >&2
      exit 1
    fi
    sleep 0.05
  done
  [ -s "$work/ready" ] || { echo "meshd did not become ready" >&2; exit 1; }
  addr="$(cat "$work/ready")"
  say "meshd pid $node_pid listening on $addr"
}
ctl() { "$meshctl_bin" --node "$addr" --psk-file "$work/mesh.psk" "$@"; }

section "2. Start a node"
start_node
show "$meshctl_bin" --node "$addr" --psk-file "$work/mesh.psk" kinds

section "3. Deploy a counter and a sliding window"
counter="$(ctl deploy counter)"
window="$(ctl deploy window)"
say "counter = $counter, window = $window"
show "$meshctl_bin" --node "$addr" --psk-file "$work/mesh.psk" daemons

section "4. Feed the window a few values"
for v in 10 20 30 40; do
  printf '%s -> ' "$v"
  ctl send "$window" "$v"
done

section "5. Stream $events events into the counter, then SIGKILL the node mid-stream"
seq 1 "$events" >"$work/numbers.txt"
expected=$((events * (events + 1) / 2))
say "line i carries the number i, so the exact total is $expected"
say "the producer id lives in $work/producer.nonce, so a re-run resumes exactly once"
set +e
"$meshctl_bin" --node "$addr" --psk-file "$work/mesh.psk" send "$counter" --from-file "$work/numbers.txt" \
  --producer-file "$work/producer.nonce" --progress-every 1 &
sender=$!
sleep 1.5
printf '%s$ kill -9 %s   (the node dies without any chance to clean up)%s\n' "$red" "$node_pid" "$off"
kill -9 "$node_pid"
wait "$node_pid" 2>/dev/null
wait "$sender"
sender_rc=$?
set -e
node_pid=""
say "meshctl exited with $sender_rc: it saw the node go away and said how far it got"

section "6. Restart the node on the same data directory and port"
start_node "$addr"
show "$meshctl_bin" --node "$addr" --psk-file "$work/mesh.psk" daemons

section "7. Re-run the very same send: applied lines come back as duplicates"
show "$meshctl_bin" --node "$addr" --psk-file "$work/mesh.psk" send "$counter" --from-file "$work/numbers.txt" \
  --producer-file "$work/producer.nonce"

section "8. Check: every event counted exactly once"
total="$(ctl send "$counter" 0)"
if [ "$total" = "$expected" ]; then
  printf '%scounter total %s == sum(1..%s) = %s: nothing lost, nothing doubled%s\n' \
    "$green" "$total" "$events" "$expected" "$off"
else
  printf '%scounter total %s != expected %s%s\n' "$red" "$total" "$expected" "$off"
  exit 1
fi
printf 'window after the crash, one more value 50 -> '
ctl send "$window" 50
show "$meshctl_bin" --node "$addr" --psk-file "$work/mesh.psk" stats "$counter"

section "9. Clean shutdown (SIGTERM) and a look at the node's event log"
kill -TERM "$node_pid"
wait "$node_pid"
say "meshd exited with $? after snapshotting every daemon"
node_pid=""
show "$meshseg_bin" verify "$work/node/log"

section "Done"
say "tools/demo_meshseg.sh shows the log tool repairing a torn write"
