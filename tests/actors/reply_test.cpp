// The facade's blocking requests (actors/blocking_client, actors/reply): an
// answer wakes the waiter whether it comes during the spin or after the
// waiter went to sleep; a deadline holds; a request to an actor that is gone
// bounces at once; a late answer to an earlier request never passes for the
// answer to the next one.

#include <chrono>
#include <thread>

#include <catch2/catch.hpp>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/exit_reason.hpp>
#include <caf/mailbox_element.hpp>
#include <caf/scoped_actor.hpp>
#include <caf/send.hpp>
#include <caf/typed_event_based_actor.hpp>

#include "actors/blocking_client.hpp"
#include "actors/messages.hpp"
#include "actors/reply.hpp"
#include "base/errc.hpp"

using namespace mesh;
using namespace std::chrono_literals;

namespace {

using clock_type = reply_actor::clock;

using wait_atom = caf::atom_constant<caf::atom("wait")>;
using never_atom = caf::atom_constant<caf::atom("never")>;
using fail_atom = caf::atom_constant<caf::atom("fail")>;

/// Answers hwm with `seq * 10` at once; wait after a delay; never not at all;
/// fail with io_error.
using test_actor = caf::typed_actor<
  caf::replies_to<hwm_atom, uint64_t>::with<uint64_t>,
  caf::replies_to<wait_atom, uint64_t>::with<uint64_t>,
  caf::replies_to<never_atom>::with<uint64_t>,
  caf::replies_to<fail_atom>::with<uint64_t>>;

struct test_state {
  std::vector<caf::typed_response_promise<uint64_t>> held;
};

// Spawned with an argument: for a function spawned without any, CAF 0.17's
// init_fun_factory binds a reference through a null std::tuple<> pointer,
// which UBSan reports (harmless, but it fails the sanitizer build).
test_actor::behavior_type
test_impl(test_actor::stateful_pointer<test_state> self, int) {
  return {
    [](hwm_atom, uint64_t seq) -> uint64_t {
      return seq * 10;
    },
    [self](wait_atom, uint64_t ms) -> caf::result<uint64_t> {
      auto rp = self->make_response_promise<uint64_t>();
      std::this_thread::sleep_for(std::chrono::milliseconds{ms});
      rp.deliver(ms);
      return rp;
    },
    [self](never_atom) -> caf::result<uint64_t> {
      auto rp = self->make_response_promise<uint64_t>();
      self->state.held.push_back(rp);
      return rp;
    },
    [](fail_atom) -> caf::result<uint64_t> {
      return make_error(errc::io_error, "disk");
    },
  };
}

struct fixture {
  caf::actor_system_config cfg;
  caf::actor_system sys{cfg};
  test_actor a = sys.spawn(test_impl, 0);

  ~fixture() {
    caf::anon_send_exit(a, caf::exit_reason::user_shutdown);
  }
};

} // namespace

TEST_CASE("a blocking request gets the actor's answer") {
  fixture f;
  blocking_client c{f.sys, 100us};
  for (uint64_t i = 1; i <= 100; ++i) {
    auto r = c.ask<uint64_t>(f.a, 20s, hwm_atom::value, i);
    REQUIRE(r);
    CHECK(*r == i * 10);
  }
}

TEST_CASE("an error answer comes back as that error") {
  fixture f;
  blocking_client c{f.sys, 100us};
  auto r = c.ask<uint64_t>(f.a, 20s, fail_atom::value);
  REQUIRE(!r);
  CHECK(is(r.error(), errc::io_error));
}

TEST_CASE("an answer after the waiter went to sleep wakes it") {
  fixture f;
  // No spin: straight to sleep.
  blocking_client c{f.sys, 0ns};
  auto t0 = clock_type::now();
  auto r = c.ask<uint64_t>(f.a, 20s, wait_atom::value, uint64_t{50});
  REQUIRE(r);
  CHECK(*r == 50);
  CHECK(clock_type::now() - t0 < 10s);
}

TEST_CASE("a request without an answer ends at its deadline") {
  fixture f;
  blocking_client c{f.sys, 100us};
  auto t0 = clock_type::now();
  auto r = c.ask<uint64_t>(f.a, 30ms, never_atom::value);
  REQUIRE(!r);
  CHECK(is(r.error(), errc::timeout));
  CHECK(clock_type::now() - t0 >= 30ms);
  // The client still works (with a fresh reply actor).
  auto again = c.ask<uint64_t>(f.a, 20s, hwm_atom::value, uint64_t{2});
  REQUIRE(again);
  CHECK(*again == 20);
}

TEST_CASE("a request to an actor that is gone bounces at once") {
  fixture f;
  {
    caf::scoped_actor self{f.sys};
    self->send_exit(f.a, caf::exit_reason::user_shutdown);
    self->wait_for(f.a);
  }
  blocking_client c{f.sys, 0ns};
  auto t0 = clock_type::now();
  auto r = c.ask<uint64_t>(f.a, 20s, hwm_atom::value, uint64_t{1});
  REQUIRE(!r);
  CHECK(clock_type::now() - t0 < 5s);
  CHECK(bounced(r.error()));
  CHECK(is(normalize(r.error(), make_error(errc::daemon_not_found, "gone")),
           errc::daemon_not_found));
}

TEST_CASE("a late answer to an earlier request is not the next answer") {
  caf::actor_system_config cfg;
  caf::actor_system sys{cfg};
  auto self = make_reply_actor(sys);
  auto& r = reply_actor_of(self);
  auto first = r.start();
  auto second = r.start();
  auto answer = [&](caf::message_id id, uint64_t x) {
    self->enqueue(caf::make_mailbox_element(nullptr, id.response_id(), {}, x),
                  nullptr);
  };
  answer(first, 1);
  CHECK(!r.wait(0ns, clock_type::now() + 20ms));
  answer(second, 2);
  REQUIRE(r.wait(0ns, clock_type::now() + 20s));
  REQUIRE(r.answer().match_elements<uint64_t>());
  CHECK(r.answer().get_as<uint64_t>(0) == 2);
  // Only the first answer to a request counts.
  answer(second, 3);
  CHECK(r.answer().get_as<uint64_t>(0) == 2);
}
