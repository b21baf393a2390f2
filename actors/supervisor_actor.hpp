#pragma once

// One per node: the lifecycle (registering -> ready -> shutting_down) and the
// daemon table (origin_hash -> actor, identity, kind, epoch). Being an actor,
// it serializes spawns against shutdown: a spawn that arrives after shutdown
// started is refused, one that arrived before is stopped by it, so no daemon
// is ever left behind.
//
// It spawns and owns the node's store actor (store_actor.hpp): a spawn's
// factory and restore, the daemon record written before the daemon runs, the
// record removed by stop, the rebuild of a daemon whose actor died and the
// shutdown's batch of final snapshots all run there, never on a scheduler
// thread. A spawn is listed once built and recorded; a shutdown waits for
// the spawns accepted before it and then stops them with the rest. The two
// are linked: should either die abnormally, the other goes with it.
//
// It monitors every daemon actor. User code cannot kill one (daemon_core
// contains every throw), so an actor that terminates without being stopped
// is a bug or an exhausted machine: the daemon is then listed as failed with
// the exit reason, never as running behind a dead handle, and `resume`
// rebuilds it from its snapshot and the event log. A daemon whose durable
// state could not be loaded at start is listed as failed with the reason
// too. Unexpected messages are logged and dropped; nothing makes the
// supervisor quit but shutdown (or its store actor dying, see above).

#include <chrono>
#include <memory>

#include <caf/fwd.hpp>

#include "actors/messages.hpp"

namespace mesh {

class node_store;

struct supervisor_config {
  std::shared_ptr<node_store> store; // null: nothing durable
  uint64_t snapshot_every_events = 0;
  std::chrono::milliseconds snapshot_every{0};
  bool snapshot_on_shutdown = true;
  /// Rebuilds a daemon whose actor died (null: such a daemon stays failed).
  rebuild_function rebuild;
};

supervisor_actor spawn_supervisor(caf::actor_system& sys,
                                  supervisor_config cfg);

} // namespace mesh
