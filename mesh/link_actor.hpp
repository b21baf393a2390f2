#pragma once

// The initiator's end of a link (docs/protocol.md section 5): an actor that
// connects to a node's gateway, runs the handshake (mesh/link_crypto.hpp),
// then seals every request and opens every response. meshctl's
// control_client talks through one; so does a node talking to its peers.
//
// Message interface of the link actor:
//   (request_atom, wire_bytes plain) -> wire_bytes plain
//       one control Request in, its Response out. Requests sent before
//       the handshake completes wait for it (and fail with its error).
//       Errors: target_unavailable (cannot connect, or the connection was
//       lost: every pending request fails at once), timeout (no answer
//       within link_options::request_timeout), unauthenticated (the
//       handshake failed, or a response does not open).
//   (link_peer_atom) -> entity_id
//       the node's authenticated key, once the handshake is done.
// A plain (unsealed) Response from the node is passed on only when it is
// an error (what a gateway answers a link it cannot serve); anything else
// unsealed is corrupt_data, so only the authenticated node can answer.

#include <chrono>
#include <cstdint>
#include <string>

#include <caf/actor.hpp>
#include <caf/atom.hpp>
#include <caf/expected.hpp>
#include <caf/fwd.hpp>

#include "mesh/link_crypto.hpp"

namespace mesh {

/// Asks a link actor for its peer's entity_id.
using link_peer_atom = caf::atom_constant<caf::atom("link_peer")>;

struct link_options {
  /// Deadline of each request (and of each handshake message and of the
  /// connect).
  std::chrono::milliseconds request_timeout{30000};
};

/// A link actor and who is at the other end.
struct link_connection {
  caf::actor actor;
  /// The node's ed25519 key, proven in the handshake.
  entity_id peer{};
};

/// Spawns a link actor that connects to `host`:`port` through the
/// middleman and runs the handshake, without blocking the caller (a node's
/// actors use this). The actor system must have the middleman loaded.
caf::actor spawn_link(caf::actor_system& sys, std::string host, uint16_t port,
                      link_credentials creds, link_options opts = {});

/// spawn_link() to a gateway handle already at hand (in-process use and
/// tests). `address` names it in messages.
caf::actor spawn_link(caf::actor_system& sys, caf::actor gateway,
                      std::string address, link_credentials creds,
                      link_options opts = {});

/// Connects and completes the handshake, blocking up to `timeout`. Errors:
/// target_unavailable (naming the address), timeout, unauthenticated (the
/// node refused our PSK or key, or did not prove its own), and the node's
/// own refusal (limit_exceeded, shutting_down).
caf::expected<link_connection>
connect_link(caf::actor_system& sys, const std::string& host, uint16_t port,
             const link_credentials& creds, std::chrono::milliseconds timeout);

/// Waits up to `timeout` for the handshake of `link` (from spawn_link);
/// returns the peer's key. On failure the link actor is stopped.
caf::expected<entity_id> await_link(caf::actor_system& sys,
                                    const caf::actor& link,
                                    std::chrono::milliseconds timeout);

} // namespace mesh
