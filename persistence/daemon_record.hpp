#pragma once

// The daemon record: what a node stores to bring a daemon back (its kind and
// its identity's secret seed). docs/formats.md has the byte layout; the file
// is <data>/daemons/<origin>, mode 0600.

#include <string>

#include <caf/expected.hpp>

#include "base/bytes.hpp"
#include "identity/keypair.hpp"

namespace mesh {

/// What the node stores to bring a daemon back: its kind and identity.
struct daemon_record {
  std::string kind;
  keypair identity;
};

/// The encoding of a record. invalid_argument when `kind` is not 1..255
/// bytes. The result holds the secret seed: wipe it after use.
caf::expected<bytes> encode_daemon_record(const std::string& kind,
                                          const keypair& identity);

/// Parses a record read from `what` (named in errors): corrupt_data on a bad
/// magic, size or checksum, unsupported_version on another version byte.
/// Wipes `raw` whatever the outcome.
caf::expected<daemon_record> decode_daemon_record(bytes& raw,
                                                  const std::string& what);

} // namespace mesh
