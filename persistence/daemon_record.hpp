#pragma once

// The daemon record: what a node stores to bring a daemon back (its kind,
// its identity's secret seed and its epoch), or, once the daemon is stopped,
// a tombstone (its origin and last epoch) that outlives it so that the next
// life of the identity gets a higher epoch and inherits none of its logged
// events. docs/formats.md has the byte layout; the file is
// <data>/daemons/<origin>, mode 0600.

#include <cstdint>
#include <optional>
#include <string>

#include <caf/expected.hpp>

#include "base/bytes.hpp"
#include "identity/keypair.hpp"

namespace mesh {

/// What the node stores to bring a daemon back: its kind, identity and
/// epoch (the daemon's life counter on this node, from 1).
struct daemon_record {
  std::string kind;
  keypair identity;
  uint64_t epoch = 0;
};

/// What remains of a stopped daemon: its origin and the epoch it had.
struct daemon_tombstone {
  uint64_t origin = 0;
  uint64_t epoch = 0;
};

/// The content of daemons/<origin>: a live record or a tombstone.
struct daemon_file {
  std::optional<daemon_record> live;
  /// Meaningful when `live` is empty.
  daemon_tombstone tombstone;

  bool is_tombstone() const {
    return !live;
  }
  /// The epoch of the live record or the tombstone.
  uint64_t epoch() const {
    return live ? live->epoch : tombstone.epoch;
  }
};

/// The encoding of a live record (version 2). invalid_argument when `kind`
/// is not 1..255 bytes or `epoch` is 0. The result holds the secret seed:
/// wipe it after use.
caf::expected<bytes> encode_daemon_record(const std::string& kind,
                                          const keypair& identity,
                                          uint64_t epoch);

/// The encoding of a tombstone (version 2). invalid_argument when `epoch`
/// is 0.
caf::expected<bytes> encode_daemon_tombstone(const daemon_tombstone& t);

/// Parses a record or tombstone read from `what` (named in errors):
/// corrupt_data on a bad magic, size, type or checksum, unsupported_version
/// on an unknown version byte. A version-1 record (written before epochs)
/// is a live record of epoch legacy_epoch. Wipes `raw` whatever the outcome.
caf::expected<daemon_file> decode_daemon_file(bytes& raw,
                                              const std::string& what);

} // namespace mesh
