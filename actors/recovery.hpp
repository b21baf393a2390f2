#pragma once

// Bringing daemons back from a node's data directory: each from its record,
// its latest snapshot and the logged inputs after it.
//
// Recovery never invents a state. A daemon's logged inputs must continue its
// snapshot without a gap in daemon_seq; at the first gap (a damaged or lost
// log record, or a log that starts after the snapshot) replay stops, and the
// daemon comes back failed at the last state it reached ("log gap after
// daemon_seq N"), refusing input until an operator resumes it and accepts
// the loss (daemon_core::resume). A daemon whose record or snapshot cannot be
// read comes back failed with the reason. The other daemons start normally.

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <tuple>
#include <vector>

#include <caf/expected.hpp>

#include "actors/daemon.hpp"
#include "actors/daemon_info.hpp"
#include "persistence/node_store.hpp"

namespace mesh {

class daemon_core;
class segment;

/// What recovery needs besides the data directory.
struct recovery_context {
  std::shared_ptr<node_store> store;
  /// A fresh object of a kind (the factory registry).
  std::function<caf::expected<std::unique_ptr<daemon>>(const std::string&)>
    make;
  restart_policy policy;
};

/// Replays one daemon's logged inputs onto its core, in log order, stopping
/// at the first gap.
class daemon_replay {
public:
  explicit daemon_replay(std::shared_ptr<daemon_core> core);

  /// Feeds the next logged entry of this daemon.
  void feed(const log_entry& e);

  /// Marks the daemon failed when a gap was found. Returns the core.
  std::shared_ptr<daemon_core> finish();

  const std::shared_ptr<daemon_core>& core() const {
    return core_;
  }

  /// Inputs replayed so far.
  uint64_t replayed() const {
    return replayed_;
  }

private:
  std::shared_ptr<daemon_core> core_;
  uint64_t replayed_ = 0;
  bool gap_ = false;
  uint64_t gap_after_ = 0;
  uint64_t next_logged_ = 0;
  uint64_t last_logged_ = 0;
};

/// Loads one daemon's record and snapshot: a core restored from the
/// snapshot, or a failed core (snapshot damaged, kind unknown, restore
/// failed). An error when the record itself cannot be read.
caf::expected<std::shared_ptr<daemon_core>>
load_daemon(const recovery_context& ctx, uint64_t origin);

/// A daemon listed as failed without a core: its record is unreadable.
daemon_info broken_daemon(uint64_t origin, const caf::error& why);

/// Everything a node brings back at start.
struct recovered_node {
  std::vector<std::shared_ptr<daemon_core>> cores;
  /// Daemons whose record is unreadable.
  std::vector<daemon_info> broken;
  /// (origin, daemon_seq, log_seq) of logged entries not covered by their
  /// daemon's snapshot: they hold log compaction back.
  std::vector<std::tuple<uint64_t, uint64_t, uint64_t>> pending;
  uint64_t replayed = 0;
};

/// Recovers every daemon of the data directory from `seg`, the node's open
/// event log. Logs one line per daemon that comes back failed, and one
/// error-level line when the log was missing or empty while daemon records
/// exist (`log_was_empty`).
caf::expected<recovered_node> recover_node(const recovery_context& ctx,
                                           segment& seg, bool log_was_empty);

/// Rebuilds one daemon from its record, its snapshot and `entries` (its
/// logged entries, in log order).
caf::expected<std::shared_ptr<daemon_core>>
rebuild_daemon(const recovery_context& ctx, uint64_t origin,
               const std::vector<log_entry>& entries);

} // namespace mesh
