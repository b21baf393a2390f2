#include "actors/daemon_core.hpp"

#include <algorithm>
#include <exception>

#include "base/errc.hpp"
#include "identity/entity_id.hpp"

namespace mesh {

daemon_core::daemon_core(std::string kind, keypair identity, maker make,
                         std::unique_ptr<daemon> instance,
                         restart_policy policy)
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
      return make_error(errc::restore_failed, "restore of " + kind_ + " daemon "
                                                + hex_u64(origin_)
                                                + " failed: " + describe(err));
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
  journal_clear();
  return {};
}

void daemon_core::make_input(uint64_t producer_id, uint64_t producer_seq,
                             bytes_view payload, uint64_t seq,
                             uint64_t now_ns) {
  input_.link = causal_link{};
  input_.link.origin_hash = producer_id;
  input_.link.sequence = producer_seq;
  input_.link.horizon = seq;
  input_.payload.assign(payload.begin(), payload.end());
  input_.received_at_ns = now_ns;
}

void daemon_core::journal_append(uint64_t producer_id, uint64_t producer_seq,
                                 bytes_view payload, uint64_t seq,
                                 uint64_t now_ns) {
  auto offset = journal_data_.size();
  journal_data_.insert(journal_data_.end(), payload.begin(), payload.end());
  auto& j = journal_.emplace_back();
  j.producer_id = producer_id;
  j.producer_seq = producer_seq;
  j.seq = seq;
  j.received_at_ns = now_ns;
  j.offset = offset;
  j.size = payload.size;
}

void daemon_core::journal_clear() {
  journal_.clear();
  // Keep the buffers for the next round unless one burst made them large.
  constexpr size_t keep_bytes = 4u << 20;
  if (journal_data_.capacity() > keep_bytes)
    bytes{}.swap(journal_data_);
  else
    journal_data_.clear();
  if (journal_.capacity() * sizeof(journal_entry) > keep_bytes)
    std::vector<journal_entry>{}.swap(journal_);
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
  note_applied(marks_[producer_id], producer_seq, seq);
}

void daemon_core::note_applied(producer_marks& pm, uint64_t producer_seq,
                               uint64_t seq) {
  if (!pm.recent.empty() && producer_seq <= pm.recent.back().first)
    pm.ordered = false;
  pm.hwm = producer_seq;
  pm.applied_at = seq;
  pm.recent.emplace_back(producer_seq, seq);
  if (pm.recent.size() > recent_window)
    pm.recent.pop_front();
}

uint64_t daemon_core::applied_at(const producer_marks& pm,
                                 uint64_t producer_seq) {
  auto& recent = pm.recent;
  if (pm.ordered) {
    auto pos = std::lower_bound(recent.begin(), recent.end(), producer_seq,
                                [](const std::pair<uint64_t, uint64_t>& x,
                                   uint64_t pseq) {
                                  return x.first < pseq;
                                });
    return pos != recent.end() && pos->first == producer_seq ? pos->second : 0;
  }
  // The last match, as noted.
  uint64_t dseq = 0;
  for (auto& [pseq, d] : recent)
    if (pseq == producer_seq)
      dseq = d;
  return dseq;
}

bool daemon_core::apply(const event_ref& ev, uint64_t now_ns,
                        delivery_batch& out, log_batch& log) {
  if (failed_) {
    out.begin(delivery::status::rejected, 0);
    out.set_error("daemon " + hex_u64(origin_) + " has failed: " + failure_);
    return false;
  }
  producer_marks* pm = nullptr;
  if (ev.producer_id != 0) {
    auto it = marks_.find(ev.producer_id);
    if (it != marks_.end()) {
      pm = &it->second;
      if (ev.producer_seq <= pm->hwm) {
        out.begin(delivery::status::duplicate,
                  applied_at(*pm, ev.producer_seq));
        ++stats_.duplicates;
        return false;
      }
    }
  }
  auto seq = ++last_seq_;
  stats_.last_seq = seq;
  make_input(ev.producer_id, ev.producer_seq, ev.payload, seq, now_ns);
  auto result = run(input_);
  if (ev.producer_id != 0 && pm == nullptr)
    pm = &marks_[ev.producer_id];
  // The producer's seq counts as seen even when rejected, so a resend is
  // answered as a duplicate rather than retried forever.
  if (pm)
    note_applied(*pm, ev.producer_seq, seq);
  std::string why;
  if (result) {
    out.begin(delivery::status::applied, seq);
    for (auto& p : *result)
      out.add_output(chain_.next(p, seq), p, now_ns);
    stats_.events_processed++;
    stats_.events_emitted += result->size();
    journal_append(ev.producer_id, ev.producer_seq, ev.payload, seq, now_ns);
  } else {
    stats_.errors++;
    why = describe(result.error());
    out.begin(delivery::status::rejected, seq);
    out.set_error(why);
  }
  if (logging_) {
    log_entry head;
    head.origin_hash = origin_;
    head.daemon_seq = seq;
    head.producer_id = ev.producer_id;
    head.producer_seq = ev.producer_seq;
    head.received_at_ns = now_ns;
    head.state = result ? log_entry::status::accepted
                        : log_entry::status::rejected;
    log.add(head, ev.payload);
  }
  if (!result)
    rebuild(why);
  return true;
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
  for (auto& j : journal_) {
    make_input(j.producer_id, j.producer_seq,
               bytes_view{journal_data_.data() + j.offset, j.size}, j.seq,
               j.received_at_ns);
    auto r = run(input_);
    if (!r) {
      failed_ = true;
      failure_ = "rebuild failed: replay of seq " + std::to_string(j.seq) + ": "
                 + describe(r.error());
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
  bytes_view in{e.payload};
  make_input(e.producer_id, e.producer_seq, in, e.daemon_seq, e.received_at_ns);
  auto r = run(input_);
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
  journal_append(e.producer_id, e.producer_seq, in, e.daemon_seq,
                 e.received_at_ns);
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
  journal_clear();
  stats_.snapshots_taken++;
  return s;
}

void daemon_core::rebase() {
  base_state_ = instance_->snapshot();
  base_state_version_ = instance_->state_version();
  journal_clear();
  stats_.snapshots_taken++;
}

uint64_t daemon_core::high_water_mark(uint64_t producer_id) const {
  auto it = marks_.find(producer_id);
  return it == marks_.end() ? 0 : it->second.hwm;
}

} // namespace mesh
