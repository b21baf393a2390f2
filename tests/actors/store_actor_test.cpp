// Blocking disk I/O and heavy user work stay off the CAF scheduler: a large
// snapshot (taken, encoded, signed and written) and a slow user factory or
// restore run on the store actor's thread, so with ONE scheduler worker
// another daemon's deliveries are not held up by them.

#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>

#include "actors/runtime.hpp"
#include "base/errc.hpp"
#include "base/file_system.hpp"
#include "identity/keypair.hpp"
#include "persistence/node_store.hpp"
#include "snapshot/snapshot.hpp"
#include "support/temp_dir.hpp"
#include "test_daemons.hpp"

using namespace mesh;
using mesh::test::to_bytes;

namespace {

using clock_type = std::chrono::steady_clock;

/// Just below the largest snapshot a node accepts (the signed envelope and
/// the header fields need the rest).
constexpr size_t big_state_bytes = (64u << 20) - (64u << 10);

// What the other daemon's deliveries may see while the slow step runs. One
// delivery through the log takes about 10-25 us. But on a 2-core VM shared
// with other builds (load 9-10 while this was written) the OS runs other
// threads in between, and the store actor's thread takes a core while it
// encodes and signs 64 MiB: measured there, the worst delivery was 7-88 ms
// and the 99th percentile 0.03-16 ms. A step that runs on the scheduler
// thread instead stalls a delivery for all of its duration: the 64 MiB
// snapshot 0.3-1.8 s, the slow factory or restore 500 ms. The bounds sit
// between the two.
constexpr auto worst_bound = std::chrono::milliseconds{150};
constexpr auto p99_bound = std::chrono::milliseconds{25};

// The 64 MiB snapshot on a quiet machine (load < 1.5), 10 runs: worst
// delivery 1-4.5 ms, p99 0.02-0.05 ms, the snapshot 290-470 ms. It was
// 10.6-17.2 ms worst (the snapshot 600-850 ms) while the encoding copied the
// state six times: the store thread then freed several 64 MiB buffers in a
// row, each a munmap of ~5 ms holding the kernel's mmap lock, which stalled
// the other threads' page faults. On the scheduler thread the snapshot
// stalls a delivery for ~300 ms. A busy machine still preempts a delivery
// for tens of ms now and then (61 ms seen once in five runs beside one busy
// loop), so a measurement over the bound is taken again, up to big_attempts
// times: a stall the snapshot causes shows in every attempt.
constexpr auto big_worst_bound = std::chrono::milliseconds{25};
constexpr int big_attempts = 3;

/// Holds ~64 MiB of state; echoes its input.
class big_daemon : public test::echo_daemon {
public:
  big_daemon() : state_(big_state_bytes, 0x5a) {}
  std::string_view kind() const override {
    return "big";
  }
  std::optional<bytes> snapshot() const override {
    return state_;
  }
  caf::error restore(bytes_view state) override {
    state_ = state.to_bytes();
    return {};
  }

private:
  bytes state_;
};

/// A sum daemon whose factory or restore takes half a second.
constexpr auto slow_step = std::chrono::milliseconds{500};

class slow_restore_daemon : public test::sum_daemon {
public:
  std::string_view kind() const override {
    return "slow_restore";
  }
  caf::error restore(bytes_view state) override {
    std::this_thread::sleep_for(slow_step);
    return sum_daemon::restore(state);
  }
};

/// Fails renames into one directory of the data directory ("/daemons/",
/// "/snapshots/") while armed: the last step of every atomic file write.
class failing_dir_fs final : public forwarding_file_system {
public:
  explicit failing_dir_fs(std::string dir)
    : forwarding_file_system(real_file_system()), dir_(std::move(dir)) {}

  std::atomic<bool> armed{true};

  caf::error rename(const std::string& from, const std::string& to) override {
    if (armed && to.find(dir_) != std::string::npos)
      return make_error(errc::io_error, "injected failure of rename to " + to);
    return base_->rename(from, to);
  }

private:
  std::string dir_;
};

struct one_worker_node {
  test::temp_dir dir;
  caf::actor_system_config cfg;
  caf::actor_system sys{one_worker(cfg)};
  file_system* fs = nullptr;
  std::unique_ptr<runtime> rt;

  static caf::actor_system_config& one_worker(caf::actor_system_config& c) {
    apply_scheduler_defaults(c);
    c.set("scheduler.max-threads", size_t{1});
    return c;
  }

  explicit one_worker_node(file_system* f = nullptr) : fs(f) {
    start();
  }

  void start() {
    runtime_options o;
    o.data_dir = dir.path();
    o.fs = fs;
    o.snapshot_every_events = 0;
    // The delivering thread sleeps while it waits for an answer: spinning,
    // it would take a core from the worker and the store actor's thread.
    o.reply_spin = std::chrono::microseconds{0};
    rt = std::make_unique<runtime>(sys, std::move(o));
    REQUIRE(!rt->register_factory("sum", [] {
      return std::make_unique<test::sum_daemon>();
    }));
    REQUIRE(!rt->register_factory("big", [] {
      return std::make_unique<big_daemon>();
    }));
    REQUIRE(!rt->register_factory("slow_factory", [] {
      std::this_thread::sleep_for(slow_step);
      return std::make_unique<test::sum_daemon>();
    }));
    REQUIRE(!rt->register_factory("slow_restore", [] {
      return std::make_unique<slow_restore_daemon>();
    }));
    REQUIRE(!rt->start());
  }

  ~one_worker_node() {
    if (rt)
      CHECK(!rt->shutdown());
  }

  void restart() {
    REQUIRE(!rt->shutdown());
    rt.reset();
    start();
  }

  uint64_t spawn(const std::string& kind) {
    auto d = rt->spawn(kind);
    REQUIRE(d);
    return d->origin_hash;
  }

  /// Latencies of the deliveries made while something else ran.
  struct latency {
    std::vector<clock_type::duration> all;

    size_t deliveries() const {
      return all.size();
    }
    clock_type::duration worst() const {
      return all.empty() ? clock_type::duration{}
                         : *std::max_element(all.begin(), all.end());
    }
    clock_type::duration p99() const {
      if (all.empty())
        return {};
      auto sorted = all;
      auto at = std::min(sorted.size() - 1, sorted.size() * 99 / 100);
      std::nth_element(sorted.begin(), sorted.begin() + at, sorted.end());
      return sorted[at];
    }
  };

  /// Delivers small events to `origin` until `done`; the latency of each.
  latency deliver_until(uint64_t origin, const std::atomic<bool>& done) {
    latency l;
    l.all.reserve(1 << 16);
    while (!done.load()) {
      auto t0 = clock_type::now();
      auto r = rt->deliver(origin, {0, 0, to_bytes("1")});
      l.all.push_back(clock_type::now() - t0);
      REQUIRE(r);
    }
    return l;
  }

  /// Runs `slow` on a thread of its own while delivering to `origin`; the
  /// latencies, and how long `slow` took.
  template<class F>
  std::pair<latency, clock_type::duration> measure(uint64_t origin, F slow) {
    std::atomic<bool> done{false};
    clock_type::duration took{};
    std::thread runner{[&] {
      auto t0 = clock_type::now();
      slow();
      took = clock_type::now() - t0;
      done = true;
    }};
    auto l = deliver_until(origin, done);
    runner.join();
    return {std::move(l), took};
  }
};

double ms(clock_type::duration d) {
  return std::chrono::duration<double, std::milli>(d).count();
}

void check_latency(const char* what, const one_worker_node::latency& l,
                   clock_type::duration took,
                   clock_type::duration worst = worst_bound) {
  WARN(what << " took " << ms(took) << " ms; meanwhile " << l.deliveries()
            << " deliveries to another daemon, worst " << ms(l.worst())
            << " ms, p99 " << ms(l.p99()) << " ms");
  // Long enough for the measurement to mean something.
  CHECK(took > worst);
  CHECK(l.deliveries() > 10);
  CHECK(l.worst() < worst);
  CHECK(l.p99() < p99_bound);
}

} // namespace

TEST_CASE("with one scheduler worker, a 64 MiB snapshot does not delay "
          "another daemon's deliveries") {
  one_worker_node n;
  auto a = n.spawn("big");
  auto b = n.spawn("sum");
  // Warm up B's path (log attach, handle cache).
  for (int i = 0; i < 100; ++i)
    REQUIRE(n.rt->deliver(b, {0, 0, to_bytes("1")}));
  caf::expected<bytes> snap = bytes{};
  for (int attempt = 1;; ++attempt) {
    auto [l, took] = n.measure(b, [&] {
      snap = n.rt->snapshot(a);
    });
    REQUIRE(snap);
    CHECK(snap->size() > big_state_bytes);
    if (attempt < big_attempts && l.worst() >= big_worst_bound) {
      WARN("attempt " << attempt << ": worst " << ms(l.worst())
                      << " ms; measuring again");
      continue;
    }
    check_latency("a 64 MiB snapshot", l, took, big_worst_bound);
    break;
  }
  // It was written.
  node_store store{n.dir.path()};
  auto on_disk = store.load_snapshot(a);
  REQUIRE(on_disk);
  CHECK(*on_disk == *snap);
}

TEST_CASE("with one scheduler worker, a slow user factory does not delay "
          "another daemon's deliveries") {
  one_worker_node n;
  auto b = n.spawn("sum");
  for (int i = 0; i < 100; ++i)
    REQUIRE(n.rt->deliver(b, {0, 0, to_bytes("1")}));
  caf::expected<daemon_info> spawned = make_error(errc::timeout);
  auto [l, took] = n.measure(b, [&] {
    spawned = n.rt->spawn("slow_factory");
  });
  REQUIRE(spawned);
  CHECK(took >= slow_step);
  check_latency("a spawn with a slow factory", l, took);
  // The slow daemon serves.
  auto r = n.rt->deliver(spawned->origin_hash, {0, 0, to_bytes("4")});
  REQUIRE(r);
  CHECK(test::text(r->outputs[0].payload) == "4");
}

TEST_CASE("with one scheduler worker, a slow restore in spawn_from_snapshot "
          "does not delay another daemon's deliveries") {
  one_worker_node n;
  auto id = keypair::generate();
  auto first = n.rt->spawn("slow_restore", id);
  REQUIRE(first);
  REQUIRE(n.rt->deliver(first->origin_hash, {0, 0, to_bytes("6")}));
  auto snap = n.rt->snapshot(first->origin_hash);
  REQUIRE(snap);
  REQUIRE(!n.rt->stop(first->origin_hash));
  auto b = n.spawn("sum");
  for (int i = 0; i < 100; ++i)
    REQUIRE(n.rt->deliver(b, {0, 0, to_bytes("1")}));
  caf::expected<daemon_info> spawned = make_error(errc::timeout);
  auto [l, took] = n.measure(b, [&] {
    spawned = n.rt->spawn_from_snapshot(id, *snap);
  });
  REQUIRE(spawned);
  CHECK(took >= slow_step);
  check_latency("spawn_from_snapshot with a slow restore", l, took);
  auto r = n.rt->deliver(spawned->origin_hash, {0, 0, to_bytes("1")});
  REQUIRE(r);
  CHECK(test::text(r->outputs[0].payload) == "7");
}

TEST_CASE("with one scheduler worker, the rebuild after a rejected event "
          "(slow factory) does not delay another daemon's deliveries") {
  one_worker_node n;
  auto slow = n.spawn("slow_factory");
  REQUIRE(n.rt->deliver(slow, {0, 0, to_bytes("5")}));
  auto b = n.spawn("sum");
  for (int i = 0; i < 100; ++i)
    REQUIRE(n.rt->deliver(b, {0, 0, to_bytes("1")}));
  caf::expected<std::vector<delivery>> answers = make_error(errc::timeout);
  auto [l, took] = n.measure(b, [&] {
    answers = n.rt->deliver_batch(slow, {{0, 0, to_bytes("bad")},
                                         {0, 0, to_bytes("2")}});
  });
  REQUIRE(answers);
  REQUIRE(answers->size() == 2);
  // Rejected; the event after it was applied on the rebuilt daemon.
  CHECK((*answers)[0].state == delivery::status::rejected);
  CHECK((*answers)[1].state == delivery::status::applied);
  CHECK(test::text((*answers)[1].outputs[0].payload) == "7");
  CHECK(took >= slow_step);
  check_latency("a rebuild with a slow factory", l, took);
}

// -- failures of the store actor's writes -------------------------------------

TEST_CASE("a daemon record that cannot be written fails the spawn and leaves "
          "nothing behind") {
  failing_dir_fs fs{"/daemons/"};
  one_worker_node n{&fs};
  auto id = keypair::generate();
  auto first = n.rt->spawn("sum", id);
  REQUIRE(!first);
  CHECK(is(first.error(), errc::io_error));
  auto listed = n.rt->daemons();
  REQUIRE(listed);
  CHECK(listed->empty());
  // The identity is free again once the disk is.
  fs.armed = false;
  auto second = n.rt->spawn("sum", id);
  REQUIRE(second);
  REQUIRE(n.rt->deliver(second->origin_hash, {0, 0, to_bytes("3")}));
  n.restart();
  auto info = n.rt->info(second->origin_hash);
  REQUIRE(info);
  CHECK(info->last_seq == 1);
}

TEST_CASE("a snapshot that cannot be written fails its request; the daemon "
          "keeps serving and its final snapshot is written at shutdown") {
  failing_dir_fs fs{"/snapshots/"};
  one_worker_node n{&fs};
  auto d = n.spawn("sum");
  REQUIRE(n.rt->deliver(d, {0, 0, to_bytes("5")}));
  auto snap = n.rt->snapshot(d);
  REQUIRE(!snap);
  CHECK(is(snap.error(), errc::io_error));
  auto r = n.rt->deliver(d, {0, 0, to_bytes("2")});
  REQUIRE(r);
  CHECK(test::text(r->outputs[0].payload) == "7");
  fs.armed = false;
  REQUIRE(!n.rt->shutdown());
  node_store store{n.dir.path()};
  auto on_disk = store.load_snapshot(d);
  REQUIRE(on_disk);
  auto decoded = decode_snapshot(*on_disk);
  REQUIRE(decoded);
  CHECK(decoded->through_seq == 2);
  n.rt.reset();
}

TEST_CASE("a spawn whose factory still runs when shutdown starts is stopped "
          "by the shutdown, never left behind") {
  one_worker_node n;
  caf::expected<daemon_info> spawned = make_error(errc::timeout);
  std::thread spawner{[&] {
    spawned = n.rt->spawn("slow_factory");
  }};
  // The spawn reaches the supervisor and its factory sleeps meanwhile.
  std::this_thread::sleep_for(slow_step / 5);
  auto t0 = clock_type::now();
  REQUIRE(!n.rt->shutdown());
  spawner.join();
  // Accepted before the shutdown: it was built, recorded and started, and
  // the shutdown waited for it and stopped it.
  REQUIRE(spawned);
  CHECK(clock_type::now() - t0 >= slow_step / 2);
  n.rt.reset();
  n.start();
  auto listed = n.rt->daemons();
  REQUIRE(listed);
  REQUIRE(listed->size() == 1);
  CHECK(listed->front().origin_hash == spawned->origin_hash);
  CHECK(listed->front().phase == daemon_phase::running);
}

TEST_CASE("a stop still waiting for its daemon when shutdown starts removes "
          "the record before the store actor closes") {
  one_worker_node n;
  auto big = n.spawn("big");
  auto small = n.spawn("sum");
  REQUIRE(n.rt->deliver(small, {0, 0, to_bytes("1")}));
  auto pause = std::chrono::milliseconds{100};
  // The store actor is busy with the big snapshot; the small daemon's
  // snapshot queues behind it, and the small daemon's stop behind that.
  caf::expected<bytes> big_snap = bytes{};
  std::thread t1{[&] {
    big_snap = n.rt->snapshot(big);
  }};
  std::this_thread::sleep_for(pause);
  caf::expected<bytes> small_snap = bytes{};
  std::thread t2{[&] {
    small_snap = n.rt->snapshot(small);
  }};
  std::this_thread::sleep_for(pause);
  caf::error stopped = make_error(errc::timeout);
  std::thread t3{[&] {
    stopped = n.rt->stop(small);
  }};
  std::this_thread::sleep_for(pause);
  REQUIRE(!n.rt->shutdown());
  t1.join();
  t2.join();
  t3.join();
  CHECK(big_snap);
  CHECK(!stopped);
  n.rt.reset();
  n.start();
  auto listed = n.rt->daemons();
  REQUIRE(listed);
  REQUIRE(listed->size() == 1);
  CHECK(listed->front().origin_hash == big);
}
