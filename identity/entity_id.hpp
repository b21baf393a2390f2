#pragma once

// Entity ids, origin hashes and signature verification: everything that needs
// only public key material.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "base/bytes.hpp"
#include "identity/fwd.hpp"

namespace mesh {

/// XXH3-64 of the 32 bytes of `id`. A routing and sharding key, never a proof
/// of identity: distinct ids may collide, so any "same entity?" check compares
/// the full entity_id.
uint64_t origin_hash(const entity_id& id) noexcept;

/// True iff `sig` is a valid ed25519 signature of exactly `msg` by the secret
/// key belonging to `signer`. Rejects malformed and small-order public keys.
[[nodiscard]] bool verify(const entity_id& signer, bytes_view msg,
                          const signature& sig) noexcept;

/// 64 lower-case hex digits.
std::string to_hex(const entity_id& id);

/// 128 lower-case hex digits.
std::string to_hex(const signature& sig);

/// Parses exactly 64 hex digits (either case); nullopt for any other input.
std::optional<entity_id> parse_entity_id(std::string_view hex);

/// A view of the bytes of `id`, valid while `id` lives.
inline bytes_view as_bytes(const entity_id& id) noexcept {
  return {id.data(), id.size()};
}

/// A view of the bytes of `sig`, valid while `sig` lives.
inline bytes_view as_bytes(const signature& sig) noexcept {
  return {sig.data(), sig.size()};
}

} // namespace mesh
