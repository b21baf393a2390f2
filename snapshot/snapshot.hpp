#pragma once

// The durable image of one daemon, and its signed encoding.
//
// Encoding: a Cap'n Proto `SignedSnapshot` (snapshot/snapshot.capnp) holding
// the `Snapshot` body bytes and an ed25519 signature over them by the
// daemon's own key. Decoding verifies, in order: size limit, Cap'n Proto
// traversal limits, format version, signature (by the entity_id inside the
// body), and, when the caller names one, that the entity_id is the expected
// one. Nothing here trusts its input.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <caf/expected.hpp>

#include "base/bytes.hpp"
#include "identity/fwd.hpp"
#include "snapshot/causal.hpp"

namespace mesh {

/// Largest encoded snapshot decode() accepts.
constexpr size_t max_snapshot_bytes = 64u << 20;

/// The snapshot format this build writes and reads.
constexpr uint32_t snapshot_format_version = 1;

/// A producer's high-water mark: every producer_seq up to `producer_seq` has
/// been applied; the last one at daemon seq `applied_at`.
struct dedup_mark {
  uint64_t producer_id = 0;
  uint64_t producer_seq = 0;
  uint64_t applied_at = 0;

  friend bool operator==(const dedup_mark& x, const dedup_mark& y) {
    return x.producer_id == y.producer_id && x.producer_seq == y.producer_seq
           && x.applied_at == y.applied_at;
  }
};

/// Whether the snapshot was taken for local durability or for a migration.
enum class snapshot_kind : uint8_t {
  local = 0,
  migration = 1,
};

struct snapshot {
  uint32_t format_version = snapshot_format_version;
  snapshot_kind kind = snapshot_kind::local;
  /// The daemon kind (factory name), e.g. "counter".
  std::string daemon_kind;
  entity_id id{};
  /// Last input daemon_seq reflected in `state` (0 = none).
  uint64_t through_seq = 0;
  chain_head head;
  /// nullopt for stateless daemons.
  std::optional<bytes> state;
  uint32_t state_version = 1;
  std::vector<dedup_mark> dedup_marks;
  uint64_t created_at_ns = 0;
  /// The life of the daemon that took it (>= 1). 0 in a snapshot written
  /// before epochs existed, which belongs to epoch 1 (snapshot_epoch()).
  uint64_t epoch = 0;
};

/// The epoch `snap` belongs to: its own, or 1 for one written before epochs
/// existed (every daemon then lived in epoch 1).
inline uint64_t snapshot_epoch(const snapshot& snap) {
  return snap.epoch == 0 ? 1 : snap.epoch;
}

class keypair;

/// Encodes and signs `snap` with `signer`, whose id must equal snap.id
/// (invalid_argument otherwise).
caf::expected<bytes> encode_snapshot(const snapshot& snap,
                                     const keypair& signer);

/// Decodes and verifies. Errors: corrupt_data (malformed, too large, too
/// deep), unsupported_version, bad_signature, and snapshot_identity_mismatch
/// when `expected` is given and differs from the snapshot's entity_id (the
/// full 32 bytes are compared, never just the origin hash).
caf::expected<snapshot> decode_snapshot(bytes_view data,
                                        const entity_id* expected = nullptr);

/// The through_seq of an encoded snapshot, read without verifying its
/// signature or walking its state (a few microseconds whatever its size).
/// Only for snapshots this node just encoded itself: anything else goes
/// through decode_snapshot. corrupt_data when the bytes do not parse.
caf::expected<uint64_t> peek_through_seq(bytes_view data);

/// XXH3-64 of the encoded bytes; names a snapshot in migration messages.
uint64_t snapshot_hash(bytes_view encoded);

} // namespace mesh
