// The facade's one-shot reply channel: an answer wakes the waiter whether it
// comes during the spin or after the waiter went to sleep; a deadline holds;
// a promise dropped unanswered reports daemon_not_found at once.

#include <chrono>
#include <thread>

#include <catch2/catch.hpp>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/exit_reason.hpp>
#include <caf/scoped_actor.hpp>
#include <caf/send.hpp>

#include "actors/messages.hpp"
#include "actors/reply.hpp"
#include "base/errc.hpp"

using namespace mesh;
using namespace std::chrono_literals;

namespace {

using clock_type = reply_channel_base::clock;

delivery_batch one_answer(uint64_t seq) {
  delivery_batch b;
  b.begin(delivery::status::applied, seq);
  return b;
}

} // namespace

TEST_CASE("an answer given before the wait is there at once") {
  auto ch = std::make_shared<delivery_channel>();
  delivery_promise p{ch};
  p.deliver(one_answer(4));
  REQUIRE(ch->wait(0ns, clock_type::now()));
  CHECK(!ch->error());
  CHECK(ch->value().daemon_seq(0) == 4);
}

TEST_CASE("an answer during the spin wakes the waiter") {
  auto ch = std::make_shared<delivery_channel>();
  auto p = std::make_shared<delivery_promise>(ch);
  std::thread t{[p] {
    std::this_thread::sleep_for(200us);
    p->deliver(one_answer(1));
  }};
  REQUIRE(ch->wait(10s, clock_type::now() + 20s));
  t.join();
  CHECK(ch->value().daemon_seq(0) == 1);
}

TEST_CASE("an answer after the waiter went to sleep wakes it") {
  auto ch = std::make_shared<delivery_channel>();
  auto p = std::make_shared<delivery_promise>(ch);
  std::thread t{[p] {
    std::this_thread::sleep_for(50ms);
    p->deliver(one_answer(2));
  }};
  auto t0 = clock_type::now();
  // No spin: straight to sleep.
  REQUIRE(ch->wait(0ns, t0 + 20s));
  CHECK(clock_type::now() - t0 < 10s);
  t.join();
  CHECK(ch->value().daemon_seq(0) == 2);
}

TEST_CASE("a wait without an answer ends at its deadline") {
  auto ch = std::make_shared<delivery_channel>();
  delivery_promise p{ch};
  auto t0 = clock_type::now();
  CHECK(!ch->wait(100us, t0 + 30ms));
  CHECK(clock_type::now() - t0 >= 30ms);
  CHECK(!ch->ready());
}

TEST_CASE("a promise dropped unanswered answers daemon_not_found") {
  auto ch = std::make_shared<delivery_channel>();
  { delivery_promise p{ch}; }
  REQUIRE(ch->wait(0ns, clock_type::now()));
  CHECK(is(ch->error(), errc::daemon_not_found));
}

TEST_CASE("only the first answer counts") {
  auto ch = std::make_shared<delivery_channel>();
  {
    delivery_promise p{ch};
    p.deliver(make_error(errc::io_error, "disk"));
    p.deliver(one_answer(9));
  } // and the drop afterwards changes nothing either
  REQUIRE(ch->ready());
  CHECK(is(ch->error(), errc::io_error));
  CHECK(ch->value().empty());
}

TEST_CASE("a message to an actor that is gone drops its promise at once") {
  caf::actor_system_config cfg;
  caf::actor_system sys{cfg};
  // (A spawn argument: CAF 0.17 dereferences a null tuple pointer when a
  // function actor is spawned without any, which UBSan reports.)
  auto a = sys.spawn(
    [](caf::event_based_actor*, uint64_t seq) -> caf::behavior {
      return {
        [seq](deliver_atom, const event_batch&, const delivery_promise_ptr& p) {
          p->deliver(one_answer(seq));
        },
      };
    },
    uint64_t{1});
  {
    caf::scoped_actor self{sys};
    self->send_exit(a, caf::exit_reason::user_shutdown);
    self->wait_for(a);
  }
  auto ch = std::make_shared<delivery_channel>();
  caf::anon_send(a, deliver_atom::value, event_batch{},
                 std::make_shared<delivery_promise>(ch));
  auto t0 = clock_type::now();
  REQUIRE(ch->wait(0ns, t0 + 20s));
  CHECK(clock_type::now() - t0 < 5s);
  CHECK(is(ch->error(), errc::daemon_not_found));
}
