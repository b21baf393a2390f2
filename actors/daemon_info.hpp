#pragma once

// What the node says about one daemon (daemon_info, daemon_stats) and how it
// treats a daemon whose process() fails (restart_policy). Plain values, shared
// by the actors, the runtime facade and the control protocol.

#include <chrono>
#include <cstdint>
#include <string>

#include "actors/daemon_phase.hpp"
#include "identity/entity_id.hpp"

namespace mesh {

/// What happens when a daemon's process() fails.
struct restart_policy {
  /// Restarts allowed within `window`; one more failure stops the daemon
  /// and shows it as failed.
  uint32_t max_restarts = 1;
  /// 0 = the whole lifetime of the daemon.
  std::chrono::milliseconds window{0};

  /// One restart in the daemon's lifetime (the default).
  static restart_policy once() {
    return {1, std::chrono::milliseconds{0}};
  }
  static restart_policy bounded(uint32_t max_restarts,
                                std::chrono::milliseconds within) {
    return {max_restarts, within};
  }
};

/// A daemon as the node's table lists it.
struct daemon_info {
  uint64_t origin_hash = 0;
  /// All zero when the daemon's record is damaged and its key unknown.
  entity_id id{};
  std::string kind;
  /// Last input daemon_seq applied.
  uint64_t last_seq = 0;
  /// Where the daemon is in its life (actors/daemon_phase.hpp).
  daemon_phase phase = daemon_phase::starting;
  uint64_t epoch = 0;
  /// Why the daemon failed (empty unless phase is failed).
  std::string reason;
};

struct daemon_stats {
  uint64_t events_processed = 0;
  uint64_t events_emitted = 0;
  uint64_t duplicates = 0;
  uint64_t errors = 0;
  uint64_t snapshots_taken = 0;
  uint64_t restarts = 0;
  uint64_t last_seq = 0;
};

} // namespace mesh
