#include "actors/reply.hpp"

#include <thread>

#include "base/errc.hpp"

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

bool reply_channel_base::claim() {
  int expected = empty_state;
  return state_.compare_exchange_strong(expected, writing_state,
                                        std::memory_order_acq_rel);
}

void reply_channel_base::publish() {
  {
    // Under the lock, so that a waiter between its last check and its sleep
    // cannot miss the wake-up.
    std::lock_guard<std::mutex> guard{mtx_};
    state_.store(ready_state, std::memory_order_release);
  }
  cv_.notify_one();
}

bool reply_channel_base::wait(std::chrono::nanoseconds spin,
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

caf::error reply_receiver_gone(bool accepted) {
  if (!accepted)
    return make_error(errc::daemon_not_found, "the daemon is gone");
  return make_error(errc::daemon_not_found,
                    "the daemon stopped before it answered; the events may "
                    "have been applied (resend them with the same producer "
                    "seqs: duplicates are recognised)");
}

} // namespace mesh
