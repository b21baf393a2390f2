#include "actors/runtime.hpp"

#include <atomic>
#include <map>
#include <mutex>
#include <thread>
#include <type_traits>
#include <unordered_map>

#include <caf/actor.hpp>
#include <caf/actor_cast.hpp>
#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/after.hpp>
#include <caf/blocking_actor.hpp>
#include <caf/exit_reason.hpp>
#include <caf/scoped_actor.hpp>
#include <caf/sec.hpp>
#include <caf/send.hpp>
#include <spdlog/spdlog.h>

#include "actors/daemon_core.hpp"
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
  return cfg;
}

namespace {

enum class phase : int { registering = 0, ready = 1, shut_down = 2 };

caf::error shut_down_error() {
  return make_error(errc::shutting_down, "the runtime is shut down");
}

// CAF's own errors, translated into the ones our callers handle.
caf::error normalize(caf::error err, const caf::error& when_gone) {
  if (err.category() == caf::atom("system")) {
    auto code = static_cast<caf::sec>(err.code());
    if (code == caf::sec::request_receiver_down)
      return when_gone;
    if (code == caf::sec::request_timeout)
      return make_error(errc::timeout, "no answer in time");
  }
  return err;
}

} // namespace

struct runtime::impl {
  caf::actor_system& sys;
  runtime_options opts;
  factory_registry registry;
  std::shared_ptr<node_store> store;
  supervisor_actor sup;
  log_actor log;
  nonce_actor nonce;
  std::atomic<int> state{static_cast<int>(phase::registering)};
  std::mutex lifecycle_mtx;

  std::mutex cache_mtx;
  std::unordered_map<uint64_t, daemon_actor> cache;

  // Blocking requests need a scoped_actor; making one per call costs more
  // than the call, so idle ones wait here. All die before the runtime.
  std::mutex pool_mtx;
  std::vector<std::unique_ptr<caf::scoped_actor>> pool;

  impl(caf::actor_system& s, runtime_options o) : sys(s), opts(std::move(o)) {}

  struct lease {
    impl* owner;
    std::unique_ptr<caf::scoped_actor> self;
    ~lease() {
      if (!self)
        return;
      std::lock_guard<std::mutex> guard{owner->pool_mtx};
      owner->pool.push_back(std::move(self));
    }
    caf::scoped_actor& operator*() {
      return *self;
    }
    /// Destroys the actor instead of returning it to the pool (a late reply
    /// to an abandoned request would sit in its mailbox).
    void discard() {
      self.reset();
    }
  };

  lease acquire() {
    {
      std::lock_guard<std::mutex> guard{pool_mtx};
      if (!pool.empty()) {
        auto s = std::move(pool.back());
        pool.pop_back();
        return lease{this, std::move(s)};
      }
    }
    return lease{this, std::make_unique<caf::scoped_actor>(sys)};
  }

  // The request itself carries no timeout: in CAF 0.17 a timed request
  // costs two round trips through the clock thread (set and cancel). The
  // caller waits at most `timeout` for the reply instead. `gone` is the
  // answer when `dest` no longer runs.
  template<class R, class Handle, class... Ts>
  caf::expected<R> ask(const Handle& dest, std::chrono::milliseconds timeout,
                       const caf::error& gone, Ts&&... xs) {
    caf::expected<R> result = make_error(errc::timeout, "no answer");
    auto l = acquire();
    auto& self = *l;
    bool timed_out = false;
    auto rh = self->request(dest, caf::infinite, std::forward<Ts>(xs)...);
    caf::blocking_actor::accept_one_cond rc;
    self->varargs_receive(
      rc, rh.id(),
      [&](R& r) {
        result = std::move(r);
      },
      [&](caf::error& e) {
        result = normalize(std::move(e), gone);
      },
      caf::after(timeout) >>
        [&] {
          timed_out = true;
        });
    if (timed_out) {
      l.discard();
      result = make_error(errc::timeout, "no answer in time");
    }
    return result;
  }

  template<class R, class... Ts>
  caf::expected<R> ask_sup(Ts&&... xs) {
    // The supervisor quits at the end of shutdown.
    return ask<R>(sup, opts.request_timeout, shut_down_error(),
                  std::forward<Ts>(xs)...);
  }

  caf::expected<daemon_actor> find(uint64_t origin, bool refresh = false) {
    if (!refresh) {
      std::lock_guard<std::mutex> guard{cache_mtx};
      if (auto it = cache.find(origin); it != cache.end())
        return it->second;
    }
    auto h = ask_sup<daemon_actor>(lookup_atom::value, origin);
    if (!h)
      return h.error();
    std::lock_guard<std::mutex> guard{cache_mtx};
    cache[origin] = *h;
    return h;
  }

  void forget(uint64_t origin) {
    std::lock_guard<std::mutex> guard{cache_mtx};
    cache.erase(origin);
  }

  // Runs `attempt(handle, unread)` with the cached handle of `origin`. When
  // it fails daemon_not_found the handle is stale (the daemon stopped, or
  // stopped and came back): the handle is dropped and, if `attempt` left
  // `unread` true (the daemon never saw the request), tried once more with a
  // fresh one.
  template<class R, class F>
  caf::expected<R> with_daemon(uint64_t origin, F attempt) {
    for (int i = 0; i < 2; ++i) {
      auto h = find(origin, i > 0);
      if (!h)
        return h.error();
      bool unread = true;
      caf::expected<R> r = attempt(*h, unread);
      if (r || !is(r.error(), errc::daemon_not_found))
        return r;
      forget(origin);
      if (!unread)
        return r;
    }
    return make_error(errc::daemon_not_found,
                      "no daemon " + hex_u64(origin) + " on this node");
  }

  // Sends to a daemon; when the cached handle is stale (daemon restarted or
  // stopped) looks it up once more. The message is built once (arguments
  // moved in) and the same message is sent again on the retry; it goes
  // through an untyped handle because a typed request cannot carry a
  // prebuilt caf::message, so the interface is checked here instead.
  template<class R, class... Ts>
  caf::expected<R> ask_daemon(uint64_t origin, Ts&&... xs) {
    using token = caf::detail::type_list<
      typename caf::detail::implicit_conversions<std::decay_t<Ts>>::type...>;
    using unboxed = caf::response_type_unbox<caf::signatures_of_t<daemon_actor>,
                                             token>;
    static_assert(unboxed::valid, "daemon_actor does not accept this message");
    static_assert(std::is_same<typename unboxed::type,
                               caf::detail::type_list<R>>::value,
                  "daemon_actor answers this message with another type");
    auto msg = caf::make_message(std::forward<Ts>(xs)...);
    return with_daemon<R>(origin, [&](const daemon_actor& h, bool&) {
      return ask<R>(caf::actor_cast<caf::actor>(h), opts.request_timeout,
                    make_error(errc::daemon_not_found, "the daemon is gone"),
                    msg);
    });
  }

  // deliver and deliver_batch: a one-shot channel instead of a scoped_actor
  // request (actors/reply.hpp says why). The message carries a copy of the
  // events, so a retry after a stale handle has them again. But only a
  // message the daemon never read is retried: once it accepted the batch the
  // events may have been applied, and a resend could apply an anonymous
  // event twice.
  caf::expected<delivery_batch> deliver(uint64_t origin,
                                        const event_batch& evs) {
    return with_daemon<
      delivery_batch>(origin,
                      [&](const daemon_actor& h,
                          bool& unread) -> caf::expected<delivery_batch> {
                        auto deadline = delivery_channel::clock::now()
                                        + opts.request_timeout;
                        auto ch = std::make_shared<delivery_channel>();
                        caf::anon_send(h, deliver_atom::value, evs,
                                       std::make_shared<delivery_promise>(ch));
                        if (!ch->wait(opts.reply_spin, deadline))
                          return make_error(errc::timeout, "no answer in time");
                        unread = !ch->accepted();
                        if (ch->error())
                          return ch->error();
                        return std::move(ch->value());
                      });
  }

  daemon_core::maker maker_for(const std::string& kind) {
    return [this, kind] {
      return registry.make(kind);
    };
  }

  using builder = std::function<caf::expected<std::shared_ptr<daemon_core>>()>;

  static spawn_request_ptr make_request(builder build, bool persist,
                                        bytes initial = {}) {
    auto req = std::make_shared<spawn_request>();
    req->build = std::move(build);
    req->persist = persist;
    req->initial_snapshot = std::move(initial);
    return req;
  }

  caf::expected<daemon_info> submit(builder build, bool persist,
                                    bytes initial = {}) {
    return ask_sup<daemon_info>(spawn_atom::value,
                                make_request(std::move(build), persist,
                                             std::move(initial)));
  }

  /// A fresh daemon of `kind` under `id`, restored from `snap` when given.
  builder make_builder(std::string kind, const keypair& id,
                       std::shared_ptr<const mesh::snapshot> snap = nullptr) {
    auto key = std::make_shared<keypair>(id.clone());
    return [this, kind = std::move(kind), key,
            snap]() -> caf::expected<std::shared_ptr<daemon_core>> {
      auto inst = registry.make(kind);
      if (!inst)
        return inst.error();
      auto core = std::make_shared<daemon_core>(kind, key->clone(),
                                                maker_for(kind),
                                                std::move(*inst), opts.restart);
      if (snap)
        if (auto err = core->restore(*snap))
          return err;
      return core;
    };
  }

  recovery_context recovery();

  caf::error recover(std::vector<std::shared_ptr<daemon_core>>& cores,
                     std::vector<daemon_info>& broken);
};

recovery_context runtime::impl::recovery() {
  recovery_context ctx;
  ctx.store = store;
  ctx.make = [this](const std::string& kind) {
    return registry.make(kind);
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
  {
    std::lock_guard<std::mutex> guard{impl_->cache_mtx};
    impl_->cache.clear();
  }
  std::lock_guard<std::mutex> guard{impl_->pool_mtx};
  impl_->pool.clear();
}

caf::error runtime::register_factory(const std::string& kind,
                                     daemon_factory factory) {
  return impl_->registry.add(kind, std::move(factory));
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
  auto ok = impl_->ask_sup<bool>(start_atom::value, impl_->log);
  if (!ok)
    return ok.error();
  for (auto& b : broken)
    caf::anon_send(impl_->sup, broken_atom::value, std::move(b));
  for (auto& core : cores) {
    auto info = impl_->submit(
      [core] {
        return caf::expected<std::shared_ptr<daemon_core>>{core};
      },
      false);
    if (!info)
      spdlog::error("recovered daemon origin={} could not start: {}",
                    hex_u64(core->origin()), describe(info.error()));
  }
  impl_->state = static_cast<int>(phase::ready);
  return {};
}

caf::error runtime::shutdown() {
  std::lock_guard<std::mutex> guard{impl_->lifecycle_mtx};
  if (static_cast<phase>(impl_->state.load()) == phase::shut_down)
    return {};
  impl_->state = static_cast<int>(phase::shut_down);
  impl_->registry.close();
  auto ok = impl_->ask<bool>(impl_->sup, std::chrono::minutes{5},
                             shut_down_error(), shutdown_atom::value);
  {
    std::lock_guard<std::mutex> cguard{impl_->cache_mtx};
    impl_->cache.clear();
  }
  if (!ok)
    return ok.error();
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
  return impl_->submit(impl_->make_builder(kind, id), true);
}

caf::expected<daemon_info> runtime::spawn_from_snapshot(const keypair& id,
                                                        bytes_view encoded) {
  auto expected_id = id.id();
  auto snap = decode_snapshot(encoded, &expected_id);
  if (!snap)
    return snap.error();
  auto kind = snap->daemon_kind;
  auto shared = std::make_shared<const mesh::snapshot>(std::move(*snap));
  return impl_->submit(impl_->make_builder(std::move(kind), id, shared), true,
                       encoded.to_bytes());
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
  return impl_->deliver(origin, evs);
}

caf::expected<uint64_t> runtime::high_water_mark(uint64_t origin,
                                                 uint64_t producer_id) {
  return impl_->ask_daemon<uint64_t>(origin, hwm_atom::value, producer_id);
}

caf::error runtime::stop(uint64_t origin) {
  auto r = impl_->ask_sup<bool>(stop_atom::value, origin);
  impl_->forget(origin);
  if (!r)
    return r.error();
  return {};
}

caf::expected<daemon_info> runtime::resume(uint64_t origin, bool accept_loss) {
  auto r = impl_->ask_sup<daemon_info>(resume_atom::value, origin, accept_loss);
  impl_->forget(origin);
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
  return impl_->ask<uint64_t>(impl_->nonce, impl_->opts.request_timeout,
                              shut_down_error(), producer_id_atom::value);
}

std::vector<std::string> runtime::kinds() const {
  return impl_->registry.kinds();
}

const runtime_options& runtime::options() const {
  return impl_->opts;
}

supervisor_actor runtime::supervisor() const {
  return impl_->sup;
}

spawn_request_ptr runtime::spawn_request_for(const std::string& kind) {
  return impl::make_request(impl_->make_builder(kind, keypair::generate()),
                            true);
}

} // namespace mesh
