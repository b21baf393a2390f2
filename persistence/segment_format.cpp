#include "persistence/segment_format.hpp"

#include <cstring>

#include <xxhash.h>

namespace mesh::segment_format {

void encode_idx(const idx_record& r, uint8_t* out) {
  store_le64(out, r.seq);
  store_le64(out + 8, r.location);
  store_le32(out + 16, r.length);
  store_le32(out + 20, r.flags);
  store_le64(out + 24, r.checksum);
}

idx_record decode_idx(const uint8_t* in) {
  idx_record r;
  r.seq = load_le64(in);
  r.location = load_le64(in + 8);
  r.length = load_le32(in + 16);
  r.flags = load_le32(in + 20);
  r.checksum = load_le64(in + 24);
  return r;
}

uint64_t record_checksum(const idx_record& r, bytes_view payload) {
  uint8_t header[idx_record_size];
  encode_idx(r, header);
  auto seed = XXH3_64bits(header, 24);
  return XXH3_64bits_withSeed(payload.data, payload.size, seed);
}

idx_record make_record(uint64_t seq, bytes_view payload, uint64_t dat_offset,
                       uint8_t* out) {
  idx_record r;
  r.seq = seq;
  r.length = static_cast<uint32_t>(payload.size);
  if (payload.size <= inline_max) {
    r.flags = flag_inline;
    uint8_t buf[8] = {0};
    if (payload.size > 0)
      std::memcpy(buf, payload.data, payload.size);
    r.location = load_le64(buf);
  } else {
    r.location = dat_offset;
  }
  encode_idx(r, out);
  auto seed = XXH3_64bits(out, 24);
  r.checksum = XXH3_64bits_withSeed(payload.data, payload.size, seed);
  store_le64(out + 24, r.checksum);
  return r;
}

idx_record make_record(uint64_t seq, bytes_view payload, uint64_t dat_offset) {
  uint8_t scratch[idx_record_size];
  return make_record(seq, payload, dat_offset, scratch);
}

void inline_payload(const idx_record& r, uint8_t* out8) {
  store_le64(out8, r.location);
}

bool plausible(const idx_record& r) {
  if (r.seq == 0 || r.seq > max_seq)
    return false;
  if ((r.flags & ~known_flags) != 0)
    return false;
  if (r.is_inline())
    return r.length <= inline_max;
  return r.length > inline_max && r.length <= max_payload;
}

void encode_manifest(const manifest& m, uint8_t* out) {
  std::memcpy(out, manifest_magic, 4);
  store_le32(out + 4, manifest_version);
  store_le32(out + 8, m.generation);
  store_le32(out + 12, 0);
  store_le64(out + 16, m.base_seq);
  store_le64(out + 24, XXH3_64bits(out, 24));
}

bool decode_manifest(bytes_view in, manifest& out) {
  if (in.size != manifest_size)
    return false;
  if (std::memcmp(in.data, manifest_magic, 4) != 0)
    return false;
  if (load_le32(in.data + 4) != manifest_version)
    return false;
  if (load_le64(in.data + 24) != XXH3_64bits(in.data, 24))
    return false;
  out.generation = load_le32(in.data + 8);
  out.base_seq = load_le64(in.data + 16);
  return out.generation > 0 && out.generation <= max_generation
         && out.base_seq > 0 && out.base_seq <= max_seq + 1;
}

std::string generation_dir_name(uint32_t gen) {
  return "v" + std::to_string(gen);
}

bool parse_generation_dir_name(const std::string& name, uint32_t& gen) {
  if (name.size() < 2 || name.size() > 11 || name[0] != 'v')
    return false;
  uint64_t v = 0;
  for (size_t i = 1; i < name.size(); ++i) {
    if (name[i] < '0' || name[i] > '9')
      return false;
    v = v * 10 + static_cast<uint64_t>(name[i] - '0');
  }
  if (v == 0 || v > max_generation || (name[1] == '0'))
    return false;
  gen = static_cast<uint32_t>(v);
  return true;
}

} // namespace mesh::segment_format
