// Message inspection: what comes off the wire never holds an enum value
// outside its range.

#include <catch2/catch.hpp>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/binary_deserializer.hpp>
#include <caf/binary_serializer.hpp>

#include "actors/messages.hpp"

using namespace mesh;

namespace {

template<class T>
std::vector<char> serialize(caf::actor_system& sys, T& x) {
  std::vector<char> buf;
  caf::binary_serializer sink{sys, buf};
  REQUIRE(!sink(x));
  return buf;
}

/// Offset of the one byte that differs between the encodings of `a` and `b`.
size_t differing_byte(const std::vector<char>& a, const std::vector<char>& b) {
  REQUIRE(a.size() == b.size());
  size_t at = a.size();
  for (size_t i = 0; i < a.size(); ++i)
    if (a[i] != b[i]) {
      REQUIRE(at == a.size());
      at = i;
    }
  REQUIRE(at < a.size());
  return at;
}

} // namespace

TEST_CASE("a delivery with an out-of-range status does not deserialize") {
  caf::actor_system_config cfg;
  caf::actor_system sys{cfg};
  delivery applied;
  applied.daemon_seq = 9;
  delivery rejected = applied;
  rejected.state = delivery::status::rejected;
  auto good = serialize(sys, rejected);
  auto at = differing_byte(serialize(sys, applied), good);
  {
    delivery back;
    caf::binary_deserializer source{sys, good};
    REQUIRE(!source(back));
    CHECK(back.state == delivery::status::rejected);
    CHECK(back.daemon_seq == 9);
  }
  for (char bad : {char{3}, char{7}, char{-1}}) {
    auto buf = good;
    buf[at] = bad;
    delivery back;
    caf::binary_deserializer source{sys, buf};
    CHECK(source(back));
  }
}

TEST_CASE("a log entry with an out-of-range status does not deserialize") {
  caf::actor_system_config cfg;
  caf::actor_system sys{cfg};
  log_entry applied;
  applied.origin_hash = 1;
  applied.daemon_seq = 2;
  log_entry rejected = applied;
  rejected.state = log_entry::status::rejected;
  auto good = serialize(sys, rejected);
  auto at = differing_byte(serialize(sys, applied), good);
  auto buf = good;
  buf[at] = 7;
  log_entry back;
  caf::binary_deserializer source{sys, buf};
  CHECK(source(back));
}
