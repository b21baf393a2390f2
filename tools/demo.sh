#!/usr/bin/env bash
# The meshd demo, in two parts.
#   One node: a counter and a sliding-window daemon, a stream of events, a
#   SIGKILL in the middle of it, a restart, and proof that every acknowledged
#   event is in the state exactly once.
#   Three nodes: a mesh joined with a PSK, placement by tag, label and node
#   id, mesh-wide listings, sends through a node that does not run the
#   daemon, a SIGKILLed node detected down (its daemons unavailable), and
#   its restart with its daemons' state intact.
#   tools/demo.sh                         builds in build/ (like tools/test.sh)
#   MESHD_BUILD_DIR=/tmp/b tools/demo.sh  builds somewhere else
# Everything it writes lives in a temp directory removed on exit, and every
# process it starts is stopped on exit, by its pid. It needs no input (CI
# runs it). tools/demo_meshseg.sh tours the offline log tool on its own.
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
# Let ccache share results between clones of the repo, as tools/test.sh does.
export CCACHE_BASEDIR="$root" CCACHE_NOHASHDIR=1
cmake -S "$root" -B "$build" >/dev/null
cmake --build "$build" --target meshd meshctl meshseg -j "$(nproc)"
meshd_bin="$build/tools/meshd/meshd"
meshctl_bin="$build/tools/meshctl/meshctl"
meshseg_bin="$build/tools/meshseg/meshseg"

built_at=$SECONDS

work="$(mktemp -d "${TMPDIR:-/tmp}/meshd-demo.XXXXXX")"
node_pid=""
# The mesh part's nodes: name -> pid (empty once stopped).
declare -A mesh_pid=()
# Stops one process we started: SIGTERM (SIGCONT first, in case it is
# stopped), then SIGKILL if it is still there after 15 s.
stop_pid() {
  local pid="$1"
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 0
  kill -CONT "$pid" 2>/dev/null || true
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 150); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}
cleanup() {
  stop_pid "$node_pid"
  for name in "${!mesh_pid[@]}"; do
    stop_pid "${mesh_pid[$name]}"
  done
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

# -- Part two: a mesh of three nodes ------------------------------------------

mesh_dir="$work/mesh"
mkdir -p "$mesh_dir"
mesh_psk="$mesh_dir/mesh.psk"
declare -A mesh_addr=()

# start_mesh_node NAME LISTEN [meshd flags...]: starts meshd with the mesh's
# PSK, its own data directory and log, waits until it listens; sets
# mesh_pid[NAME] and mesh_addr[NAME].
start_mesh_node() {
  local name="$1" listen="$2"
  shift 2
  local ready="$mesh_dir/$name.ready"
  rm -f "$ready"
  "$meshd_bin" --data-dir "$mesh_dir/$name" --listen "$listen" --psk-file "$mesh_psk" \
    --ready-file "$ready" "$@" >/dev/null 2>>"$mesh_dir/$name.log" &
  mesh_pid[$name]=$!
  for _ in $(seq 1 200); do
    [ -s "$ready" ] && break
    if ! kill -0 "${mesh_pid[$name]}" 2>/dev/null; then
      echo "meshd $name exited during start-up:" >&2
      cat "$mesh_dir/$name.log" >&2
      exit 1
    fi
    sleep 0.05
  done
  [ -s "$ready" ] || { echo "meshd $name did not become ready" >&2; exit 1; }
  mesh_addr[$name]="$(cat "$ready")"
  say "$name: pid ${mesh_pid[$name]}, listening on ${mesh_addr[$name]}${*:+, $*}"
}

# mctl NAME ARGS...: meshctl against node NAME.
mctl() {
  local name="$1"
  shift
  "$meshctl_bin" --node "${mesh_addr[$name]}" --psk-file "$mesh_psk" "$@"
}
# mshow NAME ARGS...: the same, printing the command first.
mshow() {
  local name="$1"
  shift
  printf '$ meshctl --node %s %s\n' "$name" "$*"
  mctl "$name" "$@"
}
# mfail NAME ARGS...: a command that is meant to fail: prints its error and
# exit code, and stops the demo if it succeeds.
mfail() {
  local name="$1" rc=0
  shift
  printf '$ meshctl --node %s %s\n' "$name" "$*"
  mctl "$name" "$@" || rc=$?
  if [ "$rc" -eq 0 ]; then
    printf '%sexpected this command to fail%s\n' "$red" "$off" >&2
    exit 1
  fi
  say "exit code $rc, as expected"
}

# state_of VIEWER NAME: NAME's state (up, suspect, down) as node VIEWER
# sees it; empty when VIEWER does not know it (or does not answer).
state_of() {
  mctl "$1" --json --timeout 2000 nodes 2>/dev/null \
    | grep -o "\"address\":\"${mesh_addr[$2]}\",\"state\":\"[a-z]*\"" \
    | cut -d'"' -f8 || true
}
# up_count VIEWER: how many nodes VIEWER sees up.
up_count() {
  mctl "$1" --json --timeout 2000 nodes 2>/dev/null | grep -o '"state":"up"' | wc -l || true
}
# node_id NAME: NAME's full node id (64 hex digits), as `nodes --json` has it.
node_id() {
  mctl "$1" --json nodes | grep -o "\"id\":\"[0-9a-f]*\",\"address\":\"${mesh_addr[$1]}\"" \
    | cut -d'"' -f4
}
now_ms() { echo $(($(date +%s%N) / 1000000)); }

section "10. A mesh of three nodes, joined with a PSK"
mesh_started=$SECONDS
show "$meshctl_bin" new-psk "$mesh_psk"
say "every node and client gets the same file; a peer without it is refused"
start_mesh_node a 127.0.0.1:0 --tag ssd
start_mesh_node b 127.0.0.1:0 --join "${mesh_addr[a]}" --label zone=eu
start_mesh_node c 127.0.0.1:0 --join "${mesh_addr[a]}"
say "b and c join through a; each learns of the other from a's gossip"
joined_from=$(now_ms)
deadline=$((SECONDS + 20))
for n in a b c; do
  until [ "$(up_count "$n")" -eq 3 ]; do
    if [ "$SECONDS" -gt "$deadline" ]; then
      echo "node $n does not see 3 nodes up after 20 s:" >&2
      mctl "$n" nodes >&2 || true
      exit 1
    fi
    sleep 0.1
  done
done
say "every node sees all three up, $(($(now_ms) - joined_from)) ms after the last one listened"
for n in a b c; do
  mshow "$n" nodes
done

section "11. Placement: by score, by requirement, on a named node"
say "no filter: the fewest daemons per core wins, so three land one per node"
mshow b deploy counter --count 3
say "--require tag=ssd: only a (started with --tag ssd) qualifies"
ssd_counter="$(mctl b deploy counter --require tag=ssd)"
printf '$ meshctl --node b deploy counter --require tag=ssd\n%s\n' "$ssd_counter"
say "--require label:zone=eu: only b (--label zone=eu)"
mshow a deploy window --require label:zone=eu
say "a requirement no node meets is refused, naming each node and why"
mfail a deploy counter --require tag=gpu
c_id="$(node_id c)"
say "--on takes a node id (c is ${c_id:0:12}..., from 'meshctl --json nodes')"
mshow a deploy echo --on "$c_id"
mfail a deploy echo --on "$c_id" --require tag=ssd

section "12. Every node lists every daemon in the mesh (NODE column)"
mshow c daemons

section "13. Any node routes: send to a's ssd counter through c"
say "meshctl's default: c answers 'moved' and meshctl re-asks a directly"
mshow c send "$ssd_counter" 5
say "--forward: c passes the request on to a (one hop) and relays the answer"
mshow c --forward send "$ssd_counter" 7

section "14. SIGKILL node a: detected down, its daemons unavailable"
printf '%s$ kill -9 %s   (node a)%s\n' "$red" "${mesh_pid[a]}" "$off"
killed_at=$(now_ms)
kill -9 "${mesh_pid[a]}"
wait "${mesh_pid[a]}" 2>/dev/null || true
mesh_pid[a]=""
detected=""
while [ "$(($(now_ms) - killed_at))" -lt 10000 ]; do
  if [ "$(state_of b a)" = down ]; then
    detected=$(($(now_ms) - killed_at))
    break
  fi
  sleep 0.05
done
if [ -z "$detected" ]; then
  echo "node a is not down on b 10 s after the SIGKILL" >&2
  mctl b nodes >&2 || true
  exit 1
fi
printf '%snode b reports a down %s ms after the SIGKILL%s (defaults: suspect after 1 s of silence, down after 2 s with no indirect probe reaching it)\n' \
  "$green" "$detected" "$off"
say "b's log: $(grep 'is down' "$mesh_dir/b.log" | tail -n 1 | cut -d' ' -f3-)"
mshow b nodes
mshow c daemons
mfail c send "$ssd_counter" 1

section "15. Restart a on the same data directory and port: up again, state intact"
start_mesh_node a "${mesh_addr[a]}" --tag ssd
restarted_at=$(now_ms)
say "a has no --join: b and c keep dialing a down node's address every second"
until [ "$(state_of b a)" = up ] && [ "$(state_of c a)" = up ]; do
  if [ "$(($(now_ms) - restarted_at))" -gt 10000 ]; then
    echo "node a is not up again on b and c 10 s after its restart" >&2
    mctl b nodes >&2 || true
    exit 1
  fi
  sleep 0.05
done
say "b and c see a up again $(($(now_ms) - restarted_at)) ms after it listens (a new incarnation)"
mshow b nodes
say "the counter held 5 + 7 = 12 before the SIGKILL; one more event through c:"
total="$(mctl c send "$ssd_counter" 1)"
printf '$ meshctl --node c send %s 1\n%s\n' "$ssd_counter" "$total"
if [ "$total" = 13 ]; then
  printf '%scounter total 13: the restarted node recovered its state%s\n' "$green" "$off"
else
  printf '%scounter total %s != 13%s\n' "$red" "$total" "$off"
  exit 1
fi
mshow c daemons

section "16. Clean shutdown of the mesh (SIGTERM)"
for n in a b c; do
  kill -TERM "${mesh_pid[$n]}"
done
for n in a b c; do
  rc=0
  wait "${mesh_pid[$n]}" || rc=$?
  mesh_pid[$n]=""
  say "meshd $n exited with $rc"
  [ "$rc" -eq 0 ] || exit 1
done

section "Done"
printf 'demo took %d s: %d s for the build, %d s single node, %d s mesh\n' \
  "$SECONDS" "$built_at" "$((mesh_started - built_at))" "$((SECONDS - mesh_started))"
say "tools/demo_meshseg.sh shows the log tool repairing a torn write"
say "docs/operations.md, \"Running a mesh\", explains every step of part two"
