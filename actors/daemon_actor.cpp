#include "actors/daemon_actor.hpp"

#include <deque>
#include <functional>
#include <optional>
#include <utility>

#include <caf/actor.hpp>
#include <caf/actor_system.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/send.hpp>
#include <caf/stateful_actor.hpp>
#include <caf/typed_event_based_actor.hpp>
#include <caf/typed_response_promise.hpp>
#include <spdlog/spdlog.h>

#include "actors/daemon_core.hpp"
#include "actors/daemon_phase.hpp"
#include "actors/limits.hpp"
#include "base/errc.hpp"
#include "persistence/segment.hpp"
#include "snapshot/snapshot.hpp"

namespace mesh {

namespace {

/// Where the answer to one input batch goes: the request's sender, local or
/// remote (the runtime facade's sender is its reply actor, actors/reply.hpp).
struct reply_to {
  caf::typed_response_promise<delivery_batch> rp;

  void operator()(caf::expected<delivery_batch> answer) {
    if (answer)
      rp.deliver(std::move(*answer));
    else
      rp.deliver(std::move(answer.error()));
  }
};

/// Input that arrived while a snapshot waited for the log.
struct held_batch {
  event_batch evs;
  reply_to reply;
};

struct stop_request {
  caf::typed_response_promise<bool> rp;
  bool final_snapshot = false;
  /// Set instead of rp: the final snapshot's encoding goes back to the
  /// caller, which writes many at once (a node's shutdown).
  std::optional<caf::typed_response_promise<bytes>> handover;
};

struct daemon_state {
  daemon_actor_config cfg;
  std::chrono::steady_clock::time_point last_snapshot = std::chrono::
    steady_clock::now();
  /// through_seq of the snapshot on disk (0 = none): a final snapshot is
  /// skipped when nothing was applied since.
  uint64_t persisted_seq = 0;
  /// Appends sent to the log and not answered yet.
  size_t in_flight = 0;
  /// Raised by each rollback: answers to appends sent before it must not
  /// roll back again.
  uint64_t log_generation = 0;
  // Work that waits until every append in flight is answered.
  bool snapshot_due = false;
  std::vector<caf::typed_response_promise<bytes>> snapshot_waiters;
  std::optional<stop_request> stopping;
  std::deque<held_batch> held;
  bool settling = false;
  /// The core is lent to the store actor (a snapshot, resume or rollback
  /// job): nothing else may start until its answer.
  bool storing = false;
  daemon_phase phase = daemon_phase::starting;
  /// Input that arrived while frozen, in arrival order, and its size.
  std::deque<held_batch> frozen_input;
  size_t frozen_events = 0;
  size_t frozen_bytes = 0;
  /// Freeze requests waiting until the input before them is durable.
  std::vector<caf::typed_response_promise<daemon_info>> freeze_waiters;
  static inline const char* name = "mesh.daemon";
};

using daemon_ptr = daemon_actor::stateful_pointer<daemon_state>;

daemon_core& core_of(daemon_ptr self) {
  return *self->state.cfg.core;
}

bool barrier_pending(const daemon_state& st) {
  return st.snapshot_due || !st.snapshot_waiters.empty()
         || st.stopping.has_value();
}

caf::error failed_error(const daemon_core& core) {
  return daemon_failed_error(core.origin(), core.failure());
}

caf::error enter(daemon_ptr self, daemon_phase to);
bool phase_takes(daemon_ptr self, const event_batch& evs, reply_to& reply);
void answer_freeze_waiters(daemon_ptr self);

void report_failure(daemon_ptr self) {
  auto& core = core_of(self);
  enter(self, daemon_phase::failed);
  spdlog::error("daemon origin={} kind={} failed: {}", hex_u64(core.origin()),
                core.kind(), core.failure());
  if (self->state.cfg.supervisor)
    self->send(self->state.cfg.supervisor, failed_atom::value, core.origin(),
               core.failure());
}

using snapshot_continuation = std::function<void(caf::expected<snapshot_done>)>;

// Takes a snapshot (no append may be in flight) on the store actor's thread
// and records what it did; `then` runs once it is done. The mailbox is
// suspended meanwhile (await), so nothing touches the lent core.
void run_snapshot(daemon_ptr self, snapshot_use use,
                  snapshot_continuation then) {
  auto& st = self->state;
  st.storing = true;
  self
    ->request(st.cfg.store, caf::infinite, snapshot_atom::value,
              core_lease{st.cfg.core}, use)
    .await(
      [self, then](snapshot_done& done) {
        auto& st = self->state;
        st.storing = false;
        st.last_snapshot = std::chrono::steady_clock::now();
        if (done.written) {
          st.persisted_seq = done.through_seq;
          if (st.cfg.log)
            self->send(st.cfg.log, snapped_atom::value, core_of(self).origin(),
                       core_of(self).epoch(), done.through_seq);
        }
        then(std::move(done));
      },
      [self, then](caf::error& err) {
        self->state.storing = false;
        then(std::move(err));
      });
}

// Marks a snapshot due when the policy says so; settle() takes it.
void note_progress(daemon_ptr self) {
  auto& st = self->state;
  auto& core = core_of(self);
  if (core.failed())
    return;
  auto since = core.journal_size();
  bool due = since >= daemon_core::journal_limit
             || (st.cfg.snapshot_every_events > 0
                 && since >= st.cfg.snapshot_every_events)
             || (st.cfg.snapshot_every.count() > 0 && since > 0
                 && std::chrono::steady_clock::now() - st.last_snapshot
                      >= st.cfg.snapshot_every);
  if (due)
    st.snapshot_due = true;
}

daemon_info make_info(daemon_ptr self) {
  auto& core = core_of(self);
  daemon_info info;
  info.origin_hash = core.origin();
  info.id = core.identity().id();
  info.kind = core.kind();
  info.last_seq = core.last_seq();
  info.phase = self->state.phase;
  info.reason = core.failed() ? core.failure() : std::string{};
  info.epoch = core.epoch();
  return info;
}

void settle(daemon_ptr self);

// The log refused or failed the append of daemon_seq first..: roll back to
// what the log holds, once per failure (later batches of the same
// generation fail with it and are only answered). The rebuild runs on the
// store actor's thread; input waits in the mailbox until it is done.
void append_failed(daemon_ptr self, uint64_t generation, uint64_t first,
                   const caf::error& err) {
  auto& st = self->state;
  auto& core = core_of(self);
  if (generation != st.log_generation)
    return;
  ++st.log_generation;
  bool was_failed = core.failed();
  auto why = describe(err);
  auto done = [self, first, was_failed, why](const caf::error& rolled) {
    auto& core = core_of(self);
    self->state.storing = false;
    spdlog::error("daemon origin={}: log write of daemon_seq {} on failed "
                  "({}); rolled back to daemon_seq {}{}",
                  hex_u64(core.origin()), first, why, first - 1,
                  rolled ? ": " + describe(rolled) : std::string{});
    if (!was_failed && core.failed())
      report_failure(self);
    settle(self);
  };
  st.storing = true;
  self
    ->request(st.cfg.store, caf::infinite, rollback_atom::value,
              core_lease{st.cfg.core}, first - 1)
    .await(
      [done](bool) {
        done(caf::error{});
      },
      [done](caf::error& rolled) {
        done(rolled);
      });
}

void apply_from(daemon_ptr self, const event_batch& evs, size_t i, uint64_t now,
                bool was_failed, delivery_batch out, log_batch entries,
                reply_to reply);
void restart_then_apply(daemon_ptr self, const event_batch& evs, size_t next,
                        uint64_t now, bool was_failed, delivery_batch out,
                        log_batch entries, reply_to reply);

// Applies `evs` and answers through `reply`, after their log append when
// there is a log.
void deliver(daemon_ptr self, const event_batch& evs, reply_to reply) {
  auto& core = core_of(self);
  if (core.failed()) {
    reply(failed_error(core));
    return;
  }
  if (!evs.well_formed()) {
    reply(make_error(errc::corrupt_data,
                     "event batch with a payload outside its buffer"));
    return;
  }
  if (auto err = limits::check(evs)) {
    reply(std::move(err));
    return;
  }
  delivery_batch out;
  // Counter-like daemons emit one short output per event.
  out.reserve(evs.size(), evs.size(), evs.size() * 24);
  log_batch entries;
  if (core.logging()) {
    entries.origin_hash = core.origin();
    entries.ends.reserve(evs.size());
    entries.daemon_seqs.reserve(evs.size());
    entries.data.reserve(evs.size() * log_entry_header_size
                         + evs.payload_bytes());
  }
  apply_from(self, evs, 0, unix_now_ns(), core.failed(), std::move(out),
             std::move(entries), std::move(reply));
}

// Applies evs[i..] in order, then appends them to the log. A rejected event
// leaves its rebuild pending (daemon_core::set_deferred_rebuild): the core is
// lent to the store actor for it, and the rest of the batch follows once it
// is done. Only then is the batch copied, so the common path copies nothing.
void apply_from(daemon_ptr self, const event_batch& evs, size_t i, uint64_t now,
                bool was_failed, delivery_batch out, log_batch entries,
                reply_to reply) {
  auto& st = self->state;
  auto& core = core_of(self);
  for (; i < evs.size(); ++i) {
    core.apply(evs[i], now, out, entries);
    if (core.rebuild_pending()) {
      restart_then_apply(self, evs, i + 1, now, was_failed, std::move(out),
                         std::move(entries), std::move(reply));
      return;
    }
  }
  if (!was_failed && core.failed())
    report_failure(self);
  note_progress(self);
  if (entries.empty() || !st.cfg.log) {
    reply(std::move(out));
    return;
  }
  // The answers (and with them the outputs) leave only once the log append
  // is durable under the policy.
  auto generation = st.log_generation;
  auto first = entries.daemon_seqs.front();
  ++st.in_flight;
  self
    ->request(st.cfg.log, caf::infinite, append_atom::value, std::move(entries))
    .then(
      [self, reply, out = std::move(out)](uint64_t) mutable {
        --self->state.in_flight;
        reply(std::move(out));
        note_progress(self);
        settle(self);
      },
      [self, reply, generation, first](caf::error& err) mutable {
        --self->state.in_flight;
        append_failed(self, generation, first, err);
        reply(make_error(errc::io_error,
                         "event log write failed, the batch was not applied: "
                           + describe(err)));
        settle(self);
      });
}

/// The rest of a batch that waits for a rebuild.
struct batch_rest {
  event_batch evs;
  size_t next;
  uint64_t now;
  bool was_failed;
  delivery_batch out;
  log_batch entries;
  reply_to reply;
};

void restart_then_apply(daemon_ptr self, const event_batch& evs, size_t next,
                        uint64_t now, bool was_failed, delivery_batch out,
                        log_batch entries, reply_to reply) {
  auto& st = self->state;
  auto rest = std::make_shared<batch_rest>(
    batch_rest{evs, next, now, was_failed, std::move(out), std::move(entries),
               std::move(reply)});
  auto resume = [self, rest] {
    self->state.storing = false;
    apply_from(self, rest->evs, rest->next, rest->now, rest->was_failed,
               std::move(rest->out), std::move(rest->entries),
               std::move(rest->reply));
    settle(self);
  };
  st.storing = true;
  self
    ->request(st.cfg.store, caf::infinite, restart_atom::value,
              core_lease{st.cfg.core})
    .await(
      [resume](bool) {
        resume();
      },
      [self, resume](caf::error& err) {
        core_of(self).fail("rebuild could not run: " + describe(err));
        resume();
      });
}

// Starts the snapshot that requests (or the policy) wait for; returns
// false when none was started. settle() goes on once it is done.
bool start_waiting_snapshot(daemon_ptr self) {
  auto& st = self->state;
  auto& core = core_of(self);
  auto waiters = std::move(st.snapshot_waiters);
  st.snapshot_waiters.clear();
  bool due = st.snapshot_due;
  st.snapshot_due = false;
  if (waiters.empty()) {
    if (!due || core.failed() || core.journal_size() == 0)
      return false;
    run_snapshot(self, snapshot_use::automatic,
                 [self](caf::expected<snapshot_done> r) {
                   if (!r)
                     spdlog::warn("auto-snapshot of daemon origin={} failed: "
                                  "{}",
                                  hex_u64(core_of(self).origin()),
                                  describe(r.error()));
                   settle(self);
                 });
    return true;
  }
  if (core.failed()) {
    for (auto& rp : waiters)
      rp.deliver(failed_error(core));
    return false;
  }
  run_snapshot(self, snapshot_use::persist,
               [self, waiters](caf::expected<snapshot_done> r) mutable {
                 for (size_t i = 0; i < waiters.size(); ++i) {
                   if (!r)
                     waiters[i].deliver(r.error());
                   else if (i + 1 < waiters.size())
                     waiters[i].deliver(r->encoded);
                   else
                     waiters[i].deliver(std::move(r->encoded));
                 }
                 settle(self);
               });
  return true;
}

// Answers the stop request (after its final snapshot, if any) and exits.
void complete_stop(daemon_ptr self, caf::expected<snapshot_done> final) {
  auto& st = self->state;
  auto& core = core_of(self);
  auto req = std::move(*st.stopping);
  st.stopping.reset();
  if (!final)
    spdlog::error("final snapshot of daemon origin={} failed: {}",
                  hex_u64(core.origin()), describe(final.error()));
  for (auto& h : st.held)
    h.reply(make_error(errc::daemon_not_found,
                       "daemon " + hex_u64(core.origin()) + " stopped"));
  st.held.clear();
  enter(self, daemon_phase::stopped);
  // Answer first: a reply returned after quit() is not sent.
  if (req.handover) {
    if (!final)
      req.handover->deliver(final.error());
    else
      req.handover->deliver(std::move(final->encoded));
  } else if (!final) {
    req.rp.deliver(final.error());
  } else {
    req.rp.deliver(true);
  }
  self->quit();
}

void finish_stop(daemon_ptr self) {
  auto& st = self->state;
  auto& core = core_of(self);
  // Nothing new since the snapshot on disk: nothing to write.
  bool changed = st.cfg.durable && !core.failed()
                 && core.last_seq() != st.persisted_seq;
  if (!st.stopping->final_snapshot || !changed) {
    complete_stop(self, snapshot_done{});
    return;
  }
  // Handed over: the caller writes it, with the other daemons' ones.
  auto use = st.stopping->handover ? snapshot_use::handover
                                   : snapshot_use::persist;
  run_snapshot(self, use, [self](caf::expected<snapshot_done> r) {
    complete_stop(self, std::move(r));
  });
}

// Runs the work that waits for the log (snapshots, stop) as soon as no
// append is in flight, then the input held meanwhile, in arrival order. A
// store job in flight pauses it; the job's answer resumes it.
void settle(daemon_ptr self) {
  auto& st = self->state;
  if (st.settling || st.storing)
    return;
  st.settling = true;
  // A held batch may have lent the core out (a rebuild): stop there.
  while (!st.storing) {
    if (barrier_pending(st)) {
      if (st.in_flight > 0)
        break;
      if (start_waiting_snapshot(self))
        break;
      if (st.stopping) {
        finish_stop(self);
        break;
      }
      continue;
    }
    if (st.held.empty())
      break;
    auto h = std::move(st.held.front());
    st.held.pop_front();
    deliver(self, h.evs, std::move(h.reply));
  }
  st.settling = false;
  answer_freeze_waiters(self);
}

void accept_input(daemon_ptr self, const event_batch& evs, reply_to reply) {
  auto& st = self->state;
  if (phase_takes(self, evs, reply))
    return;
  if (barrier_pending(st) || !st.held.empty()) {
    st.held.push_back(held_batch{evs, std::move(reply)});
    return;
  }
  deliver(self, evs, std::move(reply));
  settle(self);
}

// -- phases (actors/daemon_phase.hpp) -----------------------------------------

caf::error stopping_error(daemon_ptr self) {
  return make_error(errc::wrong_phase, "daemon "
                                         + hex_u64(core_of(self).origin())
                                         + " is stopping");
}

// Answers what waits on the frozen phase when the daemon leaves it for
// failed or stopped: the held input was never applied.
void refuse_frozen_work(daemon_ptr self, daemon_phase now) {
  auto& st = self->state;
  auto& core = core_of(self);
  auto held = std::move(st.frozen_input);
  st.frozen_input.clear();
  st.frozen_events = 0;
  st.frozen_bytes = 0;
  auto why = [&core, now] {
    if (now == daemon_phase::failed)
      return failed_error(core);
    return make_error(errc::wrong_phase,
                      "daemon " + hex_u64(core.origin()) + " is "
                        + to_string(now)
                        + "; input held while it was frozen was not applied");
  };
  for (auto& h : held)
    h.reply(why());
  auto waiters = std::move(st.freeze_waiters);
  st.freeze_waiters.clear();
  for (auto& rp : waiters)
    rp.deliver(why());
}

// The one place the phase changes: checked against the table, logged, and
// told to the supervisor.
caf::error enter(daemon_ptr self, daemon_phase to) {
  auto& st = self->state;
  auto from = st.phase;
  if (auto err = check_transition(from, to))
    return err;
  st.phase = to;
  if (to == daemon_phase::failed || to == daemon_phase::stopped)
    refuse_frozen_work(self, to);
  // Failures and stops have their own log lines.
  auto quiet = from == daemon_phase::starting || to == daemon_phase::failed
               || to == daemon_phase::stopped;
  spdlog::log(quiet ? spdlog::level::debug : spdlog::level::info,
              "daemon origin={} phase {} -> {}",
              hex_u64(core_of(self).origin()), to_string(from), to_string(to));
  if (st.cfg.supervisor)
    self->send(st.cfg.supervisor, phase_atom::value, make_info(self));
  return {};
}

// The phases that do not take input the usual way: frozen holds it (up to
// its bound), starting, standby and stopped refuse it. False when the input
// goes on (running; failed answers in deliver()).
bool phase_takes(daemon_ptr self, const event_batch& evs, reply_to& reply) {
  auto& st = self->state;
  switch (st.phase) {
    case daemon_phase::running:
    case daemon_phase::failed: return false;
    case daemon_phase::frozen: break;
    case daemon_phase::starting:
    case daemon_phase::standby:
    case daemon_phase::stopped:
      reply(wrong_phase_error("delivery", daemon_phase::running, st.phase,
                              core_of(self).origin()));
      return true;
  }
  auto events = st.frozen_events + evs.size();
  auto bytes = st.frozen_bytes + evs.payload_bytes();
  if (events > st.cfg.frozen_max_events || bytes > st.cfg.frozen_max_bytes) {
    reply(
      make_error(errc::limit_exceeded,
                 "daemon " + hex_u64(core_of(self).origin())
                   + " is frozen and holds " + std::to_string(st.frozen_events)
                   + " events (" + std::to_string(st.frozen_bytes)
                   + " bytes); the limit is "
                   + std::to_string(st.cfg.frozen_max_events) + " events or "
                   + std::to_string(st.cfg.frozen_max_bytes) + " bytes"));
    return true;
  }
  st.frozen_events = events;
  st.frozen_bytes = bytes;
  st.frozen_input.push_back(held_batch{evs, std::move(reply)});
  return true;
}

// A freeze is answered once everything that arrived before it is applied
// and durable, so the answer's last_seq is the cut-over point.
void answer_freeze_waiters(daemon_ptr self) {
  auto& st = self->state;
  if (st.freeze_waiters.empty() || st.in_flight > 0 || !st.held.empty()
      || barrier_pending(st))
    return;
  auto info = make_info(self);
  auto waiters = std::move(st.freeze_waiters);
  st.freeze_waiters.clear();
  for (auto& rp : waiters)
    rp.deliver(info);
}

caf::result<daemon_info> freeze(daemon_ptr self) {
  auto& st = self->state;
  if (st.stopping)
    return stopping_error(self);
  if (st.phase != daemon_phase::running)
    return wrong_phase_error("freeze", daemon_phase::running, st.phase,
                             core_of(self).origin());
  if (auto err = enter(self, daemon_phase::frozen))
    return err;
  auto rp = self->make_response_promise<daemon_info>();
  st.freeze_waiters.push_back(rp);
  settle(self);
  return rp;
}

std::deque<held_batch> take_frozen_input(daemon_state& st) {
  auto held = std::move(st.frozen_input);
  st.frozen_input.clear();
  st.frozen_events = 0;
  st.frozen_bytes = 0;
  return held;
}

caf::result<uint64_t> release(daemon_ptr self) {
  auto& st = self->state;
  if (st.stopping)
    return stopping_error(self);
  if (st.phase != daemon_phase::frozen)
    return wrong_phase_error("release", daemon_phase::frozen, st.phase,
                             core_of(self).origin());
  if (auto err = enter(self, daemon_phase::running))
    return err;
  auto held = take_frozen_input(st);
  for (auto& h : held)
    accept_input(self, h.evs, std::move(h.reply));
  return uint64_t{held.size()};
}

// The target answers the producer: the request is delegated, so the answer
// goes to the original sender.
void forward_one(const caf::actor& target, held_batch& h) {
  h.reply.rp.delegate(target, deliver_atom::value, std::move(h.evs));
}

caf::result<uint64_t> forward(daemon_ptr self, const caf::actor& target) {
  auto& st = self->state;
  if (st.stopping)
    return stopping_error(self);
  if (st.phase != daemon_phase::frozen)
    return wrong_phase_error("forward", daemon_phase::frozen, st.phase,
                             core_of(self).origin());
  if (!target || target.address() == self->address())
    return make_error(errc::invalid_argument,
                      "held input of daemon " + hex_u64(core_of(self).origin())
                        + " can only be forwarded to another actor");
  auto held = take_frozen_input(st);
  for (auto& h : held)
    forward_one(target, h);
  return uint64_t{held.size()};
}

caf::result<daemon_info> activate(daemon_ptr self) {
  auto& st = self->state;
  if (st.stopping)
    return stopping_error(self);
  if (st.phase != daemon_phase::standby)
    return wrong_phase_error("activate", daemon_phase::standby, st.phase,
                             core_of(self).origin());
  if (auto err = enter(self, daemon_phase::running))
    return err;
  return make_info(self);
}

// Entries already applied are skipped; the rest must continue last_seq()
// without a gap, all of this daemon: checked before anything is applied.
caf::error check_replay(daemon_core& core,
                        const std::vector<log_entry>& entries) {
  auto who = "replay to daemon " + hex_u64(core.origin());
  if (entries.size() > limits::max_batch_events)
    return make_error(errc::limit_exceeded,
                      who + ": " + std::to_string(entries.size())
                        + " entries, the limit is "
                        + std::to_string(limits::max_batch_events));
  uint64_t prev = 0;
  uint64_t next = core.last_seq() + 1;
  for (auto& e : entries) {
    if (e.origin_hash != core.origin())
      return make_error(errc::invalid_argument,
                        who + ": an entry of daemon " + hex_u64(e.origin_hash));
    if (e.payload.size() > limits::max_event_payload)
      return make_error(errc::limit_exceeded,
                        who + ": daemon_seq " + std::to_string(e.daemon_seq)
                          + " carries " + std::to_string(e.payload.size())
                          + " bytes, the limit is "
                          + std::to_string(limits::max_event_payload));
    if (e.daemon_seq <= prev)
      return make_error(errc::invalid_argument,
                        who + ": daemon_seq " + std::to_string(e.daemon_seq)
                          + " follows " + std::to_string(prev));
    prev = e.daemon_seq;
    if (e.daemon_seq <= core.last_seq())
      continue;
    if (e.daemon_seq != next)
      return make_error(errc::invalid_argument,
                        who + ": gap, daemon_seq " + std::to_string(next)
                          + " expected, " + std::to_string(e.daemon_seq)
                          + " given");
    ++next;
  }
  return {};
}

// Standby only: applies the entries as recovery does (dedup marks, chain)
// and logs them like live input; answered once the log holds them.
caf::result<uint64_t> replay(daemon_ptr self,
                             const std::vector<log_entry>& entries) {
  auto& st = self->state;
  auto& core = core_of(self);
  if (st.stopping)
    return stopping_error(self);
  if (st.phase != daemon_phase::standby)
    return wrong_phase_error("replay", daemon_phase::standby, st.phase,
                             core.origin());
  if (auto err = check_replay(core, entries))
    return err;
  // Logged under this daemon's own epoch: the entries come from another
  // life (the source's), and recovery here trusts only this one's.
  log_batch logged;
  logged.origin_hash = core.origin();
  logged.epoch = core.epoch();
  for (auto& e : entries) {
    if (e.daemon_seq <= core.last_seq())
      continue;
    core.replay(e);
    if (core.logging()) {
      log_entry head;
      head.origin_hash = e.origin_hash;
      head.epoch = core.epoch();
      head.daemon_seq = e.daemon_seq;
      head.producer_id = e.producer_id;
      head.producer_seq = e.producer_seq;
      head.received_at_ns = e.received_at_ns;
      head.state = e.state;
      logged.add(head, bytes_view{e.payload});
    }
  }
  note_progress(self);
  auto last = core.last_seq();
  if (logged.empty() || !st.cfg.log) {
    settle(self);
    return last;
  }
  auto generation = st.log_generation;
  auto first = logged.daemon_seqs.front();
  ++st.in_flight;
  auto rp = self->make_response_promise<uint64_t>();
  self
    ->request(st.cfg.log, caf::infinite, append_atom::value, std::move(logged))
    .then(
      [self, rp, last](uint64_t) mutable {
        --self->state.in_flight;
        rp.deliver(last);
        note_progress(self);
        settle(self);
      },
      [self, rp, generation, first](caf::error& err) mutable {
        --self->state.in_flight;
        append_failed(self, generation, first, err);
        rp.deliver(make_error(errc::io_error,
                              "event log write failed, the replayed entries "
                              "were not applied: "
                                + describe(err)));
        settle(self);
      });
  return rp;
}

daemon_actor::behavior_type daemon_impl(daemon_ptr self,
                                        daemon_actor_config cfg) {
  auto& st = self->state;
  st.cfg = std::move(cfg);
  auto& core = core_of(self);
  st.persisted_seq = core.base_seq();
  // Log entries are built only when there is a log to write them to.
  core.set_logging(static_cast<bool>(st.cfg.log));
  // A rejected event's rebuild runs on the store actor's thread.
  core.set_deferred_rebuild(true);
  if (st.cfg.log)
    self->send(st.cfg.log, attach_atom::value, core.origin(), core.epoch());
  if (st.cfg.snapshot_every.count() > 0)
    self->delayed_send(self, st.cfg.snapshot_every, tick_atom::value);
  enter(self, core.failed()    ? daemon_phase::failed
              : st.cfg.standby ? daemon_phase::standby
                               : daemon_phase::running);
  return {
    [=](deliver_atom, const event_batch& evs) -> caf::result<delivery_batch> {
      auto rp = self->make_response_promise<delivery_batch>();
      accept_input(self, evs, reply_to{rp});
      return rp;
    },
    [=](hwm_atom, uint64_t producer) -> uint64_t {
      return core_of(self).high_water_mark(producer);
    },
    [=](stats_atom) -> daemon_stats {
      return core_of(self).stats();
    },
    [=](info_atom) -> daemon_info {
      return make_info(self);
    },
    [=](snapshot_atom) -> caf::result<bytes> {
      if (core_of(self).failed())
        return failed_error(core_of(self));
      auto rp = self->make_response_promise<bytes>();
      self->state.snapshot_waiters.push_back(rp);
      settle(self);
      return rp;
    },
    [=](stop_atom, bool final_snapshot) -> caf::result<bool> {
      auto rp = self->make_response_promise<bool>();
      if (self->state.stopping) {
        rp.deliver(make_error(errc::shutting_down, "already stopping"));
        return rp;
      }
      self->state.stopping = stop_request{rp, final_snapshot, std::nullopt};
      settle(self);
      return rp;
    },
    [=](stop_atom, snapshot_atom) -> caf::result<bytes> {
      auto rp = self->make_response_promise<bytes>();
      if (self->state.stopping) {
        rp.deliver(make_error(errc::shutting_down, "already stopping"));
        return rp;
      }
      self->state.stopping = stop_request{{}, true, rp};
      settle(self);
      return rp;
    },
    [=](resume_atom, bool accept_loss) -> caf::result<daemon_info> {
      auto& core = core_of(self);
      if (auto phase = self->state.phase;
          phase == daemon_phase::standby || phase == daemon_phase::frozen)
        return wrong_phase_error("resume", daemon_phase::failed, phase,
                                 core.origin());
      if (!core.failed())
        return make_info(self);
      if (self->state.in_flight > 0 || barrier_pending(self->state))
        return make_error(errc::wrong_phase, "daemon " + hex_u64(core.origin())
                                               + " is busy; try again");
      // The resumed state (and any skipped seqs) is durable before new
      // input: otherwise the next start would find the same damage. Both
      // run on the store actor's thread.
      auto rp = self->make_response_promise<daemon_info>();
      auto& st = self->state;
      st.storing = true;
      self
        ->request(st.cfg.store, caf::infinite, resume_atom::value,
                  core_lease{st.cfg.core}, accept_loss)
        .await(
          [self, rp, accept_loss](snapshot_done& done) mutable {
            auto& st = self->state;
            auto& core = core_of(self);
            st.storing = false;
            if (done.written) {
              st.persisted_seq = done.through_seq;
              st.last_snapshot = std::chrono::steady_clock::now();
              if (st.cfg.log)
                self->send(st.cfg.log, snapped_atom::value, core.origin(),
                           core.epoch(), done.through_seq);
            }
            spdlog::warn("daemon origin={} resumed at daemon_seq {}{}",
                         hex_u64(core.origin()), core.last_seq(),
                         accept_loss ? " (loss accepted)" : "");
            if (st.phase == daemon_phase::failed)
              enter(self, daemon_phase::running);
            rp.deliver(make_info(self));
            settle(self);
          },
          [self, rp](caf::error& err) mutable {
            self->state.storing = false;
            rp.deliver(err);
            settle(self);
          });
      return rp;
    },
    [=](compact_atom) {
      // The log wants this daemon's old entries covered by a snapshot.
      if (core_of(self).journal_size() > 0 && !core_of(self).failed()) {
        self->state.snapshot_due = true;
        settle(self);
      }
    },
    [=](tick_atom) {
      note_progress(self);
      settle(self);
      self->delayed_send(self, self->state.cfg.snapshot_every,
                         tick_atom::value);
    },
    [=](freeze_atom) -> caf::result<daemon_info> {
      return freeze(self);
    },
    [=](release_atom) -> caf::result<uint64_t> {
      return release(self);
    },
    [=](forward_atom, const caf::actor& target) -> caf::result<uint64_t> {
      return forward(self, target);
    },
    [=](activate_atom) -> caf::result<daemon_info> {
      return activate(self);
    },
    [=](replay_atom,
        const std::vector<log_entry>& entries) -> caf::result<uint64_t> {
      return replay(self, entries);
    },
  };
}

} // namespace

daemon_actor spawn_daemon_actor(caf::actor_system& sys,
                                daemon_actor_config cfg) {
  return sys.spawn(daemon_impl, std::move(cfg));
}

} // namespace mesh
