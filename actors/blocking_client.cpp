#include "actors/blocking_client.hpp"

#include <caf/actor_system.hpp>
#include <caf/sec.hpp>

#include "base/errc.hpp"

namespace mesh {

bool bounced(const caf::error& err) {
  return err.category() == caf::atom("system")
         && static_cast<caf::sec>(err.code())
              == caf::sec::request_receiver_down;
}

caf::error normalize(caf::error err, const caf::error& when_gone) {
  if (bounced(err))
    return when_gone;
  if (err.category() == caf::atom("system")
      && static_cast<caf::sec>(err.code()) == caf::sec::request_timeout)
    return make_error(errc::timeout, "no answer in time");
  return err;
}

blocking_client::blocking_client(caf::actor_system& sys,
                                 std::chrono::nanoseconds spin)
  : sys_(sys), spin_(spin) {}

blocking_client::~blocking_client() {
  std::lock_guard<std::mutex> guard{mtx_};
  idle_.clear();
}

caf::error blocking_client::unexpected_answer(const caf::message& msg) {
  return make_error(errc::corrupt_data,
                    "unexpected answer: " + caf::to_string(msg));
}

caf::error blocking_client::timed_out() {
  return make_error(errc::timeout, "no answer in time");
}

caf::strong_actor_ptr blocking_client::acquire() {
  {
    std::lock_guard<std::mutex> guard{mtx_};
    if (!idle_.empty()) {
      auto self = std::move(idle_.back());
      idle_.pop_back();
      return self;
    }
  }
  return make_reply_actor(sys_);
}

void blocking_client::release(caf::strong_actor_ptr self) {
  std::lock_guard<std::mutex> guard{mtx_};
  idle_.push_back(std::move(self));
}

} // namespace mesh
