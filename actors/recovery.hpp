#pragma once

// Bringing daemons back from a node's data directory: each from its record,
// its latest snapshot and the logged inputs after it, all of its own epoch
// (its life on this node, daemon_record.hpp).
//
// Epochs: a daemon is rebuilt from the snapshot and the log entries of the
// epoch its record names. Entries of an older epoch belong to an earlier
// life of the identity (stopped, then spawned again) and are ignored; they
// no longer hold compaction back. An entry or snapshot claiming a newer
// epoch than the record was never written by this node's supervisor (the
// record is written before a life logs anything): it is reported, never
// applied. A snapshot of an older epoch is an earlier life's and is ignored
// (a new life that starts from a snapshot gets it stamped with its own
// epoch). A tombstone (a stopped daemon) brings nothing back.
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

/// Replays one daemon's logged inputs of its epoch onto its core, in log
/// order, stopping at the first gap.
class daemon_replay {
public:
  explicit daemon_replay(std::shared_ptr<daemon_core> core);

  /// Feeds the next logged entry of this daemon (any epoch: only the core's
  /// own is replayed).
  void feed(const log_entry& e);

  /// Entries of an older epoch, skipped.
  uint64_t older() const {
    return older_;
  }

  /// Entries claiming a newer epoch than the core's, skipped.
  uint64_t newer() const {
    return newer_;
  }

  /// The highest epoch among the newer entries (0 when none).
  uint64_t newest_epoch() const {
    return newest_epoch_;
  }

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
  uint64_t older_ = 0;
  uint64_t newer_ = 0;
  uint64_t newest_epoch_ = 0;
  bool gap_ = false;
  uint64_t gap_after_ = 0;
  uint64_t next_logged_ = 0;
  uint64_t last_logged_ = 0;
};

/// Loads one daemon's record and snapshot: a core of the record's epoch
/// restored from the snapshot of that epoch, or a failed core (snapshot
/// damaged or of a newer epoch, kind unknown, restore failed). An error when
/// the record itself cannot be read or is a tombstone (not_found).
caf::expected<std::shared_ptr<daemon_core>>
load_daemon(const recovery_context& ctx, uint64_t origin);

/// load_daemon with the record already read.
std::shared_ptr<daemon_core> load_daemon(const recovery_context& ctx,
                                         uint64_t origin, daemon_record rec);

/// A daemon listed as failed without a core: its record is unreadable.
daemon_info broken_daemon(uint64_t origin, const caf::error& why);

/// Everything a node brings back at start.
struct recovered_node {
  std::vector<std::shared_ptr<daemon_core>> cores;
  /// Daemons whose record is unreadable.
  std::vector<daemon_info> broken;
  /// (origin, epoch, daemon_seq, log_seq) of logged entries not covered by
  /// their daemon's snapshot: they hold log compaction back.
  std::vector<std::tuple<uint64_t, uint64_t, uint64_t, uint64_t>> pending;
  uint64_t replayed = 0;
  /// Entries of an earlier life of a daemon, ignored.
  uint64_t older = 0;
  /// Entries claiming a newer epoch than their daemon's record, reported
  /// and ignored.
  uint64_t newer = 0;
};

/// Recovers every daemon of the data directory from `seg`, the node's open
/// event log. Logs one line per daemon that comes back failed, and one
/// error-level line when the log was missing or empty while daemon records
/// exist (`log_was_empty`).
caf::expected<recovered_node> recover_node(const recovery_context& ctx,
                                           segment& seg, bool log_was_empty);

/// Rebuilds one daemon from its record, its snapshot and `entries` (its
/// logged entries of any epoch, in log order: only the record's epoch is
/// replayed).
caf::expected<std::shared_ptr<daemon_core>>
rebuild_daemon(const recovery_context& ctx, uint64_t origin,
               const std::vector<log_entry>& entries);

} // namespace mesh
