#pragma once

// Byte buffers and the little-endian codecs every on-disk and on-wire format
// of meshd uses. All multi-byte integers meshd writes are little-endian.

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

namespace mesh {

using bytes = std::vector<uint8_t>;

/// A non-owning view of bytes; the caller keeps the storage alive.
struct bytes_view {
  const uint8_t* data = nullptr;
  size_t size = 0;

  bytes_view() = default;
  bytes_view(const uint8_t* d, size_t n) : data(d), size(n) {}
  bytes_view(const bytes& b) : data(b.data()), size(b.size()) {}
  bytes_view(std::string_view s)
    : data(reinterpret_cast<const uint8_t*>(s.data())), size(s.size()) {}

  const uint8_t* begin() const {
    return data;
  }
  const uint8_t* end() const {
    return data + size;
  }
  bool empty() const {
    return size == 0;
  }
  std::string_view as_chars() const {
    return {reinterpret_cast<const char*>(data), size};
  }
  bytes to_bytes() const {
    return bytes(begin(), end());
  }
};

inline void store_le32(uint8_t* p, uint32_t v) {
  for (int i = 0; i < 4; ++i)
    p[i] = static_cast<uint8_t>(v >> (8 * i));
}

inline void store_le64(uint8_t* p, uint64_t v) {
  for (int i = 0; i < 8; ++i)
    p[i] = static_cast<uint8_t>(v >> (8 * i));
}

inline uint32_t load_le32(const uint8_t* p) {
  uint32_t v = 0;
  for (int i = 3; i >= 0; --i)
    v = (v << 8) | p[i];
  return v;
}

inline uint64_t load_le64(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i)
    v = (v << 8) | p[i];
  return v;
}

/// Lower-case hex of `b`.
std::string to_hex(bytes_view b);

/// Parses lower- or upper-case hex; returns false on odd length or a non-hex
/// character.
bool from_hex(std::string_view hex, bytes& out);

/// Hex of a u64 with a 0x prefix and 16 digits, as logs print ids.
std::string hex_u64(uint64_t x);

} // namespace mesh
