#include "actors/supervisor_actor.hpp"

#include <algorithm>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <utility>
#include <vector>

#include <caf/actor_system.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/stateful_actor.hpp>
#include <caf/typed_event_based_actor.hpp>
#include <caf/typed_response_promise.hpp>
#include <spdlog/spdlog.h>

#include "actors/daemon_actor.hpp"
#include "actors/daemon_core.hpp"
#include "actors/store_actor.hpp"
#include "base/errc.hpp"
#include "identity/entity_id.hpp"

namespace mesh {

namespace {

enum class phase { registering, ready, shutting_down };

struct entry {
  /// Null when the daemon has no actor: its state could not be loaded, or
  /// its actor died. `info` then says why.
  daemon_actor actor;
  daemon_info info;
  /// A standby daemon whose record is written when it is activated: until
  /// then it is a migration's copy, not a daemon of this node, and a crash
  /// discards it (start-up deletes its snapshot as an orphan and ignores
  /// its log entries). Null otherwise.
  std::shared_ptr<daemon_core> pending_record;
};

struct supervisor_state {
  supervisor_config cfg;
  log_actor log;
  phase state = phase::registering;
  std::map<uint64_t, entry> table;
  /// Per origin, the highest epoch this supervisor has seen (spawned,
  /// recovered, stopped). With a store, the record or tombstone on disk
  /// counts too (the store actor adds it when it writes a new record).
  std::map<uint64_t, uint64_t> epochs;
  /// Runs builds, record writes and removals, the shutdown batch.
  store_actor store;
  /// Spawns and stops accepted and not finished yet (their jobs on the
  /// store actor's thread run). A shutdown waits for them: a spawn then
  /// either runs (and is stopped by the shutdown) or failed, and a stop has
  /// removed its record before the store actor closes.
  size_t busy = 0;
  /// Origins of spawns whose record is being written: a second spawn of
  /// the same identity is refused meanwhile.
  std::set<uint64_t> starting;
  /// A shutdown waiting for the spawns in flight.
  std::optional<caf::typed_response_promise<bool>> deferred_shutdown;
  static inline const char* name = "mesh.supervisor";
};

using sup_ptr = supervisor_actor::stateful_pointer<supervisor_state>;

caf::error refuse(const supervisor_state& st) {
  switch (st.state) {
    case phase::registering:
      return make_error(errc::not_ready, "the runtime has not been started");
    case phase::shutting_down:
      return make_error(errc::shutting_down, "the runtime is shutting down");
    case phase::ready: return {};
  }
  return {};
}

caf::error no_daemon(uint64_t origin) {
  return make_error(errc::daemon_not_found,
                    "no daemon " + hex_u64(origin) + " on this node");
}

caf::error failed_error(const daemon_info& info) {
  return daemon_failed_error(info.origin_hash, info.reason);
}

// Starts the actor for a built core and lists it.
daemon_info start_daemon(sup_ptr self, std::shared_ptr<daemon_core> core,
                         bool standby = false) {
  auto& st = self->state;
  auto origin = core->origin();
  daemon_actor_config dcfg;
  dcfg.core = core;
  dcfg.log = st.log;
  dcfg.store = st.store;
  dcfg.durable = st.cfg.store != nullptr;
  dcfg.supervisor = caf::actor_cast<supervisor_actor>(self);
  dcfg.snapshot_every_events = st.cfg.snapshot_every_events;
  dcfg.snapshot_every = st.cfg.snapshot_every;
  dcfg.standby = standby;
  auto& known = st.epochs[origin];
  known = std::max(known, core->epoch());
  entry e;
  e.info.origin_hash = origin;
  e.info.id = core->identity().id();
  e.info.kind = core->kind();
  e.info.last_seq = core->last_seq();
  e.info.phase = core->failed() ? daemon_phase::failed
                 : standby      ? daemon_phase::standby
                                : daemon_phase::running;
  e.info.reason = core->failed() ? core->failure() : std::string{};
  e.info.epoch = core->epoch();
  e.actor = spawn_daemon_actor(self->system(), std::move(dcfg));
  self->monitor(e.actor);
  auto info = e.info;
  st.table[origin] = std::move(e);
  return info;
}

// The highest epoch of `origin` this supervisor knows in memory; the store
// actor adds what the disk knows (a record or a tombstone) when it writes
// the new life's record.
uint64_t known_epoch(const supervisor_state& st, uint64_t origin) {
  auto it = st.epochs.find(origin);
  return it == st.epochs.end() ? 0 : it->second;
}

void begin_shutdown(sup_ptr self, caf::typed_response_promise<bool> rp);

// One spawn or stop finished: a shutdown waiting for it goes on.
void op_finished(sup_ptr self) {
  auto& st = self->state;
  if (--st.busy > 0 || !st.deferred_shutdown)
    return;
  auto rp = std::move(*st.deferred_shutdown);
  st.deferred_shutdown.reset();
  begin_shutdown(self, std::move(rp));
}

using spawn_reply = std::function<void(caf::expected<daemon_info>)>;

// A built core: refused when its identity runs (or is being recorded),
// otherwise recorded (on the store actor's thread) when `persist` and
// started. The first daemon of an identity is left untouched.
void admit(sup_ptr self, std::shared_ptr<daemon_core> core,
           bytes initial_snapshot, bool persist, bool standby,
           spawn_reply reply) {
  auto& st = self->state;
  auto origin = core->origin();
  if (auto it = st.table.find(origin);
      it != st.table.end() || st.starting.count(origin) > 0) {
    bool same = it != st.table.end()
                && it->second.info.id == core->identity().id();
    reply(make_error(errc::already_registered,
                     same ? "daemon " + hex_u64(origin) + " is already running"
                          : "another identity with origin hash "
                              + hex_u64(origin) + " is already running"));
    return;
  }
  auto start = [self, core, reply, origin, standby]() {
    auto info = start_daemon(self, core, standby);
    if (standby && self->state.cfg.store)
      self->state.table[origin].pending_record = core;
    spdlog::info("daemon spawned origin={} kind={}{}", hex_u64(origin),
                 info.kind, standby ? " (standby)" : "");
    reply(std::move(info));
  };
  if (!persist) {
    // Recovered: the core has the epoch of its record.
    start();
    return;
  }
  if (!st.cfg.store) {
    core->set_epoch(known_epoch(st, origin) + 1);
    start();
    return;
  }
  // A new life: the store actor picks its epoch (one above the highest
  // known in memory or on disk), stamps the initial snapshot with it and
  // writes the record (a standby daemon's only when it is activated).
  st.starting.insert(origin);
  self
    ->request(st.store, caf::infinite, save_atom::value, core_lease{core},
              std::move(initial_snapshot), known_epoch(st, origin), !standby)
    .then(
      [self, start, origin](uint64_t) {
        self->state.starting.erase(origin);
        start();
      },
      [self, reply, origin](caf::error& err) {
        self->state.starting.erase(origin);
        reply(std::move(err));
      });
}

// The factory and restore run on the store actor's thread; the daemon is
// listed once it is built and recorded.
caf::result<daemon_info> do_spawn(sup_ptr self, spawn_spec& spec) {
  auto& st = self->state;
  if (auto err = refuse(st))
    return err;
  if (!st.cfg.registry)
    return make_error(errc::factory_not_found, "no factory registry");
  auto rp = self->make_response_promise<daemon_info>();
  ++st.busy;
  spawn_reply reply = [self, rp](caf::expected<daemon_info> r) mutable {
    if (r)
      rp.deliver(std::move(*r));
    else
      rp.deliver(std::move(r.error()));
    op_finished(self);
  };
  // The spec's snapshot travels on to admit(); the build reads it first.
  auto initial = std::make_shared<bytes>(spec.initial_snapshot);
  bool standby = (spec.flags & spawn_flags::standby) != 0;
  self->request(st.store, caf::infinite, build_atom::value, std::move(spec))
    .then(
      [self, initial, standby, reply](core_lease& built) {
        admit(self, std::move(built.core), std::move(*initial), true, standby,
              reply);
      },
      [reply](caf::error& err) {
        reply(std::move(err));
      });
  return rp;
}

// Runs the daemons the runtime recovered before start (their records exist).
void adopt_recovered(sup_ptr self) {
  auto& rec = self->state.cfg.recovered;
  if (!rec)
    return;
  std::vector<std::shared_ptr<daemon_core>> cores;
  {
    std::lock_guard<std::mutex> guard{rec->mtx};
    cores = std::move(rec->cores);
    rec->cores.clear();
  }
  for (auto& core : cores) {
    auto origin = core->origin();
    admit(self, std::move(core), bytes{}, false, false,
          [origin](caf::expected<daemon_info> info) {
            if (!info)
              spdlog::error("recovered daemon origin={} could not start: {}",
                            hex_u64(origin), describe(info.error()));
          });
  }
}

// Stops one daemon: its actor (if any), its record (a tombstone of its epoch
// replaces it) and snapshot, its log entries' hold on compaction. Only the
// stopped life is touched: a new life spawned while the actor stopped has a
// higher epoch, and its record, snapshot and log entries stay.
caf::result<bool> do_stop(sup_ptr self, uint64_t origin) {
  auto& st = self->state;
  auto it = st.table.find(origin);
  if (it == st.table.end())
    return no_daemon(origin);
  auto actor = it->second.actor;
  auto epoch = it->second.info.epoch;
  st.table.erase(it);
  auto rp = self->make_response_promise<bool>();
  ++st.busy;
  auto finish = [self, rp, origin, epoch]() mutable {
    self
      ->request(self->state.store, caf::infinite, forget_atom::value, origin,
                epoch)
      .then(
        [self, rp, origin, epoch](bool retired) mutable {
          if (!retired)
            spdlog::info("daemon origin={} epoch={}: a newer life was spawned "
                         "meanwhile; its record stays",
                         hex_u64(origin), epoch);
          if (self->state.log)
            self->send(self->state.log, forget_atom::value, origin, epoch);
          spdlog::info("daemon stopped origin={} epoch={}", hex_u64(origin),
                       epoch);
          rp.deliver(true);
          op_finished(self);
        },
        [self, rp](caf::error& err) mutable {
          rp.deliver(err);
          op_finished(self);
        });
  };
  if (!actor) {
    finish();
    return rp;
  }
  self->demonitor(actor.address());
  self->request(actor, std::chrono::seconds{30}, stop_atom::value, false)
    .then(
      [finish](bool) mutable {
        finish();
      },
      [finish](caf::error&) mutable {
        finish();
      });
  return rp;
}

// Starts a rebuilt core for `origin`, unless the daemon was stopped or
// started again meanwhile, or the node is shutting down.
void start_rebuilt(sup_ptr self, caf::typed_response_promise<daemon_info> rp,
                   uint64_t origin, bool accept_loss,
                   std::shared_ptr<daemon_core> core) {
  auto& st = self->state;
  if (auto err = refuse(st)) {
    rp.deliver(err);
    return;
  }
  auto it = st.table.find(origin);
  if (it == st.table.end() || it->second.actor) {
    rp.deliver(no_daemon(origin));
    return;
  }
  if (core->failed()) {
    // Its durable state shows a loss: the daemon runs in failed state,
    // and its own resume decides whether the loss is accepted.
    start_daemon(self, core);
    self
      ->request(st.table[origin].actor, std::chrono::minutes{1},
                resume_atom::value, accept_loss)
      .then(
        [rp](daemon_info& i) mutable {
          rp.deliver(std::move(i));
        },
        [rp](caf::error& err) mutable {
          rp.deliver(err);
        });
    return;
  }
  rp.deliver(start_daemon(self, core));
  spdlog::warn("daemon origin={} rebuilt from its snapshot and the log",
               hex_u64(origin));
}

// A failed daemon without an actor: rebuilt from its snapshot and the log,
// on the store actor's thread.
caf::result<daemon_info> rebuild_daemon(sup_ptr self, uint64_t origin,
                                        bool accept_loss) {
  auto& st = self->state;
  if (!st.cfg.rebuild || !st.log)
    return failed_error(st.table[origin].info);
  auto rp = self->make_response_promise<daemon_info>();
  self
    ->request(st.log, std::chrono::minutes{5}, read_atom::value, origin,
              uint64_t{0})
    .then(
      [self, rp, origin, accept_loss](std::vector<log_entry>& es) mutable {
        self
          ->request(self->state.store, caf::infinite, rebuild_atom::value,
                    origin, std::move(es))
          .then(
            [self, rp, origin, accept_loss](core_lease& built) mutable {
              start_rebuilt(self, rp, origin, accept_loss,
                            std::move(built.core));
            },
            [rp](caf::error& err) mutable {
              rp.deliver(err);
            });
      },
      [rp](caf::error& err) mutable {
        rp.deliver(err);
      });
  return rp;
}

caf::result<daemon_info> do_resume(sup_ptr self, uint64_t origin,
                                   bool accept_loss) {
  auto& st = self->state;
  if (auto err = refuse(st))
    return err;
  auto it = st.table.find(origin);
  if (it == st.table.end())
    return no_daemon(origin);
  if (!it->second.actor)
    return rebuild_daemon(self, origin, accept_loss);
  auto rp = self->make_response_promise<daemon_info>();
  self
    ->request(it->second.actor, std::chrono::minutes{1}, resume_atom::value,
              accept_loss)
    .then(
      [self, rp, origin](daemon_info& info) mutable {
        if (auto e = self->state.table.find(origin);
            e != self->state.table.end())
          e->second.info = info;
        rp.deliver(std::move(info));
      },
      [rp](caf::error& err) mutable {
        rp.deliver(err);
      });
  return rp;
}

// -- phases -------------------------------------------------------------------

// The actor of a listed daemon, for the phase requests it answers itself.
caf::expected<daemon_actor> actor_of(sup_ptr self, uint64_t origin) {
  auto& st = self->state;
  if (auto err = refuse(st))
    return err;
  auto it = st.table.find(origin);
  if (it == st.table.end())
    return no_daemon(origin);
  if (!it->second.actor)
    return failed_error(it->second.info);
  return it->second.actor;
}

// A daemon actor changed phase: its table entry follows, unless the sender
// is not (or no longer) the actor listed for that origin.
void note_phase(sup_ptr self, const daemon_info& info) {
  auto it = self->state.table.find(info.origin_hash);
  if (it == self->state.table.end() || !it->second.actor
      || it->second.actor.address() != self->current_sender())
    return;
  it->second.info.phase = info.phase;
  it->second.info.reason = info.reason;
  it->second.info.last_seq = info.last_seq;
}

// Stops every daemon (each hands over its final snapshot), then writes the
// snapshots with one flush on the store actor's thread and closes the log.
void begin_shutdown(sup_ptr self, caf::typed_response_promise<bool> rp) {
  auto& st = self->state;
  // Origins whose final snapshot failed, with the reason.
  auto failures = std::make_shared<std::vector<std::string>>();
  // What the daemons handed over, written together once all have stopped.
  auto snaps = std::make_shared<final_snapshots>();
  // Once every daemon stopped: writes their snapshots and closes the log, the
  // two at once. Both the log and the supervisor quit once done: pending
  // request timeouts would otherwise keep them counted as running and delay
  // the actor system's own shutdown.
  auto finish = [self, rp, failures, snaps]() mutable {
    auto left = std::make_shared<int>(2);
    auto log_err = std::make_shared<caf::error>();
    auto done = [self, rp, failures, left, log_err]() mutable {
      if (--*left > 0)
        return;
      if (!failures->empty()) {
        std::string what = "final snapshot failed for "
                           + std::to_string(failures->size()) + " daemon(s):";
        for (auto& f : *failures)
          what += " " + f + ";";
        what.pop_back();
        rp.deliver(make_error(errc::io_error, std::move(what)));
      } else if (*log_err) {
        rp.deliver(*log_err);
      } else {
        rp.deliver(true);
      }
      self->quit();
    };
    if (!self->state.log) {
      done();
    } else {
      self
        ->request(self->state.log, std::chrono::seconds{60}, close_atom::value)
        .then(
          [done](bool) mutable {
            done();
          },
          [done, log_err](caf::error& err) mutable {
            *log_err = std::move(err);
            done();
          });
    }
    // The store actor quits after this last job.
    self
      ->request(self->state.store, std::chrono::minutes{4}, close_atom::value,
                std::move(*snaps))
      .then(
        [done, failures](std::vector<std::string>& failed) mutable {
          failures->insert(failures->end(), failed.begin(), failed.end());
          done();
        },
        [done, failures](caf::error& err) mutable {
          failures->push_back("(store actor: " + describe(err) + ")");
          done();
        });
  };
  auto table = std::move(st.table);
  st.table.clear();
  auto remaining = std::make_shared<size_t>(0);
  for (auto& [origin, e] : table)
    if (e.actor)
      ++*remaining;
  if (*remaining == 0) {
    finish();
    return;
  }
  auto stopped = [remaining, finish]() mutable {
    if (--*remaining == 0)
      finish();
  };
  for (auto& [origin, e] : table) {
    if (!e.actor)
      continue;
    self->demonitor(e.actor.address());
    auto o = origin;
    auto failed = [stopped, failures, o](caf::error& err) mutable {
      failures->push_back(hex_u64(o) + " (" + describe(err) + ")");
      stopped();
    };
    if (!st.cfg.snapshot_on_shutdown || !st.cfg.store) {
      self->request(e.actor, std::chrono::seconds{60}, stop_atom::value, false)
        .then(
          [stopped](bool) mutable {
            stopped();
          },
          failed);
      continue;
    }
    self
      ->request(e.actor, std::chrono::seconds{60}, stop_atom::value,
                snapshot_atom::value)
      .then(
        [stopped, snaps, o](bytes& encoded) mutable {
          if (!encoded.empty())
            snaps->items.emplace_back(o, std::move(encoded));
          stopped();
        },
        failed);
  }
}

caf::result<bool> do_shutdown(sup_ptr self) {
  auto& st = self->state;
  if (st.deferred_shutdown)
    return make_error(errc::shutting_down, "already shutting down");
  st.state = phase::shutting_down;
  auto rp = self->make_response_promise<bool>();
  // Spawns and stops accepted before the shutdown finish first: the
  // shutdown stops the spawned daemons too.
  if (st.busy > 0)
    st.deferred_shutdown = rp;
  else
    begin_shutdown(self, rp);
  return rp;
}

supervisor_actor::behavior_type sup_impl(sup_ptr self, supervisor_config cfg) {
  self->state.cfg = std::move(cfg);
  store_actor_config scfg;
  scfg.store = self->state.cfg.store;
  scfg.rebuild = self->state.cfg.rebuild;
  scfg.registry = self->state.cfg.registry;
  scfg.restart = self->state.cfg.restart;
  self->state.store = spawn_store_actor(self->system(), std::move(scfg));
  // Linked: should either die abnormally, the other goes with it (a node
  // without its store can make nothing durable). A shutdown closes it.
  self->link_to(self->state.store);
  // Nothing but shutdown ends the supervisor: a stray message is logged and
  // dropped (the sender of a request gets unexpected_message).
  self->set_default_handler(
    [](caf::scheduled_actor*,
       caf::message_view& x) -> caf::result<caf::message> {
      spdlog::warn("supervisor dropped an unexpected message: {}",
                   caf::to_string(x.copy_content_to_message()));
      return caf::sec::unexpected_message;
    });
  self->set_down_handler([self](caf::down_msg& dm) {
    for (auto& [origin, e] : self->state.table) {
      if (e.actor && e.actor.address() == dm.source) {
        e.actor = daemon_actor{};
        e.info.phase = daemon_phase::failed;
        e.info.reason = "daemon actor terminated: " + caf::to_string(dm.reason);
        spdlog::error("daemon origin={} kind={}: {}; meshctl resume rebuilds "
                      "it from its snapshot and the event log",
                      hex_u64(origin), e.info.kind, e.info.reason);
        return;
      }
    }
  });
  return {
    [=](start_atom, log_actor log) -> caf::result<bool> {
      auto& st = self->state;
      if (st.state == phase::shutting_down)
        return make_error(errc::shutting_down, "the runtime was shut down");
      if (st.state == phase::registering) {
        st.log = std::move(log);
        st.state = phase::ready;
        adopt_recovered(self);
      }
      return true;
    },
    [=](spawn_atom, spawn_spec& spec) -> caf::result<daemon_info> {
      return do_spawn(self, spec);
    },
    [=](broken_atom, daemon_info& info) {
      auto& st = self->state;
      if (st.state == phase::shutting_down || st.table.count(info.origin_hash))
        return;
      info.phase = daemon_phase::failed;
      auto& known = st.epochs[info.origin_hash];
      known = std::max(known, info.epoch);
      st.table[info.origin_hash] = entry{daemon_actor{}, std::move(info)};
    },
    [=](lookup_atom, uint64_t origin) -> caf::result<daemon_actor> {
      auto& st = self->state;
      auto it = st.table.find(origin);
      if (it == st.table.end())
        return no_daemon(origin);
      if (!it->second.actor)
        return failed_error(it->second.info);
      if (it->second.info.phase == daemon_phase::standby)
        return make_error(errc::wrong_phase,
                          "daemon " + hex_u64(origin)
                            + " is in standby: not routable until activated");
      return it->second.actor;
    },
    [=](list_atom) -> caf::result<std::vector<daemon_info>> {
      auto& st = self->state;
      auto rp = self->make_response_promise<std::vector<daemon_info>>();
      auto acc = std::make_shared<std::vector<daemon_info>>();
      auto remaining = std::make_shared<size_t>(0);
      for (auto& [origin, e] : st.table) {
        if (e.actor)
          ++*remaining;
        else
          acc->push_back(e.info);
      }
      if (*remaining == 0) {
        rp.deliver(std::move(*acc));
        return rp;
      }
      for (auto& [origin, e] : st.table) {
        if (!e.actor)
          continue;
        auto fallback = e.info;
        self->request(e.actor, std::chrono::seconds{10}, info_atom::value)
          .then(
            [=](daemon_info& info) mutable {
              acc->push_back(std::move(info));
              if (--*remaining == 0)
                rp.deliver(std::move(*acc));
            },
            [=](caf::error&) mutable {
              acc->push_back(fallback);
              if (--*remaining == 0)
                rp.deliver(std::move(*acc));
            });
      }
      return rp;
    },
    [=](stop_atom, uint64_t origin) -> caf::result<bool> {
      return do_stop(self, origin);
    },
    [=](resume_atom, uint64_t origin,
        bool accept_loss) -> caf::result<daemon_info> {
      return do_resume(self, origin, accept_loss);
    },
    [=](failed_atom, uint64_t origin, const std::string& why) {
      auto it = self->state.table.find(origin);
      if (it != self->state.table.end()) {
        it->second.info.phase = daemon_phase::failed;
        it->second.info.reason = why;
      }
    },
    [=](shutdown_atom) -> caf::result<bool> {
      return do_shutdown(self);
    },
    [=](freeze_atom a, uint64_t origin) -> caf::result<daemon_info> {
      auto h = actor_of(self, origin);
      if (!h)
        return h.error();
      return self->delegate(*h, a);
    },
    [=](release_atom a, uint64_t origin) -> caf::result<uint64_t> {
      auto h = actor_of(self, origin);
      if (!h)
        return h.error();
      return self->delegate(*h, a);
    },
    [=](forward_atom a, uint64_t origin,
        const daemon_actor& target) -> caf::result<uint64_t> {
      auto h = actor_of(self, origin);
      if (!h)
        return h.error();
      return self->delegate(*h, a, caf::actor_cast<caf::actor>(target));
    },
    [=](activate_atom a, uint64_t origin) -> caf::result<daemon_info> {
      auto h = actor_of(self, origin);
      if (!h)
        return h.error();
      auto& e = self->state.table[origin];
      if (!e.pending_record || e.info.phase != daemon_phase::standby)
        return self->delegate(*h, a);
      // The record first (on the store actor's thread): an activated
      // daemon is one of this node's and must come back after a crash.
      auto core = std::move(e.pending_record);
      auto rp = self->make_response_promise<daemon_info>();
      self
        ->request(self->state.store, caf::infinite, record_atom::value,
                  core_lease{core})
        .then(
          [self, rp, h = *h, a](bool) mutable {
            self->request(h, caf::infinite, a)
              .then(
                [rp](daemon_info& info) mutable {
                  rp.deliver(info);
                },
                [rp](caf::error& err) mutable {
                  rp.deliver(err);
                });
          },
          [self, rp, origin, core](caf::error& err) mutable {
            // Still in standby: a later activate tries the record again.
            if (auto it = self->state.table.find(origin);
                it != self->state.table.end())
              it->second.pending_record = core;
            rp.deliver(err);
          });
      return rp;
    },
    [=](replay_atom a, uint64_t origin,
        std::vector<log_entry>& entries) -> caf::result<uint64_t> {
      auto h = actor_of(self, origin);
      if (!h)
        return h.error();
      return self->delegate(*h, a, std::move(entries));
    },
    [=](phase_atom, const daemon_info& info) {
      note_phase(self, info);
    },
  };
}

} // namespace

supervisor_actor spawn_supervisor(caf::actor_system& sys,
                                  supervisor_config cfg) {
  return sys.spawn(sup_impl, std::move(cfg));
}

} // namespace mesh
