#pragma once

// One daemon as an actor. Per input batch: limits, dedup, daemon_seq, process
// and outputs via daemon_core, then one append of the batch's entries to the
// log_actor; the reply (outputs included) is released only when the log
// acknowledges the append. Appends are answered in order, so replies leave in
// input order.
//
// A failed append fails only its own batch (and the batches sent after it,
// which the log refuses): the daemon rolls back to the last daemon_seq the
// log holds and keeps serving, so memory never holds an event the log does
// not.
//
// Snapshots never pass what the log has acknowledged: a snapshot (automatic,
// requested, asked for by the log, or final) waits until every append in
// flight is answered, and input arriving meanwhile is held and applied, in
// arrival order, right after it. The pause is one group commit.
//
// Nothing here blocks a scheduler thread on the disk or on user code of
// unbounded cost: snapshots (the user's snapshot(), encoding, signing,
// writing), resume and rollback run on the store actor's thread
// (store_actor.hpp). The daemon lends it the core with request(...).await,
// which suspends this actor's mailbox, not the thread: other actors run
// meanwhile, and input to this daemon waits in its mailbox, in order.
//
// Phases (actors/daemon_phase.hpp): the actor holds its daemon's phase and
// tells the supervisor each change. A frozen daemon holds new input, each
// batch with its producer's reply handle, until release applies it or
// forward hands it to another actor, which then answers the producers. A
// standby daemon refuses deliveries and applies replayed log entries,
// logging them like live input.

#include <chrono>
#include <memory>

#include <caf/fwd.hpp>

#include "actors/messages.hpp"
#include "actors/store_actor.hpp"

namespace mesh {

class daemon_core;

struct daemon_actor_config {
  std::shared_ptr<daemon_core> core;
  log_actor log; // null: no durable log
  /// Runs the snapshots, resume and rollback (required).
  store_actor store;
  /// The node has a node_store: snapshots are persisted.
  bool durable = false;
  supervisor_actor supervisor; // told when the daemon fails
  uint64_t snapshot_every_events = 0;
  std::chrono::milliseconds snapshot_every{0};
  /// Start in phase standby (a migration target: replayed log entries only)
  /// instead of running.
  bool standby = false;
  /// What a frozen daemon holds at most; input beyond either bound is
  /// refused with limit_exceeded.
  size_t frozen_max_events = 100000;
  size_t frozen_max_bytes = 64u << 20;
};

daemon_actor spawn_daemon_actor(caf::actor_system& sys,
                                daemon_actor_config cfg);

} // namespace mesh
