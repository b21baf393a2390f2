#include "mesh/link_crypto.hpp"

#include <algorithm>
#include <cstring>
#include <limits>
#include <string>

#include <sodium/crypto_aead_chacha20poly1305.h>
#include <sodium/crypto_generichash_blake2b.h>
#include <sodium/crypto_kx.h>
#include <sodium/randombytes.h>
#include <sodium/utils.h>

#include "base/errc.hpp"
#include "identity/sodium_init.hpp"

namespace mesh::link {

namespace {

using key32 = std::array<uint8_t, 32>;

static_assert(crypto_kx_PUBLICKEYBYTES == 32 && crypto_kx_SECRETKEYBYTES == 32
              && crypto_kx_SESSIONKEYBYTES == 32);
static_assert(crypto_aead_chacha20poly1305_ietf_KEYBYTES == 32);
static_assert(crypto_aead_chacha20poly1305_ietf_NPUBBYTES == 12);
static_assert(crypto_aead_chacha20poly1305_ietf_ABYTES == frame_mac_size);

constexpr uint8_t magic[3] = {'m', 'l', 'k'};

// Labels keep every hash and signature to one purpose: a client proof is
// never a valid server proof, a signature made in a handshake never
// verifies as anything else.
constexpr const char* label_transcript = "meshd link v1 transcript";
constexpr const char* label_hello = "meshd link v1 client hello";
constexpr const char* label_server_proof = "meshd link v1 server proof";
constexpr const char* label_client_proof = "meshd link v1 client proof";
constexpr const char* label_server_sig = "meshd link v1 server signature";
constexpr const char* label_client_sig = "meshd link v1 client signature";
constexpr const char* label_c2s = "meshd link v1 key initiator to responder";
constexpr const char* label_s2c = "meshd link v1 key responder to initiator";

// Byte offsets (docs/protocol.md section 5).
namespace ch {
constexpr size_t version = 4, ed = 5, kx = 37, nonce = 69, mac = 101;
} // namespace ch
namespace sh {
constexpr size_t version = 4, sid = 5, ed = 21, kx = 53, nonce = 85,
                 proof = 117, sig = 149;
} // namespace sh
namespace cf {
constexpr size_t sid = 4, proof = 20, sig = 52;
} // namespace cf
namespace fr {
constexpr size_t sid = 4, counter = 20;
} // namespace fr

static_assert(ch::mac + 32 == client_hello_size);
static_assert(sh::sig + 64 == server_hello_size);
static_assert(cf::sig + 64 == client_finish_size);
static_assert(fr::counter + 8 == frame_header_size);

void wipe(key32& k) noexcept {
  sodium_memzero(k.data(), k.size());
}

const uint8_t* u8(const wire_bytes& x) {
  return reinterpret_cast<const uint8_t*>(x.data());
}

wire_bytes tagged(kind k, size_t size) {
  wire_bytes out(size);
  std::memcpy(out.data(), magic, sizeof(magic));
  out[3] = static_cast<char>(k);
  return out;
}

template<size_t N>
void put(wire_bytes& out, size_t at, const std::array<uint8_t, N>& x) {
  std::memcpy(out.data() + at, x.data(), N);
}

template<size_t N>
std::array<uint8_t, N> get(const wire_bytes& in, size_t at) {
  std::array<uint8_t, N> x;
  std::memcpy(x.data(), in.data() + at, N);
  return x;
}

// BLAKE2b-256 of label || parts..., keyed with `key` unless null.
struct hasher {
  crypto_generichash_blake2b_state st;

  hasher(const uint8_t* key, const char* label) {
    crypto_generichash_blake2b_init(&st, key, key ? 32 : 0, 32);
    add(reinterpret_cast<const uint8_t*>(label), std::strlen(label) + 1);
  }

  ~hasher() {
    sodium_memzero(&st, sizeof(st));
  }

  hasher& add(const uint8_t* data, size_t size) {
    crypto_generichash_blake2b_update(&st, data, size);
    return *this;
  }

  template<size_t N>
  hasher& add(const std::array<uint8_t, N>& x) {
    return add(x.data(), N);
  }

  key32 done() {
    key32 out;
    crypto_generichash_blake2b_final(&st, out.data(), out.size());
    return out;
  }
};

key32 mac(const psk& key, const char* label, const key32& what) {
  return hasher{key.bytes().data(), label}.add(what).done();
}

// What a signature covers: the label, then the transcript hash.
std::vector<uint8_t> to_sign(const char* label, const key32& transcript) {
  std::vector<uint8_t> msg(label, label + std::strlen(label) + 1);
  msg.insert(msg.end(), transcript.begin(), transcript.end());
  return msg;
}

bool same(const uint8_t* x, const uint8_t* y, size_t n) {
  return sodium_memcmp(x, y, n) == 0;
}

caf::error refused(std::string what) {
  return make_error(errc::unauthenticated, std::move(what));
}

caf::error malformed(const char* what, size_t size, size_t want) {
  return make_error(errc::corrupt_data,
                    std::string{what} + " has " + std::to_string(size)
                      + " bytes, expected " + std::to_string(want));
}

// The transcript hash: both hellos up to the server's nonce (everything
// either side chose, before any proof).
key32 transcript_of(const wire_bytes& client_hello,
                    const wire_bytes& server_hello) {
  return hasher{nullptr, label_transcript}
    .add(u8(client_hello), client_hello.size())
    .add(u8(server_hello), sh::proof)
    .done();
}

void nonce_of(uint8_t dir, uint64_t counter, uint8_t* out) {
  out[0] = dir;
  out[1] = out[2] = out[3] = 0;
  for (int i = 0; i < 8; ++i)
    out[4 + i] = static_cast<uint8_t>(counter >> (8 * i));
}

} // namespace

std::optional<kind> kind_of(const wire_bytes& msg) noexcept {
  if (msg.size() < tag_size || std::memcmp(msg.data(), magic, 3) != 0)
    return std::nullopt;
  auto k = static_cast<uint8_t>(msg[3]);
  if (k < 1 || k > 5)
    return std::nullopt;
  return static_cast<kind>(k);
}

std::optional<session_id> session_of(const wire_bytes& msg) noexcept {
  auto k = kind_of(msg);
  if (!k || msg.size() < tag_size + 16
      || (*k != kind::client_finish && *k != kind::link_ready
          && *k != kind::frame))
    return std::nullopt;
  return get<16>(msg, fr::sid);
}

// -- session ------------------------------------------------------------------

session::session(session&& other) noexcept
  : id_(other.id_),
    peer_(other.peer_),
    tx_key_(other.tx_key_),
    rx_key_(other.rx_key_),
    tx_dir_(other.tx_dir_),
    tx_next_(other.tx_next_),
    rx_next_(other.rx_next_) {
  wipe(other.tx_key_);
  wipe(other.rx_key_);
}

session& session::operator=(session&& other) noexcept {
  if (this != &other) {
    id_ = other.id_;
    peer_ = other.peer_;
    tx_key_ = other.tx_key_;
    rx_key_ = other.rx_key_;
    tx_dir_ = other.tx_dir_;
    tx_next_ = other.tx_next_;
    rx_next_ = other.rx_next_;
    wipe(other.tx_key_);
    wipe(other.rx_key_);
  }
  return *this;
}

session::~session() {
  wipe(tx_key_);
  wipe(rx_key_);
}

caf::expected<wire_bytes> session::seal(const char* plain, size_t size) {
  if (tx_next_ == std::numeric_limits<uint64_t>::max())
    return make_error(errc::limit_exceeded,
                      "the link's send counter is exhausted");
  auto counter = tx_next_++;
  auto out = tagged(kind::frame, frame_overhead + size);
  std::memcpy(out.data() + fr::sid, id_.data(), id_.size());
  for (int i = 0; i < 8; ++i)
    out[fr::counter + i] = static_cast<char>(counter >> (8 * i));
  uint8_t nonce[12];
  nonce_of(tx_dir_, counter, nonce);
  // The header is the additional data: session id and counter are bound to
  // the ciphertext; the direction is bound by the key and the nonce.
  auto* o = reinterpret_cast<uint8_t*>(out.data());
  unsigned long long clen = 0;
  crypto_aead_chacha20poly1305_ietf_encrypt(o + frame_header_size, &clen,
                                            reinterpret_cast<const uint8_t*>(
                                              plain),
                                            size, o, frame_header_size, nullptr,
                                            nonce, tx_key_.data());
  return out;
}

caf::expected<wire_bytes> session::open(const wire_bytes& frame) {
  if (kind_of(frame) != kind::frame || frame.size() < frame_overhead)
    return refused("not a sealed frame");
  if (!same(u8(frame) + fr::sid, id_.data(), id_.size()))
    return refused("frame of another session");
  uint64_t counter = 0;
  for (int i = 0; i < 8; ++i)
    counter |= uint64_t{static_cast<uint8_t>(frame[fr::counter + i])}
               << (8 * i);
  if (counter != rx_next_)
    return refused("frame counter " + std::to_string(counter) + ", expected "
                   + std::to_string(rx_next_)
                   + " (replayed, reordered or lost frame)");
  uint8_t nonce[12];
  nonce_of(static_cast<uint8_t>(tx_dir_ ^ 1), counter, nonce);
  wire_bytes plain(frame.size() - frame_overhead);
  unsigned long long plen = 0;
  if (crypto_aead_chacha20poly1305_ietf_decrypt(reinterpret_cast<uint8_t*>(
                                                  plain.data()),
                                                &plen, nullptr,
                                                u8(frame) + frame_header_size,
                                                frame.size()
                                                  - frame_header_size,
                                                u8(frame), frame_header_size,
                                                nonce, rx_key_.data())
      != 0)
    return refused("frame fails authentication");
  ++rx_next_;
  return plain;
}

// -- initiator ----------------------------------------------------------------

initiator::initiator() {
  init_sodium();
  crypto_kx_keypair(kx_pk_.data(), kx_sk_.data());
  randombytes_buf(nonce_.data(), nonce_.size());
}

initiator::initiator(initiator&& other) noexcept
  : kx_pk_(other.kx_pk_),
    kx_sk_(other.kx_sk_),
    nonce_(other.nonce_),
    hello_(std::move(other.hello_)) {
  wipe(other.kx_sk_);
}

initiator& initiator::operator=(initiator&& other) noexcept {
  if (this != &other) {
    kx_pk_ = other.kx_pk_;
    kx_sk_ = other.kx_sk_;
    nonce_ = other.nonce_;
    hello_ = std::move(other.hello_);
    wipe(other.kx_sk_);
  }
  return *this;
}

initiator::~initiator() {
  wipe(kx_sk_);
}

wire_bytes initiator::hello(const link_credentials& creds) {
  auto out = tagged(kind::client_hello, client_hello_size);
  out[ch::version] = static_cast<char>(version);
  put(out, ch::ed, creds.key.id());
  put(out, ch::kx, kx_pk_);
  put(out, ch::nonce, nonce_);
  // Lets the responder turn away a peer without the PSK before it spends a
  // signature on it. Replayable, so it proves nothing more: the proofs over
  // the transcript do.
  put(out, ch::mac,
      hasher{creds.psk.bytes().data(), label_hello}
        .add(u8(out), ch::mac)
        .done());
  hello_ = out;
  return out;
}

caf::expected<std::pair<wire_bytes, session>>
initiator::finish(const link_credentials& creds, const wire_bytes& msg) {
  if (hello_.empty())
    return make_error(errc::invalid_argument, "finish before hello");
  if (kind_of(msg) != kind::server_hello)
    return make_error(errc::corrupt_data, "expected a ServerHello");
  if (msg.size() != server_hello_size)
    return malformed("ServerHello", msg.size(), server_hello_size);
  if (static_cast<uint8_t>(msg[sh::version]) != version)
    return make_error(errc::unsupported_version,
                      "responder speaks link version "
                        + std::to_string(static_cast<uint8_t>(msg[sh::version]))
                        + ", this build speaks " + std::to_string(version));
  auto transcript = transcript_of(hello_, msg);
  auto server_id = get<32>(msg, sh::ed);
  auto proof = mac(creds.psk, label_server_proof, transcript);
  if (!same(proof.data(), u8(msg) + sh::proof, proof.size()))
    return refused("the responder does not prove the mesh PSK (another "
                   "--psk-file?)");
  auto sig = get<64>(msg, sh::sig);
  auto signed_msg = to_sign(label_server_sig, transcript);
  if (!verify(server_id, bytes_view{signed_msg.data(), signed_msg.size()}, sig))
    return refused("the responder's signature does not verify");
  if (creds.expect_peer && *creds.expect_peer != server_id)
    return refused("the responder is " + to_hex(server_id) + ", expected "
                   + to_hex(*creds.expect_peer));
  auto server_kx = get<32>(msg, sh::kx);
  key32 rx, tx;
  if (crypto_kx_client_session_keys(rx.data(), tx.data(), kx_pk_.data(),
                                    kx_sk_.data(), server_kx.data())
      != 0)
    return refused("the responder's ephemeral key is invalid");
  wipe(kx_sk_);
  session s;
  s.id_ = get<16>(msg, sh::sid);
  s.peer_ = server_id;
  s.tx_dir_ = 0;
  auto* k = creds.psk.bytes().data();
  s.tx_key_ = hasher{k, label_c2s}.add(transcript).add(tx).done();
  s.rx_key_ = hasher{k, label_s2c}.add(transcript).add(rx).done();
  wipe(rx);
  wipe(tx);
  auto out = tagged(kind::client_finish, client_finish_size);
  put(out, cf::sid, s.id_);
  put(out, cf::proof, mac(creds.psk, label_client_proof, transcript));
  auto my_msg = to_sign(label_client_sig, transcript);
  put(out, cf::sig, creds.key.sign(bytes_view{my_msg.data(), my_msg.size()}));
  return std::pair<wire_bytes, session>{std::move(out), std::move(s)};
}

bool is_ready(const wire_bytes& msg, const session_id& id) {
  return kind_of(msg) == kind::link_ready && msg.size() == link_ready_size
         && same(u8(msg) + fr::sid, id.data(), id.size());
}

// -- responder ----------------------------------------------------------------

responder::responder(responder&& other) noexcept
  : session_(std::move(other.session_)),
    transcript_(other.transcript_),
    client_proof_(other.client_proof_) {}

responder& responder::operator=(responder&& other) noexcept {
  if (this != &other) {
    session_ = std::move(other.session_);
    transcript_ = other.transcript_;
    client_proof_ = other.client_proof_;
  }
  return *this;
}

responder::~responder() {
  wipe(client_proof_);
}

caf::expected<std::pair<responder, wire_bytes>>
responder::accept(const link_credentials& creds, const wire_bytes& msg) {
  init_sodium();
  if (kind_of(msg) != kind::client_hello)
    return make_error(errc::corrupt_data, "expected a ClientHello");
  if (msg.size() != client_hello_size)
    return malformed("ClientHello", msg.size(), client_hello_size);
  if (static_cast<uint8_t>(msg[ch::version]) != version)
    return make_error(errc::unsupported_version,
                      "initiator speaks link version "
                        + std::to_string(static_cast<uint8_t>(msg[ch::version]))
                        + ", this node speaks " + std::to_string(version));
  auto want = hasher{creds.psk.bytes().data(), label_hello}
                .add(u8(msg), ch::mac)
                .done();
  if (!same(want.data(), u8(msg) + ch::mac, want.size()))
    return refused("the initiator does not hold the mesh PSK");
  key32 kx_pk, kx_sk, nonce;
  crypto_kx_keypair(kx_pk.data(), kx_sk.data());
  randombytes_buf(nonce.data(), nonce.size());
  responder r;
  randombytes_buf(r.session_.id_.data(), r.session_.id_.size());
  r.session_.peer_ = get<32>(msg, ch::ed);
  r.session_.tx_dir_ = 1;
  auto out = tagged(kind::server_hello, server_hello_size);
  out[sh::version] = static_cast<char>(version);
  put(out, sh::sid, r.session_.id_);
  put(out, sh::ed, creds.key.id());
  put(out, sh::kx, kx_pk);
  put(out, sh::nonce, nonce);
  r.transcript_ = transcript_of(msg, out);
  put(out, sh::proof, mac(creds.psk, label_server_proof, r.transcript_));
  auto signed_msg = to_sign(label_server_sig, r.transcript_);
  put(out, sh::sig,
      creds.key.sign(bytes_view{signed_msg.data(), signed_msg.size()}));
  r.client_proof_ = mac(creds.psk, label_client_proof, r.transcript_);
  auto client_kx = get<32>(msg, ch::kx);
  key32 rx, tx;
  auto rc = crypto_kx_server_session_keys(rx.data(), tx.data(), kx_pk.data(),
                                          kx_sk.data(), client_kx.data());
  wipe(kx_sk);
  if (rc != 0)
    return refused("the initiator's ephemeral key is invalid");
  auto* k = creds.psk.bytes().data();
  r.session_.rx_key_ = hasher{k, label_c2s}.add(r.transcript_).add(rx).done();
  r.session_.tx_key_ = hasher{k, label_s2c}.add(r.transcript_).add(tx).done();
  wipe(rx);
  wipe(tx);
  return std::pair<responder, wire_bytes>{std::move(r), std::move(out)};
}

caf::expected<std::pair<wire_bytes, session>>
responder::finish(const wire_bytes& msg) {
  if (kind_of(msg) != kind::client_finish)
    return make_error(errc::corrupt_data, "expected a ClientFinish");
  if (msg.size() != client_finish_size)
    return malformed("ClientFinish", msg.size(), client_finish_size);
  if (!same(u8(msg) + cf::sid, session_.id_.data(), session_.id_.size()))
    return refused("ClientFinish of another handshake");
  if (!same(u8(msg) + cf::proof, client_proof_.data(), client_proof_.size()))
    return refused("the initiator does not prove the mesh PSK for this "
                   "handshake");
  auto sig = get<64>(msg, cf::sig);
  auto signed_msg = to_sign(label_client_sig, transcript_);
  if (!verify(session_.peer_, bytes_view{signed_msg.data(), signed_msg.size()},
              sig))
    return refused("the initiator's signature does not verify for key "
                   + to_hex(session_.peer_));
  auto out = tagged(kind::link_ready, link_ready_size);
  put(out, fr::sid, session_.id_);
  return std::pair<wire_bytes, session>{std::move(out), std::move(session_)};
}

} // namespace mesh::link
