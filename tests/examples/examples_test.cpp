#include <catch2/catch.hpp>

#include <string>

#include "actors/factory_registry.hpp"
#include "examples/examples.hpp"

using namespace mesh;

TEST_CASE("example_kinds lists counter, echo and window with their factories") {
  auto kinds = examples::example_kinds();
  REQUIRE(kinds.size() == 3);
  CHECK(kinds[0].first == "counter");
  CHECK(kinds[1].first == "echo");
  CHECK(kinds[2].first == "window");
  for (auto& [kind, factory] : kinds) {
    auto d = factory();
    REQUIRE(d);
    CHECK(d->kind() == kind);
  }
}

TEST_CASE("example_kinds register with a factory registry") {
  factory_registry reg;
  for (auto& [kind, factory] : examples::example_kinds())
    REQUIRE_FALSE(reg.add(kind, factory));
  CHECK(reg.kinds() == std::vector<std::string>{"counter", "echo", "window"});
  auto w = reg.make("window");
  REQUIRE(w);
  causal_event ev;
  ev.payload = bytes{'4'};
  auto out = (*w)->process(ev);
  REQUIRE(out);
  CHECK(out->front()
        == bytes_view{std::string_view{"sum=4 avg=4 n=1"}}.to_bytes());
}
