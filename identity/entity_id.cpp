#include "identity/entity_id.hpp"

#include <algorithm>

#include <sodium/crypto_sign_ed25519.h>
#include <xxhash.h>

#include "identity/sodium_init.hpp"

namespace mesh {

uint64_t origin_hash(const entity_id& id) noexcept {
  return XXH3_64bits(id.data(), id.size());
}

bool verify(const entity_id& signer, bytes_view msg,
            const signature& sig) noexcept {
  try {
    init_sodium();
  } catch (...) {
    return false;
  }
  // An empty view may carry a null pointer; hand libsodium a valid one.
  static constexpr uint8_t no_bytes[1] = {0};
  const uint8_t* data = msg.data != nullptr ? msg.data : no_bytes;
  return crypto_sign_ed25519_verify_detached(sig.data(), data, msg.size,
                                             signer.data())
         == 0;
}

std::string to_hex(const entity_id& id) {
  return to_hex(as_bytes(id));
}

std::string to_hex(const signature& sig) {
  return to_hex(as_bytes(sig));
}

std::optional<entity_id> parse_entity_id(std::string_view hex) {
  entity_id id{};
  if (hex.size() != 2 * id.size())
    return std::nullopt;
  bytes raw;
  if (!from_hex(hex, raw))
    return std::nullopt;
  std::copy(raw.begin(), raw.end(), id.begin());
  return id;
}

} // namespace mesh
