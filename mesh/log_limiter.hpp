#pragma once

// Bounds how many log lines one kind of network-triggered event may write
// (DESIGN.md section 7: anything from the network is bounded). A peer that
// floods the gateway with bad requests must not turn each one into a log
// line: the first `burst` events of an interval are logged, the rest are
// counted, and one summary line reports them once the interval is over.
//
//   log_limiter lim{{20, std::chrono::seconds{10}}};
//   if (lim.admit())
//     spdlog::warn(...);
//   if (auto n = lim.take_suppressed(); n > 0)   // from a timer
//     spdlog::warn("suppressed {} similar warnings", n);
//
// Thread-safe: the gateway calls it from its own actor and from the
// middleman's thread (messages it drops before they reach its mailbox).

#include <chrono>
#include <cstdint>
#include <functional>
#include <mutex>

namespace mesh {

struct log_limit {
  /// Lines logged per interval; the rest of the interval's events are
  /// suppressed and counted.
  uint32_t burst = 20;
  /// The interval; also how often the gateway reports suppressed lines.
  std::chrono::milliseconds interval{10000};
};

class log_limiter {
public:
  using clock_type = std::chrono::steady_clock;

  /// `now` = nullptr reads clock_type (tests pass a fake clock).
  explicit log_limiter(log_limit limit,
                       std::function<clock_type::time_point()> now = nullptr);

  /// True when this event may be logged. False when the interval's burst is
  /// used up; the event is then counted as suppressed.
  bool admit();

  /// The number of events suppressed since the last call that returned a
  /// non-zero count, once the interval in which they were suppressed is
  /// over (0 before that, so a summary comes at most once per interval).
  uint64_t take_suppressed();

  /// Suppressed events not yet reported, regardless of the interval (for a
  /// last summary at shutdown).
  uint64_t drain_suppressed();

private:
  // Starts a new interval when the current one is over. Requires mtx_.
  void roll(clock_type::time_point now);

  log_limit limit_;
  std::function<clock_type::time_point()> now_;
  std::mutex mtx_;
  clock_type::time_point window_start_;
  uint32_t logged_ = 0;
  uint64_t suppressed_ = 0;
  // Suppressed in intervals that are over: ready for a summary.
  uint64_t ready_ = 0;
};

} // namespace mesh
