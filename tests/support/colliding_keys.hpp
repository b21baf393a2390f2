#pragma once

// Two distinct identities whose origin hashes share the low 32 bits: the
// projection a routing table might key on. A birthday search over
// deterministic seeds needs about 2^16 keypairs (1-2 seconds).

#include <cstdint>
#include <optional>
#include <unordered_map>
#include <utility>

#include "base/bytes.hpp"
#include "identity/keypair.hpp"

namespace mesh::test {

/// The keypair for seed number `n` (the tag byte keeps test families apart).
inline keypair seeded_key(uint64_t n, uint8_t tag) {
  key_seed seed{};
  store_le64(seed.data(), n);
  seed[31] = tag;
  return keypair::from_seed(seed);
}

/// Seed numbers of the first pair found, or nullopt after `limit` tries.
inline std::optional<std::pair<uint64_t, uint64_t>>
find_low32_collision(uint8_t tag, uint64_t limit = 400000) {
  std::unordered_map<uint32_t, uint64_t> seen;
  for (uint64_t i = 0; i < limit; ++i) {
    auto low = static_cast<uint32_t>(seeded_key(i, tag).origin_hash());
    auto [it, fresh] = seen.emplace(low, i);
    if (!fresh)
      return std::make_pair(it->second, i);
  }
  return std::nullopt;
}

} // namespace mesh::test
