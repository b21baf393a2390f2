#pragma once

// One per node: the lifecycle (registering -> ready -> shutting_down) and the
// daemon table (origin_hash -> actor, identity, kind, epoch, phase). Being an
// actor, it serializes spawns against shutdown: a spawn that arrives after
// shutdown started is refused, one that arrived before is stopped by it, so
// no daemon is ever left behind.
//
// Phases (actors/daemon_phase.hpp): each daemon actor tells the supervisor
// its phase changes; requests that change a phase (freeze, release,
// forward, activate, replay) are handed to the daemon's actor, which checks
// and answers them. A daemon in standby is not routable: lookup refuses it.
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
#include <functional>
#include <memory>
#include <mutex>
#include <vector>

#include <caf/fwd.hpp>

#include "actors/messages.hpp"
#include "actors/store_actor.hpp"

namespace mesh {

class daemon_core;
class factory_registry;
class node_store;

/// Daemons the runtime recovered from the data directory before start. They
/// are built objects, not requests, so they are handed over in-process: the
/// start handler takes them (once) and runs them.
struct recovered_daemons {
  std::mutex mtx;
  std::vector<std::shared_ptr<daemon_core>> cores;
};

struct supervisor_config {
  /// The kinds spawn requests may name (spawn_spec, build_daemon).
  std::shared_ptr<const factory_registry> registry;
  restart_policy restart = restart_policy::once();
  /// Filled by the runtime before it sends start (null: none).
  std::shared_ptr<recovered_daemons> recovered;
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
