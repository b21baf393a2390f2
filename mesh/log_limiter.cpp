#include "mesh/log_limiter.hpp"

#include <utility>

namespace mesh {

log_limiter::log_limiter(log_limit limit,
                         std::function<clock_type::time_point()> now)
  : limit_(limit), now_(std::move(now)) {
  if (!now_)
    now_ = [] {
      return clock_type::now();
    };
  window_start_ = now_();
}

void log_limiter::roll(clock_type::time_point now) {
  if (now - window_start_ < limit_.interval)
    return;
  window_start_ = now;
  logged_ = 0;
  ready_ += suppressed_;
  suppressed_ = 0;
}

bool log_limiter::admit() {
  auto now = now_();
  std::lock_guard<std::mutex> guard{mtx_};
  roll(now);
  if (logged_ < limit_.burst) {
    ++logged_;
    return true;
  }
  ++suppressed_;
  return false;
}

uint64_t log_limiter::take_suppressed() {
  auto now = now_();
  std::lock_guard<std::mutex> guard{mtx_};
  roll(now);
  return std::exchange(ready_, 0);
}

uint64_t log_limiter::drain_suppressed() {
  std::lock_guard<std::mutex> guard{mtx_};
  return std::exchange(ready_, 0) + std::exchange(suppressed_, 0);
}

} // namespace mesh
