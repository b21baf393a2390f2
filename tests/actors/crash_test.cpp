// Crash recovery proved by killing: a child process runs a node with a data
// directory and streams events from one producer into a summing daemon,
// reporting every acknowledged producer_seq to the parent. The parent
// SIGKILLs it at random moments. The next child recovers, reports the
// recovered state, and continues from the daemon's high-water mark. Every
// acknowledged event must be in the state exactly once.

#include <catch2/catch.hpp>

#include <chrono>
#include <cstdio>
#include <random>
#include <thread>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>

#include "actors/runtime.hpp"
#include "identity/keypair.hpp"
#include "snapshot/snapshot.hpp"
#include "support/temp_dir.hpp"
#include "test_daemons.hpp"

using namespace mesh;

namespace {

constexpr uint64_t producer = 4242;

// Messages from child to parent: {kind, a, b}.
enum : uint64_t { msg_recovered = 1, msg_acked = 2 };

void report(int fd, uint64_t kind, uint64_t a, uint64_t b) {
  uint64_t buf[3] = {kind, a, b};
  if (::write(fd, buf, sizeof(buf)) != sizeof(buf))
    ::_exit(10);
}

keypair daemon_key() {
  key_seed seed{};
  seed.fill(7);
  return keypair::from_seed(seed);
}

[[noreturn]] void child(const std::string& dir, int fd, unsigned seed) {
  caf::actor_system_config cfg;
  mesh::apply_scheduler_defaults(cfg);
  caf::actor_system sys{cfg};
  runtime_options opts;
  opts.data_dir = dir;
  opts.snapshot_every_events = 97; // snapshots and replays both happen
  opts.compact_after = 300;        // and the log gets compacted
  runtime rt{sys, opts};
  if (rt.register_factory("sum", [] {
        return std::make_unique<test::sum_daemon>();
      }))
    ::_exit(11);
  if (rt.start())
    ::_exit(12);
  auto key = daemon_key();
  auto origin = key.origin_hash();
  if (rt.daemon_count() == 0 && !rt.spawn("sum", key))
    ::_exit(13);
  auto hwm = rt.high_water_mark(origin, producer);
  auto snap = rt.snapshot(origin);
  if (!hwm || !snap)
    ::_exit(14);
  auto decoded = decode_snapshot(*snap);
  if (!decoded || !decoded->state)
    ::_exit(15);
  report(fd, msg_recovered, *hwm, load_le64(decoded->state->data()));
  std::mt19937 rng{seed};
  std::uniform_int_distribution<int> batch{1, 20};
  uint64_t next = *hwm + 1;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds{20};
  while (std::chrono::steady_clock::now() < deadline) {
    std::vector<inbound_event> evs;
    int n = batch(rng);
    for (int i = 0; i < n; ++i, ++next)
      evs.push_back({producer, next, test::to_bytes(std::to_string(next))});
    auto r = rt.deliver_batch(origin, evs);
    if (!r)
      ::_exit(16);
    report(fd, msg_acked, next - 1, 0);
  }
  ::_exit(0);
}

struct round_result {
  bool recovered = false;
  uint64_t hwm = 0;
  uint64_t total = 0;
  uint64_t acked = 0;
  int status = 0;
};

round_result run_round(const std::string& dir, std::mt19937& rng, bool kill) {
  int fds[2];
  REQUIRE(::pipe(fds) == 0);
  auto seed = static_cast<unsigned>(rng());
  std::fflush(nullptr); // the child must not repeat buffered output
  auto pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    ::close(fds[0]);
    child(dir, fds[1], seed);
  }
  ::close(fds[1]);
  round_result res;
  uint64_t buf[3];
  // Wait for the recovered state before the kill timer starts.
  if (::read(fds[0], buf, sizeof(buf)) == sizeof(buf)
      && buf[0] == msg_recovered) {
    res.recovered = true;
    res.hwm = buf[1];
    res.total = buf[2];
  }
  if (kill) {
    std::uniform_int_distribution<int> delay_ms{5, 120};
    std::this_thread::sleep_for(std::chrono::milliseconds{delay_ms(rng)});
  }
  ::kill(pid, SIGKILL);
  while (::read(fds[0], buf, sizeof(buf)) == sizeof(buf))
    if (buf[0] == msg_acked)
      res.acked = std::max(res.acked, buf[1]);
  ::close(fds[0]);
  ::waitpid(pid, &res.status, 0);
  return res;
}

} // namespace

TEST_CASE(
  "a node killed with SIGKILL keeps every acknowledged event exactly once") {
  test::temp_dir tmp;
  auto seed = std::random_device{}();
  INFO("seed " << seed);
  std::mt19937 rng{seed};
  constexpr int rounds = 24;
  uint64_t acked = 0;
  uint64_t progressed = 0;
  for (int round = 0; round <= rounds; ++round) {
    INFO("round " << round);
    auto res = run_round(tmp.path(), rng, round < rounds);
    REQUIRE(res.recovered);
    // Nothing acknowledged is lost...
    CHECK(res.hwm >= acked);
    // ...and every applied event is in the state exactly once.
    CHECK(res.total == res.hwm * (res.hwm + 1) / 2);
    if (res.acked > acked)
      ++progressed;
    acked = std::max(acked, res.acked);
  }
  CHECK(progressed > rounds / 2);
}
