#include "persistence/log_entry.hpp"

#include <cstring>
#include <string>

#include "base/errc.hpp"

namespace mesh {

// -- log entry ----------------------------------------------------------------
//
//   0   u64 origin_hash
//   8   u64 daemon_seq
//   16  u64 producer_id
//   24  u64 producer_seq
//   32  u64 received_at_ns
//   40  u8  tag: bits 0..3 status (0 accepted, 1 rejected),
//               bits 4..7 layout version - 1 (0: version 1, 1: version 2)
//   41  u64 epoch                           (version 2 only)
//   49  payload bytes (the rest of the record; at 41 in version 1)
//
// Version 1 had the status alone in byte 40, so its version nibble reads as
// 0: old entries decode unchanged, as entries of epoch legacy_epoch.

namespace {

constexpr size_t tag_offset = 40;

} // namespace

void encode_log_entry(const log_entry& e, bytes& out) {
  encode_log_entry(e, e.payload, out);
}

void encode_log_entry(const log_entry& e, bytes_view payload, bytes& out) {
  auto pos = out.size();
  out.resize(pos + log_entry_header_size + payload.size);
  auto* p = out.data() + pos;
  store_le64(p, e.origin_hash);
  store_le64(p + 8, e.daemon_seq);
  store_le64(p + 16, e.producer_id);
  store_le64(p + 24, e.producer_seq);
  store_le64(p + 32, e.received_at_ns);
  p[tag_offset] = static_cast<uint8_t>(((log_entry_version - 1) << 4)
                                       | static_cast<uint8_t>(e.state));
  store_le64(p + 41, e.epoch);
  if (payload.size > 0)
    std::memcpy(p + log_entry_header_size, payload.data, payload.size);
}

void log_batch::add(const log_entry& head, bytes_view payload) {
  encode_log_entry(head, payload, data);
  ends.push_back(data.size());
  daemon_seqs.push_back(head.daemon_seq);
  epoch = head.epoch;
}

void log_batch::clear() {
  data.clear();
  ends.clear();
  daemon_seqs.clear();
}

caf::expected<log_entry> decode_log_entry(bytes_view in) {
  auto too_short = [&](size_t header) {
    return make_error(errc::corrupt_data,
                      "log entry of " + std::to_string(in.size)
                        + " bytes is shorter than its " + std::to_string(header)
                        + "-byte header");
  };
  if (in.size < log_entry_v1_header_size)
    return too_short(log_entry_v1_header_size);
  auto tag = in.data[tag_offset];
  auto version = static_cast<uint8_t>((tag >> 4) + 1);
  auto status = static_cast<uint8_t>(tag & 0x0f);
  if (version > log_entry_version)
    return make_error(errc::unsupported_version,
                      "log entry has unknown layout version "
                        + std::to_string(version) + " (this build reads 1.."
                        + std::to_string(log_entry_version) + ")");
  if (status > 1)
    return make_error(errc::corrupt_data,
                      "log entry has unknown status " + std::to_string(status));
  size_t header = version == 1 ? log_entry_v1_header_size
                               : log_entry_header_size;
  if (in.size < header)
    return too_short(header);
  log_entry e;
  e.origin_hash = load_le64(in.data);
  e.daemon_seq = load_le64(in.data + 8);
  e.producer_id = load_le64(in.data + 16);
  e.producer_seq = load_le64(in.data + 24);
  e.received_at_ns = load_le64(in.data + 32);
  e.state = static_cast<log_entry::status>(status);
  e.epoch = version == 1 ? legacy_epoch : load_le64(in.data + 41);
  e.payload.assign(in.data + header, in.data + in.size);
  return e;
}

} // namespace mesh
