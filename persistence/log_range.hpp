#pragma once

// Range reads of one daemon's logged events: the entries of one origin and
// one epoch with daemon_seq A..B, read from the node's event log beside the
// appender (segment_reader), a bounded page at a time. The log actor serves
// them on a reader thread; a migration source uses them to ship S1+1..S3.

#include <cstdint>
#include <vector>

#include <caf/expected.hpp>

#include "persistence/log_entry.hpp"

namespace mesh {

class segment_reader;

/// Which entries to read, and where a previous page stopped.
struct log_range_request {
  uint64_t origin_hash = 0;
  uint64_t epoch = 0;
  /// Inclusive daemon_seq bounds; from_daemon_seq <= to_daemon_seq.
  uint64_t from_daemon_seq = 0;
  uint64_t to_daemon_seq = 0;
  /// Payload bytes one answer carries at most (1 B to 64 MiB); an answer
  /// always carries at least one entry when one is there, however large.
  uint64_t max_bytes = 1u << 20;
  /// The log seq to scan from: 0 for the first page, then the next_log_seq
  /// of the previous answer.
  uint64_t from_log_seq = 0;
};

/// One page of a range read.
struct log_range {
  /// The entries of the range in log order (the order replay applies them).
  std::vector<log_entry> entries;
  /// Where the next page starts: pass it as from_log_seq with the same
  /// bounds. Every entry of the range is returned exactly once across pages,
  /// as long as the log still holds it (pin the daemon first).
  uint64_t next_log_seq = 0;
  /// An entry with daemon_seq to_daemon_seq was returned: the range is read.
  bool complete = false;
  /// The page stopped at the end of what the log had written when it began,
  /// not at max_bytes: a later read continues once more is appended.
  bool at_end = false;
};

/// True when `e` belongs to the range `req` asks for.
bool in_range(const log_entry& e, const log_range_request& req);

/// invalid_argument when the bounds are empty or max_bytes is 0,
/// limit_exceeded when max_bytes is above 64 MiB.
caf::error check(const log_range_request& req);

/// Reads one page of `req` through `reader`. corrupt_data when a record in
/// the scanned part does not decode as a log entry.
caf::expected<log_range> read_log_range(segment_reader& reader,
                                        const log_range_request& req);

} // namespace mesh
