#pragma once

// The node's gateway: the one actor a node publishes on its port and the only
// entry point for clients (DESIGN.md section 7, docs/protocol.md).
//
// It accepts exactly one message shape,
//   (request_atom, std::vector<char> request) -> std::vector<char> response
// where the bytes are a Cap'n Proto Request / Response (mesh/control.capnp).
// Anything else is logged (rate-limited) and dropped: the gateway ignores
// exit messages and every other message a peer can send through CAF's BASP
// (see gateway.cpp, class gateway_actor). publish() also removes CAF's
// built-in named actors (ConfigServ, SpawnServ) from the registry, so a peer
// cannot reach them by name (docs/protocol.md, "What a raw CAF peer can
// do").
//
// Link security (docs/protocol.md section 5): the bytes of every request
// are a link message (mesh/link_crypto.hpp). A peer first runs the
// handshake (ClientHello, ClientFinish), proving the mesh PSK and its
// ed25519 key; every request after it is a Frame sealed under that session,
// and every response is sealed back. Sessions live in the gateway actor,
// keyed by session id and bound to the actor that ran the handshake (the
// peer's link actor); the gateway monitors that actor and drops its
// session when it goes down (the connection died). A plain control
// Request, a frame that does not open, or a handshake that fails is
// answered with a plain (unsealed) `unauthenticated` Response that any
// client decodes, and changes nothing: a legitimate session survives a
// rogue's bad frames. Each handler knows the authenticated key of the peer
// it serves.
//
// Threading: nothing in the gateway blocks. It authenticates and decodes
// on the CAF scheduler (both cheap), then serves each request by messages to
// the runtime's actors (`request(...).then(...)`): it looks a daemon up in
// the supervisor once, caches its handle, and sends the daemon its request;
// the answer comes back as a message, which the gateway encodes, seals and
// sends to the client. Many requests are in flight at once, and a slow
// daemon delays only its own requests. Each request to an actor has a
// deadline (gateway_options::request_timeout); past it the client gets
// `timeout`. One daemon's requests reach it in the order the gateway
// received them (CAF keeps the order of messages between two actors, and
// requests waiting for a lookup queue behind it).
//
// Lifetime: the runtime must outlive the gateway; stop() (or the destructor)
// returns only after the gateway has terminated.

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include <caf/actor.hpp>
#include <caf/atom.hpp>
#include <caf/expected.hpp>
#include <caf/fwd.hpp>

#include "identity/fwd.hpp"
#include "mesh/control_codec.hpp"
#include "mesh/log_limiter.hpp"

namespace mesh {

class runtime;
struct link_credentials;

/// Tags the one message shape the gateway accepts.
using request_atom = caf::atom_constant<caf::atom("mesh_req")>;

struct gateway_options {
  /// The node's side of every link: the mesh PSK and the node's own key
  /// (expect_peer is unused). nullptr = the open PSK (psk::open()) and a
  /// fresh key, for tests and in-process use.
  std::shared_ptr<const link_credentials> link;
  /// Most established sessions at once (one per connected client or
  /// node); a handshake beyond it is answered limit_exceeded.
  size_t max_sessions = 4096;
  /// Most handshakes between ServerHello and ClientFinish at once; beyond
  /// it a ClientHello is answered limit_exceeded. Each costs the gateway a
  /// signature, and a peer need not finish one.
  size_t max_handshakes = 256;
  /// How long a handshake may wait for its ClientFinish before it is
  /// dropped (checked on each new handshake and every warn_limit.interval).
  std::chrono::milliseconds handshake_timeout{10000};
  /// Largest deploy count one request may ask for.
  uint32_t max_deploy_count = 10000;
  /// Deadline of each message the gateway sends the runtime's actors for a
  /// request; past it the client gets `timeout` (a send may still be
  /// applied afterwards: the message says so).
  std::chrono::milliseconds request_timeout{30000};
  /// How long stop() lets the requests in flight finish; those still
  /// unanswered then are answered shutting_down.
  std::chrono::milliseconds drain_timeout{10000};
  /// The control protocol versions the node speaks.
  control::version_range versions = control::supported_versions;
  /// Bounds the warnings peers can trigger (refused, malformed or
  /// unexpected messages): `burst` lines per interval, then one line
  /// "suppressed K similar warnings" per interval.
  log_limit warn_limit;
  /// Called (on a CAF thread) when the gateway actor terminates other than
  /// through stop(): a bug, since nothing a peer sends stops it. The node
  /// is unreachable from then on; meshd exits so that its service manager
  /// restarts it.
  std::function<void(const caf::error& reason)> on_unexpected_exit;
  /// The node's mesh actor (mesh/mesh_service.hpp). Null: the node runs
  /// alone; requests for daemons it does not run get daemon_not_found,
  /// node-to-node requests get invalid_argument.
  caf::actor mesh;
  /// This node's id and address, shown with its daemons.
  entity_id node_id{};
  std::string node_address;
  /// Deadline of a request forwarded to the node that runs its daemon,
  /// and of each node asked for its daemons by `daemons`.
  std::chrono::milliseconds forward_timeout{10000};
  /// Test hook: called in the gateway actor before each request is
  /// served. meshd's MESHD_FAULT_INJECTION=gateway-throw throws from it, as
  /// a bug would (docs/operations.md, "Test hooks").
  std::function<void()> before_serve;
};

class gateway {
public:
  /// Spawns the gateway; `rt` must outlive this object.
  gateway(caf::actor_system& sys, runtime& rt, gateway_options opts = {});

  /// stop()s.
  ~gateway();

  gateway(const gateway&) = delete;
  gateway& operator=(const gateway&) = delete;

  /// The actor to publish.
  const caf::actor& handle() const;

  /// Publishes the gateway on `host`:`port` (0 = an ephemeral port) with
  /// SO_REUSEADDR, so a node restarted right after a crash can bind its port
  /// again. Returns the bound port. Requires the middleman to be loaded.
  /// Removes "ConfigServ" and "SpawnServ" from the actor system's registry
  /// (BASP delivers messages addressed by name to registry entries): a
  /// system that publishes a gateway serves peers through it only.
  caf::expected<uint16_t> publish(const std::string& host, uint16_t port);

  /// Puts the node's mesh actor behind the gateway (gateway_options::mesh),
  /// with the node's id and address, once the address is known (after
  /// publish(): the port may be ephemeral). Requests the gateway serves
  /// before this message reaches it are served as on a lone node.
  void attach_mesh(caf::actor mesh, const entity_id& node_id,
                   std::string node_address);

  /// Closes the published port and stops the gateway: new requests are
  /// answered shutting_down, requests in flight get their answers until
  /// drain_timeout passes, then shutting_down. Waits until the gateway has
  /// terminated. Idempotent.
  void stop();

  struct impl;

private:
  std::unique_ptr<impl> impl_;
};

} // namespace mesh
