#include <catch2/catch.hpp>

#include "support/colliding_keys.hpp"

#include <chrono>
#include <cstdint>
#include <cstring>
#include <functional>
#include <string>
#include <unordered_map>
#include <vector>

#include "base/errc.hpp"
#include "identity/entity_id.hpp"
#include "identity/keypair.hpp"
#include "snapshot/snapshot.hpp"

using namespace mesh;

namespace Catch {

template<>
struct StringMaker<mesh::errc> {
  static std::string convert(mesh::errc x) {
    return std::string{mesh::to_string(x)};
  }
};

} // namespace Catch

namespace {

keypair key(uint64_t n) {
  key_seed seed{};
  store_le64(seed.data(), n);
  seed[31] = 0x5a;
  return keypair::from_seed(seed);
}

snapshot full_snapshot(const keypair& kp) {
  snapshot snap;
  snap.kind = snapshot_kind::migration;
  snap.daemon_kind = "counter";
  snap.id = kp.id();
  snap.through_seq = 0x0102030405060708;
  snap.head = chain_head{41, 0xfedcba9876543210};
  snap.state = bytes{0, 1, 2, 3, 0xff, 0x80, 0x7f};
  snap.state_version = 7;
  snap.dedup_marks = {{1, 10, 100}, {0xffffffffffffffff, 2, 3}, {5, 0, 0}};
  snap.created_at_ns = 1700000000123456789;
  snap.epoch = 0x1112131415161718;
  return snap;
}

bytes encode_ok(const snapshot& snap, const keypair& kp) {
  auto enc = encode_snapshot(snap, kp);
  REQUIRE(enc);
  return *enc;
}

template<class T>
errc error_of(const caf::expected<T>& x) {
  REQUIRE_FALSE(x);
  return code_of(x.error());
}

template<class T>
std::string message_of(const caf::expected<T>& x) {
  REQUIRE_FALSE(x);
  return describe(x.error());
}

void check_same(const snapshot& x, const snapshot& y) {
  CHECK(x.format_version == y.format_version);
  CHECK(x.kind == y.kind);
  CHECK(x.daemon_kind == y.daemon_kind);
  CHECK(x.id == y.id);
  CHECK(x.through_seq == y.through_seq);
  CHECK(x.head == y.head);
  CHECK(x.state == y.state);
  CHECK(x.state_version == y.state_version);
  CHECK(x.dedup_marks == y.dedup_marks);
  CHECK(x.created_at_ns == y.created_at_ns);
  CHECK(x.epoch == y.epoch);
}

// Hand-built Cap'n Proto words, for the layout test and for inputs the codec
// would never write. docs/formats.md (section 4) describes the pointers.

uint64_t offset_bits(int32_t offset) {
  return uint64_t{static_cast<uint32_t>(offset) << 2};
}

uint64_t struct_ptr(int32_t offset, uint16_t data_words, uint16_t ptr_words) {
  return offset_bits(offset) | (uint64_t{data_words} << 32)
         | (uint64_t{ptr_words} << 48);
}

uint64_t list_ptr(int32_t offset, uint8_t element_size, uint32_t count) {
  return 1 | offset_bits(offset) | (uint64_t{element_size} << 32)
         | (uint64_t{count} << 35);
}

constexpr uint8_t byte_elements = 2;
constexpr uint8_t void_elements = 0;

/// A single-segment flat message: segment table, then `words`.
bytes message(const std::vector<uint64_t>& words) {
  bytes out(8 + 8 * words.size());
  store_le32(out.data(), 0);
  store_le32(out.data() + 4, static_cast<uint32_t>(words.size()));
  for (size_t i = 0; i < words.size(); ++i)
    store_le64(out.data() + 8 + 8 * i, words[i]);
  return out;
}

size_t words_for(size_t n) {
  return (n + 7) / 8;
}

/// The canonical SignedSnapshot encoding of `body` and `sig`, built by hand.
bytes signed_message(const bytes& body, bytes_view sig) {
  auto body_words = words_for(body.size());
  auto sig_words = words_for(sig.size);
  bytes out = message(
    {struct_ptr(0, 0, 2),
     list_ptr(1, byte_elements, static_cast<uint32_t>(body.size())),
     list_ptr(static_cast<int32_t>(body_words), byte_elements,
              static_cast<uint32_t>(sig.size))});
  out.resize(out.size() + 8 * (body_words + sig_words));
  store_le32(out.data() + 4, static_cast<uint32_t>(3 + body_words + sig_words));
  std::copy(body.begin(), body.end(), out.begin() + 32);
  std::copy(sig.begin(), sig.end(), out.begin() + 32 + 8 * body_words);
  return out;
}

/// The body bytes of a canonical encoding: between the three pointer words
/// and the 64-byte signature.
bytes body_of(const bytes& encoded) {
  REQUIRE(encoded.size() > 32 + 64);
  return bytes(encoded.begin() + 32, encoded.end() - 64);
}

/// `encoded` with its body changed by `patch` and signed again by `kp`: a
/// validly signed snapshot the codec itself would refuse to write.
bytes resign(const bytes& encoded, const keypair& kp,
             const std::function<void(bytes&)>& patch) {
  auto body = body_of(encoded);
  patch(body);
  auto sig = kp.sign(body);
  return signed_message(body, as_bytes(sig));
}

// Byte offsets inside the body (segment table, root pointer, then the
// Snapshot data section).
constexpr size_t body_version_at = 16;
constexpr size_t body_kind_at = 20;
constexpr size_t body_state_tag_at = 22;

/// Offset in the body of pointer `i` of the root Snapshot struct.
size_t body_pointer_at(const bytes& body, unsigned i) {
  auto root = load_le64(body.data() + 8);
  auto data_words = static_cast<uint16_t>(root >> 32);
  return 16 + 8 * size_t{data_words} + 8 * size_t{i};
}

constexpr unsigned entity_id_pointer = 1;

} // namespace

// --- round trips -----------------------------------------------------------

TEST_CASE("round trip preserves every field") {
  auto kp = key(1);
  auto snap = full_snapshot(kp);
  auto dec = decode_snapshot(encode_ok(snap, kp));
  REQUIRE(dec);
  check_same(*dec, snap);
}

TEST_CASE("round trip of a stateless snapshot keeps nullopt") {
  auto kp = key(2);
  auto snap = full_snapshot(kp);
  snap.state = std::nullopt;
  snap.dedup_marks.clear();
  auto dec = decode_snapshot(encode_ok(snap, kp));
  REQUIRE(dec);
  CHECK_FALSE(dec->state.has_value());
  check_same(*dec, snap);
}

TEST_CASE("round trip keeps an empty state distinct from no state") {
  auto kp = key(3);
  auto snap = full_snapshot(kp);
  snap.state = bytes{};
  auto dec = decode_snapshot(encode_ok(snap, kp));
  REQUIRE(dec);
  REQUIRE(dec->state.has_value());
  CHECK(dec->state->empty());
}

TEST_CASE("round trip of a default snapshot keeps zeros and the local kind") {
  auto kp = key(4);
  snapshot snap;
  snap.id = kp.id();
  auto dec = decode_snapshot(encode_ok(snap, kp));
  REQUIRE(dec);
  check_same(*dec, snap);
}

TEST_CASE("encoding is deterministic and snapshot_hash names it") {
  auto kp = key(5);
  auto snap = full_snapshot(kp);
  auto a = encode_ok(snap, kp);
  auto b = encode_ok(snap, kp);
  CHECK(a == b);
  CHECK(snapshot_hash(a) == snapshot_hash(b));
  snap.through_seq += 1;
  CHECK(snapshot_hash(encode_ok(snap, kp)) != snapshot_hash(a));
}

TEST_CASE("encoding matches the documented layout") {
  auto kp = key(6);
  auto enc = encode_ok(full_snapshot(kp), kp);
  REQUIRE(enc.size() % 8 == 0);
  bytes sig(enc.end() - 64, enc.end());
  CHECK(signed_message(body_of(enc), sig) == enc);
  auto body = body_of(enc);
  CHECK(load_le32(body.data()) == 0);
  CHECK(size_t{load_le32(body.data() + 4)} * 8 + 8 == body.size());
  CHECK(load_le32(body.data() + body_version_at) == snapshot_format_version);
  CHECK(body[body_kind_at] == 1);
  CHECK(body[body_state_tag_at] == 1);
}

TEST_CASE("encoding is byte for byte what earlier builds wrote") {
  // XXH3-64 of encodings written by the encoder before it built the message
  // in place (capnp::canonicalize + messageToFlatArray, twice): any change of
  // the bytes, e.g. a different truncation or padding, shows here. The
  // states cover no state, an empty one, a length that is not a multiple of
  // 8 and a large one, beside all-zero and truncated fields.
  auto kp = key(12);
  auto big = [](size_t n) {
    bytes b(n);
    for (size_t i = 0; i < n; ++i)
      b[i] = static_cast<uint8_t>(i * 131 + (i >> 9));
    return b;
  };
  struct example {
    const char* what;
    std::function<void(snapshot&)> change;
    uint64_t hash;
  };
  std::vector<example> examples = {
    {"full", [](snapshot&) {}, 0x27e6b33ef16f0d94},
    {"no state",
     [](snapshot& s) {
       s.state.reset();
     },
     0xfcfcff4ac29644d0},
    {"empty state",
     [](snapshot& s) {
       s.state = bytes{};
     },
     0xf2c52a1c7f0dd7ac},
    {"13 bytes of state",
     [&](snapshot& s) {
       s.state = big(13);
     },
     0x6530225a2b42968f},
    {"1 MiB + 3 bytes of state",
     [&](snapshot& s) {
       s.state = big((1u << 20) + 3);
     },
     0xa4d80ff523ea5a9d},
    {"epoch 0, no marks",
     [](snapshot& s) {
       s.epoch = 0;
       s.dedup_marks.clear();
     },
     0xcc60a7a3b29fd6e4},
    {"all zero but the id",
     [](snapshot& s) {
       auto id = s.id;
       s = snapshot{};
       s.id = id;
     },
     0x27d007fbbf8ad277},
    {"marks with zero trailing words",
     [](snapshot& s) {
       s.dedup_marks = {{1, 0, 0}, {2, 0, 0}};
     },
     0x569bcf353b48bfe4},
  };
  for (auto& ex : examples) {
    auto snap = full_snapshot(kp);
    ex.change(snap);
    auto enc = encode_ok(snap, kp);
    INFO(ex.what << ": " << enc.size() << " bytes, hash "
                 << hex_u64(snapshot_hash(enc)));
    CHECK(snapshot_hash(enc) == ex.hash);
    auto dec = decode_snapshot(enc);
    REQUIRE(dec);
    check_same(*dec, snap);
  }
}

TEST_CASE("the epoch is the fifth data word of the body") {
  auto kp = key(6);
  auto enc = encode_ok(full_snapshot(kp), kp);
  auto body = body_of(enc);
  auto root = load_le64(body.data() + 8);
  REQUIRE(static_cast<uint16_t>(root >> 32) == 5);
  CHECK(load_le64(body.data() + 16 + 32) == 0x1112131415161718);
}

TEST_CASE("a snapshot without an epoch (written before epochs) is epoch 1") {
  // Canonical form truncates a zero epoch word: the body is then exactly
  // what a build without the field wrote (4 data words).
  auto kp = key(6);
  auto snap = full_snapshot(kp);
  snap.epoch = 0;
  auto enc = encode_ok(snap, kp);
  auto body = body_of(enc);
  CHECK(static_cast<uint16_t>(load_le64(body.data() + 8) >> 32) == 4);
  auto dec = decode_snapshot(enc);
  REQUIRE(dec);
  CHECK(dec->epoch == 0);
  CHECK(snapshot_epoch(*dec) == 1);
  snap.epoch = 3;
  CHECK(snapshot_epoch(snap) == 3);
}

TEST_CASE("decoding accepts input that is not word aligned") {
  auto kp = key(7);
  auto snap = full_snapshot(kp);
  auto enc = encode_ok(snap, kp);
  bytes shifted(enc.size() + 1);
  std::copy(enc.begin(), enc.end(), shifted.begin() + 1);
  auto dec = decode_snapshot(bytes_view{shifted.data() + 1, enc.size()});
  REQUIRE(dec);
  check_same(*dec, snap);
}

// --- identity and signature ------------------------------------------------

TEST_CASE("decode with the matching expected id succeeds") {
  auto kp = key(8);
  auto id = kp.id();
  auto dec = decode_snapshot(encode_ok(full_snapshot(kp), kp), &id);
  REQUIRE(dec);
  CHECK(dec->id == id);
}

TEST_CASE("decode with a different expected id fails "
          "snapshot_identity_mismatch") {
  auto a = key(9);
  auto b = key(10);
  auto other = b.id();
  auto dec = decode_snapshot(encode_ok(full_snapshot(a), a), &other);
  CHECK(error_of(dec) == errc::snapshot_identity_mismatch);
  CHECK_THAT(message_of(dec), Catch::Contains(to_hex(a.id()))
                                && Catch::Contains(to_hex(b.id())));
}

TEST_CASE("ids whose origin hashes collide on the low 32 bits are told "
          "apart") {
  // About 2^16 keypairs until two share the low 32 bits of origin_hash.
  auto found = test::find_low32_collision(0x5a);
  REQUIRE(found);
  auto a = key(found->first);
  auto b = key(found->second);
  REQUIRE(static_cast<uint32_t>(a.origin_hash())
          == static_cast<uint32_t>(b.origin_hash()));
  REQUIRE(a.id() != b.id());

  auto enc = encode_ok(full_snapshot(a), a);
  auto b_id = b.id();
  CHECK(error_of(decode_snapshot(enc, &b_id))
        == errc::snapshot_identity_mismatch);
  auto a_id = a.id();
  CHECK(decode_snapshot(enc, &a_id));
}

TEST_CASE("a body signed by another key fails bad_signature") {
  auto owner = key(11);
  auto thief = key(12);
  auto enc = encode_ok(full_snapshot(owner), owner);
  auto forged = resign(enc, thief, [](bytes&) {});
  auto dec = decode_snapshot(forged);
  CHECK(error_of(dec) == errc::bad_signature);
  CHECK_THAT(message_of(dec), Catch::Contains(to_hex(owner.id())));
}

TEST_CASE("every single flipped bit is rejected") {
  auto kp = key(13);
  auto snap = full_snapshot(kp);
  snap.dedup_marks.resize(1);
  auto enc = encode_ok(snap, kp);
  for (size_t i = 0; i < enc.size(); ++i) {
    for (int bit = 0; bit < 8; ++bit) {
      auto damaged = enc;
      damaged[i] ^= static_cast<uint8_t>(1u << bit);
      auto dec = decode_snapshot(damaged);
      INFO("byte " << i << " bit " << bit);
      REQUIRE_FALSE(dec);
      auto code = code_of(dec.error());
      CHECK((code == errc::corrupt_data || code == errc::bad_signature
             || code == errc::unsupported_version));
    }
  }
}

// --- decode failure tables -------------------------------------------------
//
// Each row is one former test case; its name is the section name, so a
// failing row is reported (and can be run alone with -c) by that name.

namespace {

using make_input = std::function<bytes()>;
using patch_bytes = std::function<void(bytes&)>;

struct decode_failure {
  const char* name;
  make_input input;
  errc code;
  const char* message; // nullptr: only the error code is checked
};

void check_decode_failures(const std::vector<decode_failure>& rows) {
  for (const auto& row : rows) {
    DYNAMIC_SECTION(row.name) {
      auto dec = decode_snapshot(row.input());
      CHECK(error_of(dec) == row.code);
      if (row.message != nullptr)
        CHECK_THAT(message_of(dec), Catch::Contains(row.message));
    }
  }
}

/// Input: the encoding of a full snapshot of key `n`, then changed by
/// `patch`.
make_input patched(uint64_t n, patch_bytes patch) {
  return [n, patch] {
    auto kp = key(n);
    auto enc = encode_ok(full_snapshot(kp), kp);
    patch(enc);
    return enc;
  };
}

/// Input: the body of a full snapshot of key `n` changed by `patch` and
/// signed again by the same key.
make_input resigned(uint64_t n, patch_bytes patch) {
  return [n, patch] {
    auto kp = key(n);
    return resign(encode_ok(full_snapshot(kp), kp), kp, patch);
  };
}

/// Input: a hand-built single-segment message of `words`.
make_input hand_built(std::vector<uint64_t> words) {
  return [words] {
    return message(words);
  };
}

} // namespace

// --- version and content ---------------------------------------------------

TEST_CASE("validly signed content the codec would not write is rejected") {
  check_decode_failures({
    {"an unknown format version fails unsupported_version",
     resigned(14,
              [](bytes& body) {
                store_le32(body.data() + body_version_at, 2);
              }),
     errc::unsupported_version, "format version 2"},
    {"a signed body with an unknown kind fails corrupt_data",
     resigned(15,
              [](bytes& body) {
                body[body_kind_at] = 9;
              }),
     errc::corrupt_data, "unknown snapshot kind 9"},
    {"a signed body with an unknown state variant fails corrupt_data",
     resigned(16,
              [](bytes& body) {
                body[body_state_tag_at] = 5;
              }),
     errc::corrupt_data, "unknown state variant 5"},
    {"an entity id that is not 32 bytes fails corrupt_data",
     resigned(17,
              [](bytes& body) {
                auto at = body_pointer_at(body, entity_id_pointer);
                auto ptr = load_le64(body.data() + at);
                auto offset = static_cast<int32_t>(static_cast<uint32_t>(ptr))
                              >> 2;
                // 31 bytes still fill four words; the dropped byte becomes
                // padding, which canonical form requires to be zero.
                body[at + 8 + 8 * static_cast<size_t>(offset) + 31] = 0;
                store_le64(body.data() + at, (ptr & ((uint64_t{1} << 35) - 1))
                                               | (uint64_t{31} << 35));
              }),
     errc::corrupt_data, "entity id is 31 bytes"},
    {"a signature that is not 64 bytes fails corrupt_data",
     [] {
       auto kp = key(18);
       auto enc = encode_ok(full_snapshot(kp), kp);
       auto sig = kp.sign(body_of(enc));
       return signed_message(body_of(enc), {sig.data(), 63});
     },
     errc::corrupt_data, "signature is 63 bytes"},
  });
}

// --- framing ---------------------------------------------------------------

TEST_CASE("peek_through_seq reads the through_seq of an encoded snapshot") {
  auto kp = key(2);
  auto snap = full_snapshot(kp);
  auto enc = encode_ok(snap, kp);
  auto through = peek_through_seq(enc);
  REQUIRE(through);
  CHECK(*through == snap.through_seq);
  snap.through_seq = 7;
  through = peek_through_seq(encode_ok(snap, kp));
  REQUIRE(through);
  CHECK(*through == 7);
  CHECK(error_of(peek_through_seq(bytes_view{})) == errc::corrupt_data);
  for (size_t n : {size_t{3}, size_t{8}, enc.size() / 2, enc.size() - 1}) {
    INFO("length " << n);
    CHECK(error_of(peek_through_seq(bytes_view{enc.data(), n}))
          == errc::corrupt_data);
  }
}

TEST_CASE("empty input fails corrupt_data") {
  CHECK(error_of(decode_snapshot(bytes_view{})) == errc::corrupt_data);
}

TEST_CASE("every truncation fails corrupt_data") {
  auto kp = key(19);
  auto enc = encode_ok(full_snapshot(kp), kp);
  for (size_t n = 0; n < enc.size(); ++n) {
    INFO("length " << n);
    CHECK(error_of(decode_snapshot(bytes_view{enc.data(), n}))
          == errc::corrupt_data);
  }
}

TEST_CASE("badly framed input fails corrupt_data") {
  check_decode_failures({
    {"a length that is not a multiple of 8 fails corrupt_data",
     patched(20,
             [](bytes& enc) {
               enc.push_back(0);
             }),
     errc::corrupt_data, "not a multiple of 8"},
    {"trailing words fail corrupt_data",
     patched(21,
             [](bytes& enc) {
               enc.resize(enc.size() + 8);
             }),
     errc::corrupt_data, nullptr},
    {"input larger than max_snapshot_bytes fails corrupt_data",
     [] {
       bytes huge(max_snapshot_bytes + 8);
       store_le32(huge.data() + 4, static_cast<uint32_t>(huge.size() / 8 - 1));
       return huge;
     },
     errc::corrupt_data, "exceeds the limit"},
    {"a multi-segment message fails corrupt_data",
     patched(22,
             [](bytes& enc) {
               store_le32(enc.data(), 1);
             }),
     errc::corrupt_data, "2 segments"},
    // The same two pointers, but the struct claims a third pointer slot that
    // overlaps the body: readable, yet not the one encoding of this value.
    {"a non-canonical message fails corrupt_data",
     patched(23,
             [](bytes& enc) {
               store_le64(enc.data() + 8, struct_ptr(0, 0, 3));
             }),
     errc::corrupt_data, "not in canonical form"},
  });
}

// --- hostile structure -----------------------------------------------------

TEST_CASE("hostile message structure fails corrupt_data") {
  check_decode_failures({
    {"a deeply nested message fails corrupt_data",
     [] {
       std::vector<uint64_t> words;
       for (int i = 0; i < 200; ++i)
         words.push_back(struct_ptr(0, 0, 1));
       words.push_back(0);
       return message(words);
     },
     errc::corrupt_data, "too deeply-nested"},
    {"a pointer cycle fails corrupt_data",
     hand_built({struct_ptr(0, 0, 1), struct_ptr(-1, 0, 1)}),
     errc::corrupt_data, "not in canonical form"},
    {"a list pointer past the end of the message fails corrupt_data",
     hand_built(
       {struct_ptr(0, 0, 2), list_ptr(1, byte_elements, (1u << 29) - 1), 0}),
     errc::corrupt_data, "out-of-bounds"},
    {"a huge list of empty elements fails corrupt_data",
     hand_built(
       {struct_ptr(0, 0, 2), list_ptr(1, void_elements, (1u << 29) - 1), 0}),
     errc::corrupt_data, "traversal limit"},
    {"two pointers sharing one blob fail corrupt_data",
     patched(24,
             [](bytes& enc) {
               auto body_words = words_for(body_of(enc).size());
               // Aim the signature pointer at the body as well.
               store_le64(enc.data() + 24,
                          list_ptr(0, byte_elements,
                                   static_cast<uint32_t>(8 * body_words)));
             }),
     errc::corrupt_data, nullptr},
    {"a root pointer of the wrong kind fails corrupt_data",
     hand_built({list_ptr(0, byte_elements, 8), 0}), errc::corrupt_data,
     nullptr},
  });
}

// --- encoding errors -------------------------------------------------------

namespace {

struct encode_failure {
  const char* name;
  std::function<caf::expected<bytes>()> encode;
};

/// Encodes a full snapshot of key `n`, changed by `patch`, signed by the
/// same key.
std::function<caf::expected<bytes>()>
encode_patched(uint64_t n, std::function<void(snapshot&)> patch) {
  return [n, patch] {
    auto kp = key(n);
    auto snap = full_snapshot(kp);
    patch(snap);
    return encode_snapshot(snap, kp);
  };
}

} // namespace

TEST_CASE("encoding an invalid snapshot fails invalid_argument") {
  std::vector<encode_failure> rows{
    {"encode with a signer that is not the snapshot's entity fails "
     "invalid_argument",
     [] {
       return encode_snapshot(full_snapshot(key(25)), key(26));
     }},
    {"encode with a moved-from keypair fails invalid_argument",
     [] {
       auto a = key(27);
       auto snap = full_snapshot(a);
       auto taken = std::move(a);
       snap.id = a.id();
       return encode_snapshot(snap, a);
     }},
    {"encode of another format version fails invalid_argument",
     encode_patched(28,
                    [](snapshot& snap) {
                      snap.format_version = snapshot_format_version + 1;
                    })},
    {"encode of an unknown kind fails invalid_argument",
     encode_patched(29,
                    [](snapshot& snap) {
                      snap.kind = static_cast<snapshot_kind>(7);
                    })},
    {"encode of a state larger than max_snapshot_bytes fails "
     "invalid_argument",
     encode_patched(30,
                    [](snapshot& snap) {
                      snap.state = bytes(max_snapshot_bytes + 1);
                    })},
  };
  for (const auto& row : rows) {
    DYNAMIC_SECTION(row.name) {
      CHECK(error_of(row.encode()) == errc::invalid_argument);
    }
  }
}
