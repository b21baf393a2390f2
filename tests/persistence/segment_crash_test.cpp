// Crash safety proved by killing: a child process appends in a loop and
// reports every seq its fsyncs made durable; the parent SIGKILLs it at random
// moments (or, for compaction, at each of its steps while appends continue),
// reopens the log and checks it is a gap-free run holding every record the
// child reported as synced.

#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <mutex>
#include <random>
#include <thread>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/file_system.hpp"
#include "persistence/segment.hpp"
#include "support/temp_dir.hpp"

using namespace mesh;

namespace {

std::string payload_for(uint64_t seq) {
  if (seq % 4 == 0)
    return std::to_string(seq % 100000000); // inline: at most 8 bytes
  std::string p = "record-" + std::to_string(seq) + "-";
  p.append(seq % 50, static_cast<char>('a' + seq % 26));
  return p;
}

[[noreturn]] void child_loop(const std::string& dir, int report_fd) {
  segment_options opts;
  opts.policy = fsync_policy::every_n(100);
  auto seg = segment::open(dir, opts);
  if (!seg)
    ::_exit(2);
  uint64_t reported = 0;
  // Tell the parent recovery is done and the append loop starts now.
  const uint64_t ready = ~uint64_t{0};
  if (::write(report_fd, &ready, sizeof(ready)) != sizeof(ready))
    ::_exit(4);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds{20};
  for (uint64_t i = 0; std::chrono::steady_clock::now() < deadline; ++i) {
    auto next = (*seg)->next_seq();
    if (i % 7 == 0) {
      std::vector<std::string> storage;
      for (uint64_t k = 0; k < 10; ++k)
        storage.push_back(payload_for(next + k));
      std::vector<bytes_view> views(storage.begin(), storage.end());
      if (!(*seg)->append_batch(views))
        ::_exit(3);
    } else if (!(*seg)->append(bytes_view{payload_for(next)})) {
      ::_exit(3);
    }
    auto durable = (*seg)->durable_seq();
    if (durable > reported) {
      reported = durable;
      if (::write(report_fd, &reported, sizeof(reported)) != sizeof(reported))
        ::_exit(4);
    }
  }
  ::_exit(0);
}

} // namespace

TEST_CASE("a log killed with SIGKILL mid-append recovers a gap-free prefix "
          "with every synced record") {
  test::temp_dir tmp;
  auto dir = tmp / "log";
  auto seed = std::random_device{}();
  INFO("seed " << seed);
  std::mt19937 rng{seed};
  std::uniform_int_distribution<int> delay_us{500, 30000};
  constexpr int rounds = 60;
  uint64_t prev_records = 0;
  int rounds_with_new_records = 0;
  for (int round = 0; round < rounds; ++round) {
    int fds[2];
    REQUIRE(::pipe(fds) == 0);
    std::fflush(nullptr); // the child must not repeat buffered output
    auto pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      ::close(fds[0]);
      child_loop(dir, fds[1]);
    }
    ::close(fds[1]);
    uint64_t ready = 0;
    REQUIRE(::read(fds[0], &ready, sizeof(ready)) == sizeof(ready));
    REQUIRE(ready == ~uint64_t{0});
    std::this_thread::sleep_for(std::chrono::microseconds{delay_us(rng)});
    ::kill(pid, SIGKILL);
    int status = 0;
    ::waitpid(pid, &status, 0);
    INFO("round " << round);
    REQUIRE(WIFSIGNALED(status));
    uint64_t synced = 0;
    uint64_t v = 0;
    while (::read(fds[0], &v, sizeof(v)) == sizeof(v))
      synced = v;
    ::close(fds[0]);

    segment_options opts;
    opts.policy = fsync_policy::never();
    auto seg = segment::open(dir, opts);
    REQUIRE(seg);
    uint64_t expect = 1;
    bool ok = true;
    auto err = (*seg)->for_each(0, [&](const log_record& r) {
      if (r.seq != expect
          || std::string(r.payload.begin(), r.payload.end())
               != payload_for(r.seq)) {
        ok = false;
        return false;
      }
      ++expect;
      return true;
    });
    REQUIRE(!err);
    CHECK(ok);
    uint64_t records = expect - 1;
    CHECK(records >= synced);
    CHECK(records >= prev_records);
    if (records > prev_records)
      ++rounds_with_new_records;
    prev_records = records;
  }
  // The kills must actually have landed while the child was writing.
  CHECK(rounds_with_new_records > rounds * 3 / 4);
}

namespace {

// The child for the compaction crash test: an appender thread appends
// payload_for(seq) records and reports every durable seq, while the main
// thread compacts the log again and again; the on_step hook SIGKILLs the
// process at the `kill_at`-th passage of step `step_name`.
[[noreturn]] void compacting_child(const std::string& dir, int report_fd,
                                   const std::string& step_name, int kill_at) {
  segment_options opts;
  opts.policy = fsync_policy::every_n(50);
  std::atomic<int> passages{0};
  opts.on_step = [&](std::string_view s) {
    if (s == step_name && ++passages == kill_at)
      ::kill(::getpid(), SIGKILL);
  };
  auto seg = segment::open(dir, opts);
  if (!seg)
    ::_exit(2);
  std::atomic<uint64_t> reported{0};
  std::mutex report_mtx;
  auto report = [&](uint64_t v) {
    std::lock_guard<std::mutex> guard{report_mtx};
    if (v <= reported)
      return;
    reported = v;
    if (::write(report_fd, &v, sizeof(v)) != sizeof(v))
      ::_exit(4);
  };
  std::thread appender{[&] {
    for (;;) {
      auto next = (*seg)->next_seq();
      if (!(*seg)->append(bytes_view{payload_for(next)}))
        ::_exit(3);
      report((*seg)->durable_seq());
    }
  }};
  for (;;) {
    auto next = (*seg)->next_seq();
    auto res = (*seg)->compact(
      retention::before_seq(next > 600 ? next - 600 : 1));
    if (!res)
      ::_exit(5);
    // A compaction's flip makes everything up to its switch durable.
    report((*seg)->durable_seq());
  }
}

} // namespace

TEST_CASE("a log killed with SIGKILL at any step of a compaction while "
          "appends continue recovers a gap-free run with every synced "
          "record") {
  test::temp_dir tmp;
  auto dir = tmp / "log";
  {
    // Enough records that a compaction's bulk copy takes a while.
    auto seg = segment::open(dir);
    REQUIRE(seg);
    for (uint64_t s = 1; s <= 20000; ++s)
      REQUIRE((*seg)->append(bytes_view{payload_for(s)}));
  }
  const char* steps[] = {"generation_created",    "compaction_bulk_synced",
                         "compaction_caught_up",  "generation_written",
                         "generation_synced",     "generation_renamed",
                         "manifest_temp_written", "manifest_renamed",
                         "manifest_flipped"};
  uint64_t prev_last = 20000;
  for (auto step_name : steps) {
    for (int kill_at : {1, 3}) {
      int fds[2];
      REQUIRE(::pipe(fds) == 0);
      std::fflush(nullptr);
      auto pid = ::fork();
      REQUIRE(pid >= 0);
      if (pid == 0) {
        ::close(fds[0]);
        compacting_child(dir, fds[1], step_name, kill_at);
      }
      ::close(fds[1]);
      int status = 0;
      ::waitpid(pid, &status, 0);
      INFO("killed at passage " << kill_at << " of " << step_name);
      REQUIRE(WIFSIGNALED(status));
      CHECK(WTERMSIG(status) == SIGKILL);
      uint64_t synced = 0;
      uint64_t v = 0;
      while (::read(fds[0], &v, sizeof(v)) == sizeof(v))
        synced = v;
      ::close(fds[0]);

      segment_options opts;
      opts.policy = fsync_policy::never();
      auto seg = segment::open(dir, opts);
      REQUIRE(seg);
      uint64_t first = 0;
      uint64_t expect = 0;
      bool ok = true;
      auto err = (*seg)->for_each(0, [&](const log_record& r) {
        if (first == 0)
          first = expect = r.seq;
        if (r.seq != expect
            || std::string(r.payload.begin(), r.payload.end())
                 != payload_for(r.seq)) {
          ok = false;
          return false;
        }
        ++expect;
        return true;
      });
      REQUIRE(!err);
      CHECK(ok);
      uint64_t last = expect - 1;
      CHECK(last >= synced);
      CHECK(last >= prev_last);
      // Recovery leaves only the live generation and the manifest.
      auto names = real_file_system()->list_dir(dir);
      REQUIRE(names);
      CHECK(names->size() == 2);
      prev_last = last;
    }
  }
  // The appender kept going while the compactions ran.
  CHECK(prev_last > 20000);
}
