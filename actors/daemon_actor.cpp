#include "actors/daemon_actor.hpp"

#include <caf/actor_system.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/stateful_actor.hpp>
#include <caf/typed_event_based_actor.hpp>
#include <caf/typed_response_promise.hpp>
#include <spdlog/spdlog.h>

#include "actors/daemon_core.hpp"
#include "base/errc.hpp"
#include "persistence/segment.hpp"
#include "snapshot/snapshot.hpp"

namespace mesh {

namespace {

struct daemon_state {
  daemon_actor_config cfg;
  uint64_t since_snapshot = 0;
  std::chrono::steady_clock::time_point last_snapshot = std::chrono::
    steady_clock::now();
  bool log_failed = false;
  static inline const char* name = "mesh.daemon";
};

using daemon_ptr = daemon_actor::stateful_pointer<daemon_state>;

caf::expected<bytes> take_snapshot(daemon_ptr self) {
  auto& st = self->state;
  auto& core = *st.cfg.core;
  auto snap = core.take_snapshot(snapshot_kind::local, unix_now_ns());
  auto encoded = encode_snapshot(snap, core.identity());
  if (!encoded)
    return encoded.error();
  if (st.cfg.store) {
    if (auto err = st.cfg.store->save_snapshot(core.origin(), *encoded))
      return err;
    if (st.cfg.log)
      self->send(st.cfg.log, snapped_atom::value, core.origin(),
                 snap.through_seq);
  }
  st.since_snapshot = 0;
  st.last_snapshot = std::chrono::steady_clock::now();
  return encoded;
}

// An automatic snapshot. Without a node_store nothing would keep an encoded
// snapshot, so only the rebuild base moves (which bounds the journal).
caf::error auto_snapshot(daemon_ptr self) {
  auto& st = self->state;
  if (st.cfg.store) {
    if (auto r = take_snapshot(self); !r)
      return std::move(r.error());
    return {};
  }
  st.cfg.core->rebase();
  st.since_snapshot = 0;
  st.last_snapshot = std::chrono::steady_clock::now();
  return {};
}

void maybe_snapshot(daemon_ptr self) {
  auto& st = self->state;
  auto& core = *st.cfg.core;
  if (core.failed() || st.log_failed)
    return;
  bool due = core.journal_size() >= daemon_core::journal_limit
             || (st.cfg.snapshot_every_events > 0
                 && st.since_snapshot >= st.cfg.snapshot_every_events)
             || (st.cfg.snapshot_every.count() > 0 && st.since_snapshot > 0
                 && std::chrono::steady_clock::now() - st.last_snapshot
                      >= st.cfg.snapshot_every);
  if (!due)
    return;
  if (auto err = auto_snapshot(self))
    spdlog::warn("auto-snapshot of daemon origin={} failed: {}",
                 hex_u64(core.origin()), describe(err));
}

daemon_info make_info(daemon_ptr self) {
  auto& core = *self->state.cfg.core;
  daemon_info info;
  info.origin_hash = core.origin();
  info.id = core.identity().id();
  info.kind = core.kind();
  info.last_seq = core.last_seq();
  info.state = (core.failed() || self->state.log_failed) ? "failed" : "running";
  info.epoch = self->state.cfg.epoch;
  return info;
}

/// Applies `evs` and hands the answers to `reply` (called once, with a
/// delivery_batch or an error), after their log append when there is a log.
template<class Reply>
void deliver(daemon_ptr self, const event_batch& evs, Reply reply) {
  auto& st = self->state;
  auto& core = *st.cfg.core;
  if (st.log_failed) {
    reply(make_error(errc::io_error,
                     "daemon " + hex_u64(core.origin())
                       + " stopped accepting input after a failed log write; "
                         "restart the node to recover it"));
    return;
  }
  if (!evs.well_formed()) {
    reply(make_error(errc::corrupt_data,
                     "event batch with a payload outside its buffer"));
    return;
  }
  bool was_failed = core.failed();
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
  uint64_t recorded = 0;
  auto now = unix_now_ns();
  for (size_t i = 0; i < evs.size(); ++i)
    if (core.apply(evs[i], now, out, entries))
      ++recorded;
  st.since_snapshot += recorded;
  if (!was_failed && core.failed()) {
    spdlog::error("daemon origin={} kind={} failed: {}", hex_u64(core.origin()),
                  core.kind(), core.failure());
    if (st.cfg.supervisor)
      self->send(st.cfg.supervisor, failed_atom::value, core.origin(),
                 core.failure());
  }
  if (entries.empty() || !st.cfg.log) {
    reply(std::move(out));
    maybe_snapshot(self);
    return;
  }
  // The answers (and with them the outputs) leave only once the log append
  // is durable under the policy.
  self
    ->request(st.cfg.log, caf::infinite, append_atom::value, std::move(entries))
    .then(
      [self, reply, out = std::move(out)](uint64_t) mutable {
        reply(std::move(out));
        maybe_snapshot(self);
      },
      [self, reply](caf::error& err) mutable {
        self->state.log_failed = true;
        spdlog::error("daemon origin={} failed: log write: {}",
                      hex_u64(self->state.cfg.core->origin()), describe(err));
        reply(make_error(errc::io_error,
                         "event log write failed: " + describe(err)));
      });
}

daemon_actor::behavior_type daemon_impl(daemon_ptr self,
                                        daemon_actor_config cfg) {
  self->state.cfg = std::move(cfg);
  // Log entries are built only when there is a log to write them to.
  self->state.cfg.core->set_logging(static_cast<bool>(self->state.cfg.log));
  if (self->state.cfg.snapshot_every.count() > 0)
    self->delayed_send(self, self->state.cfg.snapshot_every, tick_atom::value);
  return {
    [=](deliver_atom, const event_batch& evs) -> caf::result<delivery_batch> {
      auto rp = self->make_response_promise<delivery_batch>();
      deliver(self, evs, [rp](auto&& answer) mutable {
        rp.deliver(std::forward<decltype(answer)>(answer));
      });
      return rp;
    },
    [=](deliver_atom, const event_batch& evs,
        const delivery_promise_ptr& promise) {
      // From here on the events may be applied: if this actor stops before
      // it answers, the caller must not resend them blindly.
      promise->accept();
      deliver(self, evs, [promise](auto&& answer) {
        promise->deliver(std::forward<decltype(answer)>(answer));
      });
    },
    [=](hwm_atom, uint64_t producer) -> uint64_t {
      return self->state.cfg.core->high_water_mark(producer);
    },
    [=](stats_atom) -> daemon_stats {
      return self->state.cfg.core->stats();
    },
    [=](info_atom) -> daemon_info {
      return make_info(self);
    },
    [=](snapshot_atom) -> caf::result<bytes> {
      if (self->state.log_failed)
        return make_error(errc::io_error, "daemon's log write failed");
      auto r = take_snapshot(self);
      if (!r)
        return r.error();
      return std::move(*r);
    },
    [=](stop_atom, bool final_snapshot) -> caf::result<bool> {
      bool ok = true;
      if (final_snapshot && !self->state.log_failed) {
        if (auto r = take_snapshot(self); !r) {
          ok = false;
          spdlog::warn("final snapshot of daemon origin={} failed: {}",
                       hex_u64(self->state.cfg.core->origin()),
                       describe(r.error()));
        }
      }
      // Answer first: a reply returned after quit() is not sent.
      auto rp = self->make_response_promise<bool>();
      rp.deliver(ok);
      self->quit();
      return rp;
    },
    [=](tick_atom) {
      maybe_snapshot(self);
      self->delayed_send(self, self->state.cfg.snapshot_every,
                         tick_atom::value);
    },
  };
}

} // namespace

daemon_actor spawn_daemon_actor(caf::actor_system& sys,
                                daemon_actor_config cfg) {
  return sys.spawn(daemon_impl, std::move(cfg));
}

} // namespace mesh
