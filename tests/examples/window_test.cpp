#include <catch2/catch.hpp>

#include <cstring>
#include <limits>
#include <stdexcept>
#include <string>

#include "base/errc.hpp"
#include "examples/window/window.hpp"

using namespace mesh;
using mesh::examples::window;

namespace {

causal_event event(std::string_view payload) {
  causal_event ev;
  ev.payload = bytes_view{payload}.to_bytes();
  return ev;
}

std::string feed(window& w, std::string_view payload) {
  auto out = w.process(event(payload));
  REQUIRE(out);
  REQUIRE(out->size() == 1);
  return std::string(out->front().begin(), out->front().end());
}

/// A state in the v1 layout, for restore tests.
bytes make_state(uint32_t version, uint32_t size, uint32_t count,
                 std::initializer_list<double> values) {
  bytes b(12 + 8 * values.size());
  store_le32(b.data(), version);
  store_le32(b.data() + 4, size);
  store_le32(b.data() + 8, count);
  auto p = b.data() + 12;
  for (double x : values) {
    uint64_t u = 0;
    std::memcpy(&u, &x, 8);
    store_le64(p, u);
    p += 8;
  }
  return b;
}

void check_restore_fails(const bytes& state, const std::string& needle) {
  window w{3};
  feed(w, "1");
  auto err = w.restore(state);
  CHECK(is(err, errc::restore_failed));
  CHECK(describe(err).find(needle) != std::string::npos);
  CHECK(w.size() == 3);
  CHECK(w.values() == std::deque<double>{1});
}

} // namespace

TEST_CASE("window emits sum, average and count of the values it holds") {
  window w;
  CHECK(w.kind() == "window");
  CHECK(w.size() == 10);
  CHECK(feed(w, "1") == "sum=1 avg=1 n=1");
  CHECK(feed(w, "2") == "sum=3 avg=1.5 n=2");
  CHECK(feed(w, " 4.5\n") == "sum=7.5 avg=2.5 n=3");
  CHECK(feed(w, "-1.5") == "sum=6 avg=1.5 n=4");
  CHECK(feed(w, "+1e1") == "sum=16 avg=3.2 n=5");
}

TEST_CASE("window evicts the oldest value once full") {
  window w{3};
  feed(w, "1");
  feed(w, "2");
  CHECK(feed(w, "3") == "sum=6 avg=2 n=3");
  CHECK(feed(w, "10") == "sum=15 avg=5 n=3");
  CHECK(feed(w, "20") == "sum=33 avg=11 n=3");
  CHECK(w.values() == std::deque<double>{3, 10, 20});
}

TEST_CASE("window of size 1 reports only the latest value") {
  window w{1};
  feed(w, "5");
  CHECK(feed(w, "7") == "sum=7 avg=7 n=1");
}

TEST_CASE("window rejects a payload that is not a number") {
  window w{3};
  feed(w, "2");
  for (std::string_view bad : {"", "abc", "1x", "nan", "inf", "-inf", "0x10",
                               "1 2", "+", "--1", "+-1"}) {
    auto r = w.process(event(bad));
    REQUIRE_FALSE(r);
    CHECK(is(r.error(), errc::process_failed));
    CHECK(describe(r.error()).find("window: payload is not a number")
          != std::string::npos);
  }
  CHECK(w.values() == std::deque<double>{2});
}

TEST_CASE("window quotes binary payloads in its error") {
  window w;
  auto r = w.process(event(std::string_view{"a\0\n", 3}));
  REQUIRE_FALSE(r);
  CHECK(describe(r.error()).find("\"a\\x00\\x0a\"") != std::string::npos);
}

TEST_CASE("window rejects a number outside the double range") {
  window w;
  auto r = w.process(event("1e999"));
  REQUIRE_FALSE(r);
  CHECK(is(r.error(), errc::process_failed));
  CHECK(w.values().empty());
}

TEST_CASE("window rejects a value whose sum overflows and keeps its values") {
  window w{3};
  feed(w, "1e308");
  auto r = w.process(event("1e308"));
  REQUIRE_FALSE(r);
  CHECK(is(r.error(), errc::process_failed));
  CHECK(w.values() == std::deque<double>{1e308});
  CHECK(feed(w, "-1e308") == "sum=0 avg=0 n=2");
}

TEST_CASE("window size outside 1..max_size is a programming error") {
  CHECK_THROWS_AS(window{0}, std::invalid_argument);
  CHECK_THROWS_AS(window{window::max_size + 1}, std::invalid_argument);
  CHECK(window{window::max_size}.size() == window::max_size);
}

TEST_CASE("window snapshot round trip restores size and values") {
  window a{4};
  for (auto x : {"1", "2.25", "3", "4", "5"})
    feed(a, x);
  auto snap = a.snapshot();
  REQUIRE(snap);
  CHECK(a.state_version() == 1);
  CHECK(*snap == make_state(1, 4, 4, {2.25, 3, 4, 5}));
  window b;
  REQUIRE_FALSE(b.restore(*snap));
  CHECK(b.size() == 4);
  CHECK(b.values() == a.values());
  CHECK(feed(b, "6") == feed(a, "6"));
}

TEST_CASE("window snapshot of an empty window restores empty") {
  window a{2};
  auto snap = a.snapshot();
  REQUIRE(snap);
  CHECK(snap->size() == 12);
  window b;
  REQUIRE_FALSE(b.restore(*snap));
  CHECK(b.size() == 2);
  CHECK(b.values().empty());
}

TEST_CASE("window restore rejects a state shorter than its header") {
  check_restore_fails(bytes{}, "shorter than its 12-byte header");
  check_restore_fails(bytes(11, 0), "shorter than its 12-byte header");
}

TEST_CASE("window restore rejects an unknown state version") {
  check_restore_fails(make_state(2, 3, 1, {1}), "unsupported state version 2");
  check_restore_fails(make_state(0, 3, 0, {}), "unsupported state version 0");
}

TEST_CASE("window restore rejects a size outside 1..max_size") {
  check_restore_fails(make_state(1, 0, 0, {}), "window size 0");
  check_restore_fails(make_state(1, window::max_size + 1, 0, {}),
                      "window size 65537");
}

TEST_CASE("window restore rejects a count above the window size") {
  check_restore_fails(make_state(1, 2, 3, {1, 2, 3}), "count 3 exceeds");
}

TEST_CASE("window restore rejects a length that disagrees with the count") {
  check_restore_fails(make_state(1, 3, 2, {1}), "expected 28");
  check_restore_fails(make_state(1, 3, 1, {1, 2}), "expected 20");
  auto huge = make_state(1, 3, 0xffffffff, {});
  check_restore_fails(huge, "count 4294967295 exceeds");
}

TEST_CASE("window restore rejects values that are not finite") {
  auto inf = std::numeric_limits<double>::infinity();
  auto nan = std::numeric_limits<double>::quiet_NaN();
  check_restore_fails(make_state(1, 3, 2, {1, inf}), "value 1 is not finite");
  check_restore_fails(make_state(1, 3, 1, {nan}), "value 0 is not finite");
  check_restore_fails(make_state(1, 3, 2, {1e308, 1e308}),
                      "sum of the values is not finite");
}

TEST_CASE("window restore rejects random garbage") {
  uint32_t x = 12345;
  for (int round = 0; round < 200; ++round) {
    bytes garbage(static_cast<size_t>(round % 40));
    for (auto& b : garbage) {
      x = x * 1103515245u + 12345u;
      b = static_cast<uint8_t>(x >> 16);
    }
    window w{3};
    auto err = w.restore(garbage);
    if (err) {
      CHECK(is(err, errc::restore_failed));
      CHECK(w.size() == 3);
      CHECK(w.values().empty());
    }
  }
}
