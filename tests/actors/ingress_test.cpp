// What the runtime accepts and what it keeps: size limits checked when a
// request arrives, a log that stays bounded whatever the mix of busy and idle
// daemons, and a shutdown that writes only the snapshots that changed.

#include <catch2/catch.hpp>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>

#include "actors/limits.hpp"
#include "actors/runtime.hpp"
#include "base/errc.hpp"
#include "persistence/segment.hpp"
#include "snapshot/snapshot.hpp"
#include "support/recording_fs.hpp"
#include "support/temp_dir.hpp"
#include "test_daemons.hpp"
#include "test_node.hpp"

using namespace mesh;
using mesh::test::text;
using mesh::test::to_bytes;

using node = test::test_node;

// -- limits -------------------------------------------------------------------

TEST_CASE("an oversized event is refused on arrival, naming the limit, and "
          "the daemon keeps serving") {
  node n;
  auto id = n.spawn();
  REQUIRE(n.rt->deliver(id, {0, 0, to_bytes("4")}));
  auto big = n.rt->deliver(id,
                           {0, 0, bytes(limits::max_event_payload + 1, '7')});
  REQUIRE(!big);
  CHECK(is(big.error(), errc::limit_exceeded));
  CHECK(describe(big.error()).find(std::to_string(limits::max_event_payload))
        != std::string::npos);
  auto next = n.rt->deliver(id, {0, 0, to_bytes("1")});
  REQUIRE(next);
  CHECK(next->daemon_seq == 2);
  CHECK(text(next->outputs[0].payload) == "5");
}

TEST_CASE("an event of exactly the largest payload is applied, logged and "
          "recovered") {
  node n;
  auto id = n.spawn();
  REQUIRE(n.rt->deliver(id, {0, 0, bytes(limits::max_event_payload, '7')}));
  REQUIRE(n.rt->deliver(id, {0, 0, to_bytes("2")}));
  // Killed rather than shut down: the restart must replay the big event.
  n.opts.snapshot_on_shutdown = false;
  REQUIRE(!n.rt->shutdown());
  n.rt.reset();
  n.start();
  // The big payload is not a number: it counted 1.
  CHECK(n.total(id) == 3);
  CHECK(n.rt->info(id)->last_seq == 2);
}

TEST_CASE("a batch over the event count or byte limit is refused whole") {
  node n;
  auto id = n.spawn();
  SECTION("too many events") {
    event_batch b;
    for (size_t i = 0; i <= limits::max_batch_events; ++i)
      b.add(0, 0, to_bytes("1"));
    auto r = n.rt->deliver_batch(id, b);
    REQUIRE(!r);
    CHECK(is(r.error(), errc::limit_exceeded));
    CHECK(describe(r.error()).find("events per batch") != std::string::npos);
  }
  SECTION("too many bytes") {
    event_batch b;
    bytes chunk(limits::max_batch_bytes / 4 + 1, '1');
    for (int i = 0; i < 4; ++i)
      b.add(0, 0, chunk);
    auto r = n.rt->deliver_batch(id, b);
    REQUIRE(!r);
    CHECK(is(r.error(), errc::limit_exceeded));
    CHECK(describe(r.error()).find("bytes per batch") != std::string::npos);
  }
  CHECK(n.rt->info(id)->last_seq == 0);
  CHECK(n.rt->deliver(id, {0, 0, to_bytes("1")}));
}

// -- compaction ---------------------------------------------------------------

TEST_CASE("an idle daemon does not stop log compaction") {
  // No snapshots at shutdown: the log is counted as the stream left it.
  runtime_options o;
  o.snapshot_on_shutdown = false;
  node n{o};
  auto idle = n.spawn();
  auto busy = n.spawn();
  REQUIRE(n.rt->deliver(idle, {0, 0, to_bytes("1")}));
  event_batch b;
  constexpr int batches = 1000;
  constexpr int per_batch = 1000;
  for (int i = 0; i < batches; ++i) {
    b.clear();
    for (int k = 0; k < per_batch; ++k)
      b.add(0, 0, to_bytes("1"));
    REQUIRE(n.rt->deliver_batch(busy, b));
  }
  REQUIRE(!n.rt->shutdown());
  n.rt.reset();
  uint64_t records = 0;
  auto report = segment::inspect(n.dir / "log", [&](const log_record&) {
    ++records;
  });
  REQUIRE(report);
  // Bounded by the compaction threshold plus a margin (compaction drops
  // what every snapshot covers once that is compact_after records), not by
  // the 1,000,001 events.
  CHECK(records <= 2 * n.opts.compact_after + 2 * per_batch);
  // And nothing was lost on the way.
  n.start();
  CHECK(n.total(busy) == batches * per_batch);
  CHECK(n.total(idle) == 1);
}

// -- shutdown -----------------------------------------------------------------

TEST_CASE("shutdown writes the snapshots of changed daemons only, with one "
          "flush") {
  test::recording_fs fs{real_file_system()};
  node n{{}, &fs};
  std::vector<uint64_t> ids;
  for (int i = 0; i < 20; ++i)
    ids.push_back(n.spawn());
  for (int i = 0; i < 5; ++i)
    REQUIRE(n.rt->deliver(ids[i], {0, 0, to_bytes("1")}));
  fs.clear();
  REQUIRE(!n.rt->shutdown());
  n.rt.reset();
  // Files named by an origin: snapshots (records are not written again).
  auto snapshot_renames = [&] {
    size_t k = 0;
    for (auto& e : fs.events())
      if (e.rfind("rename:", 0) == 0 && e.find(".tmp.") == std::string::npos
          && e.size() == std::string{"rename:"}.size() + 16)
        ++k;
    return k;
  };
  CHECK(snapshot_renames() == 5);
  // Written together: no fsync per file, one flush, one directory fsync.
  CHECK(fs.count("write_new_file+fsync:") == 0);
  CHECK(fs.count("write_new_file:") == 5);
  CHECK(fs.count("sync_all:") == 1);
  // A restart with nothing new writes none.
  fs.clear();
  n.start();
  REQUIRE(!n.rt->shutdown());
  CHECK(snapshot_renames() == 0);
}
