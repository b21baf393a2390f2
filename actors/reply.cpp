#include "actors/reply.hpp"

#include <thread>

#include <caf/actor_cast.hpp>
#include <caf/actor_config.hpp>
#include <caf/actor_system.hpp>
#include <caf/mailbox_element.hpp>
#include <caf/make_actor.hpp>

namespace mesh {

namespace {

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield" ::: "memory");
#endif
}

} // namespace

reply_actor::reply_actor(caf::actor_config& cfg) : monitorable_actor(cfg) {}

void reply_actor::enqueue(caf::mailbox_element_ptr what, caf::execution_unit*) {
  if (!what || !what->mid.is_response())
    return;
  if (what->mid.request_id().integer_value()
      != expected_.load(std::memory_order_acquire))
    return;
  int empty = empty_state;
  if (!state_.compare_exchange_strong(empty, writing_state,
                                      std::memory_order_acq_rel))
    return;
  answer_ = what->move_content_to_message();
  {
    // Under the lock, so that a waiter between its last check and its sleep
    // cannot miss the wake-up.
    std::lock_guard<std::mutex> guard{mtx_};
    state_.store(ready_state, std::memory_order_release);
  }
  cv_.notify_one();
}

caf::message_id reply_actor::start() {
  auto id = caf::make_message_id(++next_id_);
  answer_.reset();
  expected_.store(id.request_id().integer_value(), std::memory_order_release);
  state_.store(empty_state, std::memory_order_release);
  return id;
}

bool reply_actor::wait(std::chrono::nanoseconds spin,
                       clock::time_point deadline) {
  if (ready())
    return true;
  if (spin.count() > 0) {
    auto spin_until = std::min(clock::now() + spin, deadline);
    // Pause instructions (the answer is often a few microseconds away),
    // with a yield every 64 of them so that a thread sharing this core (a
    // worker, the log's fsync thread, another caller) still gets to run.
    for (unsigned i = 1;; ++i) {
      if (ready())
        return true;
      if ((i & 63) != 0) {
        cpu_relax();
        continue;
      }
      if (clock::now() >= spin_until)
        break;
      std::this_thread::yield();
    }
  }
  std::unique_lock<std::mutex> guard{mtx_};
  return cv_.wait_until(guard, deadline, [this] {
    return ready();
  });
}

caf::strong_actor_ptr make_reply_actor(caf::actor_system& sys) {
  caf::actor_config cfg;
  auto handle = caf::make_actor<reply_actor, caf::actor>(sys.next_actor_id(),
                                                         sys.node(), &sys, cfg);
  return caf::actor_cast<caf::strong_actor_ptr>(std::move(handle));
}

reply_actor& reply_actor_of(const caf::strong_actor_ptr& ptr) {
  return *static_cast<reply_actor*>(caf::actor_cast<caf::abstract_actor*>(ptr));
}

} // namespace mesh
