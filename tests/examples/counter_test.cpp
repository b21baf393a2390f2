#include <catch2/catch.hpp>

#include <cstdint>
#include <limits>
#include <string>

#include "base/errc.hpp"
#include "examples/counter/counter.hpp"

using namespace mesh;
using mesh::examples::counter;

namespace {

causal_event event(std::string_view payload) {
  causal_event ev;
  ev.payload = bytes_view{payload}.to_bytes();
  return ev;
}

/// Processes `payload` and returns the single output as text.
std::string feed(counter& c, std::string_view payload) {
  auto out = c.process(event(payload));
  REQUIRE(out);
  REQUIRE(out->size() == 1);
  return std::string(out->front().begin(), out->front().end());
}

bytes state_of(int64_t total) {
  bytes b(8);
  store_le64(b.data(), static_cast<uint64_t>(total));
  return b;
}

} // namespace

TEST_CASE("counter adds integer payloads and emits the running total") {
  counter c;
  CHECK(c.kind() == "counter");
  CHECK(feed(c, "5") == "5");
  CHECK(feed(c, "-7") == "-2");
  CHECK(feed(c, "+10") == "8");
  CHECK(feed(c, "  3\n") == "11");
  CHECK(feed(c, "\t-1 ") == "10");
  CHECK(c.total() == 10);
}

TEST_CASE("counter adds 1 for a payload that is not an integer") {
  counter c;
  CHECK(feed(c, "tick") == "1");
  CHECK(feed(c, "") == "2");
  CHECK(feed(c, "2.5") == "3");
  CHECK(feed(c, "12abc") == "4");
  CHECK(feed(c, "+") == "5");
  CHECK(feed(c, "-") == "6");
  CHECK(feed(c, "+-5") == "7");
  CHECK(feed(c, "1 2") == "8");
  CHECK(feed(c, std::string_view{"\0\xff", 2}) == "9");
}

TEST_CASE("counter rejects an addition that overflows and keeps its total") {
  counter c;
  REQUIRE_FALSE(c.restore(state_of(std::numeric_limits<int64_t>::max() - 1)));
  CHECK(feed(c, "1") == std::to_string(std::numeric_limits<int64_t>::max()));
  auto r = c.process(event("1"));
  REQUIRE_FALSE(r);
  CHECK(is(r.error(), errc::process_failed));
  CHECK(describe(r.error()).find("counter overflow") != std::string::npos);
  CHECK(c.total() == std::numeric_limits<int64_t>::max());
  // A non-integer payload also adds 1, so it overflows too.
  CHECK_FALSE(c.process(event("tick")));
  CHECK(feed(c, "-1")
        == std::to_string(std::numeric_limits<int64_t>::max() - 1));
}

TEST_CASE("counter rejects an underflow below the smallest total") {
  counter c;
  REQUIRE_FALSE(c.restore(state_of(std::numeric_limits<int64_t>::min())));
  auto r = c.process(event("-1"));
  REQUIRE_FALSE(r);
  CHECK(is(r.error(), errc::process_failed));
  CHECK(c.total() == std::numeric_limits<int64_t>::min());
}

TEST_CASE("counter rejects an integer payload wider than 64 bits") {
  counter c;
  feed(c, "4");
  auto r = c.process(event("99999999999999999999"));
  REQUIRE_FALSE(r);
  CHECK(is(r.error(), errc::process_failed));
  CHECK(describe(r.error()).find("99999999999999999999") != std::string::npos);
  CHECK(c.total() == 4);
}

TEST_CASE("counter snapshot is the total as 8 little-endian bytes") {
  counter c;
  feed(c, "-2");
  auto snap = c.snapshot();
  REQUIRE(snap);
  CHECK(*snap == state_of(-2));
  CHECK(c.state_version() == 1);
}

TEST_CASE("counter restored from a snapshot at 5 answers 6 to the next 1") {
  counter a;
  for (int i = 0; i < 5; ++i)
    feed(a, "tick");
  auto snap = a.snapshot();
  REQUIRE(snap);
  counter b;
  REQUIRE_FALSE(b.restore(*snap));
  CHECK(b.total() == 5);
  CHECK(feed(b, "1") == "6");
}

TEST_CASE("counter restore of a state that is not 8 bytes fails") {
  counter c;
  feed(c, "3");
  for (size_t n : {0, 1, 7, 9, 64}) {
    bytes garbage(n, 0xab);
    auto err = c.restore(garbage);
    CHECK(is(err, errc::restore_failed));
    CHECK(describe(err).find("got " + std::to_string(n)) != std::string::npos);
  }
  CHECK(c.total() == 3);
}
