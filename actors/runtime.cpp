#include "actors/runtime.hpp"

#include <atomic>
#include <mutex>
#include <thread>

#include <caf/actor.hpp>
#include <caf/actor_cast.hpp>
#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/exit_reason.hpp>
#include <caf/send.hpp>
#include <spdlog/spdlog.h>

#include "actors/blocking_client.hpp"
#include "actors/daemon_core.hpp"
#include "actors/daemon_handles.hpp"
#include "actors/factory_registry.hpp"
#include "actors/limits.hpp"
#include "actors/log_actor.hpp"
#include "actors/messages.hpp"
#include "actors/nonce_actor.hpp"
#include "actors/recovery.hpp"
#include "actors/supervisor_actor.hpp"
#include "base/errc.hpp"
#include "base/file_system.hpp"
#include "identity/entity_id.hpp"
#include "identity/keypair.hpp"
#include "persistence/node_store.hpp"
#include "persistence/segment.hpp"
#include "snapshot/snapshot.hpp"

namespace mesh {

caf::actor_system_config&
apply_scheduler_defaults(caf::actor_system_config& cfg) {
  auto cores = std::thread::hardware_concurrency();
  size_t workers = cores > 1 ? cores - 1 : 1;
  cfg.set("scheduler.max-threads", workers);
  cfg.set("work-stealing.aggressive-poll-attempts", size_t{100000});
  return register_message_types(cfg);
}

namespace {

enum class phase : int { registering = 0, ready = 1, shut_down = 2 };

caf::error shut_down_error() {
  return make_error(errc::shutting_down, "the runtime is shut down");
}

caf::error daemon_gone() {
  return make_error(errc::daemon_not_found, "the daemon is gone");
}

} // namespace

struct runtime::impl {
  caf::actor_system& sys;
  runtime_options opts;
  std::shared_ptr<factory_registry>
    registry = std::make_shared<factory_registry>();
  std::shared_ptr<recovered_daemons>
    recovered = std::make_shared<recovered_daemons>();
  std::shared_ptr<node_store> store;
  supervisor_actor sup;
  log_actor log;
  nonce_actor nonce;
  std::atomic<int> state{static_cast<int>(phase::registering)};
  std::mutex lifecycle_mtx;
  blocking_client client;
  daemon_handles handles;

  impl(caf::actor_system& s, runtime_options o)
    : sys(s),
      opts(std::move(o)),
      client(s, opts.reply_spin),
      handles([this](uint64_t origin) {
        return ask_sup<daemon_actor>(lookup_atom::value, origin);
      }) {}

  template<class R, class... Ts>
  caf::expected<R> ask_sup(Ts&&... xs) {
    // The supervisor quits at the end of shutdown.
    auto r = client.ask<R>(sup, opts.request_timeout, std::forward<Ts>(xs)...);
    if (!r)
      return normalize(std::move(r.error()), shut_down_error());
    return r;
  }

  // One request to the daemon of `origin` through the handle cache (a stale
  // handle is looked up once more when the daemon never read the request).
  template<class R, class... Ts>
  caf::expected<R> ask_daemon(uint64_t origin, const Ts&... xs) {
    auto r = handles.with_daemon<R>(origin, [&](const daemon_actor& h) {
      return client.ask<R>(h, opts.request_timeout, xs...);
    });
    if (!r)
      return normalize(std::move(r.error()), daemon_gone());
    return r;
  }

  recovery_context recovery();

  caf::error recover(std::vector<std::shared_ptr<daemon_core>>& cores,
                     std::vector<daemon_info>& broken);
};

recovery_context runtime::impl::recovery() {
  recovery_context ctx;
  ctx.store = store;
  ctx.make = [reg = registry](const std::string& kind) {
    return reg->make(kind);
  };
  ctx.policy = opts.restart;
  return ctx;
}

caf::error
runtime::impl::recover(std::vector<std::shared_ptr<daemon_core>>& cores,
                       std::vector<daemon_info>& broken) {
  if (auto err = store->open())
    return err;
  auto& fs = store->fs();
  // A node creates its log at first start, before any daemon exists: a log
  // missing or empty beside daemon records was lost.
  auto names = fs.list_dir(store->log_dir());
  bool log_was_empty = !names || names->empty();
  segment_options so;
  so.fs = &fs;
  so.policy = requires_sync_ack(opts.fsync) ? fsync_policy::never()
                                            : opts.fsync;
  so.on_warning = [](const std::string& line) {
    spdlog::warn("{}", line);
  };
  auto seg = segment::open(store->log_dir(), so);
  if (!seg)
    return seg.error();
  // Records gone without a gap that says whose: no daemon can be failed for
  // them, so the operator must hear of it.
  if (auto loss = (*seg)->recovery().loss_summary(); !loss.empty())
    spdlog::error("event log {}: {}", store->log_dir(), loss);
  auto node = recover_node(recovery(), **seg, log_was_empty);
  if (!node)
    return node.error();
  if (auto orphans = store->orphan_snapshots())
    for (auto o : *orphans)
      (void)store->remove_snapshot(o);
  size_t failed = node->broken.size();
  for (auto& c : node->cores)
    if (c->failed())
      ++failed;
  spdlog::info("recovered {} daemon(s), replayed {} logged event(s), "
               "{} failed",
               node->cores.size() + node->broken.size(), node->replayed,
               failed);
  log_actor_config lcfg;
  lcfg.pending = std::move(node->pending);
  lcfg.seg = std::shared_ptr<segment>(std::move(*seg));
  lcfg.sync_each_commit = requires_sync_ack(opts.fsync);
  lcfg.compact_after = std::max<uint64_t>(opts.compact_after, 1);
  log = spawn_log_actor(sys, std::move(lcfg));
  cores = std::move(node->cores);
  broken = std::move(node->broken);
  return {};
}

// -- runtime ------------------------------------------------------------------

runtime::runtime(caf::actor_system& sys, runtime_options opts)
  : impl_(std::make_unique<impl>(sys, std::move(opts))) {
  supervisor_config cfg;
  cfg.registry = impl_->registry;
  cfg.restart = impl_->opts.restart;
  cfg.recovered = impl_->recovered;
  cfg.snapshot_every_events = impl_->opts.snapshot_every_events;
  cfg.snapshot_every = impl_->opts.snapshot_every;
  cfg.snapshot_on_shutdown = impl_->opts.snapshot_on_shutdown;
  if (!impl_->opts.data_dir.empty()) {
    impl_->store = std::make_shared<node_store>(impl_->opts.data_dir,
                                                impl_->opts.fs);
    cfg.store = impl_->store;
    auto* self = impl_.get();
    cfg.rebuild = [self](uint64_t origin, const std::vector<log_entry>& es) {
      return rebuild_daemon(self->recovery(), origin, es);
    };
  }
  impl_->sup = spawn_supervisor(sys, std::move(cfg));
  impl_->nonce = spawn_nonce_actor(sys, impl_->opts.data_dir.empty()
                                          ? std::string{}
                                          : impl_->opts.data_dir
                                              + "/producer.nonce");
}

runtime::~runtime() {
  if (auto err = shutdown())
    spdlog::warn("runtime shutdown: {}", describe(err));
  caf::anon_send_exit(impl_->nonce, caf::exit_reason::user_shutdown);
  impl_->handles.clear();
}

caf::error runtime::register_factory(const std::string& kind,
                                     daemon_factory factory) {
  return impl_->registry->add(kind, std::move(factory));
}

caf::error runtime::start() {
  std::lock_guard<std::mutex> guard{impl_->lifecycle_mtx};
  auto st = static_cast<phase>(impl_->state.load());
  if (st == phase::ready)
    return {};
  if (st == phase::shut_down)
    return make_error(errc::shutting_down, "the runtime was shut down");
  std::vector<std::shared_ptr<daemon_core>> cores;
  std::vector<daemon_info> broken;
  if (!impl_->opts.data_dir.empty())
    if (auto err = impl_->recover(cores, broken))
      return err;
  // Broken ones are listed first, then start runs the recovered ones.
  for (auto& b : broken)
    caf::anon_send(impl_->sup, broken_atom::value, std::move(b));
  {
    std::lock_guard<std::mutex> rguard{impl_->recovered->mtx};
    impl_->recovered->cores = std::move(cores);
  }
  auto ok = impl_->ask_sup<bool>(start_atom::value, impl_->log);
  if (!ok)
    return ok.error();
  impl_->state = static_cast<int>(phase::ready);
  return {};
}

caf::error runtime::shutdown() {
  std::lock_guard<std::mutex> guard{impl_->lifecycle_mtx};
  if (static_cast<phase>(impl_->state.load()) == phase::shut_down)
    return {};
  impl_->state = static_cast<int>(phase::shut_down);
  impl_->registry->close();
  auto ok = impl_->client.ask<bool>(impl_->sup, std::chrono::minutes{5},
                                    shutdown_atom::value);
  impl_->handles.clear();
  if (!ok)
    return normalize(std::move(ok.error()), shut_down_error());
  return {};
}

bool runtime::is_ready() const {
  return static_cast<phase>(impl_->state.load()) == phase::ready;
}

caf::expected<daemon_info> runtime::spawn(const std::string& kind) {
  return spawn(kind, keypair::generate());
}

caf::expected<daemon_info> runtime::spawn(const std::string& kind,
                                          const keypair& id) {
  return impl_->ask_sup<daemon_info>(spawn_atom::value, spawn_spec{kind, id});
}

caf::expected<daemon_info> runtime::spawn_from_snapshot(const keypair& id,
                                                        bytes_view encoded) {
  // The kind is the one the snapshot names; the supervisor checks the
  // snapshot against the identity.
  return impl_->ask_sup<daemon_info>(spawn_atom::value,
                                     spawn_spec{std::string{}, id,
                                                encoded.to_bytes()});
}

caf::expected<delivery> runtime::deliver(uint64_t origin, inbound_event ev) {
  event_batch one;
  one.add(ev);
  auto r = deliver_batch(origin, one);
  if (!r)
    return r.error();
  if (r->size() != 1)
    return make_error(errc::corrupt_data, "daemon answered "
                                            + std::to_string(r->size())
                                            + " deliveries for one event");
  if (r->state(0) == delivery::status::rejected)
    return make_error(errc::process_failed, std::string{r->error(0)});
  return r->to_delivery(0);
}

caf::expected<std::vector<delivery>>
runtime::deliver_batch(uint64_t origin, const std::vector<inbound_event>& evs) {
  if (evs.empty())
    return std::vector<delivery>{};
  auto r = deliver_batch(origin, event_batch{evs});
  if (!r)
    return r.error();
  return r->to_deliveries();
}

caf::expected<delivery_batch> runtime::deliver_batch(uint64_t origin,
                                                     const event_batch& evs) {
  if (evs.empty())
    return delivery_batch{};
  if (auto err = limits::check(evs))
    return err;
  // Only a batch the daemon never read is resent to a fresh handle: once it
  // read the batch the events may have been applied, and a resend could
  // apply an anonymous event twice.
  return impl_->ask_daemon<delivery_batch>(origin, deliver_atom::value, evs);
}

caf::expected<uint64_t> runtime::high_water_mark(uint64_t origin,
                                                 uint64_t producer_id) {
  return impl_->ask_daemon<uint64_t>(origin, hwm_atom::value, producer_id);
}

caf::error runtime::stop(uint64_t origin) {
  auto r = impl_->ask_sup<bool>(stop_atom::value, origin);
  impl_->handles.forget(origin);
  if (!r)
    return r.error();
  return {};
}

caf::expected<daemon_info> runtime::resume(uint64_t origin, bool accept_loss) {
  auto r = impl_->ask_sup<daemon_info>(resume_atom::value, origin, accept_loss);
  impl_->handles.forget(origin);
  return r;
}

caf::expected<bytes> runtime::snapshot(uint64_t origin) {
  return impl_->ask_daemon<bytes>(origin, snapshot_atom::value);
}

caf::expected<daemon_stats> runtime::stats(uint64_t origin) {
  return impl_->ask_daemon<daemon_stats>(origin, stats_atom::value);
}

caf::expected<daemon_info> runtime::info(uint64_t origin) {
  return impl_->ask_daemon<daemon_info>(origin, info_atom::value);
}

caf::expected<std::vector<daemon_info>> runtime::daemons() {
  auto r = impl_->ask_sup<std::vector<daemon_info>>(list_atom::value);
  if (!r)
    return r;
  std::sort(r->begin(), r->end(),
            [](const daemon_info& x, const daemon_info& y) {
              return x.origin_hash < y.origin_hash;
            });
  return r;
}

caf::expected<size_t> runtime::daemon_count() {
  auto r = daemons();
  if (!r)
    return r.error();
  return r->size();
}

caf::expected<uint64_t> runtime::producer_id() {
  auto r = impl_->client.ask<uint64_t>(impl_->nonce,
                                       impl_->opts.request_timeout,
                                       producer_id_atom::value);
  if (!r)
    return normalize(std::move(r.error()), shut_down_error());
  return r;
}

std::vector<std::string> runtime::kinds() const {
  return impl_->registry->kinds();
}

caf::expected<capability_filter>
runtime::kind_requirements(const std::string& kind) const {
  return impl_->registry->requirements(kind);
}

const runtime_options& runtime::options() const {
  return impl_->opts;
}

supervisor_actor runtime::supervisor() const {
  return impl_->sup;
}

} // namespace mesh
