#pragma once

// What a spawn request carries: everything needed to build a daemon, as a
// plain value that can be serialized (actors/messages.hpp), so the same
// request can go to the supervisor of another node.
//
// SECRET: `seed` is the daemon's ed25519 secret key. A spawn_spec must never
// cross the wire as it is: between nodes it travels only inside a sealed
// identity envelope (DESIGN.md section 8; the migration protocol seals it to
// the target node's key). Inside one process it is passed as any message
// is; it is wiped when the spec is destroyed, like a keypair.

#include <cstdint>
#include <memory>
#include <string>

#include <caf/expected.hpp>

#include "actors/daemon_info.hpp"
#include "base/bytes.hpp"
#include "identity/fwd.hpp"

namespace mesh {

class daemon_core;
class factory_registry;
class keypair;

/// Bits of spawn_spec::flags. A spec with a bit this node does not know is
/// refused (invalid_argument) rather than half understood: a newer node's
/// request never runs with its meaning silently dropped.
struct spawn_flags {
  /// Start in phase standby (a migration target: restored, not routable,
  /// replayed log entries only) instead of running. Its daemon record is
  /// written when it is activated.
  static constexpr uint32_t standby = 1;
  /// Every bit this node understands.
  static constexpr uint32_t known = standby;
};

struct spawn_spec {
  /// The daemon kind (a registered factory). Empty with an initial snapshot:
  /// the kind the snapshot names.
  std::string kind;
  /// The daemon's identity (ed25519 secret seed). See the file comment.
  key_seed seed{};
  /// An encoded snapshot (snapshot/snapshot.hpp) taken under this identity:
  /// the daemon starts from it, and it is stored before the daemon runs so
  /// the restored state is durable from the first event on. Empty: a fresh
  /// daemon.
  bytes initial_snapshot;
  /// spawn_flags bits.
  uint32_t flags = 0;

  spawn_spec() = default;
  /// A spec for a daemon of `kind` under `id` (copies the secret seed).
  spawn_spec(std::string kind, const keypair& id, bytes initial = {});
  spawn_spec(const spawn_spec&) = default;
  spawn_spec(spawn_spec&&) = default;
  spawn_spec& operator=(const spawn_spec&) = default;
  spawn_spec& operator=(spawn_spec&&) = default;
  ~spawn_spec();
};

/// Builds the daemon `spec` describes: the factory of its kind, then, with
/// an initial snapshot, decode (signature and identity checked against the
/// seed) and restore. Runs user code (factory, restore): call it off the
/// scheduler threads where that matters. Errors: invalid_argument (unknown
/// flags, no kind), factory_not_found, snapshot_identity_mismatch,
/// bad_signature, corrupt_data, restore_failed, or what the factory gave.
caf::expected<std::shared_ptr<daemon_core>>
build_daemon(std::shared_ptr<const factory_registry> registry,
             restart_policy policy, const spawn_spec& spec);

} // namespace mesh
