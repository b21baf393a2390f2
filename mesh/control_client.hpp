#pragma once

// The client side of the control protocol (docs/protocol.md): connects to a
// node's gateway and sends one request at a time, waiting for its response.
//
//   caf::actor_system_config cfg;
//   cfg.load<caf::io::middleman>();
//   caf::actor_system sys{cfg};
//   mesh::link_credentials creds{*mesh::load_psk_file("mesh.psk"),
//                                *mesh::load_key_file("client.key"), {}};
//   auto client = mesh::control_client::connect(sys, "127.0.0.1", 7400,
//                                                std::chrono::seconds{10},
//                                                creds);
//   auto res = client->call(mesh::control::daemons_request{});
//
// Requests travel through a link actor (mesh/link_actor.hpp): connect()
// runs the link handshake (the mesh PSK and the client's key, both ways),
// and every request and response is sealed.
//
// Each call carries a fresh request id, which the node's response must
// echo, and the range of protocol versions the client speaks; the node
// answers in the newest version both speak (docs/protocol.md, "Versions").
//
// Transport failures are caf::errors: target_unavailable (cannot connect,
// or the node went away while a request was in flight), timeout, and
// unauthenticated (the node refused the PSK or the key, or could not prove
// the PSK, or is not the pinned expect_peer). A
// response that is not the answer to the request (another id, a version
// outside the client's range) is corrupt_data / unsupported_version. A
// request the node refused comes back as a control::error_response inside
// the response, not as a transport error; a daemon that lives on another
// node now comes back as a control::moved_response.

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include <caf/expected.hpp>
#include <caf/fwd.hpp>

#include "mesh/control_codec.hpp"
#include "mesh/link_crypto.hpp"

namespace mesh {

class control_client {
public:
  /// Connects to the gateway at `host`:`port` and runs the link handshake
  /// with `creds`; `timeout` bounds the connect, the handshake and each
  /// call. The actor system must have the middleman loaded. `speaks` is
  /// the range of protocol versions the client claims (tests claim others).
  /// Errors: target_unavailable naming the address, timeout,
  /// unauthenticated, and the node's refusal of the link (limit_exceeded,
  /// shutting_down).
  static caf::expected<control_client>
  connect(caf::actor_system& sys, const std::string& host, uint16_t port,
          std::chrono::milliseconds timeout, const link_credentials& creds,
          control::version_range speaks = control::supported_versions);

  control_client(control_client&&) noexcept;
  control_client& operator=(control_client&&) noexcept;
  ~control_client();

  /// Sends `req` and waits up to the timeout for the response. A node that
  /// predates version negotiation (it answers version 2 requests with
  /// unsupported_version and no version of its own) is asked again in
  /// version 1 when the client speaks it, and from then on in version 1.
  caf::expected<control::response> call(const control::request& req);

  /// Sends already encoded bytes (tests use this to send garbage) and
  /// decodes the answer without checking its id or version.
  caf::expected<control::response_frame> call_raw(control::wire_bytes bytes);

  /// The version the node answered the last call in (0 before any).
  uint16_t version() const;

  /// "host:port", for messages.
  const std::string& address() const;

  /// The node's key, proven in the link handshake.
  const entity_id& peer() const;

  struct impl;

private:
  explicit control_client(std::unique_ptr<impl> ptr);

  std::unique_ptr<impl> impl_;
};

} // namespace mesh
