#include <catch2/catch.hpp>

#include "examples/echo/echo.hpp"

using namespace mesh;
using mesh::examples::echo;

TEST_CASE("echo answers each event with its payload unchanged") {
  echo e;
  CHECK(e.kind() == "echo");
  for (bytes payload : {bytes{}, bytes{'h', 'i'}, bytes{0x00, 0xff, 0x7f}}) {
    causal_event ev;
    ev.payload = payload;
    auto out = e.process(ev);
    REQUIRE(out);
    REQUIRE(out->size() == 1);
    CHECK(out->front() == payload);
  }
}

TEST_CASE("echo is stateless") {
  echo e;
  CHECK_FALSE(e.snapshot());
  CHECK_FALSE(e.restore(bytes{1, 2, 3}));
}
