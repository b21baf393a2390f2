#include "actors/log_actor.hpp"

#include <deque>
#include <map>

#include <caf/actor_system.hpp>
#include <caf/spawn_options.hpp>
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
  /// Appended batches not yet written, and how many entries they hold.
  std::vector<log_batch> queue;
  size_t queued_entries = 0;
  std::vector<std::pair<caf::typed_response_promise<uint64_t>, size_t>> waiting;
  bool flush_pending = false;
  // Per origin: (daemon_seq, log_seq) of entries newer than its snapshot.
  std::map<uint64_t, std::deque<std::pair<uint64_t, uint64_t>>> live;
  // Reused by every flush: the views handed to the segment.
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
  auto n = st.queued_entries;
  uint64_t last = 0;
  caf::error err;
  if (st.cfg.seg) {
    // The daemons encoded their entries already: one segment batch over
    // views of their buffers, no copy.
    st.views.clear();
    st.views.reserve(n);
    for (auto& b : st.queue)
      for (size_t i = 0; i < b.size(); ++i)
        st.views.push_back(b.entry(i));
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
      for (auto& b : st.queue) {
        auto& q = st.live[b.origin_hash];
        for (auto dseq : b.daemon_seqs)
          q.emplace_back(dseq, seq++);
      }
    }
  }
  if (err)
    spdlog::error("event log append of {} entries failed: {}", n,
                  describe(err));
  // Each waiter gets the log seq of its own last entry.
  uint64_t seq = last - n;
  for (auto& [rp, k] : st.waiting) {
    seq += k;
    if (err)
      rp.deliver(err);
    else
      rp.deliver(seq);
  }
  st.queue.clear();
  st.queued_entries = 0;
  st.waiting.clear();
}

log_actor::behavior_type log_impl(log_ptr self, log_actor_config cfg) {
  self->state.cfg = std::move(cfg);
  for (auto& [origin, dseq, lseq] : self->state.cfg.pending)
    self->state.live[origin].emplace_back(dseq, lseq);
  self->state.cfg.pending.clear();
  return {
    [=](append_atom, log_batch& entries) -> caf::result<uint64_t> {
      auto& st = self->state;
      auto rp = self->make_response_promise<uint64_t>();
      st.waiting.emplace_back(rp, entries.size());
      st.queued_entries += entries.size();
      st.queue.push_back(std::move(entries));
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
      // Write what is queued first: a flush after the erase would bring the
      // stopped daemon's entries back into `live` and pin compaction.
      flush(self);
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
  // An fsync per commit blocks for a millisecond or more. On a scheduler
  // thread it would stall every daemon sharing that thread (meshd runs one
  // worker on a 2-core machine), and the daemons could not prepare the next
  // group commit meanwhile. On its own thread it stalls only the log; the
  // extra hand-off this costs is small beside the fsync.
  if (cfg.sync_each_commit)
    return sys.spawn<caf::detached>(log_impl, std::move(cfg));
  return sys.spawn(log_impl, std::move(cfg));
}

} // namespace mesh
