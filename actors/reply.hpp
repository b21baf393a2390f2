#pragma once

// A one-shot answer from an actor to a thread blocked outside the actor
// system; the runtime facade's deliver and deliver_batch use it instead of a
// scoped_actor request.
//
// Why not scoped_actor: its receive sleeps on a condition variable, and on a
// small VM one sleep/wake hand-off costs about 25 us (a condition-variable
// ping-pong measured 50 us per round trip on the 2-core CI machine, against
// 0.1 us for two threads spinning on an atomic). A batch of 100 events takes
// a daemon about 10 us, so the wake-up, not the work, bounded a blocking
// deliver_batch to about 2 million events/s. The waiter here spins for a
// short, bounded time first (the answer usually arrives within it), then
// sleeps like any blocking call; the deadline still holds.
//
// The sending end (reply_promise) travels in the message. If it is dropped
// unanswered (the receiver stopped and its mailbox closed, or the actor died
// holding it) its destructor answers daemon_not_found, so the waiter never
// waits out the deadline for an actor that is gone. The receiver calls
// accept() when it starts on the request; a promise dropped after that
// carries the same code but the channel remembers it was accepted: the
// request may have had effects, so the caller must not simply resend it.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>

#include <caf/error.hpp>

#include "actors/batch.hpp"

namespace mesh {

/// daemon_not_found: "the daemon is gone" (the request never reached it) or,
/// when `accepted`, that it stopped before answering and the request may
/// have been applied.
caf::error reply_receiver_gone(bool accepted);

/// The part of a reply channel that does not depend on the answer's type.
class reply_channel_base {
public:
  using clock = std::chrono::steady_clock;

  /// Spins for up to `spin`, then sleeps until `deadline`. True when the
  /// answer is in.
  bool wait(std::chrono::nanoseconds spin, clock::time_point deadline);

  bool ready() const {
    return state_.load(std::memory_order_acquire) == ready_state;
  }

  /// Whether the receiver started on the request (see reply_promise).
  bool accepted() const {
    return accepted_.load(std::memory_order_acquire);
  }

  /// The error (none when the answer is a value). Only after ready().
  const caf::error& error() const {
    return error_;
  }

  void fail(caf::error err) {
    if (!claim())
      return;
    error_ = std::move(err);
    publish();
  }

  /// Called by the receiver before it acts on the request.
  void accept() {
    accepted_.store(true, std::memory_order_release);
  }

protected:
  /// Claims the channel for the one writer; false when already answered.
  bool claim();
  /// Makes the answer visible and wakes the waiter.
  void publish();

private:
  static constexpr int empty_state = 0;
  static constexpr int writing_state = 1;
  static constexpr int ready_state = 2;

  std::atomic<int> state_{empty_state};
  std::atomic<bool> accepted_{false};
  std::mutex mtx_;
  std::condition_variable cv_;
  caf::error error_;
};

/// The receiving end: the blocked caller waits on it.
template<class T>
class reply_channel : public reply_channel_base {
public:
  /// Stores the answer and wakes the waiter; only the first answer counts.
  void fulfill(T value) {
    if (!claim())
      return;
    value_ = std::move(value);
    publish();
  }

  /// The answer when error() is none. Only after ready().
  T& value() {
    return value_;
  }

private:
  T value_;
};

/// The sending end (shared by copies of the message); see the file comment.
template<class T>
class reply_promise {
public:
  explicit reply_promise(std::shared_ptr<reply_channel<T>> ch)
    : ch_(std::move(ch)) {}

  ~reply_promise() {
    if (ch_)
      ch_->fail(gone(ch_->accepted()));
  }

  reply_promise(const reply_promise&) = delete;
  reply_promise& operator=(const reply_promise&) = delete;

  /// The receiver started on the request: from now on a drop means "gone
  /// part-way", not "never arrived".
  void accept() {
    ch_->accept();
  }

  void deliver(T value) {
    ch_->fulfill(std::move(value));
  }
  void deliver(caf::error err) {
    ch_->fail(std::move(err));
  }

private:
  static caf::error gone(bool accepted) {
    return reply_receiver_gone(accepted);
  }

  std::shared_ptr<reply_channel<T>> ch_;
};

using delivery_channel = reply_channel<delivery_batch>;
using delivery_promise = reply_promise<delivery_batch>;
using delivery_promise_ptr = std::shared_ptr<delivery_promise>;

} // namespace mesh
