#pragma once

// The gateway's authentication hook (DESIGN.md section 7, docs/protocol.md
// "Authentication").
//
// Every request the gateway receives passes through open() before it is
// decoded, and every response through seal() before it is sent. The gateway
// calls both from its own actor only, so an implementation needs no locking
// for per-link state.
//
// Today the only implementation is the no-authentication mode: it serves
// every request and sends responses as they are. The PSK challenge-response
// and the per-link session MAC replace it through this interface without
// touching the gateway's dispatch or the control codec: open() checks the
// MAC and counter and returns the Request bytes inside the envelope, seal()
// adds the MAC to the Response bytes.

#include <memory>
#include <vector>

#include <caf/expected.hpp>
#include <caf/fwd.hpp>

namespace mesh {

class authenticator {
public:
  virtual ~authenticator() = default;

  /// Checks `wire`, which arrived from `peer`, and returns the Request bytes
  /// to decode. Errors: unauthenticated (the gateway answers it as an
  /// error response without decoding anything).
  [[nodiscard]] virtual caf::expected<std::vector<char>>
  open(const caf::node_id& peer, std::vector<char> wire) = 0;

  /// Wraps the Response bytes `response` for `peer`.
  virtual std::vector<char>
  seal(const caf::node_id& peer, std::vector<char> response) = 0;

  /// "none" for the no-authentication mode; logged at startup.
  virtual const char* mode() const = 0;
};

/// The no-authentication mode: anyone who can reach the port is served
/// (CAF's BASP has no authentication of its own). Bind meshd to a loopback
/// or otherwise private address while this is the mode.
std::unique_ptr<authenticator> make_no_authentication();

} // namespace mesh
