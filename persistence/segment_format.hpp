#pragma once

// On-disk format of a disk segment, shared by the writer, the recovery walk
// and meshseg. docs/formats.md has the byte diagrams; this header is the
// single source of the constants.
//
// A log directory holds:
//   manifest      names the live generation (MANIFEST_SIZE bytes)
//   v<N>/idx      IDX_RECORD_SIZE-byte records, one per log record
//   v<N>/dat      payload bytes of records larger than INLINE_MAX
//   v<N>/ts       8-byte little-endian unix-nanosecond timestamps, paired
//                 one-to-one with idx records
// plus, transiently, v<N>.tmp/ (a compaction in progress) and manifest.tmp.*.

#include <cstddef>
#include <cstdint>
#include <string>

#include "base/bytes.hpp"

namespace mesh::segment_format {

// -- idx record ---------------------------------------------------------------
//
//   offset  size  field
//   0       8     seq         record sequence number, strictly increasing
//   8       8     location    heap: byte offset of the payload in dat
//                             inline: the payload itself, zero padded
//   16      4     length      payload length in bytes
//   20      4     flags       bit 0 = inline; other bits must be zero
//   24      8     checksum    XXH3-64 of the payload, seeded with the
//                             XXH3-64 of bytes 0..23 of this record

constexpr size_t idx_record_size = 32;
constexpr size_t inline_max = 8;
constexpr uint32_t flag_inline = 1u;
constexpr uint32_t known_flags = flag_inline;
constexpr size_t ts_record_size = 8;

/// Most dat bytes one append or batch may write. A crash between the dat
/// and idx writes of one append leaves at most this many unreferenced dat
/// bytes, so more than this proves idx records were lost.
constexpr uint64_t max_append_bytes = uint64_t{256} << 20;

/// Largest seq a record may carry. Seqs stay within a signed 64-bit integer
/// so every consumer (JSON, int64 fields) holds them, and next_seq
/// (at most max_seq + 1) never wraps.
constexpr uint64_t max_seq = (uint64_t{1} << 63) - 1;

/// Largest generation number; v<max_generation + 1> is never written.
constexpr uint32_t max_generation = UINT32_MAX - 1;

/// Largest payload a record may carry (the length field is 32 bits; we keep
/// well below so one record never exceeds a sane read).
constexpr uint32_t max_payload = 64u << 20;

struct idx_record {
  uint64_t seq = 0;
  uint64_t location = 0;
  uint32_t length = 0;
  uint32_t flags = 0;
  uint64_t checksum = 0;

  bool is_inline() const {
    return (flags & flag_inline) != 0;
  }

  /// End offset of the payload in dat (heap records only).
  uint64_t heap_end() const {
    return location + length;
  }
};

/// Serializes `r` into `out[0..idx_record_size)`.
void encode_idx(const idx_record& r, uint8_t* out);

/// Parses `in[0..idx_record_size)`; never fails (validation is the checksum).
idx_record decode_idx(const uint8_t* in);

/// Builds a complete record for `payload` at dat offset `dat_offset`
/// (ignored for inline payloads), including its checksum.
idx_record make_record(uint64_t seq, bytes_view payload, uint64_t dat_offset);

/// Same as make_record, and writes the encoded record to `out` (one encode,
/// for the append path).
idx_record make_record(uint64_t seq, bytes_view payload, uint64_t dat_offset,
                       uint8_t* out);

/// Checksum of a record whose header fields are set, over `payload`.
uint64_t record_checksum(const idx_record& r, bytes_view payload);

/// For inline records: the payload bytes held in `location`.
void inline_payload(const idx_record& r, uint8_t* out8);

/// True when the seq is 1..max_seq, the flags are known and the length fits
/// the record's kind.
bool plausible(const idx_record& r);

// -- manifest -----------------------------------------------------------------
//
//   offset  size  field
//   0       4     magic "MSHM"
//   4       4     version (1)
//   8       4     generation (live directory is v<generation>)
//   12      4     reserved, zero
//   16      8     base_seq: the seq the next record gets when the live
//                 generation is empty (keeps seqs monotonic across a
//                 compaction that dropped every record)
//   24      8     XXH3-64 of bytes 0..23

constexpr size_t manifest_size = 32;
constexpr uint32_t manifest_version = 1;
constexpr char manifest_magic[4] = {'M', 'S', 'H', 'M'};

struct manifest {
  uint32_t generation = 1;
  uint64_t base_seq = 1;
};

void encode_manifest(const manifest& m, uint8_t* out);

/// False when the bytes are not a valid manifest: wrong size, magic, version
/// or checksum, a generation outside 1..max_generation or a base_seq outside
/// 1..max_seq + 1.
bool decode_manifest(bytes_view in, manifest& out);

// -- names --------------------------------------------------------------------

constexpr const char* idx_name = "idx";
constexpr const char* dat_name = "dat";
constexpr const char* ts_name = "ts";
constexpr const char* manifest_name = "manifest";

/// "v7" for generation 7.
std::string generation_dir_name(uint32_t gen);

/// Parses "v7" into 7; false for anything else (including "v7.tmp", "v0" and
/// numbers past max_generation).
bool parse_generation_dir_name(const std::string& name, uint32_t& gen);

} // namespace mesh::segment_format
