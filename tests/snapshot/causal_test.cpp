#include <catch2/catch.hpp>

#include <cstdint>
#include <vector>

#include <xxhash.h>

#include "snapshot/causal.hpp"

using namespace mesh;

namespace {

constexpr uint64_t origin = 0x1122334455667788;

const bytes first_payload = {'a', 'b', 'c'};
const bytes second_payload = {'d', 'e'};
const bytes third_payload = {};

struct output {
  causal_link link;
  bytes payload;
};

std::vector<output> chain_of_three() {
  chain_builder chain{origin, chain_head{}};
  std::vector<output> out;
  for (const auto* payload : {&first_payload, &second_payload, &third_payload})
    out.push_back({chain.next(*payload, out.size() + 10), *payload});
  return out;
}

} // namespace

TEST_CASE("encode_link writes four little-endian u64 in field order") {
  causal_link link{0x0102030405060708, 2, 3, 4};
  uint8_t buf[causal_link_size];
  encode_link(link, buf);
  CHECK(buf[0] == 0x08);
  CHECK(buf[7] == 0x01);
  CHECK(load_le64(buf + 8) == 2);
  CHECK(load_le64(buf + 16) == 3);
  CHECK(load_le64(buf + 24) == 4);
}

TEST_CASE("link_hash is XXH3-64 of the link bytes followed by the payload") {
  causal_link link{origin, 5, 6, 7};
  uint8_t buf[causal_link_size + 3];
  encode_link(link, buf);
  std::copy(first_payload.begin(), first_payload.end(), buf + causal_link_size);
  CHECK(link_hash(link, first_payload) == XXH3_64bits(buf, sizeof(buf)));
  CHECK(link_hash(link, bytes_view{}) == XXH3_64bits(buf, causal_link_size));
}

TEST_CASE("the genesis link has sequence 0 and parent 0") {
  chain_builder chain{origin, chain_head{}};
  CHECK_FALSE(chain.started());
  auto genesis = chain.next(first_payload, 3);
  CHECK(genesis.origin_hash == origin);
  CHECK(genesis.sequence == 0);
  CHECK(genesis.parent_hash == 0);
  CHECK(genesis.horizon == 3);
  CHECK(chain.started());
  CHECK(chain.head() == chain_head{0, link_hash(genesis, first_payload)});
}

TEST_CASE("each next link's parent is link_hash of the previous output") {
  auto outs = chain_of_three();
  for (size_t i = 1; i < outs.size(); ++i) {
    INFO("link " << i);
    CHECK(outs[i].link.sequence == i);
    CHECK(outs[i].link.parent_hash
          == link_hash(outs[i - 1].link, outs[i - 1].payload));
  }
}

TEST_CASE("follows accepts each link of a chain after its predecessor") {
  auto outs = chain_of_three();
  CHECK(follows(outs[0].link, outs[0].payload, outs[1].link));
  CHECK(follows(outs[1].link, outs[1].payload, outs[2].link));
}

TEST_CASE("follows detects a gap") {
  auto outs = chain_of_three();
  CHECK_FALSE(follows(outs[0].link, outs[0].payload, outs[2].link));
}

TEST_CASE("follows detects reordering") {
  auto outs = chain_of_three();
  CHECK_FALSE(follows(outs[1].link, outs[1].payload, outs[0].link));
  CHECK_FALSE(follows(outs[2].link, outs[2].payload, outs[1].link));
}

TEST_CASE("follows detects a changed predecessor payload") {
  auto outs = chain_of_three();
  CHECK_FALSE(follows(outs[0].link, second_payload, outs[1].link));
}

TEST_CASE("follows detects a link from another origin") {
  auto outs = chain_of_three();
  auto foreign = outs[1].link;
  foreign.origin_hash ^= 1;
  CHECK_FALSE(follows(outs[0].link, outs[0].payload, foreign));
}

TEST_CASE("a builder restored from a head continues the same chain") {
  chain_builder original{origin, chain_head{}};
  auto genesis = original.next(first_payload, 1);
  chain_builder restored{origin, original.head()};
  CHECK(restored.started());
  auto next = restored.next(second_payload, 2);
  CHECK(next == original.next(second_payload, 2));
  CHECK(follows(genesis, first_payload, next));
}
