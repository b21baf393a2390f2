#include <catch2/catch.hpp>

#include <limits>
#include <map>
#include <stdexcept>

#include "actors/factory_registry.hpp"
#include "base/errc.hpp"
#include "identity/entity_id.hpp"
#include "mesh/placement.hpp"

using namespace mesh;

namespace {

entity_id node_n(uint8_t n) {
  entity_id id{};
  id.fill(n);
  return id;
}

member_info member(uint8_t n, uint32_t cores = 4, uint32_t daemons = 0,
                   double saturation = 0) {
  member_info m;
  m.node.id = node_n(n);
  m.node.address = "127.0.0.1:" + std::to_string(7400 + n);
  m.node.caps.cores = cores;
  m.node.caps.memory_mb = 8192;
  m.node.caps.kinds = {"counter", "upper"};
  m.node.load.daemons = daemons;
  m.node.load.saturation = saturation;
  return m;
}

requirement req(const char* text) {
  auto r = parse_requirement(text);
  REQUIRE(r);
  return *r;
}

std::map<uint8_t, uint32_t>
spread(const caf::expected<std::vector<std::pair<entity_id, uint32_t>>>& plan) {
  REQUIRE(plan);
  std::map<uint8_t, uint32_t> out;
  for (auto& [id, n] : *plan)
    out[id[0]] = n;
  return out;
}

std::string why(const caf::error& err) {
  return describe(err);
}

bool has(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

} // namespace

TEST_CASE("parse_requirement reads the four forms and prints them back") {
  auto tag = req("tag=ssd");
  CHECK(tag.what == requirement::type::tag);
  CHECK(tag.key == "ssd");
  auto label = req("label:zone=eu-west=1");
  CHECK(label.what == requirement::type::label);
  CHECK(label.key == "zone");
  CHECK(label.value == "eu-west=1");
  auto cores = req("min_cores=4");
  CHECK(cores.what == requirement::type::min_cores);
  CHECK(cores.number == 4);
  auto mem = req("min_memory_mb=2048");
  CHECK(mem.what == requirement::type::min_memory_mb);
  CHECK(mem.number == 2048);
  CHECK(req("min_cores=4294967295").number == 4294967295u);
  for (auto text :
       {"tag=ssd", "label:zone=eu-west=1", "min_cores=4", "min_memory_mb=2048"})
    CHECK(to_string(req(text)) == text);
}

TEST_CASE("parse_requirement refuses bad text and names it") {
  struct bad_case {
    const char* text;
    const char* reason;
  };
  for (auto c :
       {bad_case{"", "empty"}, bad_case{"ssd", "no '='"},
        bad_case{"tag=", "tag is empty"}, bad_case{"label:zone", "label:K=V"},
        bad_case{"label:=eu", "key is empty"},
        bad_case{"label:zone=", "value is empty"},
        bad_case{"min_cores=", "not a whole number"},
        bad_case{"min_cores=-1", "not a whole number"},
        bad_case{"min_cores=4x", "not a whole number"},
        bad_case{"min_cores=4294967296", "not a whole number"},
        bad_case{"min_memory_mb=99999999999999999999", "not a whole number"},
        bad_case{"cores=4", "unknown requirement 'cores'"},
        bad_case{"Tag=ssd", "unknown requirement 'Tag'"}}) {
    INFO(c.text);
    auto r = parse_requirement(c.text);
    REQUIRE(!r);
    CHECK(is(r.error(), errc::invalid_argument));
    auto text = why(r.error());
    CHECK(has(text, std::string{"'"} + c.text + "'"));
    CHECK(has(text, c.reason));
  }
}

TEST_CASE("check says why a node fails a requirement") {
  capabilities caps;
  caps.tags = {"gpu", "ssd"};
  caps.labels = {{"zone", "us"}};
  caps.cores = 2;
  caps.memory_mb = 1024;
  CHECK(check(req("tag=ssd"), caps).empty());
  CHECK(check(req("tag=nvme"), caps) == "lacks tag nvme");
  CHECK(check(req("label:zone=us"), caps).empty());
  CHECK(check(req("label:zone=eu"), caps) == "label zone is us, not eu");
  CHECK(check(req("label:rack=r1"), caps) == "lacks label rack");
  CHECK(check(req("min_cores=2"), caps).empty());
  CHECK(check(req("min_cores=4"), caps) == "has 2 cores, needs 4");
  CHECK(check(req("min_memory_mb=1024"), caps).empty());
  CHECK(check(req("min_memory_mb=2048"), caps)
        == "has 1024 MB of memory, needs 2048");
}

TEST_CASE("veto_reason lists every reason a node is out") {
  auto m = member(1);
  CHECK(veto_reason("counter", {}, m).empty());
  m.state = node_state::suspect;
  m.node.drained = true;
  CHECK(veto_reason("counter", {req("tag=ssd")}, m)
        == "suspect, drained, lacks tag ssd");
  CHECK(veto_reason("sql", {}, member(1)) == "lacks kind sql");
}

TEST_CASE("place spreads 100 daemons over 3 equal nodes 34/33/33") {
  std::vector<member_info> nodes{member(3), member(1), member(2)};
  auto plan = place("counter", 100, {}, nodes);
  auto got = spread(plan);
  // The lowest id takes the one left over.
  CHECK(got == std::map<uint8_t, uint32_t>{{1, 34}, {2, 33}, {3, 33}});
  // Sorted by node id.
  REQUIRE(plan->size() == 3);
  CHECK((*plan)[0].first == node_n(1));
  CHECK((*plan)[2].first == node_n(3));
}

TEST_CASE("place keeps 100 daemons within 33 +- 2 per node whatever the "
          "nodes already run, if they started equal in load per core") {
  // Nodes that already run a few daemons each (within one of each other)
  // still end up balanced.
  std::vector<member_info> nodes{member(1, 4, 1), member(2, 4, 0),
                                 member(3, 4, 1)};
  auto got = spread(place("counter", 100, {}, nodes));
  uint32_t total = 0;
  for (auto& [id, n] : got) {
    INFO(int{id});
    CHECK(n >= 31);
    CHECK(n <= 35);
    total += n;
  }
  CHECK(total == 100);
}

TEST_CASE("place weighs daemons per core") {
  // 8 cores against 4 and 4: twice the share.
  std::vector<member_info> nodes{member(1, 4), member(2, 8), member(3, 4)};
  auto got = spread(place("counter", 100, {}, nodes));
  CHECK(got == std::map<uint8_t, uint32_t>{{1, 25}, {2, 50}, {3, 25}});
}

TEST_CASE("place counts the daemons a node already runs") {
  // Node 1 already runs 30: the first 60 go elsewhere, then all even out.
  std::vector<member_info> nodes{member(1, 4, 30), member(2, 4, 0),
                                 member(3, 4, 0)};
  auto got = spread(place("counter", 30, {}, nodes));
  CHECK(got == std::map<uint8_t, uint32_t>{{2, 15}, {3, 15}});
  got = spread(place("counter", 61, {}, nodes));
  CHECK(got == std::map<uint8_t, uint32_t>{{1, 1}, {2, 30}, {3, 30}});
}

TEST_CASE("place breaks daemon-per-core ties by saturation, then node id") {
  std::vector<member_info> nodes{member(1, 4, 0, 0.9), member(2, 4, 0, 0.1),
                                 member(3, 4, 0, 0.5)};
  auto one = place("counter", 1, {}, nodes);
  REQUIRE(one);
  REQUIRE(one->size() == 1);
  CHECK(one->front().first == node_n(2));
  // Three go one to each (daemons per core first), in saturation order:
  // the fourth goes to the least saturated again.
  auto got = spread(place("counter", 4, {}, nodes));
  CHECK(got == std::map<uint8_t, uint32_t>{{1, 1}, {2, 2}, {3, 1}});
  // A node reporting a NaN saturation counts as the busiest, not the
  // idlest, and does not derail the comparison of the others (NaN compares
  // false both ways). It is first in the list on purpose.
  nodes[0].node.load.saturation = std::numeric_limits<double>::quiet_NaN();
  one = place("counter", 1, {}, nodes);
  REQUIRE(one);
  CHECK(one->front().first == node_n(2));
  nodes[1].node.load.saturation = -5; // clamped to 0: still the idlest
  nodes[2].node.load.saturation = 1e9;
  one = place("counter", 1, {}, nodes);
  REQUIRE(one);
  CHECK(one->front().first == node_n(2));
}

TEST_CASE("place breaks full ties by the lowest node id whatever the "
          "member order") {
  std::vector<member_info> nodes{member(9), member(4), member(7)};
  for (int round = 0; round < 3; ++round) {
    std::rotate(nodes.begin(), nodes.begin() + 1, nodes.end());
    auto one = place("counter", 1, {}, nodes);
    REQUIRE(one);
    CHECK(one->front().first == node_n(4));
    auto two = spread(place("counter", 2, {}, nodes));
    CHECK(two == std::map<uint8_t, uint32_t>{{4, 1}, {7, 1}});
  }
}

TEST_CASE("place never chooses a node that lacks the kind") {
  auto without = member(1);
  without.node.caps.kinds = {"upper"};
  std::vector<member_info> nodes{without, member(2)};
  auto got = spread(place("counter", 10, {}, nodes));
  CHECK(got == std::map<uint8_t, uint32_t>{{2, 10}});
  auto none = place("sql", 1, {}, nodes);
  REQUIRE(!none);
  CHECK(is(none.error(), errc::no_target_available));
  CHECK(has(why(none.error()), "lacks kind sql"));
}

TEST_CASE("place skips drained, suspect and down nodes") {
  auto drained = member(1);
  drained.node.drained = true;
  auto suspect = member(2);
  suspect.state = node_state::suspect;
  auto down = member(3);
  down.state = node_state::down;
  std::vector<member_info> nodes{drained, suspect, down, member(4, 1, 50)};
  auto got = spread(place("counter", 7, {}, nodes));
  CHECK(got == std::map<uint8_t, uint32_t>{{4, 7}});
  nodes.pop_back();
  auto none = place("counter", 1, {}, nodes);
  REQUIRE(!none);
  CHECK(is(none.error(), errc::no_target_available));
  auto text = why(none.error());
  CHECK(has(text, "node " + to_hex(node_n(1)) + ": drained"));
  CHECK(has(text, "node " + to_hex(node_n(2)) + ": suspect"));
  CHECK(has(text, "node " + to_hex(node_n(3)) + ": down"));
}

TEST_CASE("place vetoes on every requirement and says why per node") {
  auto eu = member(1, 8);
  eu.node.caps.labels = {{"zone", "eu"}};
  eu.node.caps.tags = {"ssd"};
  auto us = member(2, 8);
  us.node.caps.labels = {{"zone", "us"}};
  us.node.caps.tags = {"ssd"};
  auto small = member(3, 2);
  small.node.caps.labels = {{"zone", "eu"}};
  small.node.caps.tags = {"ssd"};
  std::vector<member_info> nodes{eu, us, small};
  std::vector<requirement> filter{req("tag=ssd"), req("label:zone=eu"),
                                  req("min_cores=4")};
  auto got = spread(place("counter", 5, filter, nodes));
  CHECK(got == std::map<uint8_t, uint32_t>{{1, 5}});
  filter.push_back(req("min_memory_mb=16384"));
  auto none = place("counter", 5, filter, nodes);
  REQUIRE(!none);
  CHECK(is(none.error(), errc::no_target_available));
  auto text = why(none.error());
  CHECK(has(text, "kind counter (filter: tag=ssd, label:zone=eu, "
                  "min_cores=4, min_memory_mb=16384)"));
  CHECK(has(text, "node " + to_hex(node_n(1))
                    + ": has 8192 MB of memory, needs 16384"));
  CHECK(has(text, "node " + to_hex(node_n(2))
                    + ": label zone is us, not eu, has 8192 MB"));
  CHECK(has(text, "node " + to_hex(node_n(3)) + ": has 2 cores, needs 4"));
}

TEST_CASE("place names the first few vetoed nodes, then how many more") {
  std::vector<member_info> nodes;
  for (uint8_t n = 1; n <= 8; ++n) {
    nodes.push_back(member(n));
    nodes.back().state = node_state::down;
  }
  auto none = place("counter", 1, {}, nodes);
  REQUIRE(!none);
  auto text = why(none.error());
  CHECK(has(text, to_hex(node_n(5))));
  CHECK(!has(text, to_hex(node_n(6))));
  CHECK(has(text, "; and 3 more"));
  auto empty = place("counter", 1, {}, {});
  REQUIRE(!empty);
  CHECK(is(empty.error(), errc::no_target_available));
  CHECK(has(why(empty.error()), "no members"));
}

TEST_CASE("place --on restricts to one node, still under the veto") {
  auto ssd = member(1);
  ssd.node.caps.tags = {"ssd"};
  std::vector<member_info> nodes{ssd, member(2), member(3)};
  auto got = spread(place("counter", 4, {}, nodes, node_n(3)));
  CHECK(got == std::map<uint8_t, uint32_t>{{3, 4}});
  auto vetoed = place("counter", 1, {req("tag=ssd")}, nodes, node_n(2));
  REQUIRE(!vetoed);
  CHECK(is(vetoed.error(), errc::no_target_available));
  auto text = why(vetoed.error());
  CHECK(has(text, "on node " + to_hex(node_n(2)) + ": lacks tag ssd"));
  // The ssd node was fine, but the operator asked for node 2 only.
  CHECK(!has(text, to_hex(node_n(1))));
  auto stranger = place("counter", 1, {}, nodes, node_n(42));
  REQUIRE(!stranger);
  CHECK(is(stranger.error(), errc::no_target_available));
  CHECK(has(why(stranger.error()), "not a member"));
}

TEST_CASE("place refuses a count of 0 or above the bound") {
  std::vector<member_info> nodes{member(1)};
  for (uint32_t n : {0u, max_placement_count + 1}) {
    auto r = place("counter", n, {}, nodes);
    REQUIRE(!r);
    CHECK(is(r.error(), errc::invalid_argument));
  }
  CHECK(place("counter", max_placement_count, {}, nodes));
}

TEST_CASE("place counts a duplicated member once") {
  std::vector<member_info> nodes{member(1), member(1), member(2)};
  auto got = spread(place("counter", 4, {}, nodes));
  CHECK(got == std::map<uint8_t, uint32_t>{{1, 2}, {2, 2}});
}

namespace {

class picky final : public daemon {
public:
  std::string_view kind() const override {
    return "picky";
  }
  capability_filter requirements() const override {
    capability_filter f;
    f.require_tags = {"ssd", "gpu", "ssd"};
    f.min_cores = 4;
    f.labels = {{"zone", "eu"}};
    return f;
  }
  caf::expected<std::vector<bytes>> process(const causal_event&) override {
    return std::vector<bytes>{};
  }
};

class throws_on_requirements final : public daemon {
public:
  std::string_view kind() const override {
    return "broken";
  }
  capability_filter requirements() const override {
    throw std::runtime_error("no filter today");
  }
  caf::expected<std::vector<bytes>> process(const causal_event&) override {
    return std::vector<bytes>{};
  }
};

} // namespace

TEST_CASE("a kind's own requirements come from its factory and veto nodes") {
  factory_registry reg;
  REQUIRE(!reg.add("picky", [] {
    return std::make_unique<picky>();
  }));
  REQUIRE(!reg.add("broken", [] {
    return std::make_unique<throws_on_requirements>();
  }));
  auto f = reg.requirements("picky");
  REQUIRE(f);
  auto reqs = requirements_of(*f);
  std::vector<std::string> texts;
  for (auto& r : reqs)
    texts.push_back(to_string(r));
  CHECK(texts
        == std::vector<std::string>{"tag=gpu", "tag=ssd", "label:zone=eu",
                                    "min_cores=4"});
  auto unknown = reg.requirements("nope");
  REQUIRE(!unknown);
  CHECK(is(unknown.error(), errc::factory_not_found));
  auto broken = reg.requirements("broken");
  REQUIRE(!broken);
  CHECK(is(broken.error(), errc::process_failed));
  CHECK(has(why(broken.error()), "no filter today"));

  auto fit = member(1);
  fit.node.caps.kinds = {"picky"};
  fit.node.caps.tags = {"gpu", "ssd"};
  fit.node.caps.labels = {{"zone", "eu"}};
  auto plain = member(2);
  plain.node.caps.kinds = {"picky"};
  auto got = spread(place("picky", 3, reqs, {plain, fit}));
  CHECK(got == std::map<uint8_t, uint32_t>{{1, 3}});
  // No requirement at all: an empty filter.
  CHECK(requirements_of(capability_filter{}).empty());
}
