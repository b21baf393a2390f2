#pragma once

// The durable layout of one node's data directory, apart from the event log:
//
//   <data>/log/                  the event log (a segment, see segment.hpp)
//   <data>/snapshots/<origin>    latest signed snapshot of each daemon
//   <data>/daemons/<origin>      daemon record: kind + identity + epoch
//                                (mode 0600), or the tombstone of a stopped
//                                daemon: origin + last epoch
//
// <origin> is the origin hash as 16 lower-case hex digits. Every file is
// replaced atomically (temp file, fsync, rename, fsync of the directory).
// The log entry (log_entry.hpp) and the daemon record (daemon_record.hpp)
// have their own codecs; docs/formats.md has their byte layouts.

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include <caf/expected.hpp>

#include "base/bytes.hpp"
#include "identity/entity_id.hpp"
#include "identity/keypair.hpp"
#include "persistence/daemon_record.hpp"
#include "persistence/log_entry.hpp"

namespace mesh {

class file_system;

class node_store {
public:
  /// Largest snapshot file load_snapshot reads.
  static constexpr size_t max_file_size = 64u << 20;

  /// `data_dir` must exist; the subdirectories are created by open(). All
  /// I/O goes through `fs` (non-owning; the real file system when null).
  explicit node_store(std::string data_dir, file_system* fs = nullptr);

  /// Creates the snapshots/ and daemons/ directories when missing.
  caf::error open();

  std::string log_dir() const;

  caf::error save_snapshot(uint64_t origin, bytes_view encoded);
  /// save_snapshot of a snapshot taken by life `epoch` of `origin`. Refused
  /// (wrong_phase) when the record on disk is of a newer life: a stopping
  /// life must not overwrite the snapshot of the life spawned after it.
  caf::error save_snapshot(uint64_t origin, uint64_t epoch, bytes_view encoded);
  /// save_snapshot for many daemons with one flush of the file system (a
  /// node's shutdown). One error per entry, in order (none = saved).
  std::vector<caf::error>
  save_snapshots(const std::vector<std::pair<uint64_t, bytes>>& encoded);
  /// not_found when the daemon has no snapshot.
  caf::expected<bytes> load_snapshot(uint64_t origin) const;

  /// Writes the live record of `origin`'s life `epoch` (>= 1).
  caf::error save_daemon(uint64_t origin, const std::string& kind,
                         const keypair& identity, uint64_t epoch);

  /// The record or tombstone of `origin`. The record holds the daemon's
  /// secret key, so the rule of key files applies: a file with any group or
  /// other permission bit is refused (insecure_permissions, naming the mode
  /// and the chmod to run). not_found when there is none; corrupt_data when
  /// it names another origin.
  caf::expected<daemon_file> load_daemon_file(uint64_t origin) const;

  /// The live record of `origin`; not_found when there is none or only a
  /// tombstone.
  caf::expected<daemon_record> load_daemon(uint64_t origin) const;

  /// The highest epoch this node knows for `origin` (its record or
  /// tombstone), 0 when it has neither. A new life of the identity gets the
  /// next one.
  caf::expected<uint64_t> known_epoch(uint64_t origin) const;

  /// Origins of every daemon record and tombstone, sorted.
  caf::expected<std::vector<uint64_t>> list_daemons() const;

  /// Ends life `epoch` of `origin`: replaces its record with a tombstone of
  /// that epoch, then deletes its snapshot (a crash in between leaves an
  /// orphan snapshot, which start-up deletes). When the record on disk is of
  /// a newer epoch (a later life was spawned while this one stopped),
  /// nothing is touched and the answer is false. A missing or unreadable
  /// record is replaced by the tombstone too.
  caf::expected<bool> retire_daemon(uint64_t origin, uint64_t epoch);

  /// Snapshots without a live daemon record (none, or a tombstone).
  caf::expected<std::vector<uint64_t>> orphan_snapshots() const;

  caf::error remove_snapshot(uint64_t origin);

  const std::string& data_dir() const {
    return dir_;
  }

  file_system& fs() const {
    return *fs_;
  }

private:
  std::string dir_;
  file_system* fs_;
};

/// 16 lower-case hex digits, no prefix (file names).
std::string origin_file_name(uint64_t origin);

/// Parses origin_file_name(); false for anything else.
bool parse_origin_file_name(const std::string& name, uint64_t& origin);

} // namespace mesh
