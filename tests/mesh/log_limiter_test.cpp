#include <catch2/catch.hpp>

#include <chrono>

#include "mesh/log_limiter.hpp"

using namespace mesh;
using namespace std::chrono_literals;

namespace {

// A limiter of `burst` lines per 10 s on a clock the test moves.
struct fake_clock_fixture {
  log_limiter::clock_type::time_point t{};
  log_limiter lim;

  explicit fake_clock_fixture(uint32_t burst)
    : lim{log_limit{burst, 10s}, [this] {
            return t;
          }} {}

  int admitted(int attempts) {
    int n = 0;
    for (int i = 0; i < attempts; ++i)
      n += lim.admit() ? 1 : 0;
    return n;
  }
};

} // namespace

TEST_CASE("the limiter admits the burst and suppresses the rest") {
  fake_clock_fixture f{5};
  CHECK(f.admitted(2000) == 5);
}

TEST_CASE("suppressed events are reported once their interval is over") {
  fake_clock_fixture f{5};
  f.admitted(2000);
  CHECK(f.lim.take_suppressed() == 0);
  f.t += 10s;
  CHECK(f.lim.take_suppressed() == 1995);
  CHECK(f.lim.take_suppressed() == 0);
}

TEST_CASE("a new interval admits a new burst") {
  fake_clock_fixture f{5};
  f.admitted(7);
  f.t += 10s;
  CHECK(f.admitted(7) == 5);
  f.t += 10s;
  CHECK(f.lim.take_suppressed() == 4);
}

TEST_CASE("drain reports what is suppressed before the interval is over") {
  fake_clock_fixture f{5};
  f.admitted(9);
  CHECK(f.lim.drain_suppressed() == 4);
  CHECK(f.lim.drain_suppressed() == 0);
  f.t += 10s;
  CHECK(f.lim.take_suppressed() == 0);
}
