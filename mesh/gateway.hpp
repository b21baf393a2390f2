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
// Threading: the runtime facade blocks (on a scoped_actor, or on a reply
// channel that spins briefly first: actors/reply.hpp), so the gateway actor
// itself never calls it. The gateway authenticates and decodes
// on the scheduler (both are cheap and never block), then hands the request
// to one of a few detached worker actors, each on its own thread:
//   - requests that name a daemon go to worker[origin_hash % workers], so
//     one daemon's requests are served in arrival order (a client's batches
//     for one daemon never overtake each other);
//   - daemons, kinds and deploy go to a separate admin worker, so a long
//     deploy never delays event delivery.
// The worker calls the runtime, encodes the response and answers the
// gateway, which seals it and replies to the client.
//
// Lifetime: the runtime must outlive the gateway; stop() (or the destructor)
// returns only after the gateway and every worker have terminated.

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include <caf/atom.hpp>
#include <caf/expected.hpp>
#include <caf/fwd.hpp>

#include "mesh/authenticator.hpp"
#include "mesh/control_codec.hpp"
#include "mesh/log_limiter.hpp"

namespace mesh {

class runtime;

/// Tags the one message shape the gateway accepts.
using request_atom = caf::atom_constant<caf::atom("mesh_req")>;

struct gateway_options {
  /// Workers for daemon-addressed requests (at least 1).
  size_t workers = 4;
  /// nullptr = make_no_authentication().
  std::shared_ptr<authenticator> auth;
  /// Largest deploy count one request may ask for.
  uint32_t max_deploy_count = 10000;
  /// Bounds the warnings peers can trigger (refused, malformed or
  /// unexpected messages): `burst` lines per interval, then one line
  /// "suppressed K similar warnings" per interval.
  log_limit warn_limit;
  /// Called (on a CAF thread) when the gateway actor terminates other than
  /// through stop(): a bug, since nothing a peer sends stops it. The node
  /// is unreachable from then on; meshd exits so that its service manager
  /// restarts it.
  std::function<void(const caf::error& reason)> on_unexpected_exit;
};

class gateway {
public:
  /// Spawns the gateway and its workers; `rt` must outlive this object.
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

  /// Closes the published port, stops the workers, then the gateway, and
  /// waits until all have terminated. A request a worker is serving
  /// finishes and is answered; requests still queued are answered
  /// shutting_down. Idempotent.
  void stop();

  struct impl;

private:
  std::unique_ptr<impl> impl_;
};

/// Serves one decoded request against `rt`: what a worker does. Blocks until
/// the runtime answered. Failures come back as control::error_response.
control::response serve(runtime& rt, control::request req,
                        const gateway_options& opts);

} // namespace mesh
