#pragma once

// Small daemons for runtime tests: echo, a summing counter, and one that
// rejects payloads starting with "bad".

#include <atomic>
#include <cstring>
#include <memory>
#include <string>

#include "actors/daemon.hpp"
#include "base/bytes.hpp"
#include "base/errc.hpp"

namespace mesh::test {

inline std::string text(const bytes& b) {
  return std::string(b.begin(), b.end());
}

inline bytes to_bytes(const std::string& s) {
  return bytes(s.begin(), s.end());
}

/// Lets a test count the daemon objects alive: each one holds a copy.
using keepalive = std::shared_ptr<void>;

class echo_daemon : public daemon {
public:
  keepalive alive;

  std::string_view kind() const override {
    return "echo";
  }
  caf::expected<std::vector<bytes>> process(const causal_event& ev) override {
    return std::vector<bytes>{ev.payload};
  }
};

/// Adds the decimal payload (1 when not a number); payloads starting with
/// "bad" are rejected; emits the running total.
class sum_daemon : public daemon {
public:
  keepalive alive;

  std::string_view kind() const override {
    return "sum";
  }
  caf::expected<std::vector<bytes>> process(const causal_event& ev) override {
    auto s = text(ev.payload);
    if (s.rfind("bad", 0) == 0)
      return make_error(errc::process_failed, "rejected payload '" + s + "'");
    if (s == "throw")
      throw std::runtime_error("boom");
    int64_t v = 1;
    try {
      size_t used = 0;
      v = std::stoll(s, &used);
      if (used != s.size())
        v = 1;
    } catch (...) {
      v = 1;
    }
    total_ += v;
    return std::vector<bytes>{to_bytes(std::to_string(total_))};
  }
  std::optional<bytes> snapshot() const override {
    bytes b(8);
    store_le64(b.data(), static_cast<uint64_t>(total_));
    return b;
  }
  caf::error restore(bytes_view state) override {
    if (state.size != 8)
      return make_error(errc::restore_failed, "sum state must be 8 bytes");
    total_ = static_cast<int64_t>(load_le64(state.data));
    return {};
  }
  int64_t total() const {
    return total_;
  }

private:
  int64_t total_ = 0;
};

/// Which callback a thrower_daemon throws from, and what.
struct throw_plan {
  enum class where { nowhere, process, snapshot, state_version, restore };
  where at = where::nowhere;
  /// Throw `42` (not a std::exception) instead of std::runtime_error.
  bool non_standard = false;
  /// How many times to throw (negative: every time).
  int times = -1;
};

/// A sum_daemon that throws from the callback its plan names. The plan is
/// shared, so a test can arm it after the daemon was built.
class thrower_daemon : public sum_daemon {
public:
  explicit thrower_daemon(std::shared_ptr<throw_plan> plan)
    : plan_(std::move(plan)) {}

  std::string_view kind() const override {
    return "thrower";
  }
  caf::expected<std::vector<bytes>> process(const causal_event& ev) override {
    maybe_throw(throw_plan::where::process);
    return sum_daemon::process(ev);
  }
  std::optional<bytes> snapshot() const override {
    maybe_throw(throw_plan::where::snapshot);
    return sum_daemon::snapshot();
  }
  uint32_t state_version() const override {
    maybe_throw(throw_plan::where::state_version);
    return 1;
  }
  caf::error restore(bytes_view state) override {
    maybe_throw(throw_plan::where::restore);
    return sum_daemon::restore(state);
  }

private:
  void maybe_throw(throw_plan::where w) const {
    if (plan_->at != w || plan_->times == 0)
      return;
    if (plan_->times > 0)
      --plan_->times;
    if (plan_->non_standard)
      throw 42;
    throw std::runtime_error("thrower throws as planned");
  }
  std::shared_ptr<throw_plan> plan_;
};

} // namespace mesh::test
