// The segment reader: reads records beside the appender through read-only
// handles of its own, up to what the appender has published, without the
// append lock. See segment.hpp for the contract.

#include <cstring>

#include "base/errc.hpp"
#include "base/file_system.hpp"
#include "persistence/segment.hpp"
#include "persistence/segment_format.hpp"
#include "persistence/segment_internal.hpp"

namespace mesh {

using namespace segment_internal;

segment_reader::segment_reader(std::shared_ptr<shared> state)
  : state_(std::move(state)) {}

segment_reader::~segment_reader() = default;

uint64_t segment_reader::end_seq() const {
  std::lock_guard<std::mutex> guard{state_->mtx};
  return state_->next_seq;
}

namespace {

// What one scan reads: a copy of the published state, taken once, so a
// compaction flipping the generation meanwhile changes nothing the scan uses.
struct view {
  std::shared_ptr<file_handle> dat;
  std::shared_ptr<file_handle> idx;
  std::shared_ptr<file_handle> ts;
  uint64_t records = 0;
  uint64_t dat_len = 0;
  uint64_t next_seq = 1;
};

caf::expected<uint64_t> seq_at(file_handle& idx, uint64_t pos) {
  uint8_t buf[sf::idx_record_size];
  if (auto err = idx.read_at(pos * sf::idx_record_size, sizeof(buf), buf))
    return err;
  return sf::decode_idx(buf).seq;
}

// Position of the first record with seq >= `seq`. Seqs in idx strictly
// increase (recovery keeps no other order), so a binary search over the file
// finds it with a few 32-byte reads.
caf::expected<uint64_t> lower_bound(file_handle& idx, uint64_t records,
                                    uint64_t seq) {
  uint64_t lo = 0;
  uint64_t hi = records;
  while (lo < hi) {
    auto mid = lo + (hi - lo) / 2;
    auto s = seq_at(idx, mid);
    if (!s)
      return s.error();
    if (*s < seq)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo;
}

} // namespace

caf::expected<uint64_t>
segment_reader::scan(uint64_t from_seq,
                     const std::function<bool(const log_record&)>& f) {
  view v;
  {
    std::lock_guard<std::mutex> guard{state_->mtx};
    if (state_->closed)
      return make_error(errc::invalid_argument,
                        state_->dir + ": segment is closed");
    v.dat = state_->dat;
    v.idx = state_->idx;
    v.ts = state_->ts;
    v.records = state_->idx_len / sf::idx_record_size;
    v.dat_len = state_->dat_len;
    v.next_seq = state_->next_seq;
  }
  auto first = lower_bound(*v.idx, v.records, from_seq);
  if (!first)
    return first.error();
  constexpr uint64_t chunk = 2048;
  bytes idx_buf;
  bytes ts_buf;
  payload_reader payloads{v.dat.get(), v.dat_len};
  log_record rec;
  for (uint64_t pos = *first; pos < v.records;) {
    auto k = std::min(chunk, v.records - pos);
    idx_buf.resize(k * sf::idx_record_size);
    ts_buf.resize(k * sf::ts_record_size);
    if (auto err = v.idx->read_at(pos * sf::idx_record_size, idx_buf.size(),
                                  idx_buf.data()))
      return err;
    if (auto err = v.ts->read_at(pos * sf::ts_record_size, ts_buf.size(),
                                 ts_buf.data()))
      return err;
    for (uint64_t i = 0; i < k; ++i) {
      auto r = sf::decode_idx(idx_buf.data() + i * sf::idx_record_size);
      rec.seq = r.seq;
      rec.timestamp_ns = load_le64(ts_buf.data() + i * sf::ts_record_size);
      rec.payload.resize(r.length);
      if (r.is_inline()) {
        uint8_t buf[8];
        sf::inline_payload(r, buf);
        std::memcpy(rec.payload.data(), buf, r.length);
      } else {
        const uint8_t* p = nullptr;
        if (auto err = payloads.read(r.location, r.length, p))
          return err;
        std::memcpy(rec.payload.data(), p, r.length);
      }
      // The appender verified nothing here: a record whose bytes changed
      // under the log since it was written must not pass as good.
      if (sf::record_checksum(r, rec.payload) != r.checksum)
        return make_error(errc::corrupt_data, v.idx->path() + ": record seq "
                                                + std::to_string(r.seq)
                                                + " fails its checksum");
      if (!f(rec))
        return r.seq + 1;
    }
    pos += k;
  }
  return v.next_seq;
}

} // namespace mesh
