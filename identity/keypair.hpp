#pragma once

// An ed25519 keypair: the secret half of an identity.

#include <cstdint>

#include "base/bytes.hpp"
#include "identity/entity_id.hpp"
#include "identity/fwd.hpp"

namespace mesh {

/// Owns one ed25519 secret seed and the public key derived from it.
///
/// Ownership: a keypair is the sole owner of its secret. It is move-only;
/// copying the secret requires the explicit `clone()`. Destruction and
/// moving-from wipe the seed with sodium_memzero. A moved-from keypair holds no
/// key (`empty()`): only destruction, assignment and `empty()` are meaningful
/// on it, and `sign()` throws std::logic_error.
class keypair {
public:
  /// A fresh keypair from libsodium's CSPRNG.
  static keypair generate();

  /// The keypair deterministically derived from `seed` (RFC 8032). The caller
  /// still owns `seed` and should wipe its copy when done with it.
  static keypair from_seed(const key_seed& seed);

  keypair(keypair&& other) noexcept;
  keypair& operator=(keypair&& other) noexcept;
  keypair(const keypair&) = delete;
  keypair& operator=(const keypair&) = delete;
  ~keypair();

  /// A second owner of the same secret. Spelled out so a copy of secret
  /// material is always visible in the code.
  [[nodiscard]] keypair clone() const;

  /// The public key, i.e. the identity this keypair proves.
  const entity_id& id() const noexcept {
    return id_;
  }

  /// `mesh::origin_hash(id())`.
  uint64_t origin_hash() const noexcept;

  /// Detached ed25519 signature of `msg`; deterministic for a given key and
  /// message. Throws std::logic_error on an empty (moved-from) keypair.
  signature sign(bytes_view msg) const;

  /// The secret seed, borrowed: valid while this keypair lives and is not
  /// moved from. Only for code that must persist or seal the secret (key
  /// files, identity envelopes); never log it, and wipe any copy of it.
  const key_seed& seed() const noexcept {
    return seed_;
  }

  /// True for a moved-from keypair.
  bool empty() const noexcept {
    return empty_;
  }

  /// Constant-time comparison of the secrets (sodium_memcmp). Two empty
  /// keypairs are equal; an empty and a non-empty one are not.
  friend bool operator==(const keypair& x, const keypair& y) noexcept;

  friend bool operator!=(const keypair& x, const keypair& y) noexcept {
    return !(x == y);
  }

private:
  keypair() = default;

  void wipe() noexcept;

  key_seed seed_{};
  entity_id id_{};
  bool empty_ = true;
};

} // namespace mesh
