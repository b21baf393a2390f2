// The segment reader: reads what the appender has published, beside it,
// without its lock; a scan survives a compaction flipping the generation.

#include <catch2/catch.hpp>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "base/errc.hpp"
#include "persistence/segment.hpp"
#include "support/file_bytes.hpp"
#include "support/temp_dir.hpp"

using namespace mesh;

namespace {

std::string payload_for(uint64_t seq) {
  if (seq % 4 == 0)
    return std::to_string(seq % 100000000); // inline
  std::string p = "record-" + std::to_string(seq) + "-";
  p.append(seq % 50, static_cast<char>('a' + seq % 26));
  return p;
}

std::string text(const bytes& b) {
  return std::string(b.begin(), b.end());
}

std::unique_ptr<segment> open_log(const std::string& dir) {
  segment_options opts;
  opts.policy = fsync_policy::never();
  auto seg = segment::open(dir, opts);
  REQUIRE(seg);
  return std::move(*seg);
}

void append_upto(segment& seg, uint64_t last) {
  while (seg.next_seq() <= last)
    REQUIRE(seg.append(bytes_view{payload_for(seg.next_seq())}));
}

} // namespace

TEST_CASE("a segment reader sees every record exactly once, in order, while "
          "appends race it") {
  test::temp_dir tmp;
  auto seg = open_log(tmp / "log");
  auto reader = seg->reader();
  constexpr uint64_t total = 30000;
  std::thread appender{[&] {
    uint64_t next = 1;
    while (next <= total) {
      if (next % 7 == 0 && next + 20 <= total + 1) {
        std::vector<std::string> storage;
        for (uint64_t k = 0; k < 20; ++k)
          storage.push_back(payload_for(next + k));
        std::vector<bytes_view> views(storage.begin(), storage.end());
        if (!seg->append_batch(views))
          std::abort();
        next += 20;
      } else {
        if (!seg->append(bytes_view{payload_for(next)}))
          std::abort();
        ++next;
      }
    }
  }};
  std::vector<uint64_t> seen;
  bool payloads_ok = true;
  uint64_t from = 1;
  int scans = 0;
  while (seen.size() < total && scans < 10000000) {
    ++scans;
    auto next = reader->scan(from, [&](const log_record& r) {
      seen.push_back(r.seq);
      payloads_ok = payloads_ok && text(r.payload) == payload_for(r.seq);
      return seen.size() % 997 != 0; // stop now and then: continuation
    });
    REQUIRE(next);
    from = *next;
  }
  appender.join();
  CHECK(payloads_ok);
  REQUIRE(seen.size() == total);
  for (uint64_t i = 0; i < total; ++i)
    if (seen[i] != i + 1)
      FAIL("position " << i << " holds seq " << seen[i]);
  CHECK(scans > 2); // the reads really raced the appends
  CHECK(reader->end_seq() == total + 1);
}

TEST_CASE("a scan that began before a compaction finishes on the generation "
          "it began on") {
  test::temp_dir tmp;
  auto seg = open_log(tmp / "log");
  append_upto(*seg, 9000);
  auto reader = seg->reader();
  std::vector<uint64_t> seen;
  bool payloads_ok = true;
  auto next = reader->scan(1, [&](const log_record& r) {
    if (r.seq == 1) {
      // The compaction flips the generation and deletes the old one while
      // this scan is on its first record.
      auto res = seg->compact(retention::before_seq(8000));
      REQUIRE(res);
      REQUIRE(res->dropped_records == 7999);
      REQUIRE(!test::exists(tmp / "log/v1"));
    }
    seen.push_back(r.seq);
    payloads_ok = payloads_ok && text(r.payload) == payload_for(r.seq);
    return true;
  });
  REQUIRE(next);
  CHECK(*next == 9001);
  CHECK(payloads_ok);
  REQUIRE(seen.size() == 9000);
  CHECK(seen.front() == 1);
  CHECK(seen.back() == 9000);
  CHECK(std::is_sorted(seen.begin(), seen.end()));
  // The next scan reads the new generation, and what is appended to it.
  append_upto(*seg, 9005);
  seen.clear();
  next = reader->scan(1, [&](const log_record& r) {
    seen.push_back(r.seq);
    payloads_ok = payloads_ok && text(r.payload) == payload_for(r.seq);
    return true;
  });
  REQUIRE(next);
  CHECK(*next == 9006);
  CHECK(payloads_ok);
  REQUIRE(seen.size() == 1006);
  CHECK(seen.front() == 8000);
  CHECK(seen.back() == 9005);
}

TEST_CASE("a segment reader scans from a seq, stops when asked and fails "
          "once the segment is closed") {
  test::temp_dir tmp;
  auto seg = open_log(tmp / "log");
  auto reader = seg->reader();
  auto none = reader->scan(1, [](const log_record&) {
    FAIL("an empty log has no records");
    return true;
  });
  REQUIRE(none);
  CHECK(*none == 1);
  append_upto(*seg, 50);
  std::vector<uint64_t> seen;
  auto next = reader->scan(20, [&](const log_record& r) {
    seen.push_back(r.seq);
    return r.seq < 24;
  });
  REQUIRE(next);
  CHECK(*next == 25);
  CHECK(seen == std::vector<uint64_t>{20, 21, 22, 23, 24});
  auto past = reader->scan(51, [](const log_record&) {
    FAIL("nothing lies past the end");
    return true;
  });
  REQUIRE(past);
  CHECK(*past == 51);
  REQUIRE(!seg->close());
  auto closed = reader->scan(1, [](const log_record&) {
    return true;
  });
  REQUIRE(!closed);
  CHECK(is(closed.error(), errc::invalid_argument));
}

TEST_CASE("a segment reader refuses a record whose bytes changed on disk") {
  test::temp_dir tmp;
  auto seg = open_log(tmp / "log");
  append_upto(*seg, 10);
  // seq 1 is a heap record at the start of dat.
  test::flip_byte(tmp / "log/v1/dat", 2);
  auto reader = seg->reader();
  auto r = reader->scan(1, [](const log_record&) {
    return true;
  });
  REQUIRE(!r);
  CHECK(is(r.error(), errc::corrupt_data));
}
