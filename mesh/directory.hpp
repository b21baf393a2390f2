#pragma once

// The directory: origin_hash -> (node, epoch) (DESIGN.md section 7), behind
// one small interface so that a second backend (NATS JetStream KV) can slot
// in beside the embedded one. Every backend keeps the same merge rule, and
// one contract test suite (tests/mesh/directory_contract.hpp) runs against
// each.
//
// The merge rule. Of two entries for one origin, the one that supersedes
// the other wins (`supersedes` below):
//   1. the higher epoch;
//   2. at equal epochs, a tombstone beats a live entry (a stop in epoch E
//      ends epoch E, whatever node claimed E);
//   3. at equal epochs and equal stoppedness, the lower node id (bytewise)
//      wins. Two live claims of one epoch by two nodes mean a bug or a split
//      brain; any fixed choice makes every replica pick the same one, and
//      "lowest id" is the one an operator can predict from `meshctl nodes`;
//   4. then the lexicographically lower kind (only a bug produces two kinds
//      for one origin, node and epoch; the rule exists so that replicas
//      converge even then).
// Identical entries supersede neither way. The rule is a total order on
// distinct entries, so the table is a join-semilattice: applying any set of
// updates, in any order, any number of times, gives the same table. That is
// what makes replication by gossip and anti-entropy correct.
//
// Tombstones are never pruned. A replica stopped for an hour may still hold
// the live entry a tombstone superseded; pruning the tombstone first would
// let anti-entropy bring the stopped daemon back. A tombstone costs one
// entry (about 100 bytes) per origin ever deployed, not per event, and a
// redeploy of the origin (a higher epoch) overwrites it in place.
//
// Errors: every operation may fail, because a networked backend can (a
// timeout, a lost connection: errc::timeout, errc::io_error). The embedded
// backend fails only on invalid input (errc::invalid_argument) and on its
// size bound (errc::limit_exceeded).

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <vector>

#include <caf/expected.hpp>

#include "identity/fwd.hpp"
#include "mesh/mesh_types.hpp"

namespace mesh {

/// True when `a` wins over `b` for the same origin (the merge rule above).
/// False for identical entries.
bool supersedes(const directory_entry& a, const directory_entry& b) noexcept;

/// XXH3-64 of the entry's canonical bytes (origin, node, epoch, stopped,
/// kind; little endian, length-prefixed kind). The same on every node and
/// every build: digests are compared across the mesh.
uint64_t entry_digest(const directory_entry& e) noexcept;

/// The longest kind name an entry may carry. Entries arrive from peers: the
/// bound keeps one hostile entry from costing more than a few hundred bytes
/// on every node.
constexpr size_t max_directory_kind_size = 256;

/// Checks one entry's shape: kind bounded, node id not all zero (no node
/// has the zero key; a zero id is an uninitialised value). invalid_argument
/// naming the origin otherwise.
caf::error validate(const directory_entry& e);

/// The interface a directory backend implements.
///
/// Reads (lookup, entries, entries_on, digest) answer from the backend's
/// local view: a replica for the embedded backend, a watch-fed cache for a
/// networked one. Writes (publish, merge) may cross the network and must
/// then finish or fail within the backend's deadline; a backend that can
/// block says so in its own header, and its owner runs it off the
/// scheduler.
class directory {
public:
  /// Called once for every entry that changed the table, with the entry as
  /// it now is, on the thread that applied the change, after the change is
  /// visible to lookup(). Not called for updates that lost the merge rule
  /// or were already known.
  using change_callback = std::function<void(const directory_entry&)>;

  virtual ~directory() = default;

  /// The entry for `origin` (live or tombstone), nullopt when unknown.
  virtual caf::expected<std::optional<directory_entry>>
  lookup(uint64_t origin) const = 0;

  /// Applies `e` if it supersedes the current entry for its origin (or the
  /// origin is unknown). Returns true when applied, false when it lost to
  /// or equals the current entry: a stale update is normal under gossip,
  /// not an error. A backend with compare-and-set retries its CAS until the
  /// write lands or loses the merge rule.
  virtual caf::expected<bool> publish(const directory_entry& e) = 0;

  /// Applies every entry of `batch` as publish() would. Returns how many
  /// changed the table. Validates the whole batch first: an invalid entry
  /// fails the merge with nothing applied.
  virtual caf::expected<size_t>
  merge(const std::vector<directory_entry>& batch) = 0;

  /// Every entry, tombstones included, sorted by origin.
  virtual caf::expected<std::vector<directory_entry>> entries() const = 0;

  /// The live (not stopped) entries on `node`, sorted by origin: the
  /// daemons that are unavailable when `node` is down.
  virtual caf::expected<std::vector<directory_entry>>
  entries_on(const entity_id& node) const = 0;

  /// An order-independent 64-bit digest of the whole table: equal tables
  /// have equal digests on every backend (the sum of entry_digest over all
  /// entries, modulo 2^64); 0 for an empty table. Heartbeats carry it
  /// (heartbeat::directory_digest) so that a replica that differs asks for
  /// repair.
  virtual caf::expected<uint64_t> digest() const = 0;

  /// Number of entries, tombstones included.
  virtual caf::expected<size_t> size() const = 0;

  /// Sets the one change callback, replacing any earlier one (an empty
  /// function removes it). The callback may call back into the directory.
  virtual void on_change(change_callback cb) = 0;
};

/// The embedded backend: the whole table in memory on every node,
/// replicated by the mesh service (publish on change, full table to a
/// joining node, anti-entropy below).
///
/// Anti-entropy. Origins are XXH3 hashes, so their top bits spread entries
/// evenly over `bucket_count` (256) buckets. Each bucket keeps the digest of
/// its entries up to date on every change (O(1)), and digest() is their
/// sum. When a heartbeat shows a peer's digest differing from ours, we ask
/// for its bucket_digests() (2 KiB), compare, and ask only for the entries
/// of the differing buckets (entries_in(buckets)); merging them repairs us.
/// At 100,000 entries a single missed update costs one bucket of about 400
/// entries (about 40 KiB) instead of the whole 10 MB table. A joining node
/// (all buckets differ) gets the full table the same way.
///
/// Not thread-safe: one owner (the mesh service actor) calls it; others ask
/// that owner.
class embedded_directory final : public directory {
public:
  /// Buckets for anti-entropy: origin >> (64 - bucket_bits).
  static constexpr unsigned bucket_bits = 8;
  static constexpr size_t bucket_count = size_t{1} << bucket_bits;

  /// The default bound on entries (tombstones included). A node holding 10
  /// million entries uses about 1 GB; a larger table is a hostile or broken
  /// peer, not a deployment.
  static constexpr size_t default_max_entries = 10'000'000;

  explicit embedded_directory(size_t max_entries = default_max_entries);

  caf::expected<std::optional<directory_entry>>
  lookup(uint64_t origin) const override;

  /// Errors: invalid_argument (validate()), limit_exceeded when `e` is a
  /// new origin and the table is full.
  caf::expected<bool> publish(const directory_entry& e) override;

  /// Errors: invalid_argument, limit_exceeded when the batch alone is
  /// larger than the bound or its new origins would overflow it; nothing is
  /// applied then.
  caf::expected<size_t>
  merge(const std::vector<directory_entry>& batch) override;

  caf::expected<std::vector<directory_entry>> entries() const override;

  caf::expected<std::vector<directory_entry>>
  entries_on(const entity_id& node) const override;

  caf::expected<uint64_t> digest() const override;

  caf::expected<size_t> size() const override;

  void on_change(change_callback cb) override;

  /// The bucket an origin belongs to.
  static size_t bucket_of(uint64_t origin) noexcept {
    return static_cast<size_t>(origin >> (64 - bucket_bits));
  }

  /// The digest of every bucket (bucket_count values); digest() is their
  /// sum.
  std::vector<uint64_t> bucket_digests() const;

  /// Indices of the buckets whose digests differ between ours and
  /// `theirs`. invalid_argument unless `theirs` has bucket_count values.
  caf::expected<std::vector<uint32_t>>
  differing_buckets(const std::vector<uint64_t>& theirs) const;

  /// Every entry of the given buckets, sorted by origin. invalid_argument
  /// for a bucket index out of range.
  caf::expected<std::vector<directory_entry>>
  entries_in(const std::vector<uint32_t>& buckets) const;

private:
  /// Applies `e` without validation or bound checks; true when it changed
  /// the table.
  bool apply(const directory_entry& e);

  size_t max_entries_;
  std::map<uint64_t, directory_entry> table_;
  std::vector<uint64_t> bucket_digest_;
  change_callback on_change_;
};

} // namespace mesh
