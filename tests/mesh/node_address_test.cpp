#include <catch2/catch.hpp>

#include "base/errc.hpp"
#include "mesh/node_address.hpp"

using namespace mesh;

TEST_CASE("node_address parses HOST:PORT") {
  auto a = node_address::parse("127.0.0.1:7400");
  REQUIRE(a);
  CHECK(a->host == "127.0.0.1");
  CHECK(a->port == 7400);
  CHECK(a->to_string() == "127.0.0.1:7400");
  CHECK(a->with_port(0).to_string() == "127.0.0.1:0");
}

TEST_CASE("node_address takes IPv6 hosts in brackets") {
  auto a = node_address::parse("[::1]:9");
  REQUIRE(a);
  CHECK(a->host == "::1");
  CHECK(a->port == 9);
  CHECK(a->to_string() == "[::1]:9");
  auto bare = node_address::parse("::1:9");
  REQUIRE(!bare);
  CHECK(describe(bare.error()).find("brackets") != std::string::npos);
}

TEST_CASE("node_address refuses a missing or bad port and an empty host") {
  for (auto text : {"localhost", "host:", "host:x1", "host:65536", ":7400",
                    "host:-1", "host:1 "}) {
    auto a = node_address::parse(text);
    INFO(text);
    REQUIRE(!a);
    CHECK(is(a.error(), errc::invalid_argument));
    CHECK(describe(a.error()).find(text) != std::string::npos);
  }
}
