#pragma once

// One per node: the lifecycle (registering -> ready -> shutting_down) and the
// daemon table (origin_hash -> actor, identity, kind, epoch). Being an actor,
// it serializes spawns against shutdown: a spawn that arrives after shutdown
// started is refused, one that arrived before is stopped by it, so no daemon
// is ever left behind.

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
};

supervisor_actor spawn_supervisor(caf::actor_system& sys,
                                  supervisor_config cfg);

} // namespace mesh
