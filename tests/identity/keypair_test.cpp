#include <catch2/catch.hpp>

#include <set>
#include <stdexcept>
#include <string>

#include <xxhash.h>

#include "identity/entity_id.hpp"
#include "identity/keypair.hpp"

using namespace mesh;

namespace {

template<size_t N>
std::array<uint8_t, N> hex_array(std::string_view hex) {
  bytes raw;
  REQUIRE(from_hex(hex, raw));
  REQUIRE(raw.size() == N);
  std::array<uint8_t, N> out;
  std::copy(raw.begin(), raw.end(), out.begin());
  return out;
}

// RFC 8032 section 7.1, TEST 1 (empty message).
constexpr std::string_view v1_seed = "9d61b19deffd5a60ba844af492ec2cc44449c5697"
                                     "b326919703bac031cae7f60";
constexpr std::string_view v1_public = "d75a980182b10ab7d54bfed3c964073a0ee172f"
                                       "3daa62325af021a68f707511a";
constexpr std::string_view v1_signature
  = "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590"
    "a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b";

// RFC 8032 section 7.1, TEST 2 (message 0x72).
constexpr std::string_view v2_seed = "4ccd089b28ff96da9db6c346ec114e0f5b8a319f3"
                                     "5aba624da8cf6ed4fb8a6fb";
constexpr std::string_view v2_public = "3d4017c3e843895a92b70aa74d1b7ebc9c982cc"
                                       "f2ec4968cc0cd55f12af4660c";
constexpr std::string_view v2_signature
  = "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e"
    "15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00";

keypair vector1() {
  return keypair::from_seed(hex_array<32>(v1_seed));
}

const bytes message = {'h', 'e', 'l', 'l', 'o', ' ', 'm', 'e', 's', 'h'};

} // namespace

TEST_CASE("RFC 8032 vector 1: seed derives the public key and signs the "
          "empty message") {
  auto kp = vector1();
  CHECK(to_hex(kp.id()) == v1_public);
  auto sig = kp.sign(bytes_view{});
  CHECK(to_hex(sig) == v1_signature);
  CHECK(verify(kp.id(), bytes_view{}, sig));
}

TEST_CASE("RFC 8032 vector 2: seed derives the public key and signs 0x72") {
  auto kp = keypair::from_seed(hex_array<32>(v2_seed));
  CHECK(to_hex(kp.id()) == v2_public);
  const bytes msg{0x72};
  auto sig = kp.sign(msg);
  CHECK(to_hex(sig) == v2_signature);
  CHECK(verify(hex_array<32>(v2_public), msg, hex_array<64>(v2_signature)));
}

TEST_CASE("origin_hash of the RFC 8032 vector 1 key is pinned") {
  auto id = hex_array<32>(v1_public);
  CHECK(origin_hash(id) == 0x38f636d8c448d6b0ull);
  CHECK(origin_hash(id) == XXH3_64bits(id.data(), id.size()));
  CHECK(vector1().origin_hash() == 0x38f636d8c448d6b0ull);
}

TEST_CASE("verify rejects a flipped bit in the message") {
  auto kp = vector1();
  auto sig = kp.sign(message);
  REQUIRE(verify(kp.id(), message, sig));
  for (size_t i = 0; i < message.size() * 8; ++i) {
    auto tampered = message;
    tampered[i / 8] ^= static_cast<uint8_t>(1u << (i % 8));
    CHECK_FALSE(verify(kp.id(), tampered, sig));
  }
}

TEST_CASE("verify rejects a flipped bit in the signature") {
  auto kp = vector1();
  auto sig = kp.sign(message);
  for (size_t i = 0; i < sig.size() * 8; ++i) {
    auto tampered = sig;
    tampered[i / 8] ^= static_cast<uint8_t>(1u << (i % 8));
    CHECK_FALSE(verify(kp.id(), message, tampered));
  }
}

TEST_CASE("verify rejects a signature checked against a different key") {
  auto signer = vector1();
  auto other = keypair::from_seed(hex_array<32>(v2_seed));
  auto sig = signer.sign(message);
  CHECK_FALSE(verify(other.id(), message, sig));
}

TEST_CASE("verify rejects the all-zero public key") {
  auto sig = vector1().sign(message);
  CHECK_FALSE(verify(entity_id{}, message, sig));
}

TEST_CASE("generate yields distinct keypairs that sign verifiably") {
  std::set<entity_id> ids;
  for (int i = 0; i < 16; ++i) {
    auto kp = keypair::generate();
    CHECK_FALSE(kp.empty());
    CHECK(verify(kp.id(), message, kp.sign(message)));
    ids.insert(kp.id());
  }
  CHECK(ids.size() == 16);
}

TEST_CASE("from_seed is deterministic and keeps the seed") {
  auto seed = hex_array<32>(v1_seed);
  auto a = keypair::from_seed(seed);
  auto b = keypair::from_seed(seed);
  CHECK(a.seed() == seed);
  CHECK(a.id() == b.id());
  CHECK(a == b);
  CHECK(a.sign(message) == b.sign(message));
}

TEST_CASE("keypairs with different secrets compare unequal") {
  CHECK(vector1() != keypair::from_seed(hex_array<32>(v2_seed)));
}

TEST_CASE("moving a keypair transfers the key and wipes the source") {
  auto a = vector1();
  auto b = std::move(a);
  CHECK(to_hex(b.id()) == v1_public);
  CHECK(b.seed() == hex_array<32>(v1_seed));
  CHECK(a.empty());
  CHECK(a.seed() == key_seed{});
  CHECK(a.id() == entity_id{});
  CHECK(a != b);
}

TEST_CASE("move assignment wipes the source and replaces the target") {
  auto a = vector1();
  auto b = keypair::from_seed(hex_array<32>(v2_seed));
  b = std::move(a);
  CHECK(to_hex(b.id()) == v1_public);
  CHECK(a.empty());
  CHECK(a.seed() == key_seed{});
}

TEST_CASE("signing with a moved-from keypair throws") {
  auto a = vector1();
  auto b = std::move(a);
  CHECK_THROWS_AS(a.sign(message), std::logic_error);
}

TEST_CASE("clone yields an equal, independent owner of the secret") {
  auto a = vector1();
  auto c = a.clone();
  CHECK(c == a);
  CHECK(c.id() == a.id());
  auto moved = std::move(a);
  CHECK_FALSE(c.empty());
  CHECK(c.seed() == hex_array<32>(v1_seed));
}

TEST_CASE("entity_id hex round trip") {
  auto id = vector1().id();
  auto parsed = parse_entity_id(to_hex(id));
  REQUIRE(parsed);
  CHECK(*parsed == id);
  std::string upper{v1_public};
  for (auto& c : upper)
    c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  CHECK(parse_entity_id(upper) == id);
}

TEST_CASE("parse_entity_id rejects wrong lengths and non-hex digits") {
  std::string hex{v1_public};
  CHECK_FALSE(parse_entity_id(""));
  CHECK_FALSE(parse_entity_id(hex.substr(0, 62)));
  CHECK_FALSE(parse_entity_id(hex + "00"));
  CHECK_FALSE(parse_entity_id(hex.substr(0, 63)));
  hex[10] = 'g';
  CHECK_FALSE(parse_entity_id(hex));
}
