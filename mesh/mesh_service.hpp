#pragma once

// The node's part in the mesh (DESIGN.md section 7): one detached actor that
// owns the membership table (mesh/membership.hpp), the embedded directory
// (mesh/directory.hpp) and the links to the other nodes, and answers the
// gateway's questions about them: who is up, where a daemon lives, which
// nodes should run a deployment.
//
// Why its own thread: heartbeats must leave and be judged on time while
// every scheduler worker runs busy daemons (issue 9: no false positive
// under a saturated CPU). A detached actor is scheduled by the kernel, not
// behind the daemons in CAF's queues. Links to peers are detached for the
// same reason; dialing (a blocking connect and handshake, which a
// SIGSTOPped peer stretches to its deadline) runs on short-lived blocking
// actors so it never holds the mesh thread.
//
// Every request to a peer has a deadline; a peer that does not answer is
// judged by membership, never waited on.
//
// What it answers: mesh/mesh_messages.hpp.

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <caf/actor.hpp>
#include <caf/expected.hpp>
#include <caf/fwd.hpp>

#include "mesh/control_codec.hpp"
#include "mesh/membership.hpp"
#include "mesh/mesh_messages.hpp"
#include "mesh/mesh_types.hpp"

namespace mesh {

class runtime;

/// An open, authenticated link to a peer's gateway: an actor taking
/// (request_atom, wire_bytes plain request) -> wire_bytes plain response,
/// and the peer's authenticated key.
struct dialed_link {
  caf::actor link;
  entity_id peer{};
};

/// Opens a link to "host:port" (blocking; called on a dialing thread, never
/// the mesh actor's), within its own deadline.
using link_dialer = std::function<caf::expected<dialed_link>(
  const std::string& address)>;

struct mesh_service_options {
  /// This node as it announces itself: id, address, incarnation,
  /// capabilities.
  node_record self;
  /// Addresses to join through (--join).
  std::vector<std::string> seeds;
  membership_options membership;
  /// How links to peers are opened.
  link_dialer dial;
  /// Deadline of every request to a peer (directory pushes, anti-entropy,
  /// listings). Heartbeats and probes use the membership timeouts.
  std::chrono::milliseconds peer_timeout{5000};
  /// How often membership is ticked.
  std::chrono::milliseconds tick{100};
  /// How often the node's own daemons are listed and published.
  std::chrono::milliseconds reconcile{1000};
};

/// Spawns the mesh actor (detached). It runs until it is sent an exit
/// message by its owner (meshd) or the actor system stops. Errors:
/// invalid_argument for options membership refuses (timers out of order).
caf::expected<caf::actor> spawn_mesh_service(caf::actor_system& sys,
                                             runtime& rt,
                                             mesh_service_options opts);

} // namespace mesh
