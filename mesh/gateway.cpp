#include "mesh/gateway.hpp"

#include <exception>
#include <optional>
#include <utility>
#include <variant>
#include <vector>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>

#include <netdb.h>
#include <sys/socket.h>
#include <unistd.h>

#include <caf/actor.hpp>
#include <caf/actor_registry.hpp>
#include <caf/actor_system.hpp>
#include <caf/allowed_unsafe_message_type.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/exit_reason.hpp>
#include <caf/io/middleman.hpp>
#include <caf/mailbox_element.hpp>
#include <caf/message_view.hpp>
#include <caf/node_id.hpp>
#include <caf/scoped_actor.hpp>
#include <caf/sec.hpp>
#include <caf/send.hpp>
#include <caf/stateful_actor.hpp>
#include <caf/system_messages.hpp>
#include <spdlog/spdlog.h>

#include "actors/runtime.hpp"
#include "base/bytes.hpp"
#include "base/errc.hpp"
#include "snapshot/snapshot.hpp"

namespace {

// One decoded request on its way from the gateway to a worker. Travels only
// inside this process, as a pointer: the worker moves the request out.
struct gateway_job {
  mesh::control::request req;
};

using gateway_job_ptr = std::shared_ptr<gateway_job>;

using serve_atom = caf::atom_constant<caf::atom("mesh_srv")>;

// Stops the gateway (gateway::stop()).
struct gateway_drain {};

// Reports the warnings the limiter suppressed; sent by the gateway to itself.
struct gateway_tick {};

} // namespace

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(gateway_drain)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(gateway_tick)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(gateway_job_ptr)

namespace mesh {

namespace {

using namespace mesh::control;

error_response fail(errc code, std::string what) {
  return {code, std::move(what)};
}

// -- serving one request ------------------------------------------------------

struct server {
  runtime& rt;
  const gateway_options& opts;

  response operator()(daemons_request) {
    auto r = rt.daemons();
    if (!r)
      return to_error_response(r.error());
    return daemons_response{std::move(*r)};
  }

  response operator()(kinds_request) {
    return kinds_response{rt.kinds()};
  }

  response operator()(deploy_request x) {
    if (x.kind.empty())
      return fail(errc::invalid_argument, "deploy needs a daemon kind");
    if (x.count == 0 || x.count > opts.max_deploy_count)
      return fail(errc::invalid_argument,
                  "deploy count must be 1.."
                    + std::to_string(opts.max_deploy_count) + ", got "
                    + std::to_string(x.count));
    deploy_response out;
    out.daemons.reserve(x.count);
    for (uint32_t i = 0; i < x.count; ++i) {
      auto info = rt.spawn(x.kind);
      if (!info) {
        spdlog::warn("deploy kind={} stopped after {} of {} daemon(s): {}",
                     x.kind, i, x.count, describe(info.error()));
        if (out.daemons.empty())
          return to_error_response(info.error());
        out.failure = to_error_response(info.error());
        break;
      }
      out.daemons.emplace_back(std::move(*info));
    }
    if (out.daemons.size() == 1)
      spdlog::info("deployed kind={} origin={}", x.kind,
                   hex_u64(out.daemons.front().origin_hash));
    else
      spdlog::info("deployed kind={} count={} first origin={}", x.kind,
                   out.daemons.size(),
                   hex_u64(out.daemons.front().origin_hash));
    return out;
  }

  response operator()(send_request x) {
    auto r = rt.deliver_batch(x.daemon_id, std::move(x.events));
    if (!r)
      return to_error_response(r.error());
    return send_response{std::move(*r)};
  }

  response operator()(high_water_request x) {
    auto r = rt.high_water_mark(x.daemon_id, x.producer_id);
    if (!r)
      return to_error_response(r.error());
    return high_water_response{*r};
  }

  response operator()(stats_request x) {
    auto r = rt.stats(x.daemon_id);
    if (!r)
      return to_error_response(r.error());
    return stats_response{*r};
  }

  response operator()(snapshot_request x) {
    auto r = rt.snapshot(x.daemon_id);
    if (!r)
      return to_error_response(r.error());
    // Decoding our own fresh snapshot only fails on a bug; say so rather
    // than hand out bytes nobody can restore.
    auto snap = decode_snapshot(*r);
    if (!snap)
      return to_error_response(snap.error());
    return snapshot_response{std::move(*r), snap->through_seq};
  }

  response operator()(resume_request x) {
    // The runtime resumes a running daemon as a no-op; an operator asking
    // to resume one has the wrong id or a stale table, so say so.
    // The table, not info(): a failed daemon may have no actor to ask.
    auto all = rt.daemons();
    if (!all)
      return to_error_response(all.error());
    auto it = std::find_if(all->begin(), all->end(),
                           [&x](const daemon_info& d) {
                             return d.origin_hash == x.daemon_id;
                           });
    if (it == all->end())
      return fail(errc::daemon_not_found,
                  "no daemon " + hex_u64(x.daemon_id) + " on this node");
    if (it->phase != daemon_phase::failed)
      return fail(errc::wrong_phase,
                  "daemon " + hex_u64(x.daemon_id) + " is not failed (phase "
                    + to_string(it->phase) + "): nothing to resume");
    auto r = rt.resume(x.daemon_id, x.accept_loss);
    if (!r) {
      spdlog::warn("resume origin={} failed: {}", hex_u64(x.daemon_id),
                   describe(r.error()));
      return to_error_response(r.error());
    }
    spdlog::info("resumed origin={} at daemon_seq {}{}", hex_u64(x.daemon_id),
                 r->last_seq, x.accept_loss ? " (loss accepted)" : "");
    return resume_response{std::move(*r)};
  }

  response operator()(stop_request x) {
    if (auto err = rt.stop(x.daemon_id))
      return to_error_response(err);
    spdlog::info("stopped origin={}", hex_u64(x.daemon_id));
    return stop_response{};
  }
};

// The daemon a request addresses, if any: it picks the worker.
std::optional<uint64_t> daemon_of(const request& req) {
  struct visitor {
    std::optional<uint64_t> operator()(const daemons_request&) {
      return std::nullopt;
    }
    std::optional<uint64_t> operator()(const kinds_request&) {
      return std::nullopt;
    }
    std::optional<uint64_t> operator()(const deploy_request&) {
      return std::nullopt;
    }
    std::optional<uint64_t> operator()(const send_request& x) {
      return x.daemon_id;
    }
    std::optional<uint64_t> operator()(const high_water_request& x) {
      return x.daemon_id;
    }
    std::optional<uint64_t> operator()(const stats_request& x) {
      return x.daemon_id;
    }
    std::optional<uint64_t> operator()(const snapshot_request& x) {
      return x.daemon_id;
    }
    std::optional<uint64_t> operator()(const stop_request& x) {
      return x.daemon_id;
    }
    std::optional<uint64_t> operator()(const resume_request& x) {
      return x.daemon_id;
    }
  };
  return std::visit(visitor{}, req);
}

// -- actors -------------------------------------------------------------------

// Runs on its own thread (spawned detached): the runtime calls block.
caf::behavior worker_actor(caf::event_based_actor*, runtime* rt,
                           gateway_options opts) {
  return {
    [rt, opts](serve_atom, const gateway_job_ptr& job) -> wire_bytes {
      const char* what = name_of(job->req);
      try {
        return encode(serve(*rt, std::move(job->req), opts));
      } catch (const std::exception& ex) {
        // A throwing runtime call is a bug; keep the worker alive for the
        // requests queued behind this one.
        spdlog::error("gateway: serving {} threw: {}", what, ex.what());
        return encode(
          response{fail(errc::io_error, std::string{"serving "} + what
                                          + " failed: " + ex.what())});
      }
    },
  };
}

// The published actor. Its handle is the only one that crosses the wire, so
// anything CAF's BASP lets a peer send can arrive here (DESIGN.md section 7):
//   - exit messages, also `kill`, which no exit handler can intercept: every
//     exit message is dropped before it reaches the mailbox. Nothing on this
//     node sends one to the gateway (gateway::stop() uses gateway_drain), and
//     a sender's node cannot tell (a peer may claim this node's id);
//   - responses, forwarded messages (a forwarding stack) and the system
//     messages the gateway never uses (timeouts, streams): dropped too, so a
//     peer can neither answer the gateway's requests to its workers in their
//     place nor redirect its replies;
//   - errors, down messages and any other tuple: logged and
//     dropped by the handlers below, never a reason to quit.
// Internal messages (gateway_drain, gateway_tick, the workers' jobs) have
// types that are not registered with CAF, so BASP cannot deserialize them:
// a peer cannot send them at all.
// Every line a peer can cause goes through the rate limiter.
class gateway_actor : public caf::event_based_actor {
public:
  gateway_actor(caf::actor_config& cfg, std::shared_ptr<authenticator> auth,
                std::vector<caf::actor> workers, caf::actor admin,
                log_limit limit)
    : caf::event_based_actor(cfg),
      auth_(std::move(auth)),
      workers_(std::move(workers)),
      admin_(std::move(admin)),
      warnings_(limit),
      tick_interval_(limit.interval) {
    for (const auto& w : workers_)
      trusted_.push_back(caf::actor_cast<caf::actor_control_block*>(w));
    trusted_.push_back(caf::actor_cast<caf::actor_control_block*>(admin_));
  }

  const char* name() const override {
    return "mesh.gateway";
  }

  // Runs on the sender's thread (for peers: the middleman's).
  void enqueue(caf::mailbox_element_ptr ptr, caf::execution_unit* eu) override {
    if (ptr) {
      if (auto why = refusal(*ptr)) {
        warn("gateway: dropped {} from {}", *why, origin(ptr->sender));
        return;
      }
    }
    caf::event_based_actor::enqueue(std::move(ptr), eu);
  }

  caf::behavior make_behavior() override {
    set_default_handler(
      [this](caf::scheduled_actor*,
             caf::message_view& x) -> caf::result<caf::message> {
        warn("gateway: dropped unexpected message {} from {}",
             render(x.content()), origin(current_sender()));
        return caf::sec::unexpected_message;
      });
    set_error_handler([this](caf::scheduled_actor*, caf::error& err) {
      warn("gateway: ignored error message {} from {}", describe(err),
           origin(current_sender()));
    });
    set_down_handler([this](caf::scheduled_actor*, caf::down_msg& dm) {
      warn("gateway: ignored down message ({}) from {}", describe(dm.reason),
           origin(current_sender()));
    });
    delayed_send(this, tick_interval_, gateway_tick{});
    return {
      [this](request_atom, wire_bytes& wire) -> caf::result<wire_bytes> {
        return serve_request(std::move(wire));
      },
      // Sent by gateway::stop() once every worker is gone, so it queues
      // behind the workers' last replies and bounced requests: each of
      // those is answered before the gateway quits.
      [this](gateway_drain) {
        report_suppressed(warnings_.drain_suppressed());
        quit();
      },
      [this](gateway_tick) {
        report_suppressed(warnings_.take_suppressed());
        delayed_send(this, tick_interval_, gateway_tick{});
      },
    };
  }

private:
  template<class... Ts>
  void warn(const char* fmt, const Ts&... xs) {
    if (warnings_.admit())
      spdlog::warn(fmt, xs...);
  }

  static void report_suppressed(uint64_t n) {
    if (n > 0)
      spdlog::warn("gateway: suppressed {} similar warnings (refused, "
                   "malformed or unexpected messages from peers)",
                   n);
  }

  // Why the message must not reach the mailbox, if it must not.
  std::optional<std::string> refusal(const caf::mailbox_element& x) const {
    const auto& content = x.content();
    if (content.match_elements<caf::exit_msg>())
      return "exit message (reason "
             + describe(content.get_as<caf::exit_msg>(0).reason) + ")";
    if (x.mid.is_response()) {
      auto from = x.sender.get();
      if (std::find(trusted_.begin(), trusted_.end(), from) == trusted_.end())
        return std::string{"response that no worker sent"};
      return std::nullopt;
    }
    if (!x.stages.empty())
      return std::string{"forwarded message "} + render(content);
    if (content.match_elements<caf::timeout_msg>()
        || content.match_elements<caf::open_stream_msg>()
        || content.match_elements<caf::upstream_msg>()
        || content.match_elements<caf::downstream_msg>())
      return std::string{"system message "} + render(content);
    return std::nullopt;
  }

  // At most a line's worth of the message: a peer chooses its size.
  static std::string render(const caf::type_erased_tuple& xs) {
    constexpr size_t max_chars = 120;
    auto text = xs.stringify();
    if (text.size() > max_chars)
      text = text.substr(0, max_chars) + "...";
    return text;
  }

  std::string origin(const caf::strong_actor_ptr& sender) const {
    if (!sender)
      return "an anonymous sender";
    return "node=" + caf::to_string(sender->node());
  }

  caf::result<wire_bytes> serve_request(wire_bytes wire) {
    caf::node_id peer;
    if (const auto& sender = current_sender())
      peer = sender->node();
    auto opened = auth_->open(peer, std::move(wire));
    if (!opened) {
      warn("gateway: refused request from node={}: {}", caf::to_string(peer),
           describe(opened.error()));
      return seal_error(peer, to_error_response(opened.error(),
                                                errc::unauthenticated));
    }
    auto req = decode_request(*opened);
    if (!req) {
      warn("gateway: bad request from node={}: {}", caf::to_string(peer),
           describe(req.error()));
      return seal_error(peer, to_error_response(req.error()));
    }
    auto target = admin_;
    if (auto id = daemon_of(*req))
      target = workers_[*id % workers_.size()];
    auto job = std::make_shared<gateway_job>(gateway_job{std::move(*req)});
    auto rp = make_response_promise();
    request(target, caf::infinite, serve_atom::value, std::move(job))
      .then(
        [this, rp, peer](wire_bytes& res) mutable {
          rp.deliver(auth_->seal(peer, std::move(res)));
        },
        [this, rp, peer](caf::error& err) mutable {
          auto down = err == caf::sec::request_receiver_down;
          rp.deliver(seal_error(peer, down ? fail(errc::shutting_down,
                                                  "the node is shutting down")
                                           : to_error_response(err)));
        });
    return rp;
  }

  wire_bytes seal_error(const caf::node_id& peer, error_response err) {
    return auth_->seal(peer, encode(control::response{std::move(err)}));
  }

  std::shared_ptr<authenticator> auth_;
  std::vector<caf::actor> workers_;
  caf::actor admin_;
  // The workers and the admin worker: the only senders of responses.
  std::vector<caf::actor_control_block*> trusted_;
  log_limiter warnings_;
  std::chrono::milliseconds tick_interval_;
};

// -- no authentication --------------------------------------------------------

class no_authentication final : public authenticator {
public:
  caf::expected<std::vector<char>> open(const caf::node_id&,
                                        std::vector<char> wire) override {
    return wire;
  }

  std::vector<char> seal(const caf::node_id&,
                         std::vector<char> response) override {
    return response;
  }

  const char* mode() const override {
    return "none";
  }
};

// CAF reports every failure to listen as cannot_open_port. Binding a plain
// socket to the same address tells why (the port is taken, the address is
// not on this host, ...), so the operator reads the cause, not just the
// symptom. Empty when that bind succeeds (the cause was elsewhere).
std::string why_cannot_listen(const std::string& host, uint16_t port) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* found = nullptr;
  auto service = std::to_string(port);
  if (auto rc = ::getaddrinfo(host.empty() ? nullptr : host.c_str(),
                              service.c_str(), &hints, &found))
    return ::gai_strerror(rc);
  std::string why;
  for (auto* ai = found; ai != nullptr && why.empty(); ai = ai->ai_next) {
    int fd = ::socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC,
                      ai->ai_protocol);
    if (fd < 0)
      continue;
    int one = 1;
    (void)::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (::bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || ::listen(fd, 1) != 0)
      why = errno == EADDRINUSE ? "address in use" : std::strerror(errno);
    ::close(fd);
  }
  ::freeaddrinfo(found);
  return why;
}

} // namespace

std::unique_ptr<authenticator> make_no_authentication() {
  return std::make_unique<no_authentication>();
}

control::response serve(runtime& rt, control::request req,
                        const gateway_options& opts) {
  return std::visit(server{rt, opts}, std::move(req));
}

// -- gateway ------------------------------------------------------------------

struct gateway::impl {
  caf::actor_system& sys;
  caf::actor gw;
  // The daemon workers, then the admin worker.
  std::vector<caf::actor> workers;
  std::vector<uint16_t> ports;
  bool stopped = false;
  // Set before stop() ends the gateway: its exit is then expected.
  std::shared_ptr<std::atomic<bool>>
    stopping = std::make_shared<std::atomic<bool>>(false);

  explicit impl(caf::actor_system& s) : sys(s) {}
};

gateway::gateway(caf::actor_system& sys, runtime& rt, gateway_options opts)
  : impl_(std::make_unique<impl>(sys)) {
  if (opts.workers == 0)
    opts.workers = 1;
  if (!opts.auth)
    opts.auth = make_no_authentication();
  std::vector<caf::actor> daemon_workers;
  for (size_t i = 0; i < opts.workers; ++i)
    daemon_workers.push_back(sys.spawn<caf::detached>(worker_actor, &rt, opts));
  auto admin = sys.spawn<caf::detached>(worker_actor, &rt, opts);
  impl_->workers = daemon_workers;
  impl_->workers.push_back(admin);
  auto auth = opts.auth;
  impl_->gw = sys.spawn<gateway_actor>(std::move(auth),
                                       std::move(daemon_workers),
                                       std::move(admin), opts.warn_limit);
  if (opts.on_unexpected_exit) {
    auto stopping = impl_->stopping;
    auto fn = opts.on_unexpected_exit;
    impl_->gw->attach_functor([stopping, fn](const caf::error& reason) {
      if (!*stopping)
        fn(reason);
    });
  }
}

gateway::~gateway() {
  stop();
}

const caf::actor& gateway::handle() const {
  return impl_->gw;
}

caf::expected<uint16_t> gateway::publish(const std::string& host,
                                         uint16_t port) {
  if (impl_->stopped)
    return make_error(errc::shutting_down, "the gateway is stopped");
  if (!impl_->sys.has_middleman())
    return make_error(errc::invalid_argument,
                      "the actor system has no middleman: load "
                      "caf::io::middleman before publishing");
  // BASP routes a message addressed by name to the registry entry of that
  // name. CAF registers two: ConfigServ (a key-value store any peer could
  // fill without bound, and which hands out the handle of any named actor)
  // and SpawnServ (spawns any type in actor_factories; meshd has none, but
  // an embedding program might). No peer needs either of them.
  impl_->sys.registry().erase(caf::atom("ConfigServ"));
  impl_->sys.registry().erase(caf::atom("SpawnServ"));
  auto bound = impl_->sys.middleman().publish(impl_->gw, port, host.c_str(),
                                              true);
  if (!bound) {
    auto why = port != 0 ? why_cannot_listen(host, port) : std::string{};
    return make_error(errc::io_error,
                      "cannot listen on " + host + ":" + std::to_string(port)
                        + ": " + (why.empty() ? describe(bound.error()) : why));
  }
  impl_->ports.push_back(*bound);
  return *bound;
}

void gateway::stop() {
  if (impl_->stopped)
    return;
  impl_->stopped = true;
  *impl_->stopping = true;
  if (impl_->sys.has_middleman())
    for (auto port : impl_->ports)
      (void)impl_->sys.middleman().unpublish(impl_->gw, port);
  // Workers first: each finishes the request it is serving and its queued
  // requests bounce back to the gateway, which answers them shutting_down.
  // So every client waiting on the gateway gets an answer before it quits.
  caf::scoped_actor self{impl_->sys};
  for (auto& w : impl_->workers) {
    self->monitor(w);
    caf::anon_send_exit(w, caf::exit_reason::user_shutdown);
  }
  for (size_t i = 0; i < impl_->workers.size(); ++i)
    self->receive([](const caf::down_msg&) {});
  self->monitor(impl_->gw);
  self->send(impl_->gw, gateway_drain{});
  self->receive([](const caf::down_msg&) {});
}

} // namespace mesh
