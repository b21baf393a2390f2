#pragma once

// The node's store actor: on a thread of its own (caf::detached, beside the
// log actor), it runs everything of a daemon's life that blocks on the disk
// or runs user code of unbounded cost, so that no CAF scheduler thread ever
// waits for it:
//
//   - snapshots: the user's snapshot(), the encoding, the signature and the
//     atomic write (automatic, requested, final, after a resume);
//   - daemon records: written before a new daemon runs, removed when it is
//     stopped;
//   - the user factory and restore(): building a daemon for spawn and
//     spawn_from_snapshot, rebuilding one whose actor died, the rebuild
//     after a rejected event, resume and rollback (fresh object, restore,
//     journal replay);
//   - the shutdown batch: every daemon's final snapshot with one flush.
//
// A daemon's core is lent, never shared: the daemon actor sends it with
// request(...).await(...), which suspends that actor's mailbox (not the
// scheduler thread) until the answer, so the user object is touched by one
// thread at a time and nothing the daemon does interleaves with the job; the
// supervisor lends a core before any actor holds it. The messages carry
// pointers and stay inside the process: the store actor is node-local by
// nature, like the event log's segment.
//
// Jobs run in arrival order. Per sender that is send order, so a daemon's
// record removal (stop) precedes the record write of a re-spawn of the same
// identity, and the shutdown batch follows every job the supervisor sent
// before it.

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <caf/fwd.hpp>

#include "actors/messages.hpp"

namespace mesh {

class daemon_core;
class node_store;

using build_atom = caf::atom_constant<caf::atom("build")>;
using save_atom = caf::atom_constant<caf::atom("save")>;
using rebuild_atom = caf::atom_constant<caf::atom("rebuild")>;
using rollback_atom = caf::atom_constant<caf::atom("rollback")>;
using restart_atom = caf::atom_constant<caf::atom("restart")>;

/// A daemon's core lent to the store actor for one job. The lender does not
/// touch it until the answer arrives.
struct core_lease {
  std::shared_ptr<daemon_core> core;
};

/// What a snapshot job does with the snapshot it takes.
enum class snapshot_use : uint8_t {
  /// Take, encode, sign; write it when the node is durable.
  persist,
  /// Take, encode, sign, and hand the encoding back unwritten (a final
  /// snapshot the shutdown batch writes).
  handover,
  /// The policy's snapshot: persist on a durable node; elsewhere only move
  /// the rebuild base (nothing would keep an encoding).
  automatic,
};

/// The answer to a snapshot job.
struct snapshot_done {
  /// Empty when nothing was encoded (automatic on a node without a store).
  bytes encoded;
  /// The snapshot's through_seq.
  uint64_t through_seq = 0;
  /// The snapshot file was replaced.
  bool written = false;
};

/// Final snapshots of a shutdown, (origin, encoding).
struct final_snapshots {
  std::vector<std::pair<uint64_t, bytes>> items;
};

using store_actor = caf::typed_actor<
  // Takes a snapshot of the lent core (it must have no log append in
  // flight) and does with it what the use says.
  caf::replies_to<snapshot_atom, core_lease, snapshot_use>::with<snapshot_done>,
  // daemon_core::resume, then (durable node) a snapshot written at once, so
  // that a restart does not find the same damage. A failed snapshot fails
  // the core again.
  caf::replies_to<resume_atom, core_lease, bool>::with<snapshot_done>,
  // The rebuild a rejected event left pending (daemon_core::finish_rebuild);
  // false when the daemon failed instead.
  caf::replies_to<restart_atom, core_lease>::with<bool>,
  // daemon_core::rollback_to the given daemon_seq.
  caf::replies_to<rollback_atom, core_lease, uint64_t>::with<bool>,
  // Runs the spawn request's build (factory, restore).
  caf::replies_to<build_atom, spawn_request_ptr>::with<core_lease>,
  // Starts a new life of the lent core on disk: gives it the next epoch
  // (one above the given epoch the supervisor knows and above the record or
  // tombstone on disk), writes the initial snapshot stamped with that epoch
  // when one is given (spawn_from_snapshot), then the record. Answers the
  // epoch. Only on a durable node.
  caf::replies_to<save_atom, core_lease, bytes, uint64_t>::with<uint64_t>,
  // Retires a stopped daemon's life of the given epoch: a tombstone
  // replaces its record and its snapshot goes. False (nothing touched) when
  // the record belongs to a newer life.
  caf::replies_to<forget_atom, uint64_t, uint64_t>::with<bool>,
  // Rebuilds a daemon whose actor died from its record, its snapshot and
  // the given log entries (the node's rebuild function).
  caf::replies_to<rebuild_atom, uint64_t,
                  std::vector<log_entry>>::with<core_lease>,
  // Writes the final snapshots with one flush, answers one
  // "origin (reason)" per snapshot that failed, and quits.
  caf::replies_to<close_atom, final_snapshots>::with<std::vector<std::string>>>;

struct store_actor_config {
  /// Null: nothing is durable (snapshots are still taken and encoded here).
  std::shared_ptr<node_store> store;
  /// Null: a daemon whose actor died cannot be rebuilt.
  rebuild_function rebuild;
};

store_actor spawn_store_actor(caf::actor_system& sys, store_actor_config cfg);

} // namespace mesh

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(mesh::core_lease)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(mesh::snapshot_use)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(mesh::snapshot_done)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(mesh::final_snapshots)
