#include "actors/daemon_core.hpp"

#include <algorithm>
#include <exception>

#include "base/errc.hpp"
#include "identity/entity_id.hpp"

namespace mesh {

caf::error daemon_failed_error(uint64_t origin, const std::string& reason) {
  return make_error(errc::daemon_failed,
                    "daemon " + hex_u64(origin) + " has failed: " + reason);
}

namespace {

// Runs a user callback; a throw of any type becomes an error naming `what`.
template<class F>
auto contain(const char* what, F f) -> decltype(f()) {
  try {
    return f();
  } catch (const std::exception& e) {
    return make_error(errc::process_failed,
                      std::string{what} + " threw: " + e.what());
  } catch (...) {
    return make_error(errc::process_failed,
                      std::string{what} + " threw a non-standard exception");
  }
}

/// A daemon object standing in for one that could not be built.
class absent_daemon final : public daemon {
public:
  explicit absent_daemon(std::string kind) : kind_(std::move(kind)) {}
  std::string_view kind() const override {
    return kind_;
  }
  caf::expected<std::vector<bytes>> process(const causal_event&) override {
    return make_error(errc::daemon_failed, "the daemon could not be built");
  }

private:
  std::string kind_;
};

} // namespace

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
  // Not the user's state_version() here: a throw would escape the
  // constructor. The base of a fresh daemon holds no state anyway.
}

std::shared_ptr<daemon_core>
daemon_core::failed_core(std::string kind, keypair identity, std::string why) {
  auto k = kind;
  auto core = std::make_shared<daemon_core>(
    std::move(kind), std::move(identity),
    [k]() -> caf::expected<std::unique_ptr<daemon>> {
      return make_error(errc::daemon_failed,
                        "daemon of kind '" + k + "' could not be built");
    },
    std::make_unique<absent_daemon>(k), restart_policy::once());
  core->fail(std::move(why));
  return core;
}

caf::error daemon_core::restore(const snapshot& snap) {
  if (snap.state) {
    auto err = contain("restore", [&]() -> caf::error {
      return instance_->restore(*snap.state);
    });
    if (err)
      return make_error(errc::restore_failed, "restore of " + kind_ + " daemon "
                                                + hex_u64(origin_)
                                                + " failed: " + describe(err));
  }
  chain_ = chain_builder{origin_, snap.head};
  last_seq_ = snap.through_seq;
  stats_.last_seq = last_seq_;
  marks_.clear();
  for (auto& m : snap.dedup_marks) {
    auto& pm = marks_[m.producer_id];
    pm.hwm = m.producer_seq;
    pm.applied_at = m.applied_at;
  }
  set_base(snap.state, snap.state_version);
  return {};
}

void daemon_core::set_base(std::optional<bytes> state, uint32_t version) {
  base_state_ = std::move(state);
  base_state_version_ = version;
  base_seq_ = last_seq_;
  base_head_ = chain_.head();
  base_marks_.clear();
  base_marks_.reserve(marks_.size());
  for (auto& [pid, pm] : marks_)
    base_marks_.push_back({pid, pm.hwm, pm.applied_at});
  journal_clear();
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
                                 uint64_t now_ns, uint32_t outputs,
                                 bool rejected) {
  auto offset = journal_data_.size();
  // A rejected input is never replayed: its payload is not kept.
  if (!rejected)
    journal_data_.insert(journal_data_.end(), payload.begin(), payload.end());
  auto& j = journal_.emplace_back();
  j.producer_id = producer_id;
  j.producer_seq = producer_seq;
  j.seq = seq;
  j.received_at_ns = now_ns;
  j.offset = offset;
  j.size = rejected ? 0 : payload.size;
  j.head = chain_.head();
  j.outputs = outputs;
  j.rejected = rejected;
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
  return contain("process", [&]() -> caf::expected<std::vector<bytes>> {
    auto out = instance_->process(ev);
    if (!out && !is(out.error(), errc::process_failed))
      return make_error(errc::process_failed, describe(out.error()));
    return out;
  });
}

caf::expected<std::pair<std::optional<bytes>, uint32_t>>
daemon_core::user_state() const {
  using result = caf::expected<std::pair<std::optional<bytes>, uint32_t>>;
  return contain("snapshot", [&]() -> result {
    auto state = instance_->snapshot();
    auto version = instance_->state_version();
    return std::make_pair(std::move(state), version);
  });
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
    journal_append(ev.producer_id, ev.producer_seq, ev.payload, seq, now_ns,
                   static_cast<uint32_t>(result->size()), false);
  } else {
    stats_.errors++;
    why = describe(result.error());
    out.begin(delivery::status::rejected, seq);
    out.set_error(why);
    journal_append(ev.producer_id, ev.producer_seq, ev.payload, seq, now_ns, 0,
                   true);
  }
  if (logging_) {
    log_entry head;
    head.origin_hash = origin_;
    head.epoch = epoch_;
    head.daemon_seq = seq;
    head.producer_id = ev.producer_id;
    head.producer_seq = ev.producer_seq;
    head.received_at_ns = now_ns;
    head.state = result ? log_entry::status::accepted
                        : log_entry::status::rejected;
    log.add(head, ev.payload);
  }
  if (!result) {
    if (defer_rebuild_)
      pending_rebuild_ = std::move(why);
    else
      rebuild(why);
  }
  return true;
}

bool daemon_core::finish_rebuild() {
  if (!pending_rebuild_)
    return !failed_;
  auto why = std::move(*pending_rebuild_);
  pending_rebuild_.reset();
  return rebuild(why);
}

caf::error daemon_core::rebuild_instance() {
  auto fresh = contain("factory", [&] {
    return make_();
  });
  if (!fresh)
    return make_error(errc::restore_failed,
                      "factory: " + describe(fresh.error()));
  auto& obj = *fresh;
  if (base_state_) {
    auto err = contain("restore", [&]() -> caf::error {
      return obj->restore(*base_state_);
    });
    if (err)
      return make_error(errc::restore_failed, "restore: " + describe(err));
  }
  // The object being rebuilt is the one process() runs on.
  std::swap(instance_, obj);
  for (auto& j : journal_) {
    if (j.rejected)
      continue;
    make_input(j.producer_id, j.producer_seq,
               bytes_view{journal_data_.data() + j.offset, j.size}, j.seq,
               j.received_at_ns);
    auto r = run(input_);
    if (!r) {
      std::swap(instance_, obj);
      return make_error(errc::restore_failed, "replay of daemon_seq "
                                                + std::to_string(j.seq) + ": "
                                                + describe(r.error()));
    }
  }
  return {};
}

bool daemon_core::rebuild(const std::string& why) {
  auto now = std::chrono::steady_clock::now();
  if (policy_.window.count() > 0)
    while (!restart_times_.empty()
           && now - restart_times_.front() > policy_.window)
      restart_times_.pop_front();
  if (restart_times_.size() >= policy_.max_restarts) {
    fail("restart limit reached after: " + why);
    return false;
  }
  restart_times_.push_back(now);
  if (auto err = rebuild_instance()) {
    fail("rebuild failed: " + describe(err));
    return false;
  }
  stats_.restarts++;
  return true;
}

caf::error daemon_core::rollback_to(uint64_t seq) {
  if (seq < base_seq_ || seq > last_seq_)
    return make_error(errc::invalid_argument,
                      "rollback of daemon " + hex_u64(origin_) + " to seq "
                        + std::to_string(seq) + " outside ["
                        + std::to_string(base_seq_) + ", "
                        + std::to_string(last_seq_) + "]");
  if (seq == last_seq_)
    return {};
  // Entries are in seq order: drop the tail after `seq`.
  auto keep = std::find_if(journal_.begin(), journal_.end(),
                           [seq](const journal_entry& j) {
                             return j.seq > seq;
                           });
  for (auto it = keep; it != journal_.end(); ++it) {
    if (it->rejected) {
      stats_.errors--;
    } else {
      stats_.events_processed--;
      stats_.events_emitted -= it->outputs;
    }
  }
  if (keep != journal_.end())
    journal_data_.resize(keep->offset);
  journal_.erase(keep, journal_.end());
  last_seq_ = seq;
  stats_.last_seq = seq;
  chain_ = chain_builder{origin_,
                         journal_.empty() ? base_head_ : journal_.back().head};
  marks_.clear();
  for (auto& m : base_marks_) {
    auto& pm = marks_[m.producer_id];
    pm.hwm = m.producer_seq;
    pm.applied_at = m.applied_at;
  }
  for (auto& j : journal_)
    note_applied(j.producer_id, j.producer_seq, j.seq);
  if (auto err = rebuild_instance()) {
    fail("rollback to daemon_seq " + std::to_string(seq)
         + " failed: " + describe(err));
    return err;
  }
  return {};
}

void daemon_core::fail(std::string why, uint64_t lost_through) {
  failed_ = true;
  pending_rebuild_.reset();
  failure_ = std::move(why);
  lost_through_ = lost_through;
}

caf::error daemon_core::resume(bool accept_loss) {
  if (!failed_)
    return {};
  if (lost_through_ > last_seq_ && !accept_loss)
    return make_error(errc::daemon_failed,
                      "daemon " + hex_u64(origin_) + " lost logged inputs "
                        + std::to_string(last_seq_ + 1) + ".."
                        + std::to_string(lost_through_)
                        + "; resuming from daemon_seq "
                        + std::to_string(last_seq_)
                        + " needs the loss to be accepted");
  if (auto err = rebuild_instance())
    return make_error(errc::daemon_failed,
                      "daemon " + hex_u64(origin_)
                        + " cannot be rebuilt: " + describe(err));
  if (lost_through_ > last_seq_) {
    // The lost seqs are never reused: a stale entry still in the log can
    // then never be taken for a new input.
    last_seq_ = lost_through_;
    stats_.last_seq = last_seq_;
  }
  failed_ = false;
  failure_.clear();
  lost_through_ = 0;
  restart_times_.clear();
  return {};
}

void daemon_core::replay(const log_entry& e) {
  if (e.daemon_seq <= last_seq_)
    return;
  last_seq_ = e.daemon_seq;
  stats_.last_seq = last_seq_;
  note_applied(e.producer_id, e.producer_seq, e.daemon_seq);
  bytes_view in{e.payload};
  if (e.state == log_entry::status::rejected) {
    stats_.errors++;
    journal_append(e.producer_id, e.producer_seq, in, e.daemon_seq,
                   e.received_at_ns, 0, true);
    return;
  }
  make_input(e.producer_id, e.producer_seq, in, e.daemon_seq, e.received_at_ns);
  auto r = run(input_);
  if (!r) {
    // The event was accepted the first time; a daemon that now rejects it
    // is not deterministic. Keep going so the rest of the state comes back.
    stats_.errors++;
    journal_append(e.producer_id, e.producer_seq, in, e.daemon_seq,
                   e.received_at_ns, 0, true);
    return;
  }
  for (auto& payload : *r)
    chain_.next(payload, e.daemon_seq);
  stats_.events_processed++;
  stats_.events_emitted += r->size();
  journal_append(e.producer_id, e.producer_seq, in, e.daemon_seq,
                 e.received_at_ns, static_cast<uint32_t>(r->size()), false);
}

caf::expected<snapshot> daemon_core::make_snapshot(snapshot_kind kind,
                                                   uint64_t now_ns) {
  auto st = user_state();
  if (!st)
    return make_error(errc::process_failed,
                      "snapshot of daemon " + hex_u64(origin_)
                        + " failed: " + describe(st.error()));
  snapshot s;
  s.kind = kind;
  s.daemon_kind = kind_;
  s.id = identity_.id();
  s.through_seq = last_seq_;
  s.head = chain_.head();
  s.state = std::move(st->first);
  s.state_version = st->second;
  for (auto& [pid, pm] : marks_)
    s.dedup_marks.push_back({pid, pm.hwm, pm.applied_at});
  s.created_at_ns = now_ns;
  s.epoch = epoch_;
  return s;
}

caf::expected<snapshot> daemon_core::take_snapshot(snapshot_kind kind,
                                                   uint64_t now_ns) {
  auto s = make_snapshot(kind, now_ns);
  if (!s)
    return s;
  set_base(s->state, s->state_version);
  stats_.snapshots_taken++;
  return s;
}

caf::expected<daemon_core::encoded_snapshot>
daemon_core::take_encoded_snapshot(snapshot_kind kind, uint64_t now_ns) {
  auto s = make_snapshot(kind, now_ns);
  if (!s)
    return std::move(s.error());
  auto encoded = encode_snapshot(*s, identity_);
  // Nothing above touched the core: the base is the state just encoded.
  set_base(std::move(s->state), s->state_version);
  stats_.snapshots_taken++;
  if (!encoded)
    return std::move(encoded.error());
  return encoded_snapshot{s->through_seq, std::move(*encoded)};
}

caf::error daemon_core::rebase() {
  auto st = user_state();
  if (!st)
    return make_error(errc::process_failed,
                      "snapshot of daemon " + hex_u64(origin_)
                        + " failed: " + describe(st.error()));
  set_base(std::move(st->first), st->second);
  stats_.snapshots_taken++;
  return {};
}

uint64_t daemon_core::high_water_mark(uint64_t producer_id) const {
  auto it = marks_.find(producer_id);
  return it == marks_.end() ? 0 : it->second.hwm;
}

} // namespace mesh
