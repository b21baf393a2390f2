#include "actors/supervisor_actor.hpp"

#include <map>

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

namespace mesh {

namespace {

enum class phase { registering, ready, shutting_down };

struct entry {
  daemon_actor actor;
  daemon_info info;
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
  if (req->persist && st.cfg.store) {
    if (!req->initial_snapshot.empty())
      if (auto err = st.cfg.store->save_snapshot(origin, req->initial_snapshot))
        return err;
    if (auto err = st.cfg.store->save_daemon(origin, core.kind(),
                                             core.identity()))
      return err;
  }
  daemon_actor_config dcfg;
  dcfg.core = *built;
  dcfg.log = st.log;
  dcfg.store = st.cfg.store;
  dcfg.supervisor = caf::actor_cast<supervisor_actor>(self);
  dcfg.snapshot_every_events = st.cfg.snapshot_every_events;
  dcfg.snapshot_every = st.cfg.snapshot_every;
  dcfg.epoch = 1;
  entry e;
  e.info.origin_hash = origin;
  e.info.id = core.identity().id();
  e.info.kind = core.kind();
  e.info.last_seq = core.last_seq();
  e.info.state = core.failed() ? "failed" : "running";
  e.info.epoch = 1;
  e.actor = spawn_daemon_actor(self->system(), std::move(dcfg));
  auto info = e.info;
  st.table.emplace(origin, std::move(e));
  spdlog::info("daemon spawned origin={} kind={}", hex_u64(origin), info.kind);
  return info;
}

supervisor_actor::behavior_type sup_impl(sup_ptr self, supervisor_config cfg) {
  self->state.cfg = std::move(cfg);
  self->set_default_handler(caf::reflect_and_quit);
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
    [=](lookup_atom, uint64_t origin) -> caf::result<daemon_actor> {
      auto& st = self->state;
      auto it = st.table.find(origin);
      if (it == st.table.end())
        return make_error(errc::daemon_not_found,
                          "no daemon " + hex_u64(origin) + " on this node");
      return it->second.actor;
    },
    [=](list_atom) -> caf::result<std::vector<daemon_info>> {
      auto& st = self->state;
      auto rp = self->make_response_promise<std::vector<daemon_info>>();
      if (st.table.empty()) {
        rp.deliver(std::vector<daemon_info>{});
        return rp;
      }
      auto acc = std::make_shared<std::vector<daemon_info>>();
      auto remaining = std::make_shared<size_t>(st.table.size());
      for (auto& [origin, e] : st.table) {
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
      auto& st = self->state;
      auto it = st.table.find(origin);
      if (it == st.table.end())
        return make_error(errc::daemon_not_found,
                          "no daemon " + hex_u64(origin) + " on this node");
      auto actor = it->second.actor;
      st.table.erase(it);
      auto rp = self->make_response_promise<bool>();
      auto finish = [=]() mutable {
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
      self->request(actor, std::chrono::seconds{30}, stop_atom::value, false)
        .then(
          [=](bool) mutable {
            finish();
          },
          [=](caf::error&) mutable {
            finish();
          });
      return rp;
    },
    [=](failed_atom, uint64_t origin, const std::string& why) {
      auto it = self->state.table.find(origin);
      if (it != self->state.table.end())
        it->second.info.state = "failed";
      spdlog::warn("daemon failed origin={}: {}", hex_u64(origin), why);
    },
    [=](shutdown_atom) -> caf::result<bool> {
      auto& st = self->state;
      st.state = phase::shutting_down;
      auto rp = self->make_response_promise<bool>();
      // Both the log and the supervisor quit once done: pending request
      // timeouts would otherwise keep them counted as running and delay the
      // actor system's own shutdown.
      auto close_log = [=]() mutable {
        if (!self->state.log) {
          rp.deliver(true);
          self->quit();
          return;
        }
        self
          ->request(self->state.log, std::chrono::seconds{60},
                    close_atom::value)
          .then(
            [=](bool) mutable {
              rp.deliver(true);
              self->quit();
            },
            [=](caf::error& err) mutable {
              rp.deliver(err);
              self->quit();
            });
      };
      if (st.table.empty()) {
        close_log();
        return rp;
      }
      auto remaining = std::make_shared<size_t>(st.table.size());
      auto table = std::move(st.table);
      st.table.clear();
      for (auto& [origin, e] : table) {
        self
          ->request(e.actor, std::chrono::seconds{60}, stop_atom::value,
                    self->state.cfg.snapshot_on_shutdown)
          .then(
            [=](bool) mutable {
              if (--*remaining == 0)
                close_log();
            },
            [=](caf::error&) mutable {
              if (--*remaining == 0)
                close_log();
            });
      }
      return rp;
    },
  };
}

} // namespace

supervisor_actor spawn_supervisor(caf::actor_system& sys,
                                  supervisor_config cfg) {
  return sys.spawn(sup_impl, std::move(cfg));
}

} // namespace mesh
