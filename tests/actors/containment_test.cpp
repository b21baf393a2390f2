// User code cannot take a daemon, the supervisor or the node down: a throw of
// any type, or an error, from any callback of a daemon is contained, and the
// daemon is rebuilt under its restart policy or listed as failed with the
// reason, never as running behind a dead handle.

#include <catch2/catch.hpp>

#include <stdexcept>
#include <thread>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/exit_reason.hpp>
#include <caf/scoped_actor.hpp>
#include <caf/send.hpp>

#include "actors/daemon_actor.hpp"
#include "actors/daemon_core.hpp"
#include "actors/factory_registry.hpp"
#include "actors/runtime.hpp"
#include "actors/supervisor_actor.hpp"
#include "base/errc.hpp"
#include "identity/keypair.hpp"
#include "snapshot/snapshot.hpp"
#include "support/temp_dir.hpp"
#include "test_daemons.hpp"
#include "test_node.hpp"

using namespace mesh;
using mesh::test::text;
using mesh::test::throw_plan;
using mesh::test::to_bytes;
using where = throw_plan::where;

namespace {

struct node : test::test_node {
  std::shared_ptr<throw_plan> plan = std::make_shared<throw_plan>();
  /// The factory throws (42 when plan->non_standard) while set.
  std::shared_ptr<std::atomic<bool>>
    factory_throws = std::make_shared<std::atomic<bool>>(false);

  node() : test_node({}, nullptr, false) {
    auto plan_ = plan;
    auto throws = factory_throws;
    kinds.emplace_back("thrower", [plan_, throws] {
      if (*throws) {
        if (plan_->non_standard)
          throw 42;
        throw std::runtime_error("factory throws as planned");
      }
      return std::make_unique<test::thrower_daemon>(plan_);
    });
    start();
  }

  uint64_t spawn() {
    return test_node::spawn("thrower");
  }
};

} // namespace

TEST_CASE("a throwing snapshot() fails that snapshot, not the daemon") {
  auto non_standard = GENERATE(false, true);
  auto at = GENERATE(where::snapshot, where::state_version);
  node n;
  auto id = n.spawn();
  CHECK(n.send(id, "5") == std::string{"5"});
  n.plan->at = at;
  n.plan->non_standard = non_standard;
  auto s = n.rt->snapshot(id);
  REQUIRE(!s);
  CHECK(describe(s.error()).find("snapshot") != std::string::npos);
  // The daemon keeps serving with its state.
  CHECK(n.send(id, "2") == std::string{"7"});
  CHECK(n.listed(id).phase == daemon_phase::running);
  n.plan->at = where::nowhere;
  CHECK(n.rt->snapshot(id));
}

TEST_CASE("a throwing process() of any type is a rejection and a rebuild") {
  node n;
  auto id = n.spawn();
  CHECK(n.send(id, "5") == std::string{"5"});
  n.plan->at = where::process;
  n.plan->non_standard = true;
  n.plan->times = 1;
  auto r = n.send(id, "1");
  REQUIRE(!r);
  CHECK(is(r.error(), errc::process_failed));
  n.plan->at = where::nowhere;
  CHECK(n.send(id, "1") == std::string{"6"});
  CHECK(n.listed(id).phase == daemon_phase::running);
}

TEST_CASE("a restore() that throws during a rebuild leaves the daemon "
          "listed as failed with the reason") {
  auto non_standard = GENERATE(false, true);
  node n;
  auto id = n.spawn();
  CHECK(n.send(id, "5") == std::string{"5"});
  REQUIRE(n.rt->snapshot(id));
  n.plan->at = where::restore;
  n.plan->non_standard = non_standard;
  // A rejected event rebuilds the daemon: restore throws.
  auto r = n.rt->deliver(id, {0, 0, to_bytes("bad")});
  REQUIRE(!r);
  auto info = n.listed(id);
  CHECK(info.phase == daemon_phase::failed);
  CHECK(info.reason.find("restore") != std::string::npos);
  // Input is refused with the reason, not daemon_not_found.
  auto again = n.send(id, "1");
  REQUIRE(!again);
  CHECK(is(again.error(), errc::daemon_failed));
  // Once restore works again, resume brings it back with its state.
  n.plan->at = where::nowhere;
  auto resumed = n.rt->resume(id, false);
  REQUIRE(resumed);
  CHECK(resumed->phase == daemon_phase::running);
  CHECK(n.send(id, "1") == std::string{"6"});
}

TEST_CASE("a factory that throws during a rebuild leaves the daemon failed") {
  node n;
  auto id = n.spawn();
  CHECK(n.send(id, "5") == std::string{"5"});
  n.plan->non_standard = true;
  *n.factory_throws = true;
  CHECK(!n.rt->deliver(id, {0, 0, to_bytes("bad")}));
  auto info = n.listed(id);
  CHECK(info.phase == daemon_phase::failed);
  CHECK(info.reason.find("factory") != std::string::npos);
}

TEST_CASE("a factory or restore that throws 42 fails spawn cleanly") {
  node n;
  n.plan->non_standard = true;
  *n.factory_throws = true;
  auto d = n.rt->spawn("thrower");
  REQUIRE(!d);
  CHECK(describe(d.error()).find("factory") != std::string::npos);
  *n.factory_throws = false;
  // A snapshot to restore from, then restore throws 42.
  auto key = keypair::generate();
  auto first = n.rt->spawn("thrower", key);
  REQUIRE(first);
  CHECK(n.send(first->origin_hash, "3") == std::string{"3"});
  auto snap = n.rt->snapshot(first->origin_hash);
  REQUIRE(snap);
  REQUIRE(!n.rt->stop(first->origin_hash));
  n.plan->at = where::restore;
  auto again = n.rt->spawn_from_snapshot(key, *snap);
  REQUIRE(!again);
  CHECK(is(again.error(), errc::restore_failed));
  auto all = n.rt->daemons();
  REQUIRE(all);
  CHECK(all->empty());
}

TEST_CASE("a daemon whose factory throws at recovery is listed as failed") {
  node n;
  auto id = n.spawn();
  CHECK(n.send(id, "5") == std::string{"5"});
  n.plan->non_standard = true;
  *n.factory_throws = true;
  n.restart();
  auto info = n.listed(id);
  CHECK(info.phase == daemon_phase::failed);
  CHECK(info.reason.find("factory") != std::string::npos);
  auto r = n.send(id, "1");
  REQUIRE(!r);
  CHECK(is(r.error(), errc::daemon_failed));
  // With the factory fixed, the next start brings it back intact.
  *n.factory_throws = false;
  n.restart();
  CHECK(n.listed(id).phase == daemon_phase::running);
  CHECK(n.send(id, "1") == std::string{"6"});
}

// -- the supervisor, below the facade -----------------------------------------

namespace {

struct sup_fixture {
  caf::actor_system_config cfg;
  caf::actor_system sys{apply_scheduler_defaults(cfg)};
  supervisor_actor sup = spawn_supervisor(sys, config());

  static supervisor_config config() {
    auto registry = std::make_shared<factory_registry>();
    REQUIRE(!registry->add("sum", [] {
      return std::make_unique<test::sum_daemon>();
    }));
    supervisor_config c;
    c.registry = std::move(registry);
    return c;
  }

  sup_fixture() {
    caf::scoped_actor self{sys};
    self->request(sup, caf::infinite, start_atom::value, log_actor{})
      .receive([](bool) {},
               [](caf::error& e) {
                 FAIL(describe(e));
               });
  }

  ~sup_fixture() {
    caf::scoped_actor self{sys};
    self->request(sup, caf::infinite, shutdown_atom::value)
      .receive([](bool) {}, [](caf::error&) {});
  }

  daemon_info spawn() {
    caf::scoped_actor self{sys};
    daemon_info out;
    self
      ->request(sup, caf::infinite, spawn_atom::value,
                spawn_spec{"sum", keypair::generate()})
      .receive(
        [&](daemon_info& i) {
          out = i;
        },
        [](caf::error& e) {
          FAIL(describe(e));
        });
    return out;
  }

  std::vector<daemon_info> list() {
    caf::scoped_actor self{sys};
    std::vector<daemon_info> out;
    self->request(sup, std::chrono::seconds{10}, list_atom::value)
      .receive(
        [&](std::vector<daemon_info>& xs) {
          out = std::move(xs);
        },
        [](caf::error& e) {
          FAIL(describe(e));
        });
    return out;
  }

  caf::expected<daemon_actor> lookup(uint64_t origin) {
    caf::scoped_actor self{sys};
    caf::expected<daemon_actor> out = make_error(errc::timeout);
    self->request(sup, std::chrono::seconds{10}, lookup_atom::value, origin)
      .receive(
        [&](daemon_actor& d) {
          out = d;
        },
        [&](caf::error& e) {
          out = e;
        });
    return out;
  }
};

} // namespace

TEST_CASE("a daemon actor that dies is listed as failed, never as running") {
  auto reason = GENERATE(caf::exit_reason::kill,
                         caf::exit_reason::user_shutdown,
                         caf::exit_reason::unhandled_exception);
  sup_fixture f;
  auto info = f.spawn();
  auto d = f.lookup(info.origin_hash);
  REQUIRE(d);
  caf::anon_send_exit(*d, reason);
  // The down message reaches the supervisor asynchronously.
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds{10};
  std::vector<daemon_info> listed;
  do {
    listed = f.list();
    REQUIRE(listed.size() == 1);
    if (listed[0].phase == daemon_phase::failed)
      break;
    std::this_thread::sleep_for(std::chrono::milliseconds{2});
  } while (std::chrono::steady_clock::now() < deadline);
  CHECK(listed[0].phase == daemon_phase::failed);
  CHECK(listed[0].reason.find("terminated") != std::string::npos);
  auto gone = f.lookup(info.origin_hash);
  REQUIRE(!gone);
  CHECK(is(gone.error(), errc::daemon_failed));
}

TEST_CASE("the supervisor drops unexpected messages and keeps serving") {
  sup_fixture f;
  auto info = f.spawn();
  auto untyped = caf::actor_cast<caf::actor>(f.sup);
  caf::anon_send(untyped, std::string{"junk"});
  caf::anon_send(untyped, 42, 43);
  caf::anon_send(untyped, caf::atom("bogus"));
  {
    caf::scoped_actor self{f.sys};
    bool answered = false;
    self->request(untyped, std::chrono::seconds{10}, caf::atom("bogus"))
      .receive(
        [&](caf::message&) {
          answered = true;
        },
        [&](caf::error&) {
          answered = true;
        });
    CHECK(answered);
  }
  auto listed = f.list();
  REQUIRE(listed.size() == 1);
  CHECK(listed[0].origin_hash == info.origin_hash);
  CHECK(listed[0].phase == daemon_phase::running);
}
