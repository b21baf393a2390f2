#include "base/bytes.hpp"

namespace mesh {

namespace {

constexpr char digits[] = "0123456789abcdef";

int nibble(char c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

} // namespace

std::string to_hex(bytes_view b) {
  std::string out;
  out.reserve(b.size * 2);
  for (auto c : b) {
    out.push_back(digits[c >> 4]);
    out.push_back(digits[c & 0xF]);
  }
  return out;
}

bool from_hex(std::string_view hex, bytes& out) {
  if (hex.size() % 2 != 0)
    return false;
  bytes tmp;
  tmp.reserve(hex.size() / 2);
  for (size_t i = 0; i < hex.size(); i += 2) {
    auto hi = nibble(hex[i]);
    auto lo = nibble(hex[i + 1]);
    if (hi < 0 || lo < 0)
      return false;
    tmp.push_back(static_cast<uint8_t>((hi << 4) | lo));
  }
  out = std::move(tmp);
  return true;
}

std::string hex_u64(uint64_t x) {
  std::string out = "0x0000000000000000";
  for (int i = 0; i < 16; ++i)
    out[17 - i] = digits[(x >> (4 * i)) & 0xF];
  return out;
}

} // namespace mesh
