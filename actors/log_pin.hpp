#pragma once

// A pin on the node's event log: it keeps one daemon's logged events from
// compaction while a migration ships them (DESIGN.md section 8). A pin has an
// owner, who alone may renew or release it, and a lease: unless the owner
// pins again within lease_ms, the pin lapses (and the log says so), so a
// migration that crashed cannot hold the log for ever.

#include <cstdint>
#include <string>

namespace mesh {

struct log_pin {
  uint64_t origin_hash = 0;
  /// The daemon life whose events are pinned (for the operator's log lines;
  /// the log holds its records by position, whatever their epoch).
  uint64_t epoch = 0;
  /// The first daemon_seq the pin keeps.
  uint64_t from_daemon_seq = 0;
  /// Who holds the pin, e.g. the migration id. Not empty.
  std::string owner;
  /// Milliseconds the pin lasts without renewal; 1..max_lease_ms.
  uint64_t lease_ms = 0;
};

/// Longest lease a pin may ask for: one hour. A migration renews far more
/// often; a longer lease would let a crashed one hold the log for too long.
constexpr uint64_t max_lease_ms = 3'600'000;

} // namespace mesh
