#pragma once

// Byte layout of a key file, shared by the writer and the reader. The prose
// specification with a byte diagram is docs/formats.md (section 5).
//
//   offset  size  field
//   0       4     magic "MSHK"
//   4       1     version (1)
//   5       32    ed25519 secret seed
//   37      32    ed25519 public key derived from the seed
//   69            end of file
//
// There is no separate checksum: the public key is a check value over the
// seed (any damage to either makes them disagree), and damage to the magic or
// the version byte is reported as such.

#include <cstddef>
#include <cstdint>

#include "identity/fwd.hpp"

namespace mesh::key_file_format {

constexpr uint8_t magic[4] = {'M', 'S', 'H', 'K'};
constexpr size_t magic_offset = 0;
constexpr size_t version_offset = 4;
constexpr size_t seed_offset = 5;
constexpr size_t public_key_offset = seed_offset + sizeof(key_seed);
constexpr size_t header_size = seed_offset;

/// The only version this build writes and reads.
constexpr uint8_t version = 1;

/// Exact size of a version-1 file.
constexpr size_t file_size = public_key_offset + sizeof(entity_id);

static_assert(file_size == 69);

/// Permission bits of a key file. Any group or other bit makes loading fail.
constexpr unsigned file_mode = 0600;

} // namespace mesh::key_file_format
