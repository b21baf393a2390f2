// A shutdown killed while it writes the final snapshots of many daemons (one
// flush for all of them, DESIGN.md section 6) loses nothing: a child process
// runs a node with many daemons, each with a known total, and the parent
// SIGKILLs it at random moments of its shutdown. The next start must find
// every total, from the new snapshot or from the old one plus the log.

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
#include "test_node.hpp"

using namespace mesh;

namespace {

constexpr int daemons = 400;

keypair key_of(int i) {
  key_seed seed{};
  seed.fill(static_cast<uint8_t>(i % 251));
  seed[0] = static_cast<uint8_t>(i / 251);
  seed[1] = 0xd5;
  return keypair::from_seed(seed);
}

struct node {
  caf::actor_system_config cfg;
  caf::actor_system sys{apply_scheduler_defaults(cfg)};
  std::unique_ptr<runtime> rt;

  explicit node(const std::string& dir) {
    runtime_options opts;
    opts.data_dir = dir;
    opts.snapshot_every_events = 0;
    rt = std::make_unique<runtime>(sys, opts);
    if (rt->register_factory("sum", [] {
          return std::make_unique<test::sum_daemon>();
        }))
      ::_exit(11);
    if (rt->start())
      ::_exit(12);
  }
};

// Round r adds i + r to daemon i (spawning them in round 0), tells the
// parent it is about to shut down, then shuts down.
[[noreturn]] void child(const std::string& dir, int fd, int round) {
  {
    node n{dir};
    for (int i = 0; i < daemons; ++i) {
      auto key = key_of(i);
      if (round == 0 && !n.rt->spawn("sum", key))
        ::_exit(13);
      auto r = n.rt->deliver(key.origin_hash(),
                             {0, 0, test::to_bytes(std::to_string(i + round))});
      if (!r)
        ::_exit(14);
    }
    char c = 's';
    if (::write(fd, &c, 1) != 1)
      ::_exit(15);
    if (n.rt->shutdown())
      ::_exit(16);
  }
  ::_exit(0);
}

int64_t expected_total(int i, int rounds) {
  int64_t sum = 0;
  for (int r = 0; r < rounds; ++r)
    sum += i + r;
  return sum;
}

} // namespace

TEST_CASE("a node killed while it writes its shutdown snapshots loses "
          "nothing") {
  test::temp_dir tmp;
  auto seed = std::random_device{}();
  INFO("seed " << seed);
  std::mt19937 rng{seed};
  constexpr int rounds = 8;
  int killed_mid_shutdown = 0;
  for (int round = 0; round < rounds; ++round) {
    INFO("round " << round);
    int fds[2];
    REQUIRE(::pipe(fds) == 0);
    std::fflush(nullptr);
    auto pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      ::close(fds[0]);
      child(tmp.path(), fds[1], round);
    }
    ::close(fds[1]);
    char c = 0;
    REQUIRE(::read(fds[0], &c, 1) == 1);
    ::close(fds[0]);
    // Anywhere in a shutdown of a few tens of milliseconds, or just after.
    std::uniform_int_distribution<int> delay_us{0, 60000};
    std::this_thread::sleep_for(std::chrono::microseconds{delay_us(rng)});
    ::kill(pid, SIGKILL);
    int status = 0;
    ::waitpid(pid, &status, 0);
    if (WIFSIGNALED(status))
      ++killed_mid_shutdown;
    else
      REQUIRE(WEXITSTATUS(status) == 0);
  }
  // Some kills must have landed inside a shutdown, or this proved nothing.
  CHECK(killed_mid_shutdown >= rounds / 2);
  node n{tmp.path()};
  REQUIRE(n.rt->daemon_count() == daemons);
  for (int i = 0; i < daemons; ++i) {
    INFO("daemon " << i);
    CHECK(test::sum_total(*n.rt, key_of(i).origin_hash())
          == expected_total(i, rounds));
  }
}
