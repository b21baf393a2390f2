#include "actors/log_actor.hpp"

#include <chrono>
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
#include "persistence/log_range.hpp"
#include "persistence/segment.hpp"

namespace mesh {

bool requires_sync_ack(const fsync_policy& p) {
  return p.type == fsync_policy::kind::every_n && p.n == 1;
}

namespace {

/// Serves range reads on a thread of its own through a segment_reader, so a
/// long scan never holds up appends (it takes no lock the appender takes).
using log_reader_actor = caf::typed_actor<
  caf::replies_to<read_atom, log_range_request>::with<log_range>>;

/// Runs compactions on a thread of its own: drops the records below the
/// given log seq and answers (dropped, kept). The segment's bulk copy takes
/// no append lock, so the log actor keeps appending meanwhile.
using log_compactor_actor = caf::typed_actor<
  caf::replies_to<compact_atom, uint64_t>::with<uint64_t, uint64_t>>;

log_reader_actor::behavior_type
log_reader_impl(log_reader_actor::pointer,
                std::shared_ptr<segment_reader> reader) {
  return {
    [reader](read_atom, log_range_request& req) -> caf::result<log_range> {
      auto page = read_log_range(*reader, req);
      if (!page)
        return std::move(page.error());
      return std::move(*page);
    },
  };
}

log_compactor_actor::behavior_type
log_compactor_impl(log_compactor_actor::pointer, std::shared_ptr<segment> seg) {
  return {
    [seg](compact_atom, uint64_t cut) -> caf::result<uint64_t, uint64_t> {
      auto res = seg->compact(retention::before_seq(cut));
      if (!res)
        return std::move(res.error());
      return {res->dropped_records, res->kept_records};
    },
  };
}

/// A pin as the log actor keeps it.
struct pin_state {
  log_pin pin;
  /// The lowest log seq the pin keeps.
  uint64_t hold = 0;
  std::chrono::steady_clock::time_point expires;
};

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
  // Range reads and compactions run on these (null without a segment).
  log_reader_actor reader;
  log_compactor_actor compactor;
  // A compaction is running; it drops the records below `compacting_cut`.
  bool compacting = false;
  uint64_t compacting_cut = 0;
  // Another compaction was asked for while one ran.
  bool compact_again = false;
  // A close that waits for the running compaction.
  std::optional<caf::typed_response_promise<bool>> closing;
  // Per origin: its pin.
  std::map<uint64_t, pin_state> pins;
  // Pins whose answer waits for the running compaction (it was decided
  // before them and may drop what they ask for).
  std::vector<std::pair<uint64_t, caf::typed_response_promise<uint64_t>>>
    pins_waiting;
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

// Drops the pins whose lease ran out, each with a log line.
void expire_pins(log_ptr self) {
  auto& st = self->state;
  auto now = std::chrono::steady_clock::now();
  for (auto it = st.pins.begin(); it != st.pins.end();) {
    if (it->second.expires > now) {
      ++it;
      continue;
    }
    auto& p = it->second.pin;
    spdlog::warn("event log pin of daemon origin={} epoch={} from daemon_seq "
                 "{} owned by '{}' expired: not renewed within {} ms; its "
                 "entries may be compacted away",
                 hex_u64(p.origin_hash), p.epoch, p.from_daemon_seq, p.owner,
                 p.lease_ms);
    it = st.pins.erase(it);
  }
}

void maybe_compact(log_ptr self);

// Answers the pins that waited for a compaction: they hold from where the
// log now begins at the earliest.
void answer_waiting_pins(log_ptr self) {
  auto& st = self->state;
  auto waiting = std::move(st.pins_waiting);
  st.pins_waiting.clear();
  for (auto& [origin, rp] : waiting) {
    auto it = st.pins.find(origin);
    if (it == st.pins.end()) {
      rp.deliver(
        make_error(errc::not_found, "the pin of daemon " + hex_u64(origin)
                                      + " was released before it took hold"));
      continue;
    }
    if (st.cfg.seg)
      it->second.hold = std::max(it->second.hold, st.cfg.seg->first_seq());
    rp.deliver(it->second.hold);
  }
}

void finish_close(log_ptr self, caf::typed_response_promise<bool> rp);

// Hands the drop of the records below `cut` to the compaction thread.
void start_compaction(log_ptr self, uint64_t cut) {
  auto& st = self->state;
  st.compacting = true;
  st.compacting_cut = cut;
  st.compact_again = false;
  auto done = [self] {
    auto& st = self->state;
    st.compacting = false;
    answer_waiting_pins(self);
    if (st.closing) {
      auto rp = std::move(*st.closing);
      st.closing.reset();
      finish_close(self, std::move(rp));
      return;
    }
    if (st.compact_again)
      maybe_compact(self);
  };
  self->request(st.compactor, caf::infinite, compact_atom::value, cut)
    .then(
      [done](uint64_t dropped, uint64_t kept) {
        spdlog::info("event log compacted: dropped {} records, kept {}",
                     dropped, kept);
        done();
      },
      [done](caf::error& err) {
        spdlog::warn("event log compaction failed: {}", describe(err));
        done();
      });
}

template<class Map, class Pred>
void erase_lives(Map& m, Pred ended) {
  for (auto it = m.begin(); it != m.end();)
    it = ended(it->first) ? m.erase(it) : std::next(it);
}

void maybe_compact(log_ptr self) {
  auto& st = self->state;
  if (!st.cfg.seg || st.broken || st.closing)
    return;
  if (st.compacting) {
    st.compact_again = true;
    return;
  }
  auto next = st.cfg.seg->next_seq();
  auto first = st.cfg.seg->first_seq();
  st.checked_at = next;
  if (next - first < st.cfg.compact_after)
    return;
  uint64_t cut = next;
  for (auto& [life, q] : st.live)
    if (!q.empty())
      cut = std::min(cut, q.front().second);
  expire_pins(self);
  for (auto& [origin, p] : st.pins)
    cut = std::min(cut, p.hold);
  if (cut <= first || cut - first < st.cfg.compact_after) {
    ask_laggards(self, first, next);
    return;
  }
  start_compaction(self, cut);
}

// The lowest log seq that must stay for a pin of one life from daemon_seq
// `from`. Exact when the log knows where that daemon_seq is (the life's
// entries newer than its snapshot, or none logged yet from `from` on);
// otherwise everything the log holds now, which is more than needed but
// never less.
uint64_t pin_hold(log_ptr self, const life_key& life, uint64_t from) {
  auto& st = self->state;
  auto& seg = *st.cfg.seg;
  if (auto it = st.live.find(life);
      it != st.live.end() && !it->second.empty()) {
    auto& q = it->second;
    if (q.front().first > from)
      return seg.first_seq();
    for (auto& [dseq, lseq] : q)
      if (dseq >= from)
        return lseq;
    return seg.next_seq();
  }
  if (auto n = st.next_dseq.find(life);
      n != st.next_dseq.end() && n->second <= from)
    return seg.next_seq();
  return seg.first_seq();
}

caf::result<uint64_t> pin(log_ptr self, log_pin& p) {
  auto& st = self->state;
  if (p.owner.empty())
    return make_error(errc::invalid_argument, "a log pin needs an owner");
  if (p.lease_ms == 0 || p.lease_ms > max_lease_ms)
    return make_error(errc::invalid_argument,
                      "log pin lease of " + std::to_string(p.lease_ms)
                        + " ms is outside 1.." + std::to_string(max_lease_ms));
  if (!st.cfg.seg)
    return make_error(errc::invalid_argument,
                      "this node keeps no event log to pin");
  expire_pins(self);
  auto origin = p.origin_hash;
  auto hold = pin_hold(self, {origin, p.epoch}, p.from_daemon_seq);
  auto it = st.pins.find(origin);
  if (it != st.pins.end()) {
    if (it->second.pin.owner != p.owner)
      return make_error(errc::already_migrating,
                        "the event log of daemon " + hex_u64(origin)
                          + " is pinned by '" + it->second.pin.owner
                          + "', not '" + p.owner + "'");
    // A renewal: it never gives up what the pin already holds.
    hold = std::min(hold, it->second.hold);
  } else {
    spdlog::info("event log pinned for daemon origin={} epoch={} from "
                 "daemon_seq {} by '{}' (lease {} ms, log seq {} on)",
                 hex_u64(origin), p.epoch, p.from_daemon_seq, p.owner,
                 p.lease_ms, hold);
  }
  auto lease = std::chrono::milliseconds{p.lease_ms};
  st.pins[origin] = pin_state{p, hold,
                              std::chrono::steady_clock::now() + lease};
  self->delayed_send(self, lease, expire_atom::value, origin);
  if (st.compacting && st.compacting_cut > hold) {
    auto rp = self->make_response_promise<uint64_t>();
    st.pins_waiting.emplace_back(origin, rp);
    return rp;
  }
  return hold;
}

caf::result<bool> unpin(log_ptr self, uint64_t origin,
                        const std::string& owner) {
  auto& st = self->state;
  auto it = st.pins.find(origin);
  if (it == st.pins.end())
    return make_error(errc::not_found,
                      "daemon " + hex_u64(origin) + " has no event log pin");
  if (it->second.pin.owner != owner)
    return make_error(errc::invalid_argument,
                      "the event log pin of daemon " + hex_u64(origin)
                        + " is owned by '" + it->second.pin.owner + "'; '"
                        + owner + "' may not release it");
  spdlog::info("event log pin of daemon origin={} released by '{}'",
               hex_u64(origin), owner);
  st.pins.erase(it);
  maybe_compact(self);
  return true;
}

void on_expire(log_ptr self, uint64_t origin) {
  auto& st = self->state;
  auto it = st.pins.find(origin);
  if (it == st.pins.end())
    return;
  auto now = std::chrono::steady_clock::now();
  if (it->second.expires > now) {
    // Renewed since this timer was set; a later timer covers it.
    return;
  }
  expire_pins(self);
  maybe_compact(self);
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

void finish_close(log_ptr self, caf::typed_response_promise<bool> rp) {
  auto& st = self->state;
  caf::error err;
  if (st.cfg.seg) {
    err = st.cfg.seg->close();
    st.cfg.seg.reset();
  }
  for (auto& [origin, w] : st.pins_waiting)
    w.deliver(make_error(errc::shutting_down, "the event log closed"));
  st.pins_waiting.clear();
  if (err)
    rp.deliver(err);
  else
    rp.deliver(true);
  self->quit();
}

log_actor::behavior_type log_impl(log_ptr self, log_actor_config cfg) {
  self->state.cfg = std::move(cfg);
  if (auto& seg = self->state.cfg.seg) {
    // Linked: they end with the log actor.
    self->state.reader = self->spawn<
      caf::detached + caf::linked>(log_reader_impl,
                                   std::shared_ptr<segment_reader>{
                                     seg->reader()});
    self->state.compactor = self->spawn<caf::detached
                                        + caf::linked>(log_compactor_impl, seg);
    // A link ends them only when the log actor fails; on a normal exit
    // (close) they must be told.
    self->attach_functor(
      [reader = self->state.reader, compactor = self->state.compactor] {
        caf::anon_send_exit(reader, caf::exit_reason::user_shutdown);
        caf::anon_send_exit(compactor, caf::exit_reason::user_shutdown);
      });
  }
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
    [=](read_atom, log_range_request& req) -> caf::result<log_range> {
      if (auto err = check(req))
        return err;
      if (!self->state.reader)
        return make_error(errc::invalid_argument,
                          "this node keeps no event log to read");
      return self->delegate(self->state.reader, read_atom::value,
                            std::move(req));
    },
    [=](pin_atom, log_pin& p) -> caf::result<uint64_t> {
      return pin(self, p);
    },
    [=](unpin_atom, uint64_t origin,
        const std::string& owner) -> caf::result<bool> {
      return unpin(self, origin, owner);
    },
    [=](expire_atom, uint64_t origin) {
      on_expire(self, origin);
    },
    [=](close_atom) -> caf::result<bool> {
      flush(self);
      auto rp = self->make_response_promise<bool>();
      if (self->state.compacting) {
        // The compaction thread is using the segment: close once it ends.
        self->state.closing = rp;
        return rp;
      }
      finish_close(self, rp);
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
