#pragma once

// The client side of the control protocol (docs/protocol.md): connects to a
// node's gateway and sends one request at a time, waiting for its response.
//
//   caf::actor_system_config cfg;
//   cfg.load<caf::io::middleman>();
//   caf::actor_system sys{cfg};
//   auto client = mesh::control_client::connect(sys, "127.0.0.1", 7400,
//                                                std::chrono::seconds{10});
//   auto res = client->call(mesh::control::daemons_request{});
//
// Transport failures are caf::errors: target_unavailable (cannot connect,
// or the node went away while a request was in flight) and timeout. A
// request the node refused comes back as a control::error_response inside
// the response, not as a transport error.

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include <caf/expected.hpp>
#include <caf/fwd.hpp>

#include "mesh/control_codec.hpp"

namespace mesh {

class control_client {
public:
  /// Connects to the gateway at `host`:`port`. The actor system must have
  /// the middleman loaded. Errors: target_unavailable, naming the address.
  static caf::expected<control_client>
  connect(caf::actor_system& sys, const std::string& host, uint16_t port,
          std::chrono::milliseconds timeout);

  control_client(control_client&&) noexcept;
  control_client& operator=(control_client&&) noexcept;
  ~control_client();

  /// Sends `req` and waits up to the timeout for the response.
  caf::expected<control::response> call(const control::request& req);

  /// Sends already encoded bytes (tests use this to send garbage).
  caf::expected<control::response> call_raw(control::wire_bytes bytes);

  /// "host:port", for messages.
  const std::string& address() const;

  struct impl;

private:
  explicit control_client(std::unique_ptr<impl> ptr);

  std::unique_ptr<impl> impl_;
};

} // namespace mesh
