// Durable runtime behaviour: restart from a data directory, replay of the
// event log on top of snapshots, rejected events skipped on replay, stop
// deleting state, log compaction behind snapshots.

#include <catch2/catch.hpp>

#include <atomic>
#include <thread>
#include <vector>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>

#include "actors/runtime.hpp"
#include "base/errc.hpp"
#include "identity/keypair.hpp"
#include "persistence/segment.hpp"
#include "snapshot/snapshot.hpp"
#include "support/temp_dir.hpp"
#include "test_daemons.hpp"
#include "test_node.hpp"

using namespace mesh;
using mesh::test::text;
using mesh::test::to_bytes;

namespace {

struct node {
  caf::actor_system_config cfg;
  caf::actor_system sys{mesh::apply_scheduler_defaults(cfg)};
  std::unique_ptr<runtime> rt;

  node(const std::string& dir, runtime_options opts = {}) {
    opts.data_dir = dir;
    rt = std::make_unique<runtime>(sys, std::move(opts));
    REQUIRE(!rt->register_factory("sum", [] {
      return std::make_unique<test::sum_daemon>();
    }));
    REQUIRE(!rt->start());
  }

  std::string send(uint64_t origin, const std::string& payload,
                   uint64_t producer = 0, uint64_t seq = 0) {
    auto r = rt->deliver(origin, {producer, seq, to_bytes(payload)});
    REQUIRE(r);
    REQUIRE(r->outputs.size() == 1);
    return text(r->outputs[0].payload);
  }

  /// Current total of a sum daemon, read through a snapshot.
  int64_t total(uint64_t origin) {
    return test::sum_total(*rt, origin);
  }
};

runtime_options no_auto_snapshots() {
  runtime_options o;
  o.snapshot_every_events = 0;
  return o;
}

} // namespace

TEST_CASE(
  "a clean shutdown and restart bring every daemon back with its state") {
  test::temp_dir tmp;
  uint64_t a = 0;
  uint64_t b = 0;
  {
    node n{tmp.path()};
    a = n.rt->spawn("sum")->origin_hash;
    b = n.rt->spawn("sum")->origin_hash;
    n.send(a, "5");
    n.send(b, "7");
    n.send(b, "7");
  }
  node n{tmp.path()};
  CHECK(n.rt->daemon_count() == 2);
  CHECK(n.send(a, "1") == "6");
  CHECK(n.send(b, "1") == "15");
}

TEST_CASE("events after the last snapshot are replayed from the log") {
  test::temp_dir tmp;
  auto opts = no_auto_snapshots();
  opts.snapshot_on_shutdown = false;
  uint64_t id = 0;
  {
    node n{tmp.path(), opts};
    id = n.rt->spawn("sum")->origin_hash;
    n.send(id, "100", 5, 1);
    REQUIRE(n.rt->snapshot(id));
    n.send(id, "20", 5, 2);
    n.send(id, "3", 5, 3);
  }
  node n{tmp.path(), opts};
  CHECK(n.rt->info(id)->last_seq == 3);
  CHECK(n.send(id, "1", 5, 4) == "124");
}

TEST_CASE("a rejected event is skipped on replay but keeps its seq") {
  test::temp_dir tmp;
  auto opts = no_auto_snapshots();
  opts.snapshot_on_shutdown = false;
  uint64_t id = 0;
  {
    node n{tmp.path(), opts};
    id = n.rt->spawn("sum")->origin_hash;
    n.send(id, "10", 5, 1);
    REQUIRE(!n.rt->deliver(id, {5, 2, to_bytes("bad")}));
    n.send(id, "1", 5, 3);
  }
  node n{tmp.path(), opts};
  auto info = n.rt->info(id);
  REQUIRE(info);
  CHECK(info->last_seq == 3);
  CHECK(n.send(id, "1", 5, 4) == "12");
  auto dup = n.rt->deliver(id, {5, 2, to_bytes("bad")});
  REQUIRE(dup);
  CHECK(dup->state == delivery::status::duplicate);
}

TEST_CASE("stop deletes the daemon's durable state") {
  test::temp_dir tmp;
  uint64_t id = 0;
  {
    node n{tmp.path()};
    id = n.rt->spawn("sum")->origin_hash;
    n.send(id, "1");
    REQUIRE(!n.rt->stop(id));
  }
  node n{tmp.path()};
  CHECK(n.rt->daemon_count() == 0);
  CHECK(is(n.rt->deliver(id, {0, 0, to_bytes("1")}).error(),
           errc::daemon_not_found));
}

TEST_CASE("dedup marks survive a restart") {
  test::temp_dir tmp;
  uint64_t id = 0;
  {
    node n{tmp.path()};
    id = n.rt->spawn("sum")->origin_hash;
    n.send(id, "2", 77, 1);
    n.send(id, "2", 77, 2);
  }
  node n{tmp.path()};
  auto hwm = n.rt->high_water_mark(id, 77);
  REQUIRE(hwm);
  CHECK(*hwm == 2);
  auto dup = n.rt->deliver(id, {77, 2, to_bytes("2")});
  REQUIRE(dup);
  CHECK(dup->state == delivery::status::duplicate);
  CHECK(n.send(id, "2", 77, 3) == "6");
}

TEST_CASE("the output chain continues across a restart") {
  test::temp_dir tmp;
  uint64_t id = 0;
  causal_link last;
  bytes last_payload;
  {
    node n{tmp.path()};
    id = n.rt->spawn("sum")->origin_hash;
    n.send(id, "1");
    auto r = n.rt->deliver(id, {0, 0, to_bytes("1")});
    REQUIRE(r);
    last = r->outputs[0].link;
    last_payload = r->outputs[0].payload;
  }
  node n{tmp.path()};
  auto r = n.rt->deliver(id, {0, 0, to_bytes("1")});
  REQUIRE(r);
  CHECK(follows(last, last_payload, r->outputs[0].link));
}

TEST_CASE(
  "the log is compacted once every daemon's snapshot has passed its head") {
  test::temp_dir tmp;
  runtime_options opts;
  opts.snapshot_every_events = 20;
  opts.compact_after = 50;
  uint64_t id = 0;
  {
    node n{tmp.path(), opts};
    id = n.rt->spawn("sum")->origin_hash;
    std::vector<inbound_event> evs;
    for (int i = 0; i < 10; ++i)
      evs.push_back({0, 0, to_bytes("1")});
    for (int round = 0; round < 30; ++round)
      REQUIRE(n.rt->deliver_batch(id, evs));
  }
  // 300 events were logged; compaction dropped most of them.
  auto rep = segment::inspect(tmp / "log");
  REQUIRE(rep);
  CHECK(rep->kept_records < 200);
  CHECK(rep->generation > 1);
  node n{tmp.path(), opts};
  CHECK(n.send(id, "1") == "301");
}

TEST_CASE("the node's producer id is stable across restarts") {
  test::temp_dir tmp;
  uint64_t first = 0;
  {
    node n{tmp.path()};
    auto id = n.rt->producer_id();
    REQUIRE(id);
    CHECK(*id != 0);
    CHECK(*n.rt->producer_id() == *id);
    first = *id;
  }
  node n{tmp.path()};
  CHECK(*n.rt->producer_id() == first);
}

TEST_CASE("a damaged producer nonce file is reported, not replaced") {
  test::temp_dir tmp;
  {
    node n{tmp.path()};
    REQUIRE(n.rt->producer_id());
  }
  {
    FILE* f = std::fopen((tmp / "producer.nonce").c_str(), "wb");
    REQUIRE(f);
    std::fputs("garbage!!!", f);
    std::fclose(f);
  }
  node n{tmp.path()};
  auto id = n.rt->producer_id();
  REQUIRE(!id);
  CHECK(describe(id.error()).find("producer.nonce") != std::string::npos);
}

TEST_CASE("under every_n:1 concurrent daemons share commits and every event "
          "comes back") {
  // every_n:1 runs the log on its own thread; four producers on four
  // daemons at once must all be answered and all be in the log.
  test::temp_dir tmp;
  auto opts = no_auto_snapshots();
  opts.fsync = fsync_policy::every_n(1);
  opts.snapshot_on_shutdown = false;
  constexpr int daemons = 4, per_daemon = 200;
  std::vector<uint64_t> ids;
  {
    node n{tmp.path(), opts};
    for (int d = 0; d < daemons; ++d)
      ids.push_back(n.rt->spawn("sum")->origin_hash);
    std::vector<std::thread> producers;
    std::atomic<int> failures{0};
    for (int d = 0; d < daemons; ++d)
      producers.emplace_back([&, d] {
        for (int i = 1; i <= per_daemon; ++i) {
          auto r = n.rt->deliver(ids[d], {uint64_t(d + 1), uint64_t(i),
                                          to_bytes(std::to_string(i))});
          if (!r)
            ++failures;
        }
      });
    for (auto& t : producers)
      t.join();
    CHECK(failures == 0);
  }
  // No snapshot was taken: everything comes back from the log.
  node n{tmp.path(), opts};
  for (int d = 0; d < daemons; ++d) {
    CHECK(n.rt->info(ids[d])->last_seq == per_daemon);
    CHECK(n.total(ids[d]) == per_daemon * (per_daemon + 1) / 2);
  }
}
