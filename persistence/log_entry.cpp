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
//   40  u8  status (0 accepted, 1 rejected)
//   41  payload bytes (the rest of the record)

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
  p[40] = static_cast<uint8_t>(e.state);
  if (payload.size > 0)
    std::memcpy(p + log_entry_header_size, payload.data, payload.size);
}

void log_batch::add(const log_entry& head, bytes_view payload) {
  encode_log_entry(head, payload, data);
  ends.push_back(data.size());
  daemon_seqs.push_back(head.daemon_seq);
}

void log_batch::clear() {
  data.clear();
  ends.clear();
  daemon_seqs.clear();
}

caf::expected<log_entry> decode_log_entry(bytes_view in) {
  if (in.size < log_entry_header_size)
    return make_error(errc::corrupt_data,
                      "log entry of " + std::to_string(in.size)
                        + " bytes is shorter than its "
                        + std::to_string(log_entry_header_size)
                        + "-byte header");
  if (in.data[40] > 1)
    return make_error(errc::corrupt_data, "log entry has unknown status byte "
                                            + std::to_string(in.data[40]));
  log_entry e;
  e.origin_hash = load_le64(in.data);
  e.daemon_seq = load_le64(in.data + 8);
  e.producer_id = load_le64(in.data + 16);
  e.producer_seq = load_le64(in.data + 24);
  e.received_at_ns = load_le64(in.data + 32);
  e.state = static_cast<log_entry::status>(in.data[40]);
  e.payload.assign(in.data + log_entry_header_size, in.data + in.size);
  return e;
}

} // namespace mesh
