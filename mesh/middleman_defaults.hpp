#pragma once

// CAF middleman settings every meshd process (node, meshctl, a program using
// mesh::client) applies before it builds its actor system.
//
// CAF 0.17 leaves BASP's heartbeat and connection timeout off, so a peer
// that stops answering (SIGSTOP, a dead host, a cut cable without a RST)
// holds its connection open until TCP gives up, minutes later; every proxy
// of the peer's actors stays alive meanwhile. With both set, each side
// sends a heartbeat every `heartbeat_interval` and closes a connection that
// has been silent for `connection_timeout`: the proxies die, requests in
// flight fail, and the next request dials anew. Membership
// (mesh/membership.hpp) decides much sooner whether a node is down; this bounds
// what a half-dead connection can hold.

#include <chrono>

#include <caf/fwd.hpp>

namespace mesh {

struct middleman_timeouts {
  std::chrono::milliseconds heartbeat_interval{1000};
  std::chrono::milliseconds connection_timeout{10000};
};

/// Sets middleman.heartbeat-interval and middleman.connection-timeout.
void apply_middleman_defaults(caf::actor_system_config& cfg,
                              middleman_timeouts t = {});

} // namespace mesh
