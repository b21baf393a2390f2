#pragma once

// Small, crash-safe whole-file helpers for files that are replaced rather than
// appended to (key files, the nonce file, snapshots, daemon records). The
// sequence is the classic one: write a per-call-unique temp file beside the
// target, fsync it, rename over the target, fsync the directory. A crash at
// any step leaves either the old file or the new one, never a mix; a stray
// temp file is the worst leftover.
//
// Every call does its I/O through the file_system it is given, so tests can
// fail any step (base/file_system.hpp).

#include <string>
#include <utility>
#include <vector>

#include <caf/expected.hpp>

#include "base/bytes.hpp"

namespace mesh {

class file_system;

/// Atomically replaces `path` with `data` and permission bits `mode`.
/// The parent directory must exist (it is never created).
caf::error write_file_atomic(file_system& fs, const std::string& path,
                             bytes_view data, unsigned mode);

/// write_file_atomic for many files at once, with one flush of the file
/// system (sync_all) instead of an fsync per file and one fsync per
/// directory instead of one per file. Each file is still replaced
/// atomically: a crash leaves each one old or new. Returns one error per
/// entry of `files`, in order (none = replaced).
std::vector<caf::error>
write_files_atomic(file_system& fs,
                   const std::vector<std::pair<std::string, bytes_view>>& files,
                   unsigned mode);

/// Atomically creates `path` with `data` unless it already exists. Returns
/// true when this call created it, false when another file was already there
/// (the existing file is left untouched). Concurrent callers on one path:
/// exactly one wins and every loser sees false.
caf::expected<bool> create_file_atomic(file_system& fs, const std::string& path,
                                       bytes_view data, unsigned mode);

/// Reads all of the regular file `path`, refusing files larger than
/// `max_size` bytes (corrupt_data) and anything but a regular file
/// (invalid_argument).
caf::expected<bytes> read_small_file(file_system& fs, const std::string& path,
                                     size_t max_size);

/// The directory part of `path` ("." when it has none).
std::string parent_dir(const std::string& path);

/// "open /x/y: No such file or directory" for the error number `err`.
std::string errno_text(const char* op, const std::string& path, int err);

} // namespace mesh
