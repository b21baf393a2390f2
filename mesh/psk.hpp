#pragma once

// The mesh's pre-shared key (DESIGN.md section 7, docs/operations.md
// "Security"): 32 random bytes every node and client of one mesh holds. The
// link handshake proves it in both directions and mixes it into the session
// keys (mesh/link_crypto.hpp), so nobody without it can talk to a gateway.
//
// File format: the 32 bytes as 64 hex digits on one line, an optional
// trailing newline, nothing else; mode 0600 (no group or other access).

#include <array>
#include <cstdint>
#include <string>

#include <caf/expected.hpp>

namespace mesh {

/// Owns 32 secret bytes. Move-only (a copy is spelled clone()), wiped with
/// sodium_memzero when destroyed or moved from.
class psk {
public:
  static constexpr size_t size = 32;

  using bytes_type = std::array<uint8_t, size>;

  /// The fixed, public "open" key: all zero. Used when no PSK file is given,
  /// so the code path is the same; it keeps out nobody who reads this
  /// header, which is why meshd then listens on loopback only.
  static psk open() noexcept;

  /// Takes a copy of `bytes`; the caller wipes its own.
  static psk from_bytes(const bytes_type& bytes) noexcept;

  /// Fresh bytes from libsodium's CSPRNG.
  static psk generate();

  psk(psk&& other) noexcept;
  psk& operator=(psk&& other) noexcept;
  psk(const psk&) = delete;
  psk& operator=(const psk&) = delete;
  ~psk();

  /// A second owner of the same secret.
  [[nodiscard]] psk clone() const noexcept;

  /// The secret, borrowed. Never log it.
  const bytes_type& bytes() const noexcept {
    return bytes_;
  }

  /// Whether this is the open (all-zero) key.
  bool is_open() const noexcept;

  /// Constant-time comparison (sodium_memcmp).
  friend bool operator==(const psk& x, const psk& y) noexcept;

  friend bool operator!=(const psk& x, const psk& y) noexcept {
    return !(x == y);
  }

private:
  psk() noexcept = default;

  bytes_type bytes_{};
};

/// Reads the PSK file at `path`. Errors, each one line naming `path`:
/// - `not_found`: no such file;
/// - `insecure_permissions`: any group or other permission bit (checked
///   before the secret is read);
/// - `invalid_argument`: not a regular file;
/// - `corrupt_data`: not exactly 64 hex digits and an optional newline;
/// - `io_error`: any other operating-system failure.
caf::expected<psk> load_psk_file(const std::string& path);

/// Writes a fresh PSK to `path` with mode 0600, atomically (temp file,
/// fsync, link into place), and returns it. Never replaces an existing
/// file: `already_exists` then. The parent directory must exist.
caf::expected<psk> write_new_psk_file(const std::string& path);

} // namespace mesh
