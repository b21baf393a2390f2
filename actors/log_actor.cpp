#include "actors/log_actor.hpp"

#include <deque>
#include <map>
#include <optional>

#include <caf/actor_cast.hpp>
#include <caf/actor_system.hpp>
#include <caf/send.hpp>
#include <caf/spawn_options.hpp>
#include <caf/stateful_actor.hpp>
#include <caf/typed_event_based_actor.hpp>
#include <caf/typed_response_promise.hpp>
#include <spdlog/spdlog.h>

#include "base/errc.hpp"
#include "identity/entity_id.hpp"
#include "persistence/segment.hpp"

namespace mesh {

bool requires_sync_ack(const fsync_policy& p) {
  return p.type == fsync_policy::kind::every_n && p.n == 1;
}

namespace {

/// One append waiting for the next flush.
struct queued {
  log_batch batch;
  caf::typed_response_promise<uint64_t> rp;
  /// The log seq of its last entry, or why it failed.
  uint64_t last = 0;
  caf::error err;
};

/// One life of a daemon: (origin, epoch). A new life restarts daemon_seq, so
/// contiguity and compaction are tracked per life.
using life_key = std::pair<uint64_t, uint64_t>;

struct log_state {
  log_actor_config cfg;
  std::vector<queued> queue;
  bool flush_pending = false;
  /// Set by a failed fsync: what reached the disk is unknown, so nothing
  /// more is written until the node restarts and recovery looks.
  caf::error broken;
  // Per life: (daemon_seq, log_seq) of entries newer than its snapshot.
  std::map<life_key, std::deque<std::pair<uint64_t, uint64_t>>> live;
  // Per life: the daemon_seq its next batch must start with. Set after a
  // batch of it was written or failed; absent = any.
  std::map<life_key, uint64_t> next_dseq;
  // Per life: its daemon actor, and the log's next_seq when it was last
  // asked to snapshot.
  std::map<life_key, caf::strong_actor_ptr> daemons;
  std::map<life_key, uint64_t> asked_at;
  uint64_t checked_at = 0;
  // Reused by every write: the views handed to the segment.
  std::vector<bytes_view> views;
  static inline const char* name = "mesh.log";
};

using log_ptr = log_actor::stateful_pointer<log_state>;

life_key life_of(const log_batch& b) {
  return {b.origin_hash, b.epoch};
}

// Asks the daemons whose old entries keep the log from compacting to
// snapshot, at most once per compact_after records appended.
void ask_laggards(log_ptr self, uint64_t first, uint64_t next) {
  auto& st = self->state;
  auto horizon = first + st.cfg.compact_after;
  for (auto& [life, q] : st.live) {
    auto origin = life.first;
    if (q.empty() || q.front().second >= horizon)
      continue;
    auto d = st.daemons.find(life);
    if (d == st.daemons.end() || !d->second)
      continue;
    auto& asked = st.asked_at[life];
    if (asked != 0 && next - asked < st.cfg.compact_after)
      continue;
    asked = next;
    spdlog::debug("event log asks daemon origin={} to snapshot: its entry at "
                  "log seq {} holds compaction back",
                  hex_u64(origin), q.front().second);
    caf::anon_send(caf::actor_cast<daemon_actor>(d->second),
                   compact_atom::value);
  }
}

template<class Map, class Pred>
void erase_lives(Map& m, Pred ended) {
  for (auto it = m.begin(); it != m.end();)
    it = ended(it->first) ? m.erase(it) : std::next(it);
}

void maybe_compact(log_ptr self) {
  auto& st = self->state;
  if (!st.cfg.seg || st.broken)
    return;
  auto next = st.cfg.seg->next_seq();
  auto first = st.cfg.seg->first_seq();
  st.checked_at = next;
  if (next - first < st.cfg.compact_after)
    return;
  uint64_t cut = next;
  for (auto& [life, q] : st.live)
    if (!q.empty())
      cut = std::min(cut, q.front().second);
  if (cut <= first || cut - first < st.cfg.compact_after) {
    ask_laggards(self, first, next);
    return;
  }
  auto res = st.cfg.seg->compact(retention::keep_last(next - cut));
  if (!res)
    spdlog::warn("event log compaction failed: {}", describe(res.error()));
  else
    spdlog::info("event log compacted: dropped {} records, kept {}",
                 res->dropped_records, res->kept_records);
}

// The daemon_seq a batch must start with, given what was decided so far.
bool in_order(const std::map<life_key, uint64_t>& next_dseq,
              const log_batch& b) {
  auto it = next_dseq.find(life_of(b));
  return it == next_dseq.end() || b.daemon_seqs.front() == it->second;
}

caf::error out_of_order(const log_batch& b, uint64_t expected) {
  return make_error(errc::io_error,
                    "event log refused daemon " + hex_u64(b.origin_hash)
                      + " entries from daemon_seq "
                      + std::to_string(b.daemon_seqs.front())
                      + ": its log ends before daemon_seq "
                      + std::to_string(expected) + " after a failed write");
}

// Writes the queued batches `which` as one segment batch. On success each
// gets the log seq of its last entry.
caf::error write_group(log_ptr self, const std::vector<size_t>& which) {
  auto& st = self->state;
  st.views.clear();
  for (auto i : which) {
    auto& b = st.queue[i].batch;
    for (size_t k = 0; k < b.size(); ++k)
      st.views.push_back(b.entry(k));
  }
  auto r = st.cfg.seg->append_batch(st.views);
  if (!r)
    return std::move(r.error());
  auto seq = *r - st.views.size();
  for (auto i : which) {
    auto& q = st.queue[i];
    auto& live = st.live[life_of(q.batch)];
    for (auto dseq : q.batch.daemon_seqs)
      live.emplace_back(dseq, ++seq);
    q.last = seq;
    st.next_dseq[life_of(q.batch)] = q.batch.daemon_seqs.back() + 1;
  }
  return {};
}

// Writes the queued batches `which`: as one group, or, when that fails, one
// by one, so that only a batch that cannot be written fails (and with it
// every later batch of its daemon, which was built on top of it).
void write_batches(log_ptr self, const std::vector<size_t>& which) {
  auto& st = self->state;
  if (which.empty() || !write_group(self, which))
    return;
  std::vector<size_t> one(1);
  for (auto i : which) {
    auto& q = st.queue[i];
    auto origin = q.batch.origin_hash;
    if (!in_order(st.next_dseq, q.batch)) {
      q.err = out_of_order(q.batch, st.next_dseq[life_of(q.batch)]);
      continue;
    }
    one[0] = i;
    if (auto err = write_group(self, one)) {
      q.err = std::move(err);
      st.next_dseq[life_of(q.batch)] = q.batch.daemon_seqs.front();
      spdlog::error("event log append of daemon origin={} daemon_seq {}..{} "
                    "failed: {}",
                    hex_u64(origin), q.batch.daemon_seqs.front(),
                    q.batch.daemon_seqs.back(), describe(q.err));
    }
  }
}

void flush(log_ptr self) {
  auto& st = self->state;
  st.flush_pending = false;
  if (st.queue.empty())
    return;
  if (!st.cfg.seg) {
    for (auto& q : st.queue)
      q.rp.deliver(uint64_t{0});
    st.queue.clear();
    return;
  }
  // In queue order, in groups of at most max_group_bytes. A batch that does
  // not start where its daemon's log ends (it was built on top of a failed
  // one) fails without a write.
  std::vector<size_t> group;
  size_t group_bytes = 0;
  // Where each daemon's log will end once `group` is written.
  std::map<life_key, uint64_t> after_group;
  auto write_pending = [&] {
    write_batches(self, group);
    group.clear();
    group_bytes = 0;
    after_group.clear();
  };
  size_t written = 0;
  for (size_t i = 0; i < st.queue.size(); ++i) {
    auto& q = st.queue[i];
    if (st.broken) {
      q.err = st.broken;
      continue;
    }
    if (!group.empty()
        && group_bytes + q.batch.data.size() > st.cfg.max_group_bytes)
      write_pending();
    auto life = life_of(q.batch);
    std::optional<uint64_t> expected;
    if (auto a = after_group.find(life); a != after_group.end())
      expected = a->second;
    else if (auto n = st.next_dseq.find(life); n != st.next_dseq.end())
      expected = n->second;
    if (expected && q.batch.daemon_seqs.front() != *expected) {
      q.err = out_of_order(q.batch, *expected);
      continue;
    }
    after_group[life] = q.batch.daemon_seqs.back() + 1;
    group.push_back(i);
    group_bytes += q.batch.data.size();
    ++written;
  }
  write_pending();
  if (st.cfg.sync_each_commit && written > 0 && !st.broken) {
    if (auto err = st.cfg.seg->sync()) {
      st.broken = make_error(errc::io_error,
                             "the event log refuses appends after a failed "
                             "fsync (restart the node): "
                               + describe(err));
      spdlog::error("event log fsync failed: {}; no more appends until the "
                    "node restarts",
                    describe(err));
      for (auto& q : st.queue)
        if (!q.err)
          q.err = st.broken;
    }
  }
  for (auto& q : st.queue) {
    if (q.err)
      q.rp.deliver(q.err);
    else
      q.rp.deliver(q.last);
  }
  st.queue.clear();
  auto next = st.cfg.seg->next_seq();
  if (next - st.checked_at >= std::max<uint64_t>(st.cfg.compact_after / 8, 1))
    maybe_compact(self);
}

log_actor::behavior_type log_impl(log_ptr self, log_actor_config cfg) {
  self->state.cfg = std::move(cfg);
  for (auto& [origin, epoch, dseq, lseq] : self->state.cfg.pending)
    self->state.live[{origin, epoch}].emplace_back(dseq, lseq);
  self->state.cfg.pending.clear();
  return {
    [=](append_atom, log_batch& entries) -> caf::result<uint64_t> {
      auto& st = self->state;
      auto rp = self->make_response_promise<uint64_t>();
      if (entries.empty()) {
        rp.deliver(uint64_t{0});
        return rp;
      }
      st.queue.push_back(queued{std::move(entries), rp, 0, {}});
      if (!st.flush_pending) {
        st.flush_pending = true;
        self->send(self, flush_atom::value);
      }
      return rp;
    },
    [=](flush_atom) {
      flush(self);
    },
    [=](snapped_atom, uint64_t origin, uint64_t epoch, uint64_t through) {
      auto it = self->state.live.find({origin, epoch});
      if (it == self->state.live.end())
        return;
      auto& q = it->second;
      while (!q.empty() && q.front().first <= through)
        q.pop_front();
      maybe_compact(self);
    },
    [=](forget_atom, uint64_t origin, uint64_t epoch) {
      // Write what is queued first: a flush after the erase would bring the
      // stopped daemon's entries back into `live` and pin compaction.
      flush(self);
      auto& st = self->state;
      // Lives up to `epoch` only: a newer life of the identity, spawned
      // while this one stopped, keeps its entries and its attachment.
      auto ended = [origin, epoch](const life_key& k) {
        return k.first == origin && k.second <= epoch;
      };
      erase_lives(st.live, ended);
      erase_lives(st.next_dseq, ended);
      erase_lives(st.daemons, ended);
      erase_lives(st.asked_at, ended);
      maybe_compact(self);
    },
    [=](attach_atom, uint64_t origin, uint64_t epoch) {
      self->state.daemons[{origin, epoch}] = self->current_sender();
    },
    [=](read_atom, uint64_t origin,
        uint64_t after) -> caf::result<std::vector<log_entry>> {
      // Written first, so the read sees every append made before it.
      flush(self);
      std::vector<log_entry> out;
      if (!self->state.cfg.seg)
        return out;
      caf::error bad;
      auto err = self->state.cfg.seg->for_each(0, [&](const log_record& r) {
        auto e = decode_log_entry(r.payload);
        if (!e) {
          bad = make_error(errc::corrupt_data,
                           "event log record seq=" + std::to_string(r.seq)
                             + ": " + describe(e.error()));
          return false;
        }
        if (e->origin_hash == origin && e->daemon_seq > after)
          out.push_back(std::move(*e));
        return true;
      });
      if (err)
        return err;
      if (bad)
        return bad;
      return out;
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
