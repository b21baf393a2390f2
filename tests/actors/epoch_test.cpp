// Epochs: every life of a daemon identity on a node has its own epoch, and a
// crash never lets one life inherit another's logged events. The crash cases
// run the node in a child process and SIGKILL it (no shutdown, no final
// snapshot), then recover the data directory in this process.

#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <functional>
#include <thread>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/scoped_actor.hpp>
#include <xxhash.h>

#include "actors/daemon_core.hpp"
#include "actors/log_actor.hpp"
#include "actors/recovery.hpp"
#include "actors/runtime.hpp"
#include "base/file_system.hpp"
#include "identity/keypair.hpp"
#include "persistence/node_store.hpp"
#include "persistence/segment.hpp"
#include "snapshot/snapshot.hpp"
#include "support/log_capture.hpp"
#include "support/temp_dir.hpp"
#include "test_daemons.hpp"
#include "test_node.hpp"

using namespace mesh;

namespace {

keypair daemon_key() {
  key_seed seed{};
  seed.fill(0x3c);
  return keypair::from_seed(seed);
}

/// A sum daemon whose process() of the payload "hold" waits until the test
/// releases it, so that a stop of it waits too.
struct hold_gate {
  static inline std::atomic<bool> entered{false};
  static inline std::atomic<bool> released{false};
};

class holding_sum : public test::sum_daemon {
public:
  caf::expected<std::vector<bytes>> process(const causal_event& ev) override {
    if (test::text(ev.payload) == "hold") {
      hold_gate::entered = true;
      while (!hold_gate::released)
        std::this_thread::sleep_for(std::chrono::milliseconds{1});
    }
    return sum_daemon::process(ev);
  }
};

/// Polls `done` for up to ten seconds.
bool eventually(const std::function<bool()>& done) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds{10};
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline)
      return false;
    std::this_thread::sleep_for(std::chrono::milliseconds{2});
  }
  return true;
}

runtime_options crash_options(const std::string& dir) {
  runtime_options opts;
  opts.data_dir = dir;
  // No snapshot but the ones a test takes: recovery must replay the log.
  opts.snapshot_every_events = 0;
  return opts;
}

/// Runs `body` on a started node over `dir` in a child process, then
/// SIGKILLs the child once `body` returned true: nothing is shut down and no
/// final snapshot is written. False when the child failed first.
bool run_and_kill(const std::string& dir,
                  const std::function<bool(runtime&)>& body) {
  int fds[2];
  REQUIRE(::pipe(fds) == 0);
  std::fflush(nullptr); // the child must not repeat buffered output
  auto pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    ::close(fds[0]);
    caf::actor_system_config cfg;
    apply_scheduler_defaults(cfg);
    caf::actor_system sys{cfg};
    runtime rt{sys, crash_options(dir)};
    if (rt.register_factory("sum",
                            [] {
                              return std::make_unique<test::sum_daemon>();
                            })
        || rt.start())
      ::_exit(11);
    char ok = body(rt) ? 1 : 0;
    if (::write(fds[1], &ok, 1) != 1)
      ::_exit(12);
    // Wait for the kill.
    for (;;)
      ::pause();
  }
  ::close(fds[1]);
  char ok = 0;
  auto n = ::read(fds[0], &ok, 1);
  ::kill(pid, SIGKILL);
  ::close(fds[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  return n == 1 && ok == 1;
}

bool send_all(runtime& rt, uint64_t origin, int from, int to) {
  for (int i = from; i <= to; ++i)
    if (!rt.deliver(origin, {0, 0, test::to_bytes(std::to_string(i))}))
      return false;
  return true;
}

/// A node recovering `dir` in this process.
struct restarted_node {
  caf::actor_system_config cfg;
  caf::actor_system sys{apply_scheduler_defaults(cfg)};
  std::unique_ptr<runtime> rt;

  explicit restarted_node(const std::string& dir) {
    rt = std::make_unique<runtime>(sys, crash_options(dir));
    REQUIRE(!rt->register_factory("sum", [] {
      return std::make_unique<test::sum_daemon>();
    }));
    REQUIRE(!rt->start());
  }
};

} // namespace

TEST_CASE("a re-spawned identity killed with SIGKILL holds none of the "
          "previous life's events") {
  test::temp_dir dir;
  auto key = daemon_key();
  auto origin = key.origin_hash();
  bool ok = run_and_kill(dir.path(), [&key, origin](runtime& rt) {
    // Life 1: ten logged events (55), no snapshot.
    if (!rt.spawn("sum", key) || !send_all(rt, origin, 1, 10))
      return false;
    if (rt.stop(origin))
      return false;
    // Life 2: one event. Its daemon_seq restarts at 1.
    auto d = rt.spawn("sum", key);
    if (!d || d->epoch != 2)
      return false;
    auto r = rt.deliver(origin, {0, 0, test::to_bytes("100")});
    return r && r->daemon_seq == 1
           && test::text(r->outputs[0].payload) == "100";
  });
  REQUIRE(ok);
  restarted_node node{dir.path()};
  auto info = node.rt->info(origin);
  REQUIRE(info);
  CHECK(info->phase == daemon_phase::running);
  CHECK(info->epoch == 2);
  CHECK(info->last_seq == 1);
  CHECK(test::sum_total(*node.rt, origin) == 100);
}

TEST_CASE("spawn_from_snapshot with an older snapshot, SIGKILL, restart: "
          "exactly that snapshot plus the new life's events") {
  test::temp_dir dir;
  auto key = daemon_key();
  auto origin = key.origin_hash();
  bool ok = run_and_kill(dir.path(), [&key, origin](runtime& rt) {
    // Life 1: 1..5 (15), snapshot, then 6..8 (36) logged after it.
    if (!rt.spawn("sum", key) || !send_all(rt, origin, 1, 5))
      return false;
    auto snap = rt.snapshot(origin);
    if (!snap || !send_all(rt, origin, 6, 8) || rt.stop(origin))
      return false;
    // Life 2 from the snapshot at daemon_seq 5 (15), then one event: its
    // daemon_seq 6 is also one the previous life logged.
    auto d = rt.spawn_from_snapshot(key, *snap);
    if (!d || d->epoch != 2 || d->last_seq != 5)
      return false;
    auto r = rt.deliver(origin, {0, 0, test::to_bytes("100")});
    return r && r->daemon_seq == 6
           && test::text(r->outputs[0].payload) == "115";
  });
  REQUIRE(ok);
  restarted_node node{dir.path()};
  auto info = node.rt->info(origin);
  REQUIRE(info);
  CHECK(info->phase == daemon_phase::running);
  CHECK(info->epoch == 2);
  CHECK(info->last_seq == 6);
  CHECK(test::sum_total(*node.rt, origin) == 115);
  // Snapshots taken by the new life carry its epoch.
  auto s = node.rt->snapshot(origin);
  REQUIRE(s);
  auto decoded = decode_snapshot(*s);
  REQUIRE(decoded);
  CHECK(decoded->epoch == 2);
}

namespace {

/// A node whose scheduler has enough workers that the supervisor serves
/// while one of them is held inside a daemon's process().
struct wide_node {
  test::temp_dir dir;
  caf::actor_system_config cfg;
  caf::actor_system sys{wide(cfg)};
  std::unique_ptr<runtime> rt;

  static caf::actor_system_config& wide(caf::actor_system_config& c) {
    c.set("scheduler.max-threads", size_t{4});
    return c;
  }

  void start() {
    runtime_options o;
    o.data_dir = dir.path();
    rt = std::make_unique<runtime>(sys, o);
    REQUIRE(!rt->register_factory("hold", [] {
      return std::make_unique<holding_sum>();
    }));
    REQUIRE(!rt->start());
  }

  void restart() {
    REQUIRE(!rt->shutdown());
    rt.reset();
    start();
  }
};

} // namespace

TEST_CASE("a stop racing a re-spawn never deletes the new life's record") {
  wide_node node;
  node.start();
  auto key = daemon_key();
  auto origin = key.origin_hash();
  auto first = node.rt->spawn("hold", key);
  REQUIRE(first);
  REQUIRE(first->epoch == 1);
  hold_gate::entered = false;
  hold_gate::released = false;
  // The daemon is held inside process(), so the stop below waits for it
  // while the supervisor, which has already taken the daemon out of its
  // table, serves the re-spawn.
  std::thread busy([&node, origin] {
    (void)node.rt->deliver(origin, {0, 0, test::to_bytes("hold")});
  });
  REQUIRE(eventually([] {
    return hold_gate::entered.load();
  }));
  std::atomic<bool> stopped{false};
  caf::error stop_err;
  std::thread stopper([&node, origin, &stopped, &stop_err] {
    stop_err = node.rt->stop(origin);
    stopped = true;
  });
  // Refused (already_registered) until the supervisor has handled the stop.
  caf::expected<daemon_info> second = make_error(errc::not_found, "unset");
  bool spawned = eventually([&node, &key, &second] {
    second = node.rt->spawn("hold", key);
    return second || !is(second.error(), errc::already_registered);
  });
  // The race really happened: the new life exists before the old one's stop
  // finished.
  bool raced = !stopped.load();
  hold_gate::released = true;
  busy.join();
  stopper.join();
  REQUIRE(spawned);
  REQUIRE(raced);
  REQUIRE(second);
  CHECK(second->epoch == 2);
  CHECK(!stop_err);
  node_store store{node.dir.path()};
  auto rec = store.load_daemon(origin);
  REQUIRE(rec);
  CHECK(rec->epoch == 2);
  REQUIRE(node.rt->deliver(origin, {0, 0, test::to_bytes("7")}));
  node.restart();
  auto info = node.rt->info(origin);
  REQUIRE(info);
  CHECK(info->phase == daemon_phase::running);
  CHECK(info->epoch == 2);
  CHECK(test::sum_total(*node.rt, origin) == 7);
}

TEST_CASE("each new spawn of an identity gets the next epoch") {
  test::test_node node;
  auto key = daemon_key();
  auto origin = key.origin_hash();
  for (uint64_t epoch = 1; epoch <= 3; ++epoch) {
    auto d = node.rt->spawn("sum", key);
    REQUIRE(d);
    CHECK(d->epoch == epoch);
    CHECK(node.listed(origin).epoch == epoch);
    REQUIRE(!node.rt->stop(origin));
    // The tombstone outlives a restart.
    node.restart();
  }
  node_store store{node.dir.path()};
  auto file = store.load_daemon_file(origin);
  REQUIRE(file);
  CHECK(file->is_tombstone());
  CHECK(file->epoch() == 3);
}

namespace {

// The bytes of the formats written before epochs existed, so that the test
// does not depend on an old build: a version-1 daemon record, a version-1
// log entry (status alone in byte 40) and a snapshot without the epoch field
// (what encode_snapshot writes for epoch 0: canonical form drops the zero
// word).

bytes v1_record(const std::string& kind, const keypair& key) {
  bytes b{'M', 'S', 'H', 'R', 1, static_cast<uint8_t>(kind.size())};
  b.insert(b.end(), kind.begin(), kind.end());
  b.insert(b.end(), key.seed().begin(), key.seed().end());
  uint8_t sum[8];
  store_le64(sum, XXH3_64bits(b.data(), b.size()));
  b.insert(b.end(), sum, sum + 8);
  return b;
}

bytes v1_entry(uint64_t origin, uint64_t dseq, const std::string& payload) {
  bytes b(41);
  store_le64(b.data(), origin);
  store_le64(b.data() + 8, dseq);
  store_le64(b.data() + 32, 1'700'000'000'000'000'000 + dseq);
  b[40] = 0;
  b.insert(b.end(), payload.begin(), payload.end());
  return b;
}

bytes old_snapshot(const keypair& key, uint64_t through, uint64_t total) {
  snapshot snap;
  snap.daemon_kind = "sum";
  snap.id = key.id();
  snap.through_seq = through;
  snap.state = bytes(8);
  store_le64(snap.state->data(), total);
  snap.epoch = 0;
  auto enc = encode_snapshot(snap, key);
  REQUIRE(enc);
  auto body_root = load_le64(enc->data() + 32 + 8);
  // No fifth data word (the epoch), as before the field existed.
  REQUIRE(static_cast<uint16_t>(body_root >> 32) < 5);
  return *enc;
}

} // namespace

TEST_CASE("an old-format data directory opens and its daemons come back "
          "with epoch 1") {
  test::test_node node{{}, nullptr, false};
  auto key = daemon_key();
  auto origin = key.origin_hash();
  auto& fs = *real_file_system();
  auto dir = node.dir.path();
  REQUIRE(!fs.create_dir(dir + "/daemons"));
  REQUIRE(!fs.create_dir(dir + "/snapshots"));
  REQUIRE(!fs.write_new_file(dir + "/daemons/" + origin_file_name(origin),
                             v1_record("sum", key), 0600, file_sync::now));
  // Snapshot through daemon_seq 2 (total 3), then entries 1..4 in the log:
  // 1 and 2 are covered, 3 and 4 (3 + 4) are replayed.
  REQUIRE(!fs.write_new_file(dir + "/snapshots/" + origin_file_name(origin),
                             old_snapshot(key, 2, 3), 0600, file_sync::now));
  {
    segment_options so;
    auto seg = segment::open(dir + "/log", so);
    REQUIRE(seg);
    for (uint64_t i = 1; i <= 4; ++i)
      REQUIRE((*seg)->append(v1_entry(origin, i, std::to_string(i))));
    REQUIRE(!(*seg)->close());
  }
  node.start();
  auto info = node.listed(origin);
  CHECK(info.phase == daemon_phase::running);
  CHECK(info.epoch == 1);
  CHECK(info.last_seq == 4);
  CHECK(node.total(origin) == 10);
  // The life goes on in epoch 1 across a restart...
  REQUIRE(node.send(origin, "5"));
  node.restart();
  CHECK(node.listed(origin).epoch == 1);
  CHECK(node.total(origin) == 15);
  // ...and the next life is epoch 2, without the old entries.
  REQUIRE(!node.rt->stop(origin));
  auto d = node.rt->spawn("sum", key);
  REQUIRE(d);
  CHECK(d->epoch == 2);
  REQUIRE(node.send(origin, "1"));
  node.restart();
  CHECK(node.listed(origin).epoch == 2);
  CHECK(node.total(origin) == 1);
}

namespace {

bytes entry_bytes(uint64_t origin, uint64_t epoch, uint64_t dseq,
                  const std::string& payload) {
  log_entry e;
  e.origin_hash = origin;
  e.epoch = epoch;
  e.daemon_seq = dseq;
  e.received_at_ns = 1'700'000'000'000'000'000 + dseq;
  e.payload = test::to_bytes(payload);
  bytes out;
  encode_log_entry(e, out);
  return out;
}

} // namespace

TEST_CASE("recovery replays only the record's epoch; older entries do not "
          "hold compaction back, newer ones are counted and not applied") {
  test::temp_dir dir;
  auto store = std::make_shared<node_store>(dir.path());
  REQUIRE(!store->open());
  auto key = daemon_key();
  auto origin = key.origin_hash();
  REQUIRE(!store->save_daemon(origin, "sum", key, 2));
  segment_options so;
  auto seg = segment::open(store->log_dir(), so);
  REQUIRE(seg);
  for (auto& b :
       {entry_bytes(origin, 1, 1, "10"), entry_bytes(origin, 1, 2, "20"),
        entry_bytes(origin, 2, 1, "5"), entry_bytes(origin, 3, 1, "99"),
        entry_bytes(origin, 2, 2, "6")})
    REQUIRE((*seg)->append(b));
  recovery_context ctx;
  ctx.store = store;
  ctx.make =
    [](const std::string&) -> caf::expected<std::unique_ptr<mesh::daemon>> {
    return std::unique_ptr<mesh::daemon>{std::make_unique<test::sum_daemon>()};
  };
  auto node = recover_node(ctx, **seg, false);
  REQUIRE(node);
  REQUIRE(node->cores.size() == 1);
  auto& core = *node->cores.front();
  CHECK(!core.failed());
  CHECK(core.epoch() == 2);
  CHECK(core.last_seq() == 2);
  CHECK(node->replayed == 2);
  CHECK(node->older == 2);
  CHECK(node->newer == 1);
  // Only life 2's entries (log seqs 3 and 5) hold compaction back.
  using pending = std::tuple<uint64_t, uint64_t, uint64_t, uint64_t>;
  CHECK(node->pending
        == std::vector<pending>{{origin, 2, 1, 3}, {origin, 2, 2, 5}});
  auto snap = core.take_snapshot(snapshot_kind::local, 1);
  REQUIRE(snap);
  REQUIRE(snap->state);
  CHECK(load_le64(snap->state->data()) == 11);
  CHECK(snap->epoch == 2);
}

TEST_CASE("log entries claiming a newer epoch than the record are reported "
          "and not applied") {
  test::test_node node;
  auto origin = node.spawn();
  REQUIRE(node.send(origin, "1"));
  REQUIRE(node.send(origin, "2"));
  node.stop();
  {
    segment_options so;
    auto seg = segment::open(node.dir.path() + "/log", so);
    REQUIRE(seg);
    REQUIRE((*seg)->append(entry_bytes(origin, 5, 3, "100")));
    REQUIRE(!(*seg)->close());
  }
  test::log_capture logs;
  node.start();
  auto info = node.listed(origin);
  CHECK(info.phase == daemon_phase::running);
  CHECK(info.epoch == 1);
  CHECK(info.last_seq == 2);
  CHECK(node.total(origin) == 3);
  CHECK(logs.count("error", "claim a newer epoch (up to 5)") == 1);
}

TEST_CASE("the log actor checks contiguity and holds compaction per life") {
  test::temp_dir dir;
  caf::actor_system_config cfg;
  caf::actor_system sys{apply_scheduler_defaults(cfg)};
  segment_options so;
  auto seg = segment::open(dir.path() + "/log", so);
  REQUIRE(seg);
  log_actor_config lcfg;
  lcfg.seg = std::shared_ptr<segment>(std::move(*seg));
  lcfg.compact_after = 2;
  auto log = spawn_log_actor(sys, std::move(lcfg));
  caf::scoped_actor self{sys};
  constexpr uint64_t origin = 0xabc;
  auto append = [&](uint64_t epoch, uint64_t from, uint64_t to) {
    log_batch b;
    b.origin_hash = origin;
    for (auto dseq = from; dseq <= to; ++dseq) {
      log_entry head;
      head.origin_hash = origin;
      head.epoch = epoch;
      head.daemon_seq = dseq;
      b.add(head, bytes_view{test::to_bytes("x")});
    }
    caf::error err;
    self->request(log, caf::infinite, append_atom::value, std::move(b))
      .receive([](uint64_t) {},
               [&err](caf::error& e) {
                 err = std::move(e);
               });
    return err;
  };
  // Life 1 logs daemon_seq 1..3; life 2 restarts at 1 (refused if the log
  // still expected life 1's daemon_seq 4).
  CHECK(!append(1, 1, 3));
  CHECK(!append(2, 1, 2));
  // Within a life the check still holds.
  CHECK(append(2, 5, 5));
  // Life 1's stop arrives late: only its entries stop holding compaction
  // back (the log compacts them away), life 2's stay. The compaction runs
  // on the log's compaction thread; close waits for it.
  self->send(log, forget_atom::value, origin, uint64_t{1});
  self->request(log, caf::infinite, close_atom::value)
    .receive([](bool) {},
             [](caf::error& e) {
               FAIL(describe(e));
             });
  auto reopened = segment::open(dir.path() + "/log");
  REQUIRE(reopened);
  std::vector<log_entry> read;
  REQUIRE(!(*reopened)->for_each(0, [&read](const log_record& r) {
    auto e = decode_log_entry(r.payload);
    REQUIRE(e);
    read.push_back(std::move(*e));
    return true;
  }));
  REQUIRE(read.size() == 2);
  for (size_t i = 0; i < read.size(); ++i) {
    CHECK(read[i].epoch == 2);
    CHECK(read[i].daemon_seq == i + 1);
  }
}

namespace {

bytes sum_snapshot(const keypair& key, uint64_t epoch, uint64_t through,
                   uint64_t total) {
  snapshot snap;
  snap.daemon_kind = "sum";
  snap.id = key.id();
  snap.through_seq = through;
  snap.state = bytes(8);
  store_le64(snap.state->data(), total);
  snap.epoch = epoch;
  auto enc = encode_snapshot(snap, key);
  REQUIRE(enc);
  return *enc;
}

recovery_context sum_context(std::shared_ptr<node_store> store) {
  recovery_context ctx;
  ctx.store = std::move(store);
  ctx.make =
    [](const std::string&) -> caf::expected<std::unique_ptr<mesh::daemon>> {
    return std::unique_ptr<mesh::daemon>{std::make_unique<test::sum_daemon>()};
  };
  return ctx;
}

} // namespace

TEST_CASE("recovery ignores an earlier life's snapshot and refuses a newer "
          "one") {
  test::temp_dir dir;
  auto store = std::make_shared<node_store>(dir.path());
  REQUIRE(!store->open());
  auto key = daemon_key();
  auto origin = key.origin_hash();
  REQUIRE(!store->save_daemon(origin, "sum", key, 2));
  segment_options so;
  auto seg = segment::open(store->log_dir(), so);
  REQUIRE(seg);
  REQUIRE((*seg)->append(entry_bytes(origin, 2, 1, "5")));
  SECTION("a snapshot of epoch 1 belongs to the stopped life") {
    REQUIRE(!store->save_snapshot(origin, sum_snapshot(key, 1, 40, 1000)));
    auto node = recover_node(sum_context(store), **seg, false);
    REQUIRE(node);
    REQUIRE(node->cores.size() == 1);
    auto& core = *node->cores.front();
    CHECK(!core.failed());
    CHECK(core.last_seq() == 1);
    auto snap = core.take_snapshot(snapshot_kind::local, 1);
    REQUIRE(snap);
    CHECK(load_le64(snap->state->data()) == 5);
  }
  SECTION("a snapshot of epoch 3 was never written by this node") {
    REQUIRE(!store->save_snapshot(origin, sum_snapshot(key, 3, 0, 1000)));
    auto node = recover_node(sum_context(store), **seg, false);
    REQUIRE(node);
    REQUIRE(node->cores.size() == 1);
    auto& core = *node->cores.front();
    CHECK(core.failed());
    CHECK_THAT(core.failure(), Catch::Contains("snapshot claims epoch 3"));
  }
  SECTION("a snapshot of its own epoch is restored") {
    REQUIRE(!store->save_snapshot(origin, sum_snapshot(key, 2, 0, 1000)));
    auto node = recover_node(sum_context(store), **seg, false);
    REQUIRE(node);
    auto& core = *node->cores.front();
    CHECK(!core.failed());
    auto snap = core.take_snapshot(snapshot_kind::local, 1);
    REQUIRE(snap);
    CHECK(load_le64(snap->state->data()) == 1005);
  }
}

TEST_CASE("without a data directory the node still counts lives") {
  caf::actor_system_config cfg;
  caf::actor_system sys{apply_scheduler_defaults(cfg)};
  runtime rt{sys, runtime_options{}};
  REQUIRE(!rt.register_factory("sum", [] {
    return std::make_unique<test::sum_daemon>();
  }));
  REQUIRE(!rt.start());
  auto key = daemon_key();
  for (uint64_t epoch = 1; epoch <= 2; ++epoch) {
    auto d = rt.spawn("sum", key);
    REQUIRE(d);
    CHECK(d->epoch == epoch);
    auto info = rt.info(d->origin_hash);
    REQUIRE(info);
    CHECK(info->epoch == epoch);
    REQUIRE(!rt.stop(d->origin_hash));
  }
  REQUIRE(!rt.shutdown());
}
