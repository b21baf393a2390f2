// The daemon actor's own interface, below the runtime facade: the
// request/response form of deliver (for actors, e.g. a router) and its
// refusal of a malformed batch.

#include <catch2/catch.hpp>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/scoped_actor.hpp>

#include "actors/daemon_actor.hpp"
#include "actors/daemon_core.hpp"
#include "actors/runtime.hpp"
#include "actors/store_actor.hpp"
#include "base/errc.hpp"
#include "identity/keypair.hpp"
#include "test_daemons.hpp"

using namespace mesh;
using mesh::test::text;
using mesh::test::to_bytes;

namespace {

struct fixture {
  caf::actor_system_config cfg;
  caf::actor_system sys{apply_scheduler_defaults(cfg)};
  store_actor store = spawn_store_actor(sys, {});
  daemon_actor d;

  fixture() {
    auto make = []() -> caf::expected<std::unique_ptr<daemon>> {
      return std::unique_ptr<daemon>{std::make_unique<test::sum_daemon>()};
    };
    daemon_actor_config c;
    c.core = std::make_shared<daemon_core>("sum", keypair::generate(), make,
                                           std::make_unique<test::sum_daemon>(),
                                           restart_policy::once());
    c.store = store;
    d = spawn_daemon_actor(sys, std::move(c));
  }

  ~fixture() {
    caf::scoped_actor self{sys};
    self->request(d, caf::infinite, stop_atom::value, false)
      .receive([](bool) {}, [](caf::error&) {});
    self->request(store, caf::infinite, close_atom::value, final_snapshots{})
      .receive([](std::vector<std::string>&) {}, [](caf::error&) {});
  }

  caf::expected<delivery_batch> ask(const event_batch& evs) {
    caf::scoped_actor self{sys};
    caf::expected<delivery_batch> result = make_error(errc::timeout);
    self->request(d, caf::infinite, deliver_atom::value, evs)
      .receive(
        [&](delivery_batch& b) {
          result = std::move(b);
        },
        [&](caf::error& e) {
          result = std::move(e);
        });
    return result;
  }
};

} // namespace

TEST_CASE("a daemon actor answers a deliver request with a delivery_batch") {
  fixture f;
  event_batch evs;
  evs.add(1, 1, to_bytes("2"));
  evs.add(1, 2, to_bytes("3"));
  evs.add(1, 1, to_bytes("2"));
  auto r = f.ask(evs);
  REQUIRE(r);
  REQUIRE(r->size() == 3);
  CHECK(text(r->output_at(0, 0).payload.to_bytes()) == "2");
  CHECK(text(r->output_at(1, 0).payload.to_bytes()) == "5");
  CHECK(r->state(2) == delivery::status::duplicate);
  CHECK(r->daemon_seq(2) == 1);
}

TEST_CASE("a daemon actor refuses a batch whose payload lies outside it") {
  fixture f;
  event_batch evs;
  evs.add(1, 1, to_bytes("2"));
  evs.headers()[0].size = 1000;
  CHECK(!evs.well_formed());
  auto r = f.ask(evs);
  REQUIRE(!r);
  CHECK(is(r.error(), errc::corrupt_data));
  // Nothing was applied: the next event is the first.
  event_batch ok;
  ok.add(1, 1, to_bytes("4"));
  auto r2 = f.ask(ok);
  REQUIRE(r2);
  CHECK(r2->daemon_seq(0) == 1);
  CHECK(text(r2->output_at(0, 0).payload.to_bytes()) == "4");
}
