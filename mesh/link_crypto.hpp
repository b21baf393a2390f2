#pragma once

// The link layer's cryptography (DESIGN.md section 7, docs/protocol.md
// section 5): the handshake that authenticates both ends of one connection
// and the sealing of every frame after it. Pure: no CAF actors, no sockets,
// no clock; the gateway (responder) and the link actor (initiator) feed it
// bytes and send what it returns, so tests drive every message by hand.
//
//   initiator                               responder (gateway)
//   ClientHello  -- ed25519 id, kx ephemeral, nonce, PSK MAC -->
//                <-- session id, ed25519 id, kx ephemeral, nonce,
//                    PSK proof and signature over the transcript -- ServerHello
//   ClientFinish -- PSK proof and signature over the transcript -->
//                <-- LinkReady (or a plain `unauthenticated` error)
//   Frame        <-- session id, counter, AEAD ciphertext -->
//
// Each side proves the PSK (a keyed BLAKE2b over the transcript hash, with
// a label per direction) and signs the transcript hash with its own ed25519
// key, so each learns the other's entity_id and a signature can never be
// replayed into another handshake (the transcript holds both fresh nonces
// and both ephemeral keys). Session keys are the crypto_kx keys of the two
// ephemerals mixed with the PSK and the transcript hash: recording the
// exchange and even breaking one ephemeral later is useless without the PSK.
// Frames are ChaCha20-Poly1305-IETF under a per-direction key and a counter
// nonce; each direction accepts exactly the next counter (one BASP
// connection keeps order), so a replayed, reordered or dropped frame fails,
// and a frame of another session fails (other keys, other session id).
//
// Every message starts with a 4-byte tag, "mlk" and a kind byte. Read as the
// first word of a Cap'n Proto message (the segment count minus one, little
// endian) it is at least 0x016b6c6d, far above the 512 segments a Cap'n Proto
// reader accepts: a link message is never a valid control Request, so both
// travel in the gateway's one message shape, (request_atom, bytes).

#include <array>
#include <cstdint>
#include <optional>
#include <utility>
#include <vector>

#include <caf/expected.hpp>

#include "identity/entity_id.hpp"
#include "identity/keypair.hpp"
#include "mesh/psk.hpp"

namespace mesh {

/// What one end of a link brings: the mesh PSK and its own ed25519 key.
/// An initiator may pin the responder's id (`expect_peer`): a responder
/// with another key fails the handshake with `unauthenticated`.
struct link_credentials {
  mesh::psk psk;
  keypair key;
  std::optional<entity_id> expect_peer;

  /// A second owner of the same secrets.
  [[nodiscard]] link_credentials clone() const {
    return {psk.clone(), key.clone(), expect_peer};
  }
};

namespace link {

/// Bytes as they travel inside the gateway's CAF message.
using wire_bytes = std::vector<char>;

/// Names one established session on a responder; random, 16 bytes.
using session_id = std::array<uint8_t, 16>;

/// The link protocol version ClientHello carries.
inline constexpr uint8_t version = 1;

/// The fourth byte of a link message.
enum class kind : uint8_t {
  /// initiator -> responder, opens a handshake.
  client_hello = 1,
  /// responder -> initiator, answers a ClientHello.
  server_hello = 2,
  /// initiator -> responder, completes the handshake.
  client_finish = 3,
  /// responder -> initiator, the session is established.
  link_ready = 4,
  /// either way, one sealed control message.
  frame = 5,
};

/// Sizes in bytes (docs/protocol.md section 5 has the byte layout).
inline constexpr size_t tag_size = 4;
inline constexpr size_t client_hello_size = 133;
inline constexpr size_t server_hello_size = 213;
inline constexpr size_t client_finish_size = 116;
inline constexpr size_t link_ready_size = 20;
/// Tag, session id, counter.
inline constexpr size_t frame_header_size = 28;
/// The AEAD tag after the ciphertext.
inline constexpr size_t frame_mac_size = 16;
/// frame_header_size + frame_mac_size: what sealing adds to a message.
inline constexpr size_t frame_overhead = frame_header_size + frame_mac_size;

/// The kind of a link message, or nullopt for bytes without the link tag
/// (a plain control Request, or garbage).
std::optional<kind> kind_of(const wire_bytes& msg) noexcept;

/// The session id of a ClientFinish, LinkReady or Frame; nullopt for
/// anything else or too short.
std::optional<session_id> session_of(const wire_bytes& msg) noexcept;

/// One established session: seals what this end sends, opens what it
/// receives. Move-only; its keys are wiped when it is destroyed.
class session {
public:
  session(session&&) noexcept;
  session& operator=(session&&) noexcept;
  session(const session&) = delete;
  session& operator=(const session&) = delete;
  ~session();

  const session_id& id() const noexcept {
    return id_;
  }

  /// The other end's authenticated ed25519 key.
  const entity_id& peer() const noexcept {
    return peer_;
  }

  /// Seals `plain` under the next send counter. Errors: limit_exceeded
  /// after 2^64 - 1 frames (the session must be replaced).
  caf::expected<wire_bytes> seal(const char* plain, size_t size);
  caf::expected<wire_bytes> seal(const wire_bytes& plain) {
    return seal(plain.data(), plain.size());
  }

  /// Opens a Frame sealed by the other end. It must carry this session's
  /// id and exactly the next receive counter, and its MAC must verify;
  /// otherwise `unauthenticated`, and the session is unchanged (the next
  /// genuine frame still opens).
  [[nodiscard]] caf::expected<wire_bytes> open(const wire_bytes& frame);

  /// Frames sealed and opened so far.
  uint64_t sent() const noexcept {
    return tx_next_;
  }
  uint64_t received() const noexcept {
    return rx_next_;
  }

  struct key_material;

private:
  friend class initiator;
  friend class responder;

  session() noexcept = default;

  session_id id_{};
  entity_id peer_{};
  std::array<uint8_t, 32> tx_key_{};
  std::array<uint8_t, 32> rx_key_{};
  uint8_t tx_dir_ = 0;
  uint64_t tx_next_ = 0;
  uint64_t rx_next_ = 0;
};

/// The initiator's half of one handshake (the link actor, meshctl, a node
/// dialing a peer). Holds an ephemeral crypto_kx secret, wiped when done.
class initiator {
public:
  /// A fresh ephemeral key and nonce.
  initiator();
  initiator(initiator&&) noexcept;
  initiator& operator=(initiator&&) noexcept;
  initiator(const initiator&) = delete;
  initiator& operator=(const initiator&) = delete;
  ~initiator();

  /// The ClientHello to send (call once).
  wire_bytes hello(const link_credentials& creds);

  /// Checks the ServerHello (PSK proof, signature, pinned id) and returns the
  /// ClientFinish to send and the session, usable once the responder
  /// answers LinkReady (check_ready). Errors: unauthenticated (the message
  /// says which check failed: the responder may be an impostor or hold
  /// another PSK), corrupt_data for a malformed message.
  caf::expected<std::pair<wire_bytes, session>>
  finish(const link_credentials& creds, const wire_bytes& server_hello);

private:
  std::array<uint8_t, 32> kx_pk_{};
  std::array<uint8_t, 32> kx_sk_{};
  std::array<uint8_t, 32> nonce_{};
  wire_bytes hello_;
};

/// Whether `msg` is the LinkReady of session `id`.
[[nodiscard]] bool is_ready(const wire_bytes& msg, const session_id& id);

/// The responder's half of one handshake (the gateway): created from a
/// ClientHello, waits for the ClientFinish. It holds no ephemeral secret:
/// the session keys are derived when the ServerHello is made.
class responder {
public:
  /// Checks a ClientHello (its PSK MAC, version) and answers it. Errors:
  /// unauthenticated (wrong PSK), unsupported_version, corrupt_data.
  static caf::expected<std::pair<responder, wire_bytes>>
  accept(const link_credentials& creds, const wire_bytes& client_hello);

  responder(responder&&) noexcept;
  responder& operator=(responder&&) noexcept;
  responder(const responder&) = delete;
  responder& operator=(const responder&) = delete;
  ~responder();

  const session_id& id() const noexcept {
    return session_.id();
  }

  /// The key the ClientHello claims (not yet proven).
  const entity_id& claimed_peer() const noexcept {
    return session_.peer();
  }

  /// Checks the ClientFinish (PSK proof, signature over this handshake's
  /// transcript) and returns the LinkReady to send and the session.
  /// Errors: unauthenticated, corrupt_data. On error this responder is
  /// unchanged (a forged finish does not end a genuine handshake).
  caf::expected<std::pair<wire_bytes, session>>
  finish(const wire_bytes& client_finish);

private:
  responder() noexcept = default;

  session session_;
  std::array<uint8_t, 32> transcript_{};
  std::array<uint8_t, 32> client_proof_{};
};

} // namespace link
} // namespace mesh
