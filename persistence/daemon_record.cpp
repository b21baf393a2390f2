#include "persistence/daemon_record.hpp"

#include <cstring>
#include <functional>

#include <sodium/utils.h>
#include <xxhash.h>

#include "base/errc.hpp"
#include "persistence/log_entry.hpp"

namespace mesh {

// -- daemon record ------------------------------------------------------------
//
// Version 1 (read only; every such daemon is of epoch legacy_epoch):
//
//   0    4   magic "MSHR"
//   4    1   version (1)
//   5    1   kind length K (1..255)
//   6    K   kind (UTF-8)
//   6+K  32  ed25519 seed
//   38+K 8   XXH3-64 of bytes 0..38+K
//
// Version 2, live record (type 0):
//
//   0    4   magic "MSHR"
//   4    1   version (2)
//   5    1   type (0)
//   6    8   epoch (u64, >= 1)
//   14   1   kind length K (1..255)
//   15   K   kind
//   15+K 32  ed25519 seed
//   47+K 8   XXH3-64 of bytes 0..47+K
//
// Version 2, tombstone (type 1):
//
//   0    4   magic "MSHR"
//   4    1   version (2)
//   5    1   type (1)
//   6    8   epoch (u64, >= 1): the stopped daemon's last
//   14   8   origin hash (u64; must match the file name)
//   22   8   XXH3-64 of bytes 0..22

namespace {

constexpr uint8_t record_magic[4] = {'M', 'S', 'H', 'R'};
constexpr uint8_t record_version = 2;
constexpr uint8_t type_live = 0;
constexpr uint8_t type_tombstone = 1;
constexpr size_t tombstone_size = 30;

void append_u64(bytes& buf, uint64_t x) {
  uint8_t raw[8];
  store_le64(raw, x);
  buf.insert(buf.end(), raw, raw + 8);
}

void append_checksum(bytes& buf) {
  append_u64(buf, XXH3_64bits(buf.data(), buf.size()));
}

bool checksum_ok(const bytes& b, size_t body) {
  return load_le64(b.data() + body) == XXH3_64bits(b.data(), body);
}

} // namespace

caf::expected<bytes> encode_daemon_record(const std::string& kind,
                                          const keypair& identity,
                                          uint64_t epoch) {
  if (kind.empty() || kind.size() > 255)
    return make_error(errc::invalid_argument,
                      "daemon kind must be 1..255 bytes long");
  if (epoch == 0)
    return make_error(errc::invalid_argument, "daemon epoch 0 is never "
                                              "written");
  bytes buf;
  buf.insert(buf.end(), record_magic, record_magic + 4);
  buf.push_back(record_version);
  buf.push_back(type_live);
  append_u64(buf, epoch);
  buf.push_back(static_cast<uint8_t>(kind.size()));
  buf.insert(buf.end(), kind.begin(), kind.end());
  const auto& seed = identity.seed();
  buf.insert(buf.end(), seed.begin(), seed.end());
  append_checksum(buf);
  return buf;
}

caf::expected<bytes> encode_daemon_tombstone(const daemon_tombstone& t) {
  if (t.epoch == 0)
    return make_error(errc::invalid_argument, "daemon epoch 0 is never "
                                              "written");
  bytes buf;
  buf.insert(buf.end(), record_magic, record_magic + 4);
  buf.push_back(record_version);
  buf.push_back(type_tombstone);
  append_u64(buf, t.epoch);
  append_u64(buf, t.origin);
  append_checksum(buf);
  return buf;
}

namespace {

// A live record: kind length at `at`, then kind, seed and checksum.
caf::expected<daemon_file>
decode_live(const bytes& b, size_t at, uint64_t epoch,
            const std::function<caf::error(const std::string&)>& bad) {
  size_t k = b[at];
  if (k == 0 || b.size() != at + 1 + k + 32 + 8)
    return bad(std::to_string(b.size()) + " bytes, expected "
               + std::to_string(at + 1 + k + 40));
  auto body = at + 1 + k + 32;
  if (!checksum_ok(b, body))
    return bad("checksum mismatch");
  key_seed seed;
  std::memcpy(seed.data(), b.data() + at + 1 + k, seed.size());
  daemon_file out;
  out.live = daemon_record{std::string(b.begin() + static_cast<long>(at + 1),
                                       b.begin()
                                         + static_cast<long>(at + 1 + k)),
                           keypair::from_seed(seed), epoch};
  sodium_memzero(seed.data(), seed.size());
  return out;
}

caf::expected<daemon_file>
decode_v2(const bytes& b,
          const std::function<caf::error(const std::string&)>& bad) {
  if (b.size() < 15)
    return bad(std::to_string(b.size())
               + " bytes, too short for a "
                 "version-2 header");
  auto type = b[5];
  auto epoch = load_le64(b.data() + 6);
  if (type != type_live && type != type_tombstone)
    return bad("unknown type " + std::to_string(type));
  if (epoch == 0)
    return bad("epoch 0, which is never written");
  if (type == type_live)
    return decode_live(b, 14, epoch, bad);
  if (b.size() != tombstone_size)
    return bad(std::to_string(b.size()) + " bytes, expected "
               + std::to_string(tombstone_size) + " for a tombstone");
  if (!checksum_ok(b, tombstone_size - 8))
    return bad("checksum mismatch");
  daemon_file out;
  out.tombstone = daemon_tombstone{load_le64(b.data() + 14), epoch};
  return out;
}

} // namespace

caf::expected<daemon_file> decode_daemon_file(bytes& b,
                                              const std::string& what) {
  std::function<caf::error(const std::string&)> bad =
    [&what](const std::string& why) {
      return make_error(errc::corrupt_data,
                        "daemon record " + what + ": " + why);
    };
  auto decode = [&]() -> caf::expected<daemon_file> {
    if (b.size() < 6 || std::memcmp(b.data(), record_magic, 4) != 0)
      return bad("bad magic or too short");
    if (b[4] == 1)
      return decode_live(b, 5, legacy_epoch, bad);
    if (b[4] == record_version)
      return decode_v2(b, bad);
    return make_error(errc::unsupported_version,
                      "daemon record " + what + ": unknown version byte "
                        + std::to_string(b[4]) + " (this build reads 1.."
                        + std::to_string(record_version) + ")");
  };
  auto out = decode();
  sodium_memzero(b.data(), b.size());
  return out;
}

} // namespace mesh
