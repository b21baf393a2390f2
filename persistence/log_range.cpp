#include "persistence/log_range.hpp"

#include <algorithm>
#include <string>

#include "base/errc.hpp"
#include "persistence/segment.hpp"

namespace mesh {

namespace {

// Largest max_bytes a request may ask for: a page is held in memory whole
// and, across nodes, sent as one message.
constexpr uint64_t max_page_bytes = uint64_t{64} << 20;

} // namespace

bool in_range(const log_entry& e, const log_range_request& req) {
  return e.origin_hash == req.origin_hash && e.epoch == req.epoch
         && e.daemon_seq >= req.from_daemon_seq
         && e.daemon_seq <= req.to_daemon_seq;
}

caf::error check(const log_range_request& req) {
  if (req.from_daemon_seq > req.to_daemon_seq)
    return make_error(errc::invalid_argument,
                      "log range daemon_seq "
                        + std::to_string(req.from_daemon_seq) + ".."
                        + std::to_string(req.to_daemon_seq) + " is empty");
  if (req.max_bytes == 0)
    return make_error(errc::invalid_argument,
                      "log range read with max_bytes 0");
  if (req.max_bytes > max_page_bytes)
    return make_error(errc::limit_exceeded, "log range read with max_bytes "
                                              + std::to_string(req.max_bytes)
                                              + " exceeds the limit of "
                                              + std::to_string(max_page_bytes));
  return {};
}

caf::expected<log_range> read_log_range(segment_reader& reader,
                                        const log_range_request& req) {
  if (auto err = check(req))
    return err;
  log_range out;
  // Cost: the scan passes every other daemon's records from
  // from_log_seq on; a per-origin index of log seqs would let it skip them.
  uint64_t bytes_out = 0;
  bool full = false;
  caf::error bad;
  auto next = reader.scan(std::max<uint64_t>(req.from_log_seq, 1),
                          [&](const log_record& r) {
                            auto e = decode_log_entry(r.payload);
                            if (!e) {
                              bad = make_error(errc::corrupt_data,
                                               "event log record seq="
                                                 + std::to_string(r.seq) + ": "
                                                 + describe(e.error()));
                              return false;
                            }
                            if (!in_range(*e, req))
                              return true;
                            bytes_out += e->payload.size();
                            if (e->daemon_seq == req.to_daemon_seq)
                              out.complete = true;
                            out.entries.push_back(std::move(*e));
                            full = bytes_out >= req.max_bytes;
                            return !full && !out.complete;
                          });
  if (!next)
    return next.error();
  if (bad)
    return bad;
  out.next_log_seq = *next;
  out.at_end = !full && !out.complete;
  return out;
}

} // namespace mesh
