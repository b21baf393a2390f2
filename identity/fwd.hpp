#pragma once

// Forward declarations and the fixed-size value types of the identity layer.
// Sizes come from libsodium's ed25519 constants; <sodium/crypto_sign_ed25519.h>
// only defines those constants and a handful of prototypes.

#include <array>
#include <cstdint>

#include <sodium/crypto_sign_ed25519.h>

namespace mesh {

/// The identity of a daemon or node: its 32-byte ed25519 public key. Two
/// parties are the same entity exactly when their entity_ids are equal.
using entity_id = std::array<uint8_t, crypto_sign_ed25519_PUBLICKEYBYTES>;

/// A detached 64-byte ed25519 signature.
using signature = std::array<uint8_t, crypto_sign_ed25519_BYTES>;

/// The 32-byte ed25519 secret seed from which a keypair is derived.
using key_seed = std::array<uint8_t, crypto_sign_ed25519_SEEDBYTES>;

class keypair;

} // namespace mesh
