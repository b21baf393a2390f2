#include "persistence/nonce_file.hpp"

#include <cerrno>
#include <cstdio>
#include <cstring>

#include <sys/random.h>

#include "base/atomic_file.hpp"
#include "base/errc.hpp"
#include "base/file_system.hpp"

namespace mesh {

namespace {

// Reading more than this is pointless: any size other than nonce_file_size is
// an error, and the message only needs to say the file is too large.
constexpr size_t max_read_size = 4096;

std::string prefix(const std::string& path) {
  return "nonce file " + path + ": ";
}

std::string hex_byte(uint8_t x) {
  char buf[5];
  std::snprintf(buf, sizeof(buf), "0x%02x", x);
  return buf;
}

// 0 is reserved as "no nonce" by consumers, so it is redrawn, not adjusted:
// mapping it to 1 would make 1 twice as likely as any other value.
caf::expected<uint64_t> random_nonzero_u64() {
  uint64_t x = 0;
  while (x == 0) {
    auto n = ::getrandom(&x, sizeof(x), 0);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      return make_error(errc::io_error,
                        std::string{"getrandom: "} + std::strerror(errno));
    // Requests of at most 256 bytes are never cut short once the pool is
    // initialized; should one be, part of x is not random, so redraw.
    if (static_cast<size_t>(n) != sizeof(x))
      x = 0;
  }
  return x;
}

} // namespace

std::array<uint8_t, nonce_file_size> encode_nonce(uint64_t nonce) {
  std::array<uint8_t, nonce_file_size> out{};
  out[0] = nonce_file_version;
  store_le64(out.data() + 1, nonce);
  return out;
}

caf::expected<uint64_t> decode_nonce(bytes_view data, const std::string& path) {
  if (data.size != nonce_file_size)
    return make_error(errc::corrupt_data, prefix(path)
                                            + std::to_string(data.size)
                                            + " bytes, expected "
                                            + std::to_string(nonce_file_size));
  if (data.data[0] != nonce_file_version)
    return make_error(errc::unsupported_version,
                      prefix(path) + "unknown version byte "
                        + hex_byte(data.data[0]) + ", expected "
                        + hex_byte(nonce_file_version));
  auto nonce = load_le64(data.data + 1);
  if (nonce == 0)
    return make_error(errc::corrupt_data,
                      prefix(path) + "nonce is 0, which is never written");
  return nonce;
}

caf::expected<uint64_t> load_nonce(const std::string& path) {
  auto data = read_small_file(*real_file_system(), path, max_read_size);
  if (data)
    return decode_nonce(*data, path);
  // read_small_file reports an oversized file as corrupt_data.
  if (is(data.error(), errc::corrupt_data))
    return make_error(errc::corrupt_data, prefix(path) + "more than "
                                            + std::to_string(max_read_size)
                                            + " bytes, expected "
                                            + std::to_string(nonce_file_size));
  return data.error();
}

caf::expected<uint64_t> load_or_create_nonce(const std::string& path) {
  if (path.empty())
    return make_error(errc::invalid_argument, "nonce file path is empty");
  auto existing = load_nonce(path);
  if (existing || !is(existing.error(), errc::not_found))
    return existing;
  auto fresh = random_nonzero_u64();
  if (!fresh)
    return fresh.error();
  auto encoded = encode_nonce(*fresh);
  auto created = create_file_atomic(*real_file_system(), path,
                                    bytes_view{encoded.data(), encoded.size()},
                                    nonce_file_mode);
  if (!created) {
    if (is(created.error(), errc::not_found))
      return make_error(errc::not_found,
                        prefix(path) + "parent directory " + parent_dir(path)
                          + " does not exist (it is never created)");
    return created.error();
  }
  if (*created)
    return *fresh;
  // Another loader published its nonce between our read and our create. It
  // linked a complete, fsynced file, so what we read now is final.
  return load_nonce(path);
}

} // namespace mesh
