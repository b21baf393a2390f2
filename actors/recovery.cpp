#include "actors/recovery.hpp"

#include <algorithm>
#include <map>

#include <spdlog/spdlog.h>

#include "actors/daemon_core.hpp"
#include "base/errc.hpp"
#include "identity/entity_id.hpp"
#include "persistence/segment.hpp"
#include "snapshot/snapshot.hpp"

namespace mesh {

// -- daemon_replay ------------------------------------------------------------

daemon_replay::daemon_replay(std::shared_ptr<daemon_core> core)
  : core_(std::move(core)) {}

void daemon_replay::feed(const log_entry& e) {
  if (e.epoch != core_->epoch()) {
    if (e.epoch < core_->epoch()) {
      ++older_;
    } else {
      ++newer_;
      newest_epoch_ = std::max(newest_epoch_, e.epoch);
    }
    return;
  }
  if (core_->failed())
    return;
  if (gap_) {
    last_logged_ = std::max(last_logged_, e.daemon_seq);
    return;
  }
  auto last = core_->last_seq();
  // Covered by the snapshot.
  if (e.daemon_seq <= last)
    return;
  if (e.daemon_seq != last + 1) {
    gap_ = true;
    gap_after_ = last;
    next_logged_ = e.daemon_seq;
    last_logged_ = e.daemon_seq;
    return;
  }
  core_->replay(e);
  ++replayed_;
}

std::shared_ptr<daemon_core> daemon_replay::finish() {
  if (gap_)
    core_->fail("log gap after daemon_seq " + std::to_string(gap_after_)
                  + ": the next logged input is daemon_seq "
                  + std::to_string(next_logged_) + " (the last "
                  + std::to_string(last_logged_) + "); inputs "
                  + std::to_string(gap_after_ + 1) + ".."
                  + std::to_string(next_logged_ - 1) + " are lost",
                last_logged_);
  return core_;
}

// -- loading ------------------------------------------------------------------

caf::expected<std::shared_ptr<daemon_core>>
load_daemon(const recovery_context& ctx, uint64_t origin) {
  auto rec = ctx.store->load_daemon(origin);
  if (!rec)
    return rec.error();
  return load_daemon(ctx, origin, std::move(*rec));
}

std::shared_ptr<daemon_core> load_daemon(const recovery_context& ctx,
                                         uint64_t origin, daemon_record rec) {
  auto kind = rec.kind;
  auto epoch = rec.epoch;
  auto fail = [&](const std::string& why) {
    auto core = daemon_core::failed_core(kind, std::move(rec.identity), why);
    core->set_epoch(epoch);
    return core;
  };
  auto inst = ctx.make(kind);
  if (!inst)
    return fail(describe(inst.error()));
  auto make = ctx.make;
  auto core = std::make_shared<daemon_core>(
    kind, rec.identity.clone(),
    [make, kind] {
      return make(kind);
    },
    std::move(*inst), ctx.policy);
  core->set_epoch(epoch);
  auto raw = ctx.store->load_snapshot(origin);
  if (!raw) {
    if (is(raw.error(), errc::not_found))
      return core;
    return fail("snapshot unreadable: " + describe(raw.error()));
  }
  auto id = core->identity().id();
  auto snap = decode_snapshot(*raw, &id);
  if (!snap)
    return fail("snapshot damaged: " + describe(snap.error()));
  auto snap_epoch = snapshot_epoch(*snap);
  if (snap_epoch > epoch)
    return fail("snapshot claims epoch " + std::to_string(snap_epoch)
                + ", newer than the record's " + std::to_string(epoch)
                + "; it is not applied");
  if (snap_epoch < epoch) {
    // An earlier life's snapshot that its stop did not get to delete: this
    // life started without one (a life that starts from a snapshot has it
    // stamped with its own epoch).
    spdlog::warn("daemon origin={} epoch={}: ignoring the snapshot of "
                 "earlier epoch {}",
                 hex_u64(origin), epoch, snap_epoch);
    return core;
  }
  if (auto err = core->restore(*snap))
    return fail(describe(err));
  return core;
}

daemon_info broken_daemon(uint64_t origin, const caf::error& why) {
  daemon_info info;
  info.origin_hash = origin;
  info.kind = "?";
  info.state = "failed";
  info.reason = "daemon record unreadable: " + describe(why);
  return info;
}

// -- a node -------------------------------------------------------------------

caf::expected<recovered_node> recover_node(const recovery_context& ctx,
                                           segment& seg, bool log_was_empty) {
  recovered_node out;
  auto origins = ctx.store->list_daemons();
  if (!origins)
    return origins.error();
  if (log_was_empty && !origins->empty())
    spdlog::error("the event log {} was missing or empty while {} daemon "
                  "record(s) exist: every input logged after their last "
                  "snapshots is lost",
                  ctx.store->log_dir(), origins->size());
  std::map<uint64_t, daemon_replay> replays;
  // Daemons without a usable core: their entries are kept (all epochs when
  // the record is unreadable, the record's epoch otherwise).
  std::map<uint64_t, bool> unrecovered;
  // Per unreadable record: the highest epoch in the log, the best guess of
  // the life a stop of it ends.
  std::map<uint64_t, uint64_t> broken_epochs;
  for (auto origin : *origins) {
    auto file = ctx.store->load_daemon_file(origin);
    if (!file) {
      out.broken.push_back(broken_daemon(origin, file.error()));
      unrecovered[origin] = true;
      broken_epochs[origin] = legacy_epoch;
      continue;
    }
    // A stopped daemon: its entries hold nothing back.
    if (file->is_tombstone())
      continue;
    auto core = load_daemon(ctx, origin, std::move(*file->live));
    if (core->failed())
      unrecovered[origin] = true;
    replays.emplace(origin, daemon_replay{std::move(core)});
  }
  uint64_t undecodable = 0;
  auto err = seg.for_each(0, [&](const log_record& r) {
    auto e = decode_log_entry(r.payload);
    if (!e) {
      // Its daemon cannot be told; the gap check of each daemon catches a
      // lost input of its own.
      if (undecodable++ < 8)
        spdlog::error("event log record seq={} is not a log entry: {}", r.seq,
                      describe(e.error()));
      return true;
    }
    auto it = replays.find(e->origin_hash);
    if (auto b = broken_epochs.find(e->origin_hash); b != broken_epochs.end())
      b->second = std::max(b->second, e->epoch);
    bool own_epoch = it != replays.end()
                     && e->epoch == it->second.core()->epoch();
    if (it == replays.end() && unrecovered.count(e->origin_hash)) {
      out.pending.emplace_back(e->origin_hash, e->epoch, e->daemon_seq, r.seq);
    } else if (own_epoch
               && (unrecovered.count(e->origin_hash)
                   || e->daemon_seq > it->second.core()->base_seq())) {
      out.pending.emplace_back(e->origin_hash, e->epoch, e->daemon_seq, r.seq);
    }
    if (it != replays.end())
      it->second.feed(*e);
    return true;
  });
  if (err)
    return err;
  if (undecodable > 8)
    spdlog::error("event log: {} records are not log entries", undecodable);
  for (auto& b : out.broken)
    b.epoch = broken_epochs[b.origin_hash];
  for (auto& [origin, rp] : replays) {
    out.replayed += rp.replayed();
    out.older += rp.older();
    out.newer += rp.newer();
    if (rp.newer() > 0)
      spdlog::error("daemon origin={} epoch={}: {} logged entries claim a "
                    "newer epoch (up to {}) than its record; they are not "
                    "applied",
                    hex_u64(origin), rp.core()->epoch(), rp.newer(),
                    rp.newest_epoch());
    auto core = rp.finish();
    if (core->failed())
      spdlog::error("daemon origin={} kind={} comes back failed: {}",
                    hex_u64(origin), core->kind(), core->failure());
    out.cores.push_back(std::move(core));
  }
  for (auto& b : out.broken)
    spdlog::error("daemon origin={} comes back failed: {}",
                  hex_u64(b.origin_hash), b.reason);
  return out;
}

caf::expected<std::shared_ptr<daemon_core>>
rebuild_daemon(const recovery_context& ctx, uint64_t origin,
               const std::vector<log_entry>& entries) {
  auto core = load_daemon(ctx, origin);
  if (!core)
    return core.error();
  daemon_replay rp{std::move(*core)};
  for (auto& e : entries)
    rp.feed(e);
  return rp.finish();
}

} // namespace mesh
