#include "identity/keypair.hpp"

#include <algorithm>
#include <stdexcept>

#include <sodium/crypto_sign_ed25519.h>
#include <sodium/randombytes.h>
#include <sodium/utils.h>

#include "identity/sodium_init.hpp"

namespace mesh {

namespace {

// libsodium's 64-byte secret key (seed || public key), wiped on scope exit.
struct expanded_secret {
  std::array<uint8_t, crypto_sign_ed25519_SECRETKEYBYTES> bytes;

  expanded_secret(const key_seed& seed, const entity_id& id) {
    static_assert(sizeof(bytes) == sizeof(key_seed) + sizeof(entity_id));
    std::copy(seed.begin(), seed.end(), bytes.begin());
    std::copy(id.begin(), id.end(), bytes.begin() + seed.size());
  }

  expanded_secret(const expanded_secret&) = delete;
  expanded_secret& operator=(const expanded_secret&) = delete;

  ~expanded_secret() {
    sodium_memzero(bytes.data(), bytes.size());
  }
};

} // namespace

keypair keypair::generate() {
  init_sodium();
  key_seed seed;
  randombytes_buf(seed.data(), seed.size());
  auto result = from_seed(seed);
  sodium_memzero(seed.data(), seed.size());
  return result;
}

keypair keypair::from_seed(const key_seed& seed) {
  init_sodium();
  keypair result;
  std::array<uint8_t, crypto_sign_ed25519_SECRETKEYBYTES> sk;
  crypto_sign_ed25519_seed_keypair(result.id_.data(), sk.data(), seed.data());
  sodium_memzero(sk.data(), sk.size());
  result.seed_ = seed;
  result.empty_ = false;
  return result;
}

keypair::keypair(keypair&& other) noexcept
  : seed_(other.seed_), id_(other.id_), empty_(other.empty_) {
  other.wipe();
}

keypair& keypair::operator=(keypair&& other) noexcept {
  if (this != &other) {
    wipe();
    seed_ = other.seed_;
    id_ = other.id_;
    empty_ = other.empty_;
    other.wipe();
  }
  return *this;
}

keypair::~keypair() {
  wipe();
}

keypair keypair::clone() const {
  keypair result;
  result.seed_ = seed_;
  result.id_ = id_;
  result.empty_ = empty_;
  return result;
}

uint64_t keypair::origin_hash() const noexcept {
  return mesh::origin_hash(id_);
}

signature keypair::sign(bytes_view msg) const {
  if (empty_)
    throw std::logic_error("keypair::sign on an empty (moved-from) keypair");
  init_sodium();
  expanded_secret sk{seed_, id_};
  static constexpr uint8_t no_bytes[1] = {0};
  const uint8_t* data = msg.data != nullptr ? msg.data : no_bytes;
  signature sig;
  crypto_sign_ed25519_detached(sig.data(), nullptr, data, msg.size,
                               sk.bytes.data());
  return sig;
}

void keypair::wipe() noexcept {
  sodium_memzero(seed_.data(), seed_.size());
  id_.fill(0);
  empty_ = true;
}

bool operator==(const keypair& x, const keypair& y) noexcept {
  if (x.empty_ || y.empty_)
    return x.empty_ == y.empty_;
  return sodium_memcmp(x.seed_.data(), y.seed_.data(), x.seed_.size()) == 0;
}

} // namespace mesh
