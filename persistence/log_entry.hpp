#pragma once

// The log entry: one accepted or rejected input of a daemon, as the node's
// event log stores it (one segment record each), and the batch a daemon hands
// to the log actor. docs/formats.md has the byte layout.

#include <cstddef>
#include <cstdint>
#include <vector>

#include <caf/expected.hpp>

#include "base/bytes.hpp"

namespace mesh {

/// One accepted or rejected input, as the node's event log stores it.
struct log_entry {
  enum class status : uint8_t { accepted = 0, rejected = 1 };
  uint64_t origin_hash = 0;
  /// The life of the daemon that logged it (see daemon_record.hpp): a
  /// re-spawned identity starts a new epoch and its daemon_seq restarts.
  uint64_t epoch = 0;
  uint64_t daemon_seq = 0;
  uint64_t producer_id = 0;
  uint64_t producer_seq = 0;
  uint64_t received_at_ns = 0;
  status state = status::accepted;
  bytes payload;
};

/// Layout version of the entries this build writes (the high nibble of
/// byte 40 holds it minus one; docs/formats.md).
constexpr uint8_t log_entry_version = 2;

/// Header bytes before the payload (version 2, the one written).
constexpr size_t log_entry_header_size = 49;

/// Header bytes of a version-1 entry (written before epochs existed).
constexpr size_t log_entry_v1_header_size = 41;

/// The epoch of an entry, record or snapshot written before epochs existed:
/// every daemon then lived in epoch 1.
constexpr uint64_t legacy_epoch = 1;

/// Appends the encoding of `e` to `out`.
void encode_log_entry(const log_entry& e, bytes& out);

/// Appends the encoding of an entry with `e`'s header fields and `payload`
/// (e.payload is not read).
void encode_log_entry(const log_entry& e, bytes_view payload, bytes& out);

/// Encoded log entries of one daemon, back to back, as the daemon hands them
/// to the log actor: one buffer per batch instead of one per entry.
struct log_batch {
  uint64_t origin_hash = 0;
  /// The epoch of every entry (one daemon life per batch).
  uint64_t epoch = 0;
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

/// Decodes a version-2 entry, or a version-1 entry as one of epoch
/// `legacy_epoch`. corrupt_data on a short record or an unknown status;
/// unsupported_version on an unknown version nibble.
caf::expected<log_entry> decode_log_entry(bytes_view in);

} // namespace mesh
