#include "actors/daemon_core.hpp"

#include <exception>

#include "base/errc.hpp"
#include "identity/entity_id.hpp"

namespace mesh {

daemon_core::daemon_core(std::string kind, keypair identity, maker make,
                         std::unique_ptr<daemon> instance, restart_policy policy)
  : kind_(std::move(kind)),
    identity_(std::move(identity)),
    origin_(identity_.origin_hash()),
    make_(std::move(make)),
    instance_(std::move(instance)),
    policy_(policy),
    chain_(origin_, chain_head{}) {
  base_state_version_ = instance_->state_version();
}

caf::error daemon_core::restore(const snapshot& snap) {
  if (snap.state) {
    caf::error err;
    try {
      err = instance_->restore(*snap.state);
    } catch (const std::exception& e) {
      err = make_error(errc::restore_failed, e.what());
    }
    if (err)
      return make_error(errc::restore_failed,
                        "restore of " + kind_ + " daemon "
                          + hex_u64(origin_) + " failed: " + describe(err));
  }
  base_state_ = snap.state;
  base_state_version_ = snap.state_version;
  chain_ = chain_builder{origin_, snap.head};
  last_seq_ = snap.through_seq;
  stats_.last_seq = last_seq_;
  marks_.clear();
  for (auto& m : snap.dedup_marks) {
    auto& pm = marks_[m.producer_id];
    pm.hwm = m.producer_seq;
    pm.applied_at = m.applied_at;
  }
  journal_.clear();
  return {};
}

causal_event daemon_core::make_input(const inbound_event& ev, uint64_t seq,
                                     uint64_t now_ns) const {
  causal_event in;
  in.link.origin_hash = ev.producer_id;
  in.link.sequence = ev.producer_seq;
  in.link.horizon = seq;
  in.payload = ev.payload;
  in.received_at_ns = now_ns;
  return in;
}

caf::expected<std::vector<bytes>> daemon_core::run(const causal_event& ev) {
  try {
    auto out = instance_->process(ev);
    if (!out)
      return make_error(errc::process_failed, describe(out.error()));
    return out;
  } catch (const std::exception& e) {
    return make_error(errc::process_failed,
                      std::string{"process threw: "} + e.what());
  } catch (...) {
    return make_error(errc::process_failed, "process threw");
  }
}

void daemon_core::note_applied(uint64_t producer_id, uint64_t producer_seq,
                               uint64_t seq) {
  if (producer_id == 0)
    return;
  auto& pm = marks_[producer_id];
  pm.hwm = producer_seq;
  pm.applied_at = seq;
  pm.recent.emplace_back(producer_seq, seq);
  if (pm.recent.size() > recent_window)
    pm.recent.pop_front();
}

daemon_core::step daemon_core::apply(inbound_event ev, uint64_t now_ns) {
  step out;
  if (failed_) {
    out.result.state = delivery::status::rejected;
    out.result.error = "daemon " + hex_u64(origin_) + " has failed: " + failure_;
    return out;
  }
  if (ev.producer_id != 0) {
    auto it = marks_.find(ev.producer_id);
    if (it != marks_.end() && ev.producer_seq <= it->second.hwm) {
      out.result.state = delivery::status::duplicate;
      for (auto& [pseq, dseq] : it->second.recent)
        if (pseq == ev.producer_seq)
          out.result.daemon_seq = dseq;
      ++stats_.duplicates;
      return out;
    }
  }
  auto seq = ++last_seq_;
  stats_.last_seq = seq;
  auto input = make_input(ev, seq, now_ns);
  log_entry entry;
  entry.origin_hash = origin_;
  entry.daemon_seq = seq;
  entry.producer_id = ev.producer_id;
  entry.producer_seq = ev.producer_seq;
  entry.received_at_ns = now_ns;
  auto result = run(input);
  if (result) {
    out.result.state = delivery::status::applied;
    out.result.daemon_seq = seq;
    out.result.outputs.reserve(result->size());
    for (auto& payload : *result) {
      causal_event o;
      o.link = chain_.next(payload, seq);
      o.payload = std::move(payload);
      o.received_at_ns = now_ns;
      out.result.outputs.push_back(std::move(o));
    }
    stats_.events_processed++;
    stats_.events_emitted += out.result.outputs.size();
    note_applied(ev.producer_id, ev.producer_seq, seq);
    entry.payload = std::move(ev.payload);
    journal_.push_back(std::move(input));
  } else {
    // The producer gets the error; its seq still counts as seen, so a
    // resend is answered as a duplicate rather than retried forever.
    stats_.errors++;
    entry.state = log_entry::status::rejected;
    entry.payload = std::move(ev.payload);
    note_applied(ev.producer_id, ev.producer_seq, seq);
    out.result.state = delivery::status::rejected;
    out.result.daemon_seq = seq;
    out.result.error = describe(result.error());
    rebuild(out.result.error);
  }
  out.entry = std::move(entry);
  return out;
}

bool daemon_core::rebuild(const std::string& why) {
  auto now = std::chrono::steady_clock::now();
  if (policy_.window.count() > 0)
    while (!restart_times_.empty()
           && now - restart_times_.front() > policy_.window)
      restart_times_.pop_front();
  if (restart_times_.size() >= policy_.max_restarts) {
    failed_ = true;
    failure_ = "restart limit reached after: " + why;
    return false;
  }
  restart_times_.push_back(now);
  auto fresh = make_();
  if (!fresh) {
    failed_ = true;
    failure_ = "rebuild failed: " + describe(fresh.error());
    return false;
  }
  auto old = std::move(instance_);
  instance_ = std::move(*fresh);
  if (base_state_) {
    caf::error err;
    try {
      err = instance_->restore(*base_state_);
    } catch (const std::exception& e) {
      err = make_error(errc::restore_failed, e.what());
    }
    if (err) {
      failed_ = true;
      failure_ = "rebuild failed: restore: " + describe(err);
      return false;
    }
  }
  for (auto& ev : journal_) {
    auto r = run(ev);
    if (!r) {
      failed_ = true;
      failure_ = "rebuild failed: replay of seq " + std::to_string(ev.link.horizon)
                 + ": " + describe(r.error());
      return false;
    }
  }
  stats_.restarts++;
  return true;
}

void daemon_core::replay(const log_entry& e) {
  if (e.daemon_seq <= last_seq_)
    return;
  last_seq_ = e.daemon_seq;
  stats_.last_seq = last_seq_;
  note_applied(e.producer_id, e.producer_seq, e.daemon_seq);
  if (e.state == log_entry::status::rejected)
    return;
  inbound_event ev{e.producer_id, e.producer_seq, e.payload};
  auto input = make_input(ev, e.daemon_seq, e.received_at_ns);
  auto r = run(input);
  if (!r) {
    // The event was accepted the first time; a daemon that now rejects it
    // is not deterministic. Keep going so the rest of the state comes back.
    stats_.errors++;
    return;
  }
  for (auto& payload : *r)
    chain_.next(payload, e.daemon_seq);
  stats_.events_processed++;
  stats_.events_emitted += r->size();
  journal_.push_back(std::move(input));
}

snapshot daemon_core::take_snapshot(snapshot_kind kind, uint64_t now_ns) {
  snapshot s;
  s.kind = kind;
  s.daemon_kind = kind_;
  s.id = identity_.id();
  s.through_seq = last_seq_;
  s.head = chain_.head();
  s.state = instance_->snapshot();
  s.state_version = instance_->state_version();
  for (auto& [pid, pm] : marks_)
    s.dedup_marks.push_back({pid, pm.hwm, pm.applied_at});
  s.created_at_ns = now_ns;
  base_state_ = s.state;
  base_state_version_ = s.state_version;
  journal_.clear();
  stats_.snapshots_taken++;
  return s;
}

uint64_t daemon_core::high_water_mark(uint64_t producer_id) const {
  auto it = marks_.find(producer_id);
  return it == marks_.end() ? 0 : it->second.hwm;
}

} // namespace mesh
