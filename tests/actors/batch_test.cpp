// event_batch and delivery_batch: what goes in comes out, in order, and a
// cleared batch is refilled without growing.

#include <cstdint>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "actors/batch.hpp"

using namespace mesh;

namespace {

bytes b(const std::string& s) {
  return bytes(s.begin(), s.end());
}

std::string s(bytes_view v) {
  return std::string{v.as_chars()};
}

causal_link link(uint64_t seq) {
  causal_link l;
  l.origin_hash = 9;
  l.sequence = seq;
  l.parent_hash = seq * 11;
  l.horizon = seq + 1;
  return l;
}

} // namespace

TEST_CASE("event_batch keeps events, producers and payloads in order") {
  event_batch evs;
  CHECK(evs.empty());
  evs.add(1, 10, b("first"));
  evs.add(0, 0, bytes_view{});
  evs.add(2, 20, b("third"));
  REQUIRE(evs.size() == 3);
  CHECK(evs[0].producer_id == 1);
  CHECK(evs[0].producer_seq == 10);
  CHECK(s(evs[0].payload) == "first");
  CHECK(evs[1].payload.empty());
  CHECK(evs[2].producer_id == 2);
  CHECK(s(evs[2].payload) == "third");
  CHECK(evs.payload_bytes() == 10);
}

TEST_CASE("event_batch built from inbound events copies each one") {
  std::vector<inbound_event> in{{5, 1, b("a")}, {5, 2, b("bc")}};
  event_batch evs{in};
  in[0].payload[0] = 'z';
  REQUIRE(evs.size() == 2);
  CHECK(s(evs[0].payload) == "a");
  CHECK(evs[1].producer_seq == 2);
  CHECK(s(evs[1].payload) == "bc");
}

TEST_CASE("a cleared event_batch is refilled in the buffers it has") {
  event_batch evs;
  for (int i = 0; i < 100; ++i)
    evs.add(1, i, b("payload-" + std::to_string(i)));
  auto* data = evs.data().data();
  auto cap = evs.data().capacity();
  evs.clear();
  CHECK(evs.empty());
  for (int i = 0; i < 100; ++i)
    evs.add(1, i, b("payload-" + std::to_string(i)));
  CHECK(evs.data().data() == data);
  CHECK(evs.data().capacity() == cap);
  CHECK(s(evs[99].payload) == "payload-99");
}

TEST_CASE("delivery_batch answers carry state, seq, error and outputs") {
  delivery_batch out;
  out.begin(delivery::status::applied, 1);
  out.add_output(link(0), b("one"), 100);
  out.add_output(link(1), b("two"), 100);
  out.begin(delivery::status::duplicate, 1);
  out.begin(delivery::status::rejected, 2);
  out.set_error("bad input");
  out.begin(delivery::status::applied, 3);
  out.add_output(link(2), bytes_view{}, 200);
  REQUIRE(out.size() == 4);

  CHECK(out.state(0) == delivery::status::applied);
  CHECK(out.daemon_seq(0) == 1);
  CHECK(out.error(0).empty());
  REQUIRE(out.output_count(0) == 2);
  CHECK(s(out.output_at(0, 0).payload) == "one");
  CHECK(out.output_at(0, 1).link.sequence == 1);
  CHECK(out.output_at(0, 1).link.parent_hash == 11);
  CHECK(out.output_at(0, 1).received_at_ns == 100);

  CHECK(out.state(1) == delivery::status::duplicate);
  CHECK(out.output_count(1) == 0);

  CHECK(out.state(2) == delivery::status::rejected);
  CHECK(out.daemon_seq(2) == 2);
  CHECK(out.error(2) == "bad input");
  CHECK(out.output_count(2) == 0);

  REQUIRE(out.output_count(3) == 1);
  CHECK(out.output_at(3, 0).payload.empty());
  CHECK(out.output_at(3, 0).link.horizon == 3);
}

TEST_CASE("delivery_batch converts to self-contained deliveries") {
  delivery_batch out;
  out.begin(delivery::status::applied, 7);
  out.add_output(link(4), b("x"), 1);
  out.begin(delivery::status::rejected, 8);
  out.set_error("nope");
  auto ds = out.to_deliveries();
  out.clear();
  REQUIRE(ds.size() == 2);
  CHECK(ds[0].state == delivery::status::applied);
  CHECK(ds[0].daemon_seq == 7);
  REQUIRE(ds[0].outputs.size() == 1);
  CHECK(ds[0].outputs[0].payload == b("x"));
  CHECK(ds[0].outputs[0].link.sequence == 4);
  CHECK(ds[0].outputs[0].received_at_ns == 1);
  CHECK(ds[1].state == delivery::status::rejected);
  CHECK(ds[1].error == "nope");
  CHECK(ds[1].outputs.empty());
}

TEST_CASE("event_batch::well_formed catches payloads outside the buffer") {
  event_batch evs;
  evs.add(1, 1, b("abc"));
  evs.add(1, 2, b("de"));
  CHECK(evs.well_formed());
  evs.headers()[1].size = 3; // one byte past the end
  CHECK(!evs.well_formed());
  evs.headers()[1].size = 2;
  evs.headers()[1].offset = SIZE_MAX; // offset + size would wrap
  CHECK(!evs.well_formed());
  CHECK(event_batch{}.well_formed());
}
