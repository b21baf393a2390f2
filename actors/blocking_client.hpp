#pragma once

// Blocking requests to the runtime's actors from threads outside the actor
// system: the runtime facade's one way to talk to them. A request is an
// ordinary typed message (actors/messages.hpp) whose sender is a pooled
// reply_actor (actors/reply.hpp); the caller spins briefly for the answer,
// then sleeps, up to its timeout.
//
// The request itself carries no CAF timeout: in CAF 0.17 a timed request
// costs two round trips through the clock thread (set and cancel). The
// caller waits at most `timeout` for the reply instead.

#include <chrono>
#include <memory>
#include <mutex>
#include <type_traits>
#include <utility>
#include <vector>

#include <caf/actor_cast.hpp>
#include <caf/actor_control_block.hpp>
#include <caf/error.hpp>
#include <caf/expected.hpp>
#include <caf/is_typed_actor.hpp>
#include <caf/mailbox_element.hpp>
#include <caf/replies_to.hpp>
#include <caf/response_type.hpp>
#include <caf/sec.hpp>
#include <caf/typed_actor.hpp>

#include "actors/reply.hpp"

namespace mesh {

/// True when `err` says the request never reached its receiver: CAF bounced
/// it because the receiver's mailbox was closed (it had stopped).
bool bounced(const caf::error& err);

/// `err` as the errors the facade's callers handle: a bounce becomes
/// `when_gone`, CAF's own timeout errc::timeout.
caf::error normalize(caf::error err, const caf::error& when_gone);

class blocking_client {
public:
  /// `spin`: how long a waiter spins before it sleeps (0 = sleep at once).
  blocking_client(caf::actor_system& sys, std::chrono::nanoseconds spin);
  ~blocking_client();

  blocking_client(const blocking_client&) = delete;
  blocking_client& operator=(const blocking_client&) = delete;

  /// Sends `xs...` to `dest` as a request and waits up to `timeout` for the
  /// answer of type R. Errors: what the receiver answered,
  /// caf::sec::request_receiver_down when it never read the request (see
  /// bounced()), errc::timeout. For a typed `dest` the message and the
  /// answer type are checked against its interface at compile time.
  template<class R, class Handle, class... Ts>
  caf::expected<R>
  ask(const Handle& dest, std::chrono::nanoseconds timeout, Ts&&... xs) {
    check_interface<Handle, R, Ts...>();
    auto to = caf::actor_cast<caf::strong_actor_ptr>(dest);
    if (!to)
      return caf::make_error(caf::sec::request_receiver_down);
    auto self = acquire();
    auto& waiter = reply_actor_of(self);
    auto mid = waiter.start();
    to->enqueue(caf::make_mailbox_element(self, mid, {},
                                          std::forward<Ts>(xs)...),
                nullptr);
    if (!waiter.wait(spin_, reply_actor::clock::now() + timeout))
      return timed_out(); // `self` is dropped, not pooled (see reply.hpp)
    caf::expected<R> result = take<R>(waiter.answer());
    waiter.answer().reset();
    release(std::move(self));
    return result;
  }

private:
  template<class Handle, class R, class... Ts>
  static void check_interface() {
    if constexpr (caf::is_typed_actor<Handle>::value) {
      using token = caf::detail::type_list<
        typename caf::detail::implicit_conversions<std::decay_t<Ts>>::type...>;
      using unboxed = caf::response_type_unbox<caf::signatures_of_t<Handle>,
                                               token>;
      static_assert(unboxed::valid, "the actor does not accept this message");
      static_assert(std::is_same<typename unboxed::type,
                                 caf::detail::type_list<R>>::value,
                    "the actor answers this message with another type");
    }
  }

  template<class R>
  static caf::expected<R> take(caf::message& msg) {
    if (msg.match_elements<R>())
      return std::move(msg.get_mutable_as<R>(0));
    if (msg.match_elements<caf::error>())
      return std::move(msg.get_mutable_as<caf::error>(0));
    return unexpected_answer(msg);
  }

  static caf::error unexpected_answer(const caf::message& msg);
  static caf::error timed_out();

  caf::strong_actor_ptr acquire();
  void release(caf::strong_actor_ptr self);

  caf::actor_system& sys_;
  std::chrono::nanoseconds spin_;
  // Idle reply actors; one per concurrent caller at most.
  std::mutex mtx_;
  std::vector<caf::strong_actor_ptr> idle_;
};

} // namespace mesh
