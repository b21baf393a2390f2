#include "persistence/daemon_record.hpp"

#include <cstring>

#include <sodium/utils.h>
#include <xxhash.h>

#include "base/errc.hpp"

namespace mesh {

// -- daemon record ------------------------------------------------------------
//
//   0   4   magic "MSHR"
//   4   1   version (1)
//   5   1   kind length K (1..255)
//   6   K   kind (UTF-8)
//   6+K 32  ed25519 seed
//   38+K 8  XXH3-64 of bytes 0..38+K

namespace {

constexpr uint8_t record_magic[4] = {'M', 'S', 'H', 'R'};
constexpr uint8_t record_version = 1;

} // namespace

caf::expected<bytes> encode_daemon_record(const std::string& kind,
                                          const keypair& identity) {
  if (kind.empty() || kind.size() > 255)
    return make_error(errc::invalid_argument,
                      "daemon kind must be 1..255 bytes long");
  bytes buf;
  buf.insert(buf.end(), record_magic, record_magic + 4);
  buf.push_back(record_version);
  buf.push_back(static_cast<uint8_t>(kind.size()));
  buf.insert(buf.end(), kind.begin(), kind.end());
  const auto& seed = identity.seed();
  buf.insert(buf.end(), seed.begin(), seed.end());
  uint8_t sum[8];
  store_le64(sum, XXH3_64bits(buf.data(), buf.size()));
  buf.insert(buf.end(), sum, sum + 8);
  return buf;
}

caf::expected<daemon_record> decode_daemon_record(bytes& b,
                                                  const std::string& what) {
  auto bad = [&](const std::string& why) {
    sodium_memzero(b.data(), b.size());
    return make_error(errc::corrupt_data, "daemon record " + what + ": " + why);
  };
  if (b.size() < 6 || std::memcmp(b.data(), record_magic, 4) != 0)
    return bad("bad magic or too short");
  if (b[4] != record_version) {
    auto version = b[4];
    sodium_memzero(b.data(), b.size());
    return make_error(errc::unsupported_version, "daemon record " + what
                                                   + ": unknown version byte "
                                                   + std::to_string(version));
  }
  size_t k = b[5];
  if (k == 0 || b.size() != 6 + k + 32 + 8)
    return bad(std::to_string(b.size()) + " bytes, expected "
               + std::to_string(6 + k + 40));
  if (load_le64(b.data() + 6 + k + 32) != XXH3_64bits(b.data(), 6 + k + 32))
    return bad("checksum mismatch");
  key_seed seed;
  std::memcpy(seed.data(), b.data() + 6 + k, seed.size());
  daemon_record rec{std::string(b.begin() + 6,
                                b.begin() + 6 + static_cast<long>(k)),
                    keypair::from_seed(seed)};
  sodium_memzero(seed.data(), seed.size());
  sodium_memzero(b.data(), b.size());
  return rec;
}

} // namespace mesh
