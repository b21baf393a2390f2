#pragma once

// The nonce file: one stable random u64 per producer that survives restarts,
// so retries after a crash reuse the identifiers of the crashed incarnation.
// Format (docs/formats.md, section 6): [version u8 = 1][nonce u64 LE], 9 bytes.
//
// Crash reasoning: the file is published with create_file_atomic, which links
// a fully written and fsynced temp file into place. A crash before the link
// leaves no nonce file (the next load creates one) plus at most a stray temp
// file; a crash after it leaves the complete file. A partially written nonce
// file therefore means outside interference and is reported, never repaired.

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>

#include <caf/expected.hpp>

#include "base/bytes.hpp"

namespace mesh {

/// The only format version this build reads and writes.
inline constexpr uint8_t nonce_file_version = 1;

/// Size of a version-1 nonce file: the version byte plus the u64.
inline constexpr size_t nonce_file_size = 1 + 8;

/// Permission bits of a created nonce file. The nonce is not a secret.
inline constexpr unsigned nonce_file_mode = 0644;

/// The exact bytes of a version-1 nonce file holding `nonce`. Callers never
/// encode 0: decode_nonce rejects it.
[[nodiscard]] std::array<uint8_t, nonce_file_size> encode_nonce(uint64_t nonce);

/// Parses the contents of the nonce file at `path` (used only in messages).
/// Errors: corrupt_data when the size is not nonce_file_size or the nonce is
/// 0; unsupported_version when the version byte is unknown. Every message
/// names the path and the offending length or byte.
[[nodiscard]] caf::expected<uint64_t> decode_nonce(bytes_view data,
                                                   const std::string& path);

/// Reads the existing nonce at `path`; never creates anything.
/// Errors: not_found when the file (or its directory) is missing, io_error
/// when it cannot be read (e.g. `path` is a directory), and the errors of
/// decode_nonce.
[[nodiscard]] caf::expected<uint64_t> load_nonce(const std::string& path);

/// Returns the nonce at `path`, first creating the file with a fresh random
/// nonzero nonce when it does not exist. The parent directory must exist; it
/// is never created (not_found otherwise). An existing but invalid file is
/// reported as by load_nonce and left untouched.
///
/// Concurrency: any number of threads or processes may race on one path.
/// Exactly one creator's file is published, and every caller that succeeds
/// returns the nonce in that file.
[[nodiscard]] caf::expected<uint64_t>
load_or_create_nonce(const std::string& path);

} // namespace mesh
