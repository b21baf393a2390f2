#pragma once

// The durable layout of one node's data directory, apart from the event log:
//
//   <data>/log/                  the event log (a segment, see segment.hpp)
//   <data>/snapshots/<origin>    latest signed snapshot of each daemon
//   <data>/daemons/<origin>      daemon record: kind + identity (mode 0600)
//
// <origin> is the origin hash as 16 lower-case hex digits. Every file is
// replaced atomically (temp file, fsync, rename, fsync of the directory).
// docs/formats.md has the byte layouts of the log entry and daemon record.

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include <caf/expected.hpp>

#include "base/bytes.hpp"
#include "identity/entity_id.hpp"
#include "identity/keypair.hpp"

namespace mesh {

/// One accepted or rejected input, as the node's event log stores it.
struct log_entry {
  enum class status : uint8_t { accepted = 0, rejected = 1 };
  uint64_t origin_hash = 0;
  uint64_t daemon_seq = 0;
  uint64_t producer_id = 0;
  uint64_t producer_seq = 0;
  uint64_t received_at_ns = 0;
  status state = status::accepted;
  bytes payload;
};

/// Header bytes before the payload.
constexpr size_t log_entry_header_size = 41;

/// Appends the encoding of `e` to `out`.
void encode_log_entry(const log_entry& e, bytes& out);

/// Appends the encoding of an entry with `e`'s header fields and `payload`
/// (e.payload is not read).
void encode_log_entry(const log_entry& e, bytes_view payload, bytes& out);

/// Encoded log entries of one daemon, back to back, as the daemon hands them
/// to the log actor: one buffer per batch instead of one per entry.
struct log_batch {
  uint64_t origin_hash = 0;
  /// The encodings, back to back.
  bytes data;
  /// Where each entry ends in `data`.
  std::vector<size_t> ends;
  /// The daemon_seq each entry logs.
  std::vector<uint64_t> daemon_seqs;

  size_t size() const {
    return ends.size();
  }
  bool empty() const {
    return ends.empty();
  }
  /// Entry i's encoding.
  bytes_view entry(size_t i) const {
    size_t begin = i == 0 ? 0 : ends[i - 1];
    return {data.data() + begin, ends[i] - begin};
  }
  /// Encodes and appends an entry (header fields of `head`, `payload`).
  void add(const log_entry& head, bytes_view payload);
  void clear();
};

/// corrupt_data on a short record or an unknown status byte.
caf::expected<log_entry> decode_log_entry(bytes_view in);

/// What the node stores to bring a daemon back: its kind and identity.
struct daemon_record {
  std::string kind;
  keypair identity;
};

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
  /// save_snapshot for many daemons with one flush of the file system (a
  /// node's shutdown). One error per entry, in order (none = saved).
  std::vector<caf::error>
  save_snapshots(const std::vector<std::pair<uint64_t, bytes>>& encoded);
  /// not_found when the daemon has no snapshot.
  caf::expected<bytes> load_snapshot(uint64_t origin) const;

  caf::error save_daemon(uint64_t origin, const std::string& kind,
                         const keypair& identity);
  /// The record holds the daemon's secret key, so the rule of key files
  /// applies: a record with any group or other permission bit is refused
  /// (insecure_permissions, naming the mode and the chmod to run).
  caf::expected<daemon_record> load_daemon(uint64_t origin) const;

  /// Origins of every daemon record, sorted.
  caf::expected<std::vector<uint64_t>> list_daemons() const;

  /// Deletes the daemon record first, then the snapshot: a crash in between
  /// leaves an orphan snapshot, which start-up ignores and deletes.
  caf::error remove_daemon(uint64_t origin);

  /// Snapshots whose daemon record is gone.
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
