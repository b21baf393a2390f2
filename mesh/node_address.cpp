#include "mesh/node_address.hpp"

#include <charconv>

#include "base/errc.hpp"

namespace mesh {

caf::expected<node_address> node_address::parse(std::string_view text) {
  auto bad = [&](const std::string& why) {
    return make_error(errc::invalid_argument,
                      "bad address '" + std::string{text} + "': " + why
                        + " (expected HOST:PORT, e.g. 127.0.0.1:7400)");
  };
  auto colon = text.rfind(':');
  if (colon == std::string_view::npos)
    return bad("no port");
  auto host = text.substr(0, colon);
  auto port_text = text.substr(colon + 1);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  else if (host.find(':') != std::string_view::npos)
    return bad("put an IPv6 host in brackets");
  if (host.empty())
    return bad("empty host");
  unsigned value = 0;
  auto end = port_text.data() + port_text.size();
  auto res = std::from_chars(port_text.data(), end, value);
  if (port_text.empty() || res.ec != std::errc{} || res.ptr != end)
    return bad("port is not a number");
  if (value > 65535)
    return bad("port is above 65535");
  return node_address{std::string{host}, static_cast<uint16_t>(value)};
}

std::string node_address::to_string() const {
  auto p = std::to_string(port);
  if (host.find(':') != std::string::npos)
    return "[" + host + "]:" + p;
  return host + ":" + p;
}

} // namespace mesh
