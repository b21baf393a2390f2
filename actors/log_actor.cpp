#include "actors/log_actor.hpp"

#include <deque>
#include <iterator>
#include <map>

#include <caf/actor_system.hpp>
#include <caf/stateful_actor.hpp>
#include <caf/typed_event_based_actor.hpp>
#include <caf/typed_response_promise.hpp>
#include <spdlog/spdlog.h>

#include "base/errc.hpp"
#include "persistence/segment.hpp"

namespace mesh {

bool requires_sync_ack(const fsync_policy& p) {
  return p.type == fsync_policy::kind::every_n && p.n == 1;
}

namespace {

struct log_state {
  log_actor_config cfg;
  std::vector<log_entry> queue;
  std::vector<std::pair<caf::typed_response_promise<uint64_t>, size_t>> waiting;
  bool flush_pending = false;
  // Per origin: (daemon_seq, log_seq) of entries newer than its snapshot.
  std::map<uint64_t, std::deque<std::pair<uint64_t, uint64_t>>> live;
  // Reused by every flush: the encoded entries back to back, where each one
  // starts, and the views handed to the segment.
  bytes scratch;
  std::vector<size_t> offsets;
  std::vector<bytes_view> views;
  static inline const char* name = "mesh.log";
};

using log_ptr = log_actor::stateful_pointer<log_state>;

void maybe_compact(log_ptr self) {
  auto& st = self->state;
  if (!st.cfg.seg)
    return;
  auto next = st.cfg.seg->next_seq();
  uint64_t cut = next;
  for (auto& [origin, q] : st.live)
    if (!q.empty())
      cut = std::min(cut, q.front().second);
  auto first = st.cfg.seg->first_seq();
  if (cut <= first || cut - first < st.cfg.compact_after)
    return;
  auto res = st.cfg.seg->compact(retention::keep_last(next - cut));
  if (!res)
    spdlog::warn("event log compaction failed: {}", describe(res.error()));
  else
    spdlog::info("event log compacted: dropped {} records, kept {}",
                 res->dropped_records, res->kept_records);
}

void flush(log_ptr self) {
  auto& st = self->state;
  st.flush_pending = false;
  if (st.queue.empty())
    return;
  uint64_t last = 0;
  caf::error err;
  if (st.cfg.seg) {
    auto n = st.queue.size();
    size_t total = 0;
    for (auto& e : st.queue)
      total += log_entry_header_size + e.payload.size();
    st.scratch.clear();
    st.scratch.reserve(total);
    st.offsets.clear();
    st.offsets.reserve(n + 1);
    for (auto& e : st.queue) {
      st.offsets.push_back(st.scratch.size());
      encode_log_entry(e, st.scratch);
    }
    st.offsets.push_back(st.scratch.size());
    // Views only once every entry is encoded: appending may move the buffer.
    st.views.clear();
    st.views.reserve(n);
    for (size_t i = 0; i < n; ++i)
      st.views.emplace_back(st.scratch.data() + st.offsets[i],
                            st.offsets[i + 1] - st.offsets[i]);
    auto r = st.cfg.seg->append_batch(st.views);
    if (!r) {
      err = r.error();
    } else {
      last = *r;
      if (st.cfg.sync_each_commit)
        err = st.cfg.seg->sync();
    }
    if (!err) {
      auto seq = last - n + 1;
      // Entries come in runs from one daemon: one map lookup per run.
      std::deque<std::pair<uint64_t, uint64_t>>* q = nullptr;
      uint64_t q_origin = 0;
      for (auto& e : st.queue) {
        if (q == nullptr || e.origin_hash != q_origin) {
          q = &st.live[e.origin_hash];
          q_origin = e.origin_hash;
        }
        q->emplace_back(e.daemon_seq, seq++);
      }
    }
    // Do not keep a buffer that one large flush grew.
    constexpr size_t keep_bytes = 4u << 20;
    if (st.scratch.capacity() > keep_bytes)
      bytes{}.swap(st.scratch);
  }
  if (err)
    spdlog::error("event log append of {} entries failed: {}", st.queue.size(),
                  describe(err));
  // Each waiter gets the log seq of its own last entry.
  uint64_t seq = last - st.queue.size();
  for (auto& [rp, n] : st.waiting) {
    seq += n;
    if (err)
      rp.deliver(err);
    else
      rp.deliver(seq);
  }
  st.queue.clear();
  st.waiting.clear();
}

log_actor::behavior_type log_impl(log_ptr self, log_actor_config cfg) {
  self->state.cfg = std::move(cfg);
  for (auto& [origin, dseq, lseq] : self->state.cfg.pending)
    self->state.live[origin].emplace_back(dseq, lseq);
  self->state.cfg.pending.clear();
  return {
    [=](append_atom, std::vector<log_entry>& entries) -> caf::result<uint64_t> {
      auto& st = self->state;
      auto rp = self->make_response_promise<uint64_t>();
      st.waiting.emplace_back(rp, entries.size());
      if (st.queue.empty())
        st.queue.swap(entries);
      else
        st.queue.insert(st.queue.end(),
                        std::make_move_iterator(entries.begin()),
                        std::make_move_iterator(entries.end()));
      if (!st.flush_pending) {
        st.flush_pending = true;
        self->send(self, flush_atom::value);
      }
      return rp;
    },
    [=](flush_atom) {
      flush(self);
    },
    [=](snapped_atom, uint64_t origin, uint64_t through) {
      auto it = self->state.live.find(origin);
      if (it == self->state.live.end())
        return;
      auto& q = it->second;
      while (!q.empty() && q.front().first <= through)
        q.pop_front();
      maybe_compact(self);
    },
    [=](forget_atom, uint64_t origin) {
      self->state.live.erase(origin);
      maybe_compact(self);
    },
    [=](close_atom) -> caf::result<bool> {
      flush(self);
      caf::error err;
      if (self->state.cfg.seg) {
        err = self->state.cfg.seg->close();
        self->state.cfg.seg.reset();
      }
      auto rp = self->make_response_promise<bool>();
      if (err)
        rp.deliver(err);
      else
        rp.deliver(true);
      self->quit();
      return rp;
    },
  };
}

} // namespace

log_actor spawn_log_actor(caf::actor_system& sys, log_actor_config cfg) {
  return sys.spawn(log_impl, std::move(cfg));
}

} // namespace mesh
