// Recovery never invents a state: a daemon whose logged inputs have a gap
// (a damaged record, a log cut after its snapshot) comes back failed with the
// gap named, the other daemons start normally, and only an operator's resume
// with the loss accepted lets it serve again. Damaged snapshots and daemon
// records are listed as failed, never dropped from the list.

#include <catch2/catch.hpp>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>

#include "actors/runtime.hpp"
#include "base/errc.hpp"
#include "persistence/log_entry.hpp"
#include "persistence/segment.hpp"
#include "persistence/segment_format.hpp"
#include "snapshot/snapshot.hpp"
#include "support/log_capture.hpp"
#include "support/temp_dir.hpp"
#include "test_daemons.hpp"
#include "test_node.hpp"

using namespace mesh;
using mesh::test::text;
using mesh::test::to_bytes;
namespace fs = std::filesystem;

namespace {

runtime_options log_only() {
  runtime_options o;
  o.snapshot_every_events = 0;
  o.snapshot_on_shutdown = false;
  return o;
}

struct node : test::test_node {
  explicit node(runtime_options o = log_only()) : test_node(std::move(o)) {}

  std::string file(const char* sub, uint64_t origin) {
    return dir / (std::string{sub} + "/" + hex_u64(origin).substr(2));
  }

  /// The log's live generation directory.
  std::string generation() {
    for (auto& e : fs::directory_iterator(dir / "log"))
      if (e.is_directory() && e.path().filename().string()[0] == 'v'
          && e.path().extension().empty())
        return e.path();
    FAIL("no generation directory in " << (dir / "log"));
    return {};
  }

  /// Position (0-based) in idx of the record holding `origin`'s input
  /// `daemon_seq`.
  uint64_t position_of(uint64_t origin, uint64_t daemon_seq) {
    uint64_t pos = 0;
    uint64_t found = UINT64_MAX;
    auto report = segment::inspect(dir / "log", [&](const log_record& r) {
      auto e = decode_log_entry(r.payload);
      REQUIRE(e);
      if (e->origin_hash == origin && e->daemon_seq == daemon_seq)
        found = pos;
      ++pos;
    });
    REQUIRE(report);
    REQUIRE(found != UINT64_MAX);
    return found;
  }
};

void flip_byte(const std::string& path, uint64_t offset) {
  int fd = ::open(path.c_str(), O_RDWR);
  REQUIRE(fd >= 0);
  uint8_t b = 0;
  REQUIRE(::pread(fd, &b, 1, static_cast<off_t>(offset)) == 1);
  b ^= 0x5a;
  REQUIRE(::pwrite(fd, &b, 1, static_cast<off_t>(offset)) == 1);
  ::close(fd);
}

} // namespace

TEST_CASE("a damaged log record fails only its daemon, which resumes only "
          "with the loss accepted") {
  node n;
  auto a = n.spawn();
  auto b = n.spawn();
  for (int i = 1; i <= 100; ++i) {
    REQUIRE(n.send(a, "1"));
    REQUIRE(n.send(b, "1"));
    if (i == 10)
      REQUIRE(n.rt->snapshot(a));
  }
  n.stop();
  auto pos = n.position_of(a, 50);
  flip_byte(n.generation() + "/idx",
            pos * segment_format::idx_record_size + 24);

  test::log_capture logs;
  n.start();
  auto info = n.listed(a);
  CHECK(info.phase == daemon_phase::failed);
  CHECK_THAT(info.reason, Catch::Contains("log gap after daemon_seq 49")
                            && Catch::Contains("inputs 50..50 are lost"));
  // One error line names the daemon and the gap.
  CHECK(logs.count("error", hex_u64(a)) >= 1);
  CHECK(logs.count("error", "log gap after daemon_seq 49") == 1);
  // The other daemon starts normally with every input.
  CHECK(n.listed(b).phase == daemon_phase::running);
  CHECK(n.send(b, "1") == std::string{"101"});
  // Input to the failed daemon is refused with the reason.
  auto refused = n.send(a, "1");
  REQUIRE(!refused);
  CHECK(is(refused.error(), errc::daemon_failed));
  // Resuming without accepting the loss is refused and changes nothing.
  auto plain = n.rt->resume(a, false);
  REQUIRE(!plain);
  CHECK(is(plain.error(), errc::daemon_failed));
  CHECK_THAT(describe(plain.error()), Catch::Contains("50..100"));
  CHECK(n.listed(a).phase == daemon_phase::failed);
  // Accepting it continues from the last good state: 49 inputs, never the
  // 50 logged after the gap.
  auto resumed = n.rt->resume(a, true);
  REQUIRE(resumed);
  CHECK(resumed->phase == daemon_phase::running);
  CHECK(n.send(a, "1") == std::string{"50"});
  // The decision is durable: the next start does not fail it again nor
  // replay the stale entries.
  n.stop();
  n.start();
  CHECK(n.listed(a).phase == daemon_phase::running);
  CHECK(n.send(a, "1") == std::string{"51"});
  CHECK(n.send(b, "1") == std::string{"102"});
}

TEST_CASE("a log that starts after a daemon's snapshot is a gap") {
  node n;
  auto a = n.spawn();
  auto b = n.spawn();
  for (int i = 1; i <= 20; ++i)
    REQUIRE(n.send(a, "1"));
  REQUIRE(n.rt->snapshot(a));
  for (int i = 1; i <= 10; ++i)
    REQUIRE(n.send(a, "1"));
  for (int i = 1; i <= 5; ++i)
    REQUIRE(n.send(b, "1"));
  REQUIRE(n.rt->snapshot(b));
  n.stop();
  // Drop the head of the log: a's inputs 21..25 go, b lost nothing that its
  // snapshot does not hold.
  {
    auto seg = segment::open(n.dir / "log", {});
    REQUIRE(seg);
    auto first = (*seg)->first_seq();
    auto next = (*seg)->next_seq();
    REQUIRE(next - first == 35);
    REQUIRE((*seg)->compact(retention::keep_last(10)));
  }
  n.start();
  auto info = n.listed(a);
  CHECK(info.phase == daemon_phase::failed);
  CHECK_THAT(info.reason, Catch::Contains("log gap after daemon_seq 20")
                            && Catch::Contains("inputs 21..25 are lost"));
  CHECK(n.listed(b).phase == daemon_phase::running);
  CHECK(n.send(b, "1") == std::string{"6"});
  REQUIRE(n.rt->resume(a, true));
  CHECK(n.send(a, "1") == std::string{"21"});
}

TEST_CASE("an emptied log beside daemon records is reported in one error "
          "line") {
  node n;
  auto a = n.spawn();
  REQUIRE(n.send(a, "7"));
  REQUIRE(n.rt->snapshot(a));
  REQUIRE(n.send(a, "1"));
  n.stop();
  fs::remove_all(n.dir / "log");
  test::log_capture logs;
  n.start();
  CHECK(logs.count("error", "1 daemon record(s) exist") == 1);
  // Nothing proves whose inputs went: the daemon comes back from its
  // snapshot.
  CHECK(n.listed(a).phase == daemon_phase::running);
  CHECK(n.send(a, "1") == std::string{"8"});
}

TEST_CASE("a damaged snapshot or daemon record is listed as failed with the "
          "reason") {
  node n{runtime_options{}};
  auto snap = n.spawn();
  auto rec = n.spawn();
  auto loose = n.spawn();
  auto fine = n.spawn();
  for (auto id : {snap, rec, loose, fine})
    REQUIRE(n.send(id, "3"));
  n.stop();
  flip_byte(n.file("snapshots", snap), 40);
  flip_byte(n.file("daemons", rec), 8);
  REQUIRE(::chmod(n.file("daemons", loose).c_str(), 0644) == 0);

  test::log_capture logs;
  n.start();
  auto all = n.rt->daemons();
  REQUIRE(all);
  CHECK(all->size() == 4);
  CHECK(n.rt->daemon_count() == 4);
  auto s = n.listed(snap);
  CHECK(s.phase == daemon_phase::failed);
  CHECK_THAT(s.reason, Catch::Contains("snapshot damaged"));
  CHECK(s.kind == "sum");
  auto r = n.listed(rec);
  CHECK(r.phase == daemon_phase::failed);
  CHECK_THAT(r.reason, Catch::Contains("daemon record unreadable"));
  auto l = n.listed(loose);
  CHECK(l.phase == daemon_phase::failed);
  CHECK_THAT(l.reason, Catch::Contains("daemon record unreadable")
                         && Catch::Contains("permissions"));
  CHECK(n.listed(fine).phase == daemon_phase::running);
  CHECK(n.send(fine, "1") == std::string{"4"});
  for (auto id : {snap, rec, loose}) {
    CHECK(logs.count("error", hex_u64(id)) == 1);
    auto refused = n.send(id, "1");
    REQUIRE(!refused);
    CHECK(is(refused.error(), errc::daemon_failed));
  }
  // A broken record cannot be resumed; it can be stopped (deleted).
  auto resumed = n.rt->resume(rec, true);
  REQUIRE(!resumed);
  CHECK(!n.rt->stop(rec));
  CHECK(n.rt->daemon_count() == 3);
}

TEST_CASE("records lost where no gap says whose are reported in one error "
          "line with the figures") {
  node n;
  auto a = n.spawn();
  for (int i = 1; i <= 3000; ++i)
    REQUIRE(n.send(a, "1"));
  n.stop();
  // Cut idx at a record boundary: the last 2000 inputs leave no gap behind.
  REQUIRE(::truncate((n.generation() + "/idx").c_str(),
                     1000 * segment_format::idx_record_size)
          == 0);
  test::log_capture logs;
  n.start();
  CHECK(logs.count("error", "lost about 2000 record(s)") == 1);
  CHECK(n.listed(a).phase == daemon_phase::running);
  CHECK(n.send(a, "1") == std::string{"1001"});
}
