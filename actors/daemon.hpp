#pragma once

// The interface users implement. A daemon is a small stateful event
// processor; the runtime runs each one in its own CAF actor, one event at a
// time, strictly in sequence, and makes its state durable.

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <caf/expected.hpp>

#include "base/bytes.hpp"
#include "snapshot/causal.hpp"

namespace mesh {

/// What a daemon kind needs from a node. Placement vetoes nodes that fail it.
struct capability_filter {
  std::vector<std::string> require_tags;
  uint64_t min_memory_mb = 0;
  uint32_t min_cores = 0;
  /// Every label must be present on the node with exactly this value.
  std::map<std::string, std::string> labels;
};

class daemon {
public:
  virtual ~daemon() = default;

  /// The factory name of this kind, e.g. "counter".
  virtual std::string_view kind() const = 0;

  virtual capability_filter requirements() const {
    return {};
  }

  /// Called once per accepted event, strictly in sequence. Must be fast
  /// (microseconds). Return an error (or throw) to reject the event: it is
  /// recorded as rejected, the producer gets the error, and the daemon is
  /// rebuilt from its last snapshot plus the events before it.
  virtual caf::expected<std::vector<bytes>> process(const causal_event& ev) = 0;

  /// The state to snapshot; nullopt = stateless.
  virtual std::optional<bytes> snapshot() const {
    return std::nullopt;
  }

  /// Restores what snapshot() returned (possibly from an older
  /// state_version). An error makes spawn_from_snapshot fail restore_failed.
  virtual caf::error restore(bytes_view state) {
    (void)state;
    return {};
  }

  /// Version of the snapshot() format, stored beside the state.
  virtual uint32_t state_version() const {
    return 1;
  }
};

/// The result of a process() that emits one output. Prefer it to a braced
/// list: `std::vector<bytes>{payload}` copies the payload out of the
/// initializer list, one more allocation and copy per event.
inline std::vector<bytes> one_output(bytes payload) {
  std::vector<bytes> out(1);
  out[0] = std::move(payload);
  return out;
}

/// Builds a fresh daemon of one kind. Called once per spawn and once per
/// rebuild; must be thread-safe.
using daemon_factory = std::function<std::unique_ptr<daemon>()>;

} // namespace mesh
