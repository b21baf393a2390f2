#pragma once

// Key files: an identity's secret seed on local disk.

#include <string>

#include <caf/expected.hpp>

#include "identity/keypair.hpp"

namespace mesh {

/// Writes `kp` to `path` in the current key file format with mode 0600,
/// atomically (temp file beside `path`, fsync, rename, fsync of the
/// directory): a crash leaves the old file or the new one. The temp file is
/// created 0600, so the secret is never readable by others at any point. The
/// parent directory must exist; it is never created (`not_found` otherwise).
/// Fails with `invalid_argument` for an empty keypair.
caf::error save_key_file(const std::string& path, const keypair& kp);

/// Reads the key file at `path`. Errors, each naming `path` and the problem:
/// - `not_found`: no such file;
/// - `insecure_permissions`: the file has any group or other permission bit
///   (the message names the mode in octal); checked before reading the secret;
/// - `corrupt_data`: bad magic, a length other than the version's (the message
///   names both lengths), or a public key that does not match the seed;
/// - `unsupported_version`: a version byte this build does not read (named);
/// - `invalid_argument`: `path` is not a regular file;
/// - `io_error`: any other operating-system failure.
caf::expected<keypair> load_key_file(const std::string& path);

/// The key in `path`, or a new one generated and saved there (save_key_file)
/// when the file does not exist; `created` (optional) says which. Any other
/// load error is returned as is: a damaged or exposed key file is never
/// replaced, since the key is the owner's identity. Not safe against a
/// concurrent creator of the same path: callers serialize (meshd holds its
/// data directory lock).
caf::expected<keypair> load_or_create_key_file(const std::string& path,
                                               bool* created = nullptr);

} // namespace mesh
