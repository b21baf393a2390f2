#include "actors/store_actor.hpp"

#include <algorithm>

#include <caf/actor_system.hpp>
#include <caf/spawn_options.hpp>
#include <caf/stateful_actor.hpp>
#include <caf/typed_event_based_actor.hpp>
#include <caf/typed_response_promise.hpp>
#include <spdlog/spdlog.h>

#include "actors/daemon_core.hpp"
#include "actors/spawn_spec.hpp"
#include "base/errc.hpp"
#include "identity/entity_id.hpp"
#include "persistence/node_store.hpp"
#include "persistence/segment.hpp"
#include "snapshot/snapshot.hpp"

namespace mesh {

namespace {

struct store_state {
  store_actor_config cfg;
  static inline const char* name = "mesh.store";
};

using store_ptr = store_actor::stateful_pointer<store_state>;

caf::error failed_error(const daemon_core& core) {
  return daemon_failed_error(core.origin(), core.failure());
}

// Takes, encodes and signs a snapshot of `core`; writes it when `write` and
// the node is durable.
caf::expected<snapshot_done> take(store_ptr self, daemon_core& core,
                                  bool write) {
  // The state is copied once, into the encoding; what snapshot() returned
  // becomes the rebuild base. Every further copy of a 64 MiB state was freed
  // with a munmap of ~5 ms that held up other threads' page faults
  // (store_actor_test).
  auto snap = core.take_encoded_snapshot(snapshot_kind::local, unix_now_ns());
  if (!snap)
    return std::move(snap.error());
  snapshot_done done;
  done.through_seq = snap->through_seq;
  done.encoded = std::move(snap->encoded);
  auto& store = self->state.cfg.store;
  if (write && store) {
    if (auto err = store->save_snapshot(core.origin(), core.epoch(),
                                        done.encoded))
      return err;
    done.written = true;
  }
  return done;
}

caf::result<snapshot_done> snapshot_job(store_ptr self, daemon_core& core,
                                        snapshot_use use) {
  if (core.failed())
    return failed_error(core);
  caf::expected<snapshot_done> r = snapshot_done{};
  switch (use) {
    case snapshot_use::persist: r = take(self, core, true); break;
    case snapshot_use::handover: r = take(self, core, false); break;
    case snapshot_use::automatic:
      if (self->state.cfg.store) {
        r = take(self, core, true);
      } else if (auto err = core.rebase()) {
        r = std::move(err);
      }
      break;
  }
  if (!r)
    return std::move(r.error());
  return std::move(*r);
}

caf::result<snapshot_done> resume_job(store_ptr self, daemon_core& core,
                                      bool accept_loss) {
  if (auto err = core.resume(accept_loss))
    return err;
  if (!self->state.cfg.store)
    return snapshot_done{};
  auto r = take(self, core, true);
  if (!r) {
    core.fail("snapshot after resume failed: " + describe(r.error()));
    return std::move(r.error());
  }
  return std::move(*r);
}

caf::result<uint64_t> save_job(store_ptr self, daemon_core& core,
                               const bytes& initial_snapshot,
                               uint64_t known_epoch, bool write_record) {
  auto& store = self->state.cfg.store;
  if (!store)
    return make_error(errc::invalid_argument, "no store to write a record to");
  auto origin = core.origin();
  auto on_disk = store->known_epoch(origin);
  if (!on_disk)
    return std::move(on_disk.error());
  core.set_epoch(std::max(known_epoch, *on_disk) + 1);
  // The snapshot first: a record without its snapshot would come back at
  // the next start as a fresh daemon, not as the restored one. It is
  // stamped with the new epoch, so recovery takes it as this life's own; a
  // crash before the record leaves it beside the previous life's tombstone,
  // an orphan that start-up deletes.
  if (!initial_snapshot.empty()) {
    auto id = core.identity().id();
    auto snap = decode_snapshot(initial_snapshot, &id);
    if (!snap)
      return std::move(snap.error());
    snap->epoch = core.epoch();
    auto stamped = encode_snapshot(*snap, core.identity());
    if (!stamped)
      return std::move(stamped.error());
    if (auto err = store->save_snapshot(origin, *stamped))
      return err;
  }
  if (write_record)
    if (auto err = store->save_daemon(origin, core.kind(), core.identity(),
                                      core.epoch()))
      return err;
  return core.epoch();
}

std::vector<std::string> close_job(store_ptr self, final_snapshots& snaps) {
  std::vector<std::string> failed;
  auto& store = self->state.cfg.store;
  if (!store || snaps.items.empty())
    return failed;
  auto errs = store->save_snapshots(snaps.items);
  for (size_t i = 0; i < errs.size(); ++i)
    if (errs[i]) {
      auto origin = hex_u64(snaps.items[i].first);
      spdlog::error("final snapshot of daemon origin={} failed: {}", origin,
                    describe(errs[i]));
      failed.push_back(origin + " (" + describe(errs[i]) + ")");
    }
  return failed;
}

store_actor::behavior_type store_impl(store_ptr self, store_actor_config cfg) {
  self->state.cfg = std::move(cfg);
  return {
    [=](snapshot_atom, core_lease& lease,
        snapshot_use use) -> caf::result<snapshot_done> {
      return snapshot_job(self, *lease.core, use);
    },
    [=](resume_atom, core_lease& lease,
        bool accept_loss) -> caf::result<snapshot_done> {
      return resume_job(self, *lease.core, accept_loss);
    },
    [=](restart_atom, core_lease& lease) -> bool {
      return lease.core->finish_rebuild();
    },
    [=](rollback_atom, core_lease& lease, uint64_t seq) -> caf::result<bool> {
      if (auto err = lease.core->rollback_to(seq))
        return err;
      return true;
    },
    [=](build_atom, const spawn_spec& spec) -> caf::result<core_lease> {
      auto& cfg = self->state.cfg;
      if (!cfg.registry)
        return make_error(errc::factory_not_found, "no factory registry");
      auto built = build_daemon(cfg.registry, cfg.restart, spec);
      if (!built)
        return std::move(built.error());
      return core_lease{std::move(*built)};
    },
    [=](save_atom, core_lease& lease, const bytes& initial_snapshot,
        uint64_t known_epoch, bool write_record) -> caf::result<uint64_t> {
      return save_job(self, *lease.core, initial_snapshot, known_epoch,
                      write_record);
    },
    [=](record_atom, core_lease& lease) -> caf::result<bool> {
      auto& store = self->state.cfg.store;
      if (!store)
        return true;
      auto& core = *lease.core;
      if (auto err = store->save_daemon(core.origin(), core.kind(),
                                        core.identity(), core.epoch()))
        return err;
      return true;
    },
    [=](forget_atom, uint64_t origin, uint64_t epoch) -> caf::result<bool> {
      auto& store = self->state.cfg.store;
      if (!store)
        return true;
      auto retired = store->retire_daemon(origin, epoch);
      if (!retired)
        return std::move(retired.error());
      return *retired;
    },
    [=](rebuild_atom, uint64_t origin,
        const std::vector<log_entry>& entries) -> caf::result<core_lease> {
      auto& rebuild = self->state.cfg.rebuild;
      if (!rebuild)
        return make_error(errc::daemon_failed,
                          "daemon " + hex_u64(origin)
                            + " cannot be rebuilt on this node");
      auto core = rebuild(origin, entries);
      if (!core)
        return std::move(core.error());
      return core_lease{std::move(*core)};
    },
    [=](close_atom,
        final_snapshots& snaps) -> caf::result<std::vector<std::string>> {
      // Answer first: a reply returned after quit() is not sent.
      auto rp = self->make_response_promise<std::vector<std::string>>();
      rp.deliver(close_job(self, snaps));
      self->quit();
      return rp;
    },
  };
}

} // namespace

store_actor spawn_store_actor(caf::actor_system& sys, store_actor_config cfg) {
  return sys.spawn<caf::detached>(store_impl, std::move(cfg));
}

} // namespace mesh
