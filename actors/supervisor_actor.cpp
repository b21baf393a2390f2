#include "actors/supervisor_actor.hpp"

#include <functional>
#include <map>
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
#include "base/errc.hpp"
#include "identity/entity_id.hpp"
#include "persistence/node_store.hpp"

namespace mesh {

namespace {

enum class phase { registering, ready, shutting_down };

struct entry {
  /// Null when the daemon has no actor: its state could not be loaded, or
  /// its actor died. `info` then says why.
  daemon_actor actor;
  daemon_info info;
  /// A standby daemon's record, written when it is activated: until then
  /// it is a migration's copy, not a daemon of this node, and a crash
  /// discards it (start-up deletes its snapshot as an orphan and ignores
  /// its log entries). Null otherwise.
  std::function<caf::error()> pending_record;
};

struct supervisor_state {
  supervisor_config cfg;
  log_actor log;
  phase state = phase::registering;
  std::map<uint64_t, entry> table;
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
  return make_error(errc::daemon_failed, "daemon " + hex_u64(info.origin_hash)
                                           + " has failed: " + info.reason);
}

// Starts the actor for a built core and lists it.
daemon_info start_daemon(sup_ptr self, std::shared_ptr<daemon_core> core,
                         bool standby = false) {
  auto& st = self->state;
  auto origin = core->origin();
  daemon_actor_config dcfg;
  dcfg.core = core;
  dcfg.log = st.log;
  dcfg.store = st.cfg.store;
  dcfg.supervisor = caf::actor_cast<supervisor_actor>(self);
  dcfg.snapshot_every_events = st.cfg.snapshot_every_events;
  dcfg.snapshot_every = st.cfg.snapshot_every;
  dcfg.epoch = 1;
  dcfg.standby = standby;
  entry e;
  e.info.origin_hash = origin;
  e.info.id = core->identity().id();
  e.info.kind = core->kind();
  e.info.last_seq = core->last_seq();
  e.info.phase = core->failed() ? daemon_phase::failed
                 : standby      ? daemon_phase::standby
                                : daemon_phase::running;
  e.info.reason = core->failed() ? core->failure() : std::string{};
  e.info.epoch = 1;
  e.actor = spawn_daemon_actor(self->system(), std::move(dcfg));
  self->monitor(e.actor);
  auto info = e.info;
  st.table[origin] = std::move(e);
  return info;
}

caf::result<daemon_info> do_spawn(sup_ptr self, spawn_request_ptr req) {
  auto& st = self->state;
  if (auto err = refuse(st))
    return err;
  auto built = req->build();
  if (!built)
    return built.error();
  auto& core = **built;
  auto origin = core.origin();
  if (auto it = st.table.find(origin); it != st.table.end()) {
    bool same = it->second.info.id == core.identity().id();
    return make_error(errc::already_registered,
                      same ? "daemon " + hex_u64(origin) + " is already running"
                           : "another identity with origin hash "
                               + hex_u64(origin) + " is already running");
  }
  std::function<caf::error()> record;
  if (req->persist && st.cfg.store) {
    if (!req->initial_snapshot.empty())
      if (auto err = st.cfg.store->save_snapshot(origin, req->initial_snapshot))
        return err;
    if (req->standby)
      record = [store = st.cfg.store, origin, kind = core.kind(),
                key = std::make_shared<keypair>(core.identity().clone())] {
        return store->save_daemon(origin, kind, *key);
      };
    else if (auto err = st.cfg.store->save_daemon(origin, core.kind(),
                                                  core.identity()))
      return err;
  }
  auto info = start_daemon(self, std::move(*built), req->standby);
  st.table[origin].pending_record = std::move(record);
  spdlog::info("daemon spawned origin={} kind={}", hex_u64(origin), info.kind);
  return info;
}

// Stops one daemon: its actor (if any), its record and snapshot, its log
// entries' hold on compaction.
caf::result<bool> do_stop(sup_ptr self, uint64_t origin) {
  auto& st = self->state;
  auto it = st.table.find(origin);
  if (it == st.table.end())
    return no_daemon(origin);
  auto actor = it->second.actor;
  st.table.erase(it);
  auto rp = self->make_response_promise<bool>();
  auto finish = [self, rp, origin]() mutable {
    if (self->state.cfg.store)
      if (auto err = self->state.cfg.store->remove_daemon(origin)) {
        rp.deliver(err);
        return;
      }
    if (self->state.log)
      self->send(self->state.log, forget_atom::value, origin);
    spdlog::info("daemon stopped origin={}", hex_u64(origin));
    rp.deliver(true);
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

// A failed daemon without an actor: rebuilt from its snapshot and the log.
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
        auto& st = self->state;
        auto it = st.table.find(origin);
        if (it == st.table.end() || it->second.actor) {
          rp.deliver(no_daemon(origin));
          return;
        }
        auto core = st.cfg.rebuild(origin, es);
        if (!core) {
          rp.deliver(core.error());
          return;
        }
        if ((*core)->failed()) {
          // Its durable state shows a loss: the daemon runs in failed state,
          // and its own resume decides whether the loss is accepted.
          start_daemon(self, *core);
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
        rp.deliver(start_daemon(self, *core));
        spdlog::warn("daemon origin={} rebuilt from its snapshot and the log",
                     hex_u64(origin));
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

using final_snapshots = std::vector<std::pair<uint64_t, bytes>>;

// Writes the final snapshots of a shutdown on a thread of its own (they are
// blocking file writes; the log closes meanwhile) with one flush for all of
// them; answers with one "origin (reason)" per snapshot that failed.
caf::behavior snapshot_writer(caf::event_based_actor* self,
                              std::shared_ptr<node_store> store,
                              std::shared_ptr<final_snapshots> snaps) {
  return {
    [=](snapshot_atom) -> std::vector<std::string> {
      std::vector<std::string> failed;
      auto errs = store->save_snapshots(*snaps);
      for (size_t i = 0; i < errs.size(); ++i)
        if (errs[i]) {
          spdlog::error("final snapshot of daemon origin={} failed: {}",
                        hex_u64((*snaps)[i].first), describe(errs[i]));
          failed.push_back(hex_u64((*snaps)[i].first) + " (" + describe(errs[i])
                           + ")");
        }
      self->quit();
      return failed;
    },
  };
}

caf::result<bool> do_shutdown(sup_ptr self) {
  auto& st = self->state;
  st.state = phase::shutting_down;
  auto rp = self->make_response_promise<bool>();
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
    auto store = self->state.cfg.store;
    if (snaps->empty() || !store) {
      done();
      return;
    }
    auto writer = self->spawn<caf::detached>(snapshot_writer, store, snaps);
    self->request(writer, std::chrono::minutes{4}, snapshot_atom::value)
      .then(
        [done, failures](std::vector<std::string>& failed) mutable {
          failures->insert(failures->end(), failed.begin(), failed.end());
          done();
        },
        [done, failures](caf::error& err) mutable {
          failures->push_back("(snapshot writer: " + describe(err) + ")");
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
    return rp;
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
            snaps->emplace_back(o, std::move(encoded));
          stopped();
        },
        failed);
  }
  return rp;
}

supervisor_actor::behavior_type sup_impl(sup_ptr self, supervisor_config cfg) {
  self->state.cfg = std::move(cfg);
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
      if (st.state == phase::registering)
        st.log = std::move(log);
      st.state = phase::ready;
      return true;
    },
    [=](spawn_atom, spawn_request_ptr req) -> caf::result<daemon_info> {
      return do_spawn(self, std::move(req));
    },
    [=](broken_atom, daemon_info& info) {
      auto& st = self->state;
      if (st.state == phase::shutting_down || st.table.count(info.origin_hash))
        return;
      info.phase = daemon_phase::failed;
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
      if (e.pending_record && e.info.phase == daemon_phase::standby) {
        if (auto err = e.pending_record())
          return err;
        e.pending_record = nullptr;
      }
      return self->delegate(*h, a);
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
