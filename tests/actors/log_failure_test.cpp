// A failed write of the event log fails only its own batch: the daemon rolls
// back to what the log holds and keeps serving, no daemon_seq gap reaches the
// log, and a snapshot never covers an event the log has not acknowledged.
// Failures are injected through the file system the runtime is given.

#include <catch2/catch.hpp>

#include <atomic>
#include <thread>
#include <vector>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/scoped_actor.hpp>

#include "actors/daemon_actor.hpp"
#include "actors/daemon_core.hpp"
#include "actors/log_actor.hpp"
#include "actors/runtime.hpp"
#include "actors/store_actor.hpp"
#include "base/errc.hpp"
#include "identity/keypair.hpp"
#include "persistence/node_store.hpp"
#include "persistence/segment.hpp"
#include "snapshot/snapshot.hpp"
#include "support/marker_fs.hpp"
#include "support/temp_dir.hpp"
#include "test_daemons.hpp"
#include "test_node.hpp"

using namespace mesh;
using mesh::test::text;
using mesh::test::to_bytes;

namespace {

// Longer than an inline payload, so it lands in the dat file.
const std::string poison = "POISON-POISON";

struct node {
  test::temp_dir dir;
  test::marker_fs fs{poison};
  caf::actor_system_config cfg;
  caf::actor_system sys{apply_scheduler_defaults(cfg)};
  runtime_options opts;
  std::unique_ptr<runtime> rt;

  explicit node(fsync_policy policy = fsync_policy::every_n(1000)) {
    opts.fsync = policy;
    start();
  }

  void start() {
    auto o = opts;
    o.data_dir = dir.path();
    o.fs = &fs;
    rt = std::make_unique<runtime>(sys, std::move(o));
    REQUIRE(!rt->register_factory("sum", [] {
      return std::make_unique<test::sum_daemon>();
    }));
    REQUIRE(!rt->start());
  }

  void restart() {
    REQUIRE(!rt->shutdown());
    rt.reset();
    start();
  }

  uint64_t spawn() {
    auto d = rt->spawn("sum");
    REQUIRE(d);
    return d->origin_hash;
  }

  caf::expected<std::vector<delivery>>
  send(uint64_t origin, std::vector<std::string> payloads,
       uint64_t producer = 0, uint64_t first_seq = 0) {
    std::vector<inbound_event> evs;
    for (auto& p : payloads)
      evs.push_back({producer, producer ? first_seq++ : 0, to_bytes(p)});
    return rt->deliver_batch(origin, evs);
  }

  int64_t total(uint64_t origin) {
    return test::sum_total(*rt, origin);
  }
};

} // namespace

TEST_CASE("a failed log write fails only its batch; the daemon rolls back "
          "and keeps serving") {
  node n;
  auto id = n.spawn();
  auto first = n.send(id, {"5"});
  REQUIRE(first);
  auto bad = n.send(id, {"3", poison});
  REQUIRE(!bad);
  CHECK(is(bad.error(), errc::io_error));
  CHECK(n.fs.failures > 0);
  // The 3 was rolled back with its batch: the total continues from 5, and
  // the next event takes the first daemon_seq the log lacks.
  auto next = n.send(id, {"2"});
  REQUIRE(next);
  CHECK(text((*next)[0].outputs[0].payload) == "7");
  CHECK((*next)[0].daemon_seq == 2);
  // The output chain continues from the last output that left.
  CHECK((*next)[0].outputs[0].link.sequence
        == (*first)[0].outputs[0].link.sequence + 1);
  auto info = n.rt->info(id);
  REQUIRE(info);
  CHECK(info->state == "running");
  CHECK(info->last_seq == 2);
  // What is on disk agrees with memory.
  n.restart();
  CHECK(n.total(id) == 7);
  CHECK(n.rt->info(id)->last_seq == 2);
  CHECK(n.rt->info(id)->state == "running");
}

TEST_CASE("a failed batch rolls back dedup marks: the producer can resend") {
  node n;
  auto id = n.spawn();
  REQUIRE(n.send(id, {"1"}, 7, 1));
  REQUIRE(!n.send(id, {"10", poison}, 7, 2));
  n.fs.armed = false;
  auto again = n.send(id, {"10", "100"}, 7, 2);
  REQUIRE(again);
  CHECK((*again)[0].state == delivery::status::applied);
  CHECK((*again)[1].state == delivery::status::applied);
  CHECK(n.total(id) == 111);
  auto hwm = n.rt->high_water_mark(id, 7);
  REQUIRE(hwm);
  CHECK(*hwm == 3);
}

TEST_CASE("concurrent batches with failures never leave a gap in the log") {
  node n;
  auto id = n.spawn();
  std::atomic<int64_t> applied{0};
  std::vector<std::thread> senders;
  for (int t = 0; t < 4; ++t) {
    senders.emplace_back([&n, &applied, id, t] {
      for (int i = 0; i < 200; ++i) {
        std::vector<std::string> batch{"1", "2"};
        if ((i + t) % 7 == 0)
          batch.push_back(poison); // counts 1 if it were applied
        auto r = n.send(id, batch);
        if (r) {
          for (auto& d : *r)
            CHECK(d.state == delivery::status::applied);
          applied += static_cast<int64_t>(batch.size() == 3 ? 4 : 3);
        } else {
          CHECK(is(r.error(), errc::io_error));
        }
      }
    });
  }
  for (auto& s : senders)
    s.join();
  CHECK(n.fs.failures > 0);
  CHECK(n.total(id) == applied);
  n.restart();
  auto info = n.rt->info(id);
  REQUIRE(info);
  CHECK(info->state == "running");
  CHECK(n.total(id) == applied);
}

TEST_CASE("a failing batch of one daemon does not fail another daemon's "
          "batches in the same group commit") {
  node n;
  auto good = n.spawn();
  auto bad = n.spawn();
  std::atomic<int> good_failures{0};
  std::thread a([&] {
    for (int i = 0; i < 300; ++i)
      if (!n.send(good, {"1"}))
        ++good_failures;
  });
  std::thread b([&] {
    for (int i = 0; i < 300; ++i)
      (void)n.send(bad, {"1", poison});
  });
  a.join();
  b.join();
  CHECK(good_failures == 0);
  CHECK(n.total(good) == 300);
  CHECK(n.total(bad) == 0);
  n.restart();
  CHECK(n.total(good) == 300);
  CHECK(n.total(bad) == 0);
}

TEST_CASE("after a failed fsync the log refuses appends until the node "
          "restarts, and recovery settles what reached the disk") {
  node n{fsync_policy::every_n(1)};
  auto id = n.spawn();
  REQUIRE(n.send(id, {"5"}, 9, 1));
  n.fs.fail_sync = true;
  auto r = n.send(id, {"3"}, 9, 2);
  REQUIRE(!r);
  CHECK(is(r.error(), errc::io_error));
  n.fs.fail_sync = false;
  auto refused = n.send(id, {"2"}, 9, 3);
  REQUIRE(!refused);
  CHECK(describe(refused.error()).find("restart") != std::string::npos);
  // Memory never runs ahead of what the log acknowledged.
  CHECK(n.total(id) == 5);
  n.restart();
  // The unconfirmed 3 either reached the disk or not; a resend settles it
  // exactly once either way.
  auto resent = n.send(id, {"3", "2"}, 9, 2);
  REQUIRE(resent);
  CHECK(n.total(id) == 10);
}

// -- a snapshot waits for the log ---------------------------------------------

TEST_CASE("a snapshot requested while an append is in flight waits for it "
          "and never covers a batch whose append failed") {
  test::temp_dir dir;
  test::marker_fs fs{poison};
  caf::actor_system_config cfg;
  caf::actor_system sys{apply_scheduler_defaults(cfg)};
  auto store = std::make_shared<node_store>(dir.path(), &fs);
  REQUIRE(!store->open());
  segment_options so;
  so.fs = &fs;
  so.policy = fsync_policy::never();
  auto seg = segment::open(store->log_dir(), so);
  REQUIRE(seg);
  log_actor_config lcfg;
  lcfg.seg = std::shared_ptr<segment>(std::move(*seg));
  // Its own thread, so the daemon runs while the write is held.
  lcfg.sync_each_commit = true;
  auto log = spawn_log_actor(sys, std::move(lcfg));
  auto make = []() -> caf::expected<std::unique_ptr<mesh::daemon>> {
    return std::unique_ptr<mesh::daemon>{std::make_unique<test::sum_daemon>()};
  };
  daemon_actor_config dcfg;
  dcfg.core = std::make_shared<
    daemon_core>("sum", keypair::generate(), make,
                 std::make_unique<test::sum_daemon>(), restart_policy::once());
  dcfg.log = log;
  auto store_worker = spawn_store_actor(sys, {store, nullptr});
  dcfg.store = store_worker;
  dcfg.durable = true;
  auto origin = dcfg.core->origin();
  auto d = spawn_daemon_actor(sys, std::move(dcfg));
  caf::scoped_actor self{sys};
  auto ask = [&](const event_batch& evs) {
    caf::expected<delivery_batch> out = make_error(errc::timeout);
    self->request(d, caf::infinite, deliver_atom::value, evs)
      .receive(
        [&](delivery_batch& b) {
          out = std::move(b);
        },
        [&](caf::error& e) {
          out = std::move(e);
        });
    return out;
  };
  event_batch ok;
  ok.add(0, 0, to_bytes("5"));
  REQUIRE(ask(ok));

  fs.hold();
  event_batch bad;
  bad.add(0, 0, to_bytes("3"));
  bad.add(0, 0, to_bytes(poison));
  auto delivered = self->request(d, caf::infinite, deliver_atom::value, bad);
  auto snapshotted = self->request(d, caf::infinite, snapshot_atom::value);
  fs.wait_until_held();
  // Answered after the two requests above were taken (same sender, FIFO):
  // the snapshot request now waits for the held append.
  self->request(d, caf::infinite, stats_atom::value)
    .receive(
      [](daemon_stats& s) {
        CHECK(s.last_seq == 3);
      },
      [](caf::error& e) {
        FAIL(describe(e));
      });
  fs.release();
  bool deliver_failed = false;
  delivered.receive(
    [&](delivery_batch&) {
      FAIL("the held batch must fail");
    },
    [&](caf::error& e) {
      CHECK(is(e, errc::io_error));
      deliver_failed = true;
    });
  bytes snap_bytes;
  snapshotted.receive(
    [&](bytes& b) {
      snap_bytes = std::move(b);
    },
    [&](caf::error& e) {
      FAIL(describe(e));
    });
  CHECK(deliver_failed);
  REQUIRE(!snap_bytes.empty());
  auto snap = decode_snapshot(snap_bytes);
  REQUIRE(snap);
  CHECK(snap->through_seq == 1);
  CHECK(load_le64(snap->state->data()) == 5);
  auto on_disk = store->load_snapshot(origin);
  REQUIRE(on_disk);
  CHECK(decode_snapshot(*on_disk)->through_seq == 1);
  self->request(d, caf::infinite, stop_atom::value, false)
    .receive([](bool) {}, [](caf::error&) {});
  self->request(log, caf::infinite, close_atom::value)
    .receive([](bool) {}, [](caf::error&) {});
  self
    ->request(store_worker, caf::infinite, close_atom::value, final_snapshots{})
    .receive([](std::vector<std::string>&) {}, [](caf::error&) {});
}
