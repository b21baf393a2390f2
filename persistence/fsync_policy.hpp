#pragma once

// The fsync policy of a disk segment (when appends reach the disk) and the
// retention rule of a compaction (which prefix of the log it drops), with
// their text forms. segment.hpp includes this header; the definitions are in
// fsync_policy.cpp.

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include <caf/expected.hpp>

namespace mesh {

/// When appends are fsynced. Policy fsyncs run on a background worker and
/// coalesce; sync() and close() always fsync regardless of the policy.
struct fsync_policy {
  enum class kind : uint8_t {
    /// Only sync() and close() fsync.
    never,
    /// fsync after every `n` appended records (batches count per record).
    every_n,
    /// fsync every `interval` while there are unsynced records.
    interval,
    /// fsync every `interval`, or sooner once `bytes` unsynced bytes pile up.
    interval_or_bytes,
  };

  /// Longest period accepted: one day. parse() refuses longer ones and the
  /// factories clamp to it, so the worker's deadline arithmetic (nanoseconds
  /// on a steady clock) cannot overflow.
  static constexpr std::chrono::milliseconds max_period{86'400'000};

  kind type = kind::every_n;
  uint64_t n = 1000;
  std::chrono::milliseconds period{0};
  uint64_t bytes = 0;

  static fsync_policy never();
  static fsync_policy every_n(uint64_t n);
  static fsync_policy interval(std::chrono::milliseconds period);
  static fsync_policy interval_or_bytes(std::chrono::milliseconds period,
                                        uint64_t bytes);

  /// Parses "never", "every_n:N", "interval:MS", "interval_or_bytes:MS:BYTES".
  /// N and BYTES are 1..2^64-1, MS is 1..max_period; anything else is
  /// invalid_argument, naming the limit it broke.
  static caf::expected<fsync_policy> parse(std::string_view text);

  /// The text parse() accepts.
  std::string to_string() const;
};

/// Which prefix of the log a compaction drops.
struct retention {
  enum class kind : uint8_t {
    /// Keep the newest `value` records.
    keep_last,
    /// Keep the longest suffix whose payloads total at most `value` bytes.
    max_bytes,
    /// Drop records older than `value` nanoseconds (by their timestamp).
    max_age_ns,
    /// Drop records whose seq is below `value`. Unlike keep_last it names
    /// the cut itself, so a compaction decided now and run later (on a
    /// compaction thread, while appends continue) drops what was decided.
    before_seq,
  };

  kind type = kind::keep_last;
  uint64_t value = 0;

  static retention keep_last(uint64_t n);
  static retention max_bytes(uint64_t bytes);
  static retention max_age(std::chrono::nanoseconds age);
  static retention before_seq(uint64_t seq);
};

} // namespace mesh
