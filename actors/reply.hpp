#pragma once

// How a thread outside the actor system (a caller of the blocking facade)
// waits for an actor's answer: it sends an ordinary request whose sender is
// a reply_actor, and the receiver answers it as it answers any request (a
// response promise, a returned value, or CAF's bounce when its mailbox is
// closed). The request carries nothing in-process, so the receiver cannot
// tell this caller from an actor on another node.
//
// Why not scoped_actor: its receive sleeps on a condition variable, and on a
// small VM one sleep/wake hand-off costs about 25 us (a condition-variable
// ping-pong measured 50 us per round trip on the 2-core CI machine, against
// 0.1 us for two threads spinning on an atomic). A batch of 100 events takes
// a daemon about 10 us, so the wake-up, not the work, bounded a blocking
// deliver_batch to about 2 million events/s. A reply_actor has no mailbox
// and no behaviour: its enqueue() stores the response in a one-shot slot,
// and the waiter spins for a short, bounded time first (the answer usually
// arrives within it), then sleeps like any blocking call; the deadline
// still holds.
//
// One request at a time per reply_actor: start() names the request whose
// response counts; any other message (a late answer to an earlier request)
// is dropped. After a wait that timed out, throw the actor away instead of
// reusing it (its late answer would race the next request).

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>

#include <caf/fwd.hpp>
#include <caf/message.hpp>
#include <caf/message_id.hpp>
#include <caf/monitorable_actor.hpp>

namespace mesh {

class reply_actor final : public caf::monitorable_actor {
public:
  using clock = std::chrono::steady_clock;

  explicit reply_actor(caf::actor_config& cfg);

  /// Stores a response to the current request and wakes the waiter; drops
  /// anything else.
  void enqueue(caf::mailbox_element_ptr what, caf::execution_unit*) override;

  const char* name() const override {
    return "mesh.reply";
  }

  /// The id of a new request (the previous answer is dropped). Only the
  /// waiting thread calls start(), wait() and answer().
  caf::message_id start();

  /// Spins for up to `spin`, then sleeps until `deadline`. True when the
  /// answer is in.
  bool wait(std::chrono::nanoseconds spin, clock::time_point deadline);

  bool ready() const {
    return state_.load(std::memory_order_acquire) == ready_state;
  }

  /// The response message (a value or a caf::error). Only after ready().
  caf::message& answer() {
    return answer_;
  }

private:
  static constexpr int empty_state = 0;
  static constexpr int writing_state = 1;
  static constexpr int ready_state = 2;

  uint64_t next_id_ = 0;
  std::atomic<uint64_t> expected_{0};
  std::atomic<int> state_{empty_state};
  std::mutex mtx_;
  std::condition_variable cv_;
  caf::message answer_;
};

/// A new reply_actor in `sys` (one strong reference: the caller's).
caf::strong_actor_ptr make_reply_actor(caf::actor_system& sys);

/// The reply_actor behind `ptr` (which make_reply_actor returned).
reply_actor& reply_actor_of(const caf::strong_actor_ptr& ptr);

} // namespace mesh
