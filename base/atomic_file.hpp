#pragma once

// Small, crash-safe whole-file helpers for files that are replaced rather than
// appended to (key files, the nonce file, manifests written outside a
// file_system). The sequence is the classic one: write a per-call-unique temp
// file beside the target, fsync it, rename over the target, fsync the
// directory. A crash at any step leaves either the old file or the new one,
// never a mix; a stray temp file is the worst leftover.

#include <string>

#include <caf/expected.hpp>

#include "base/bytes.hpp"

namespace mesh {

/// Atomically replaces `path` with `data` and permission bits `mode`.
/// The parent directory must exist (it is never created).
caf::error write_file_atomic(const std::string& path, bytes_view data,
                             unsigned mode);

/// Atomically creates `path` with `data` unless it already exists. Returns
/// true when this call created it, false when another file was already there
/// (the existing file is left untouched). Concurrent callers on one path:
/// exactly one wins and every loser sees false.
caf::expected<bool> create_file_atomic(const std::string& path, bytes_view data,
                                       unsigned mode);

/// Reads all of `path`, refusing files larger than `max_size` bytes.
caf::expected<bytes> read_small_file(const std::string& path, size_t max_size);

/// fsync of a directory so a rename or create inside it is durable.
caf::error fsync_directory(const std::string& dir);

/// The directory part of `path` ("." when it has none).
std::string parent_dir(const std::string& path);

/// "open /x/y: No such file or directory" for the current errno.
std::string errno_text(const char* op, const std::string& path, int err);

} // namespace mesh
