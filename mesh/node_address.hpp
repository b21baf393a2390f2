#pragma once

// A node's network address as operators write it: HOST:PORT, with IPv6
// hosts in brackets ("[::1]:7400").

#include <cstdint>
#include <string>
#include <string_view>

#include <caf/expected.hpp>

namespace mesh {

struct node_address {
  std::string host;
  uint16_t port = 0;

  /// Parses HOST:PORT. Errors: invalid_argument naming the text and what is
  /// wrong (no port, port not a number or above 65535, empty host).
  static caf::expected<node_address> parse(std::string_view text);

  /// The same host with another port.
  node_address with_port(uint16_t p) const {
    return {host, p};
  }

  /// HOST:PORT, brackets around an IPv6 host.
  std::string to_string() const;
};

} // namespace mesh
