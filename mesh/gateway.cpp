#include "mesh/gateway.hpp"

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <exception>
#include <map>
#include <mutex>
#include <optional>
#include <unordered_map>
#include <utility>
#include <variant>
#include <vector>

#include <netdb.h>
#include <sys/socket.h>
#include <unistd.h>

#include <caf/actor.hpp>
#include <caf/actor_addr.hpp>
#include <caf/actor_cast.hpp>
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
#include <caf/system_messages.hpp>
#include <spdlog/spdlog.h>

#include "actors/limits.hpp"
#include "actors/messages.hpp"
#include "actors/runtime.hpp"
#include "actors/spawn_spec.hpp"
#include "base/bytes.hpp"
#include "base/errc.hpp"
#include "identity/entity_id.hpp"
#include "identity/keypair.hpp"
#include "mesh/link_crypto.hpp"
#include "mesh/mesh_messages.hpp"
#include "snapshot/snapshot.hpp"

namespace {

// Stops the gateway (gateway::stop()): new requests are refused, those in
// flight get drain_timeout to finish.
struct gateway_drain {};

// The drain's time is up: what is still in flight is answered
// shutting_down, and the gateway quits.
struct gateway_drain_end {};

// gateway::attach_mesh().
struct gateway_mesh {
  caf::actor mesh;
  mesh::entity_id node_id;
  std::string address;
};

// Reports the warnings the limiter suppressed; sent by the gateway to itself.
struct gateway_tick {};

// The deadline of one message the gateway sent to a runtime actor.
struct gateway_deadline {
  uint64_t ask;
  std::chrono::milliseconds after;
};

} // namespace

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(gateway_drain)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(gateway_drain_end)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(gateway_tick)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(gateway_mesh)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(gateway_deadline)

namespace mesh {

namespace {

using namespace mesh::control;

error_response fail(errc code, std::string what) {
  return {code, std::move(what)};
}

// The error's own words, without the code describe() puts in front (the
// message that carries it names the code once).
std::string words_of(const caf::error& err) {
  const auto& ctx = err.context();
  if (ctx.size() == 1 && ctx.match_element<std::string>(0))
    return ctx.get_as<std::string>(0);
  return describe(err);
}

std::string ms(std::chrono::milliseconds d) {
  return std::to_string(d.count()) + " ms";
}

class gateway_actor;

// Serves one decoded request: one operator() per request type, its handler.
// A handler answers its job exactly once through gw->answer(), usually later,
// from the answer of a runtime actor. A handler missing here is a compile
// error (std::visit over control::request).
struct handlers {
  gateway_actor* gw;
  uint64_t job;
  // gw->peer_key(job): the authenticated key of the peer that sent it.

  void operator()(daemons_request);
  void operator()(kinds_request);
  void operator()(deploy_request x);
  void operator()(send_request x);
  void operator()(high_water_request x);
  void operator()(stats_request x);
  void operator()(snapshot_request x);
  void operator()(stop_request x);
  void operator()(resume_request x);
  void operator()(nodes_request);
  void operator()(heartbeat_request x);
  void operator()(probe_request x);
  void operator()(directory_request x);
  void operator()(local_daemons_request);
};

// Which session a job came in on and who the peer proved to be.
struct job_peer {
  link::session_id session{};
  entity_id key{};
};

// The published actor. Its handle is the only one that crosses the wire, so
// anything CAF's BASP lets a peer send can arrive here (DESIGN.md section 7):
//   - exit messages, also `kill`, which no exit handler can intercept: every
//     exit message is dropped before it reaches the mailbox. Nothing on this
//     node sends one to the gateway (gateway::stop() uses gateway_drain), and
//     a sender's node cannot tell (a peer may claim this node's id);
//   - responses: the gateway's own requests go to the supervisor and the
//     daemon actors, and a peer could forge their answers (CAF's request
//     ids are sequential). A response enters the mailbox only when it
//     answers a request the gateway has outstanding and comes from the
//     actor that request went to (or is CAF's anonymous bounce of a request
//     whose receiver has terminated: an error request_receiver_down, which
//     even then the gateway does not take on trust, see ask_daemon).
//     Everything else is dropped: a peer can neither answer in the
//     runtime's place nor make the gateway drop a real answer;
//   - forwarded messages (a forwarding stack) and the system messages the
//     gateway never uses (timeouts, streams): dropped too;
//   - errors, down messages and any other tuple: logged and dropped by the
//     handlers below, never a reason to quit.
// Internal messages (gateway_drain, gateway_tick, gateway_deadline, ...)
// have types that are not registered with CAF, so BASP cannot deserialize
// them: a peer cannot send them at all.
// Every line a peer can cause goes through the rate limiter.
class gateway_actor : public caf::event_based_actor {
public:
  gateway_actor(caf::actor_config& cfg, runtime* rt, gateway_options opts)
    : caf::event_based_actor(cfg),
      rt_(*rt),
      sup_(rt->supervisor()),
      opts_(std::move(opts)),
      warnings_(opts_.warn_limit) {
    if (!opts_.link)
      opts_.link = std::make_shared<const link_credentials>(
        link_credentials{psk::open(), keypair::generate(), std::nullopt});
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
      if (drop_sessions_of(dm.source) == 0)
        warn("gateway: ignored down message ({}) from {}", describe(dm.reason),
             origin(current_sender()));
    });
    delayed_send(this, opts_.warn_limit.interval, gateway_tick{});
    return {
      [this](request_atom, wire_bytes& wire) -> caf::result<wire_bytes> {
        return serve_request(std::move(wire));
      },
      [this](gateway_drain) {
        draining_ = true;
        if (jobs_.empty())
          finish();
        else
          delayed_send(this, opts_.drain_timeout, gateway_drain_end{});
      },
      [this](gateway_drain_end) {
        auto open = std::move(jobs_);
        jobs_.clear();
        for (auto& [id, j] : open)
          deliver(j, fail(errc::shutting_down,
                          "the node is shutting down; the request was not "
                          "answered in time and may have been applied"));
        finish();
      },
      [this](gateway_mesh& m) {
        opts_.mesh = std::move(m.mesh);
        opts_.node_id = m.node_id;
        opts_.node_address = std::move(m.address);
      },
      [this](gateway_tick) {
        sweep_links();
        report_suppressed(warnings_.take_suppressed());
        delayed_send(this, opts_.warn_limit.interval, gateway_tick{});
      },
      [this](gateway_deadline d) {
        fail_ask(d.ask,
                 make_error(errc::timeout, "no answer within " + ms(d.after)));
      },
    };
  }

  // -- serving, for the handlers ---------------------------------------------

  const gateway_options& options() const {
    return opts_;
  }

  runtime& rt() {
    return rt_;
  }

  // Whether `job` still waits for its answer (a drain may have answered it).
  bool pending(uint64_t job) const {
    return jobs_.count(job) > 0;
  }

  // The ed25519 key the peer of `job` proved in its handshake (all zero
  // for a job no longer pending).
  const entity_id& peer_key(uint64_t job) const {
    static const entity_id none{};
    auto it = jobs_.find(job);
    return it == jobs_.end() ? none : it->second.peer.key;
  }

  // Answers `job` (once; later answers are ignored).
  void answer(uint64_t job, control::response res) {
    auto it = jobs_.find(job);
    if (it == jobs_.end())
      return;
    auto j = std::move(it->second);
    jobs_.erase(it);
    deliver(j, std::move(res));
    if (draining_ && jobs_.empty())
      finish();
  }

  // Sends `xs...` to `dest`, a runtime actor, with a deadline; calls
  // ok(R&) with its answer, or err(error) when it fails or the deadline
  // passes (then errc::timeout). Exactly one of them runs.
  template<class R, class Handle, class Ok, class... Ts>
  void ask(const Handle& dest, Ok ok, std::function<void(caf::error)> err,
           Ts&&... xs) {
    ask_within<R>(opts_.request_timeout, dest, std::move(ok), std::move(err),
                  std::forward<Ts>(xs)...);
  }

  // ask() with a deadline of its own.
  template<class R, class Handle, class Ok, class... Ts>
  void ask_within(std::chrono::milliseconds deadline, const Handle& dest, Ok ok,
                  std::function<void(caf::error)> err, Ts&&... xs) {
    auto* ctrl = caf::actor_cast<caf::actor_control_block*>(dest);
    if (ctrl == nullptr) {
      err(make_error(errc::daemon_not_found, "no actor to ask"));
      return;
    }
    auto serial = ++next_ask_;
    asks_.emplace(serial, std::move(err));
    // The answer may arrive (on another thread) before request() returns,
    // so the id it will carry is registered first: request() takes the
    // next one (local_actor::new_request_id).
    auto next = last_request_id_;
    ++next;
    expect(next, ctrl);
    auto rh = request(dest, caf::infinite, std::forward<Ts>(xs)...);
    if (rh.id().request_id() != next.request_id()) {
      spdlog::error("gateway: request id {} is not the predicted {}: its "
                    "answer may be refused (a bug)",
                    rh.id().integer_value(), next.integer_value());
      expect(rh.id(), ctrl);
    }
    delayed_send(this, deadline, gateway_deadline{serial, deadline});
    rh.then(
      [this, serial, ok](R& r) mutable {
        if (asks_.erase(serial) > 0)
          ok(r);
      },
      [this, serial](caf::error& e) {
        fail_ask(serial, std::move(e));
      });
  }

  // ask() the supervisor; errors answer `job`.
  template<class R, class Ok, class... Ts>
  void ask_sup(uint64_t job, Ok ok, Ts&&... xs) {
    ask<R>(
      sup_, std::move(ok),
      [this, job](caf::error e) {
        if (e == caf::sec::request_receiver_down)
          answer(job, fail(errc::shutting_down, "the node is shutting down"));
        else
          answer(job, to_error_response(e));
      },
      std::forward<Ts>(xs)...);
  }

  // ask() daemon `origin` (looked up in the supervisor unless cached);
  // errors answer `job`. A request CAF bounced because the daemon's actor
  // is gone is sent once more when the supervisor names another actor for
  // the daemon now (it restarted). The bounce is anonymous, so a peer could
  // forge one: when the supervisor still names the same actor, nothing is
  // resent and the client is told.
  template<class R, class Ok, class... Ts>
  void ask_daemon(uint64_t job, uint64_t origin, Ok ok, Ts... xs) {
    with_daemon(job, origin, false,
                [this, job, origin, ok, xs...](const daemon_actor& h) {
                  send_daemon<R>(job, origin, h, true, ok, xs...);
                });
  }

  void forget(uint64_t origin) {
    handles_.erase(origin);
  }

  // Spawns one daemon of `kind` through the supervisor. The one place the
  // gateway builds a spawn request.
  template<class Ok>
  void spawn_one(const std::string& kind, Ok ok,
                 std::function<void(caf::error)> err) {
    ask<daemon_info>(sup_, std::move(ok), std::move(err), spawn_atom::value,
                     spawn_spec{kind, keypair::generate()});
  }

  const caf::actor& mesh() const {
    return opts_.mesh;
  }

  // The daemon list entry of a daemon this node runs.
  daemon_entry local_entry(const daemon_info& info) const {
    auto e = to_entry(info);
    e.node = opts_.node_id;
    e.node_address = opts_.node_address;
    return e;
  }

  // Daemon `origin` is not on this node: ask the mesh where it is and
  // forward the request there, answer `moved`, or say it is unavailable.
  // `not_here` is the answer when the mesh does not know it either.
  void elsewhere(uint64_t job, uint64_t origin, error_response not_here) {
    auto it = jobs_.find(job);
    if (it == jobs_.end())
      return;
    if (!opts_.mesh)
      return answer(job, std::move(not_here));
    if (it->second.flags.forwarded) {
      // One hop only: the node that sent it here has an older directory.
      not_here.message += " (forwarded here by another node, whose "
                          "directory is behind; retry)";
      return answer(job, std::move(not_here));
    }
    ask<mesh_route_result>(
      opts_.mesh,
      [this, job, origin, not_here](mesh_route_result& r) {
        using where = mesh_route_result::where;
        switch (r.what) {
          case where::unknown:
          case where::local: return answer(job, not_here);
          case where::unavailable:
            return answer(job,
                          fail(errc::unavailable,
                               "daemon " + hex_u64(origin)
                                 + " is unavailable: its node "
                                 + to_hex(r.entry.node).substr(0, 12) + " ("
                                 + (r.address.empty() ? "address unknown"
                                                      : r.address)
                                 + ") is down"));
          case where::remote: return route_remote(job, origin, r);
        }
      },
      [this, job](caf::error e) {
        answer(job, to_error_response(e));
      },
      mesh_route{origin});
  }

  // Asks node `link` the request in `plain`, re-encoded as forwarded,
  // within forward_timeout; ok() gets its decoded answer.
  void ask_node(const caf::actor& link, const std::string& address,
                const control::request& req, uint64_t id,
                std::function<void(control::response)> ok,
                std::function<void(caf::error)> err) {
    auto bytes = encode(req, id, supported_versions,
                        request_flags{route_mode::forward, true});
    ask_within<wire_bytes>(
      opts_.forward_timeout, link,
      [ok, err, address](wire_bytes& res) {
        auto frame = decode_response(res);
        if (!frame)
          return err(
            make_error(errc::corrupt_data, "bad answer from node " + address
                                             + ": " + describe(frame.error())));
        ok(std::move(frame->body));
      },
      [err, address, this](caf::error e) {
        if (is(e, errc::timeout))
          e = make_error(errc::timeout,
                         "node " + address + " did not answer within "
                           + ms(opts_.forward_timeout)
                           + "; a send may still be applied: resend it with "
                             "the same producer seqs");
        err(std::move(e));
      },
      request_atom::value, std::move(bytes));
  }

private:
  void route_remote(uint64_t job, uint64_t origin, const mesh_route_result& r) {
    auto it = jobs_.find(job);
    if (it == jobs_.end())
      return;
    auto& js = it->second;
    if (js.flags.route == route_mode::redirect)
      return answer(job, moved_response{r.address, r.entry.epoch});
    if (!r.link)
      return answer(job, fail(errc::target_unavailable,
                              "daemon " + hex_u64(origin) + " runs on node "
                                + r.address
                                + ", which this node is still connecting "
                                  "to; retry in a moment"));
    auto frame = decode_request(js.plain, opts_.versions);
    if (!frame)
      return answer(job, to_error_response(frame.error()));
    js.plain = wire_bytes{};
    ask_node(
      r.link, r.address, frame->body, frame->id,
      [this, job](control::response res) {
        answer(job, std::move(res));
      },
      [this, job](caf::error e) {
        answer(job, to_error_response(e));
      });
  }

  struct job_state {
    caf::response_promise rp;
    job_peer peer;
    uint64_t request_id = 0;
    uint16_t version = 0;
    // The request as it arrived (opened), kept while a mesh may need to
    // forward it to the node that runs its daemon.
    wire_bytes plain;
    request_flags flags;
  };

  // A handshake between ServerHello and ClientFinish.
  struct half_open {
    link::responder hs;
    caf::strong_actor_ptr peer;
    std::chrono::steady_clock::time_point deadline;
  };

  // An established session, bound to the actor that ran its handshake.
  struct live_session {
    link::session s;
    caf::strong_actor_ptr peer;
  };

  struct waiter {
    uint64_t job;
    std::function<void(const daemon_actor&)> fn;
  };

  template<class R, class Ok, class... Ts>
  void send_daemon(uint64_t job, uint64_t origin, const daemon_actor& h,
                   bool may_resend, Ok ok, Ts... xs) {
    ask<R>(
      h, ok,
      [this, job, origin, h, may_resend, ok, xs...](caf::error e) {
        if (e == caf::sec::request_receiver_down) {
          forget_if(origin, h);
          with_daemon(job, origin, true,
                      [this, job, origin, h, may_resend, ok,
                       xs...](const daemon_actor& now) {
                        if (now == h || !may_resend) {
                          answer(job, fail(errc::daemon_not_found,
                                           "daemon " + hex_u64(origin)
                                             + " did not take the request (its "
                                               "actor stopped); resend it"));
                          return;
                        }
                        send_daemon<R>(job, origin, now, false, ok, xs...);
                      });
          return;
        }
        if (is(e, errc::daemon_not_found) || is(e, errc::daemon_failed))
          forget_if(origin, h);
        if (is(e, errc::timeout))
          e = make_error(errc::timeout,
                         "daemon " + hex_u64(origin) + " did not answer within "
                           + ms(opts_.request_timeout)
                           + "; a send may still be applied: resend it with "
                             "the same producer seqs");
        answer(job, to_error_response(e));
      },
      xs...);
  }

  void forget_if(uint64_t origin, const daemon_actor& h) {
    auto it = handles_.find(origin);
    if (it != handles_.end() && it->second == h)
      handles_.erase(it);
  }

  // Runs fn with the handle of daemon `origin`: the cached one unless
  // `fresh`, else from the supervisor. Requests for one daemon that wait
  // for its lookup run in arrival order when it answers.
  void with_daemon(uint64_t job, uint64_t origin, bool fresh,
                   std::function<void(const daemon_actor&)> fn) {
    if (!fresh) {
      if (auto it = handles_.find(origin); it != handles_.end()) {
        fn(it->second);
        return;
      }
    }
    auto& waiting = lookups_[origin];
    waiting.push_back(waiter{job, std::move(fn)});
    if (waiting.size() > 1)
      return;
    ask<daemon_actor>(
      sup_,
      [this, origin](daemon_actor& h) {
        handles_[origin] = h;
        auto ws = std::move(lookups_[origin]);
        lookups_.erase(origin);
        for (auto& w : ws)
          if (pending(w.job))
            w.fn(h);
      },
      [this, origin](caf::error e) {
        auto ws = std::move(lookups_[origin]);
        lookups_.erase(origin);
        auto res = e == caf::sec::request_receiver_down
                     ? fail(errc::shutting_down, "the node is shutting down")
                     : to_error_response(e);
        for (auto& w : ws) {
          if (is(e, errc::daemon_not_found))
            elsewhere(w.job, origin, res);
          else
            answer(w.job, res);
        }
      },
      lookup_atom::value, origin);
  }

  void fail_ask(uint64_t serial, caf::error e) {
    auto it = asks_.find(serial);
    if (it == asks_.end())
      return;
    auto f = std::move(it->second);
    asks_.erase(it);
    f(std::move(e));
  }

  void deliver(job_state& j, control::response res) {
    j.rp.deliver(
      seal_for(j.peer.session, encode(res, j.request_id, j.version)));
  }

  // Seals `plain` for session `sid`. A session that is gone (its peer went
  // down) gets a plain error nobody will read.
  wire_bytes seal_for(const link::session_id& sid, wire_bytes plain) {
    auto it = sessions_.find(sid);
    if (it == sessions_.end())
      return plain_error(errc::unauthenticated, "the link session is gone");
    auto sealed = it->second.s.seal(plain);
    if (!sealed)
      return plain_error(errc::unauthenticated, describe(sealed.error()));
    return std::move(*sealed);
  }

  // A Response any client decodes without a session: how every refusal of
  // the link layer is answered. Written in the newest version this node
  // speaks (older clients ignore the extra fields).
  wire_bytes plain_error(errc code, std::string what) const {
    return encode(control::response{fail(code, std::move(what))}, 0,
                  opts_.versions.max);
  }

  void finish() {
    report_suppressed(warnings_.drain_suppressed());
    quit();
  }

  // -- the response filter (enqueue, any thread)
  // -------------------------------

  void expect(caf::message_id mid, caf::actor_control_block* from) {
    std::lock_guard<std::mutex> guard{expected_mtx_};
    expected_[mid.request_id().integer_value()] = from;
  }

  // Whether a response answers an outstanding request of ours, from the
  // actor asked (or anonymously: CAF's bounce when that actor is gone).
  bool admit_response(const caf::mailbox_element& x) {
    std::lock_guard<std::mutex> guard{expected_mtx_};
    auto it = expected_.find(x.mid.request_id().integer_value());
    if (it == expected_.end())
      return false;
    auto* from = x.sender.get();
    if (from == nullptr ? !is_bounce(x, it->second) : from != it->second)
      return false;
    expected_.erase(it);
    return true;
  }

  // CAF bounces a request whose receiver is gone with an anonymous
  // request_receiver_down error. Anything else anonymous is forged.
  static bool is_bounce(const caf::mailbox_element& x,
                        caf::actor_control_block* asked) {
    const auto& content = x.content();
    if (!content.match_elements<caf::error>()
        || content.get_as<caf::error>(0) != caf::sec::request_receiver_down)
      return false;
    auto* actor = asked->get();
    return actor->getf(caf::abstract_actor::is_terminated_flag)
           || actor->getf(caf::abstract_actor::is_cleaned_up_flag);
  }

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
  std::optional<std::string> refusal(const caf::mailbox_element& x) {
    const auto& content = x.content();
    if (content.match_elements<caf::exit_msg>())
      return "exit message (reason "
             + describe(content.get_as<caf::exit_msg>(0).reason) + ")";
    if (x.mid.is_response()) {
      if (!admit_response(x))
        return std::string{"response to no request the gateway sent to "
                           "that actor"};
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
    if (opts_.before_serve)
      opts_.before_serve();
    auto kind = link::kind_of(wire);
    if (!kind) {
      warn("gateway: refused a request without a link session from {}",
           origin(current_sender()));
      return plain_error(errc::unauthenticated,
                         "this node serves only authenticated links: run the "
                         "link handshake first (docs/protocol.md section 5; "
                         "meshctl --psk-file)");
    }
    switch (*kind) {
      case link::kind::client_hello: return on_hello(wire);
      case link::kind::client_finish: return on_finish(wire);
      case link::kind::frame: return on_frame(std::move(wire));
      default:
        warn("gateway: refused a link message a node never takes from {}",
             origin(current_sender()));
        return plain_error(errc::unauthenticated,
                           "unexpected link message (a node takes only "
                           "ClientHello, ClientFinish and Frame)");
    }
  }

  // The sender of the current message as a handle the gateway can keep
  // and compare (a remote sender is its proxy on this node).
  caf::strong_actor_ptr peer_actor() {
    return current_sender();
  }

  wire_bytes on_hello(const wire_bytes& wire) {
    if (draining_)
      return plain_error(errc::shutting_down, "the node is shutting down");
    auto peer = peer_actor();
    if (!peer)
      return plain_error(errc::unauthenticated,
                         "an anonymous sender cannot hold a link session");
    sweep_links();
    if (handshakes_.size() >= opts_.max_handshakes) {
      warn("gateway: refused a handshake from {}: {} handshakes are open",
           origin(peer), handshakes_.size());
      return plain_error(errc::limit_exceeded,
                         "too many handshakes in progress; retry later");
    }
    if (sessions_.size() >= opts_.max_sessions) {
      warn("gateway: refused a handshake from {}: {} sessions are open",
           origin(peer), sessions_.size());
      return plain_error(errc::limit_exceeded,
                         "too many links to this node; retry later");
    }
    auto accepted = link::responder::accept(*opts_.link, wire);
    if (!accepted) {
      warn("gateway: refused a handshake from {}: {}", origin(peer),
           describe(accepted.error()));
      return plain_error(errc::unauthenticated,
                         "handshake refused: " + words_of(accepted.error()));
    }
    auto sid = accepted->first.id();
    auto deadline = std::chrono::steady_clock::now() + opts_.handshake_timeout;
    handshakes_.emplace(sid, half_open{std::move(accepted->first),
                                       std::move(peer), deadline});
    return std::move(accepted->second);
  }

  wire_bytes on_finish(const wire_bytes& wire) {
    auto peer = peer_actor();
    auto sid = link::session_of(wire);
    auto it = sid ? handshakes_.find(*sid) : handshakes_.end();
    if (it == handshakes_.end() || it->second.peer != peer) {
      warn("gateway: refused a ClientFinish from {}: no such handshake "
           "from that actor",
           origin(peer));
      return plain_error(errc::unauthenticated,
                         "no handshake in progress for this ClientFinish (it "
                         "expired, or it is a replay)");
    }
    if (draining_) {
      handshakes_.erase(it);
      return plain_error(errc::shutting_down, "the node is shutting down");
    }
    // A failed finish leaves the handshake open: a forged one must not end
    // the genuine peer's handshake (it expires on its own).
    auto done = it->second.hs.finish(wire);
    if (!done) {
      warn("gateway: refused a ClientFinish from {}: {}", origin(peer),
           describe(done.error()));
      return plain_error(errc::unauthenticated,
                         "handshake refused: " + words_of(done.error()));
    }
    handshakes_.erase(it);
    spdlog::debug("gateway: link up peer={} from {}",
                  to_hex(done->second.peer()), origin(peer));
    // The peer's link actor (a proxy for a remote one) goes down when its
    // connection dies: the session goes with it.
    monitor(peer);
    sessions_.emplace(*sid, live_session{std::move(done->second), peer});
    return std::move(done->first);
  }

  caf::result<wire_bytes> on_frame(wire_bytes wire) {
    auto peer = peer_actor();
    auto sid = link::session_of(wire);
    auto it = sid ? sessions_.find(*sid) : sessions_.end();
    if (it == sessions_.end() || it->second.peer != peer) {
      warn("gateway: refused a frame from {}: no such session from that "
           "actor",
           origin(peer));
      return plain_error(errc::unauthenticated,
                         "no link session for this frame (replayed, or from "
                         "another connection)");
    }
    auto opened = it->second.s.open(wire);
    if (!opened) {
      warn("gateway: refused a frame from {}: {}", origin(peer),
           describe(opened.error()));
      return plain_error(errc::unauthenticated, words_of(opened.error()));
    }
    job_peer who{*sid, it->second.s.peer()};
    // Answers before the version is agreed are written in the newest
    // version this node speaks (older clients ignore the extra fields).
    auto newest = opts_.versions.max;
    uint64_t id = 0;
    auto frame = decode_request(*opened, opts_.versions, &id);
    if (!frame) {
      warn("gateway: bad request id={} from peer={}: {}", id, to_hex(who.key),
           describe(frame.error()));
      return seal_error(who, id, newest, to_error_response(frame.error()));
    }
    if (draining_)
      return seal_error(who, frame->id, frame->version,
                        fail(errc::shutting_down, "the node is shutting down"));
    auto job = ++next_job_;
    auto rp = make_response_promise();
    job_state js{rp, who, frame->id, frame->version, {}, {}};
    js.flags = frame->flags;
    if (opts_.mesh)
      js.plain = std::move(*opened);
    jobs_.emplace(job, std::move(js));
    std::visit(handlers{this, job}, std::move(frame->body));
    return rp;
  }

  wire_bytes seal_error(const job_peer& who, uint64_t id, uint16_t version,
                        error_response err) {
    return seal_for(who.session,
                    encode(control::response{std::move(err)}, id, version));
  }

  // Whether `p` is a dead actor (for a proxy: its connection closed).
  static bool is_down(const caf::strong_actor_ptr& p) {
    auto* a = p->get();
    return a->getf(caf::abstract_actor::is_terminated_flag)
           || a->getf(caf::abstract_actor::is_cleaned_up_flag);
  }

  // Drops the sessions and handshakes of `who` when it is really down (a
  // peer can forge a down message); returns how many.
  size_t drop_sessions_of(const caf::actor_addr& who) {
    size_t n = 0;
    for (auto it = sessions_.begin(); it != sessions_.end();) {
      if (caf::actor_cast<caf::actor_addr>(it->second.peer) == who
          && is_down(it->second.peer)) {
        it = sessions_.erase(it);
        ++n;
      } else {
        ++it;
      }
    }
    for (auto it = handshakes_.begin(); it != handshakes_.end();) {
      if (caf::actor_cast<caf::actor_addr>(it->second.peer) == who
          && is_down(it->second.peer)) {
        it = handshakes_.erase(it);
        ++n;
      } else {
        ++it;
      }
    }
    return n;
  }

  // Drops expired handshakes and the sessions of peers that are down (in
  // case a down message never came).
  void sweep_links() {
    auto now = std::chrono::steady_clock::now();
    for (auto it = handshakes_.begin(); it != handshakes_.end();) {
      if (it->second.deadline <= now || is_down(it->second.peer))
        it = handshakes_.erase(it);
      else
        ++it;
    }
    for (auto it = sessions_.begin(); it != sessions_.end();) {
      if (is_down(it->second.peer))
        it = sessions_.erase(it);
      else
        ++it;
    }
  }

  runtime& rt_;
  supervisor_actor sup_;
  gateway_options opts_;
  log_limiter warnings_;
  bool draining_ = false;

  uint64_t next_job_ = 0;
  std::unordered_map<uint64_t, job_state> jobs_;

  std::map<link::session_id, half_open> handshakes_;
  std::map<link::session_id, live_session> sessions_;

  uint64_t next_ask_ = 0;
  // Outstanding asks: what to call when one fails or its deadline passes.
  std::unordered_map<uint64_t, std::function<void(caf::error)>> asks_;

  std::unordered_map<uint64_t, daemon_actor> handles_;
  std::unordered_map<uint64_t, std::vector<waiter>> lookups_;

  // Request ids (request_id().integer_value()) the gateway awaits an answer
  // to, and who must send it. Read by enqueue() on other threads.
  std::mutex expected_mtx_;
  std::unordered_map<uint64_t, caf::actor_control_block*> expected_;
};

// -- the handlers -------------------------------------------------------------

std::vector<daemon_entry> entries_of(gateway_actor* gw,
                                     std::vector<daemon_info> infos) {
  std::sort(infos.begin(), infos.end(),
            [](const daemon_info& x, const daemon_info& y) {
              return x.origin_hash < y.origin_hash;
            });
  std::vector<daemon_entry> out;
  out.reserve(infos.size());
  for (const auto& i : infos)
    out.push_back(gw->local_entry(i));
  return out;
}

void by_origin(std::vector<daemon_entry>& xs) {
  std::sort(xs.begin(), xs.end(),
            [](const daemon_entry& x, const daemon_entry& y) {
              return x.origin_hash < y.origin_hash;
            });
}

// What `daemons` shows for a daemon whose node did not answer: what the
// directory knows, marked unavailable.
daemon_entry unavailable_entry(const directory_entry& e,
                               const std::string& address) {
  daemon_entry d;
  d.origin_hash = e.origin;
  d.kind = e.kind;
  d.epoch = e.epoch;
  d.phase = daemon_phase::running;
  d.node = e.node;
  d.node_address = address;
  d.unavailable = true;
  return d;
}

// Gathers the daemons of every node: this node's from the supervisor, each
// peer's over its link (within forward_timeout), and for a node that is
// down or does not answer, the directory's entries marked unavailable.
struct daemons_gather {
  std::vector<daemon_entry> all;
  size_t waiting = 0;
};

void daemons_done(gateway_actor* gw, uint64_t job,
                  const std::shared_ptr<daemons_gather>& g) {
  if (--g->waiting > 0)
    return;
  by_origin(g->all);
  gw->answer(job, daemons_response{std::move(g->all)});
}

void handlers::operator()(daemons_request) {
  auto g = std::make_shared<daemons_gather>();
  g->waiting = 1;
  auto gw_ = gw;
  auto job_ = job;
  gw->ask_sup<std::vector<daemon_info>>(
    job,
    [gw_, job_, g](std::vector<daemon_info>& infos) {
      auto mine = entries_of(gw_, std::move(infos));
      g->all.insert(g->all.end(), mine.begin(), mine.end());
      if (!gw_->mesh())
        return daemons_done(gw_, job_, g);
      gw_->ask<mesh_peer_list>(
        gw_->mesh(),
        [gw_, job_, g](mesh_peer_list& peers) {
          g->waiting += peers.peers.size();
          for (auto& p : peers.peers) {
            if (!p.link) {
              for (const auto& e : p.entries)
                if (!e.stopped)
                  g->all.push_back(unavailable_entry(e, p.address));
              daemons_done(gw_, job_, g);
              continue;
            }
            auto entries = p.entries;
            auto address = p.address;
            gw_->ask_node(
              p.link, p.address, local_daemons_request{}, 0,
              [gw_, job_, g, entries, address](control::response res) {
                if (auto* r = std::get_if<local_daemons_response>(&res))
                  g->all.insert(g->all.end(), r->daemons.begin(),
                                r->daemons.end());
                else
                  for (const auto& e : entries)
                    if (!e.stopped)
                      g->all.push_back(unavailable_entry(e, address));
                daemons_done(gw_, job_, g);
              },
              [gw_, job_, g, entries, address](caf::error) {
                for (const auto& e : entries)
                  if (!e.stopped)
                    g->all.push_back(unavailable_entry(e, address));
                daemons_done(gw_, job_, g);
              });
          }
          daemons_done(gw_, job_, g);
        },
        [gw_, job_, g](caf::error) {
          daemons_done(gw_, job_, g);
        },
        mesh_peers{});
    },
    list_atom::value);
}

void handlers::operator()(local_daemons_request) {
  gw->ask_sup<std::vector<daemon_info>>(
    job,
    [g = gw, j = job](std::vector<daemon_info>& infos) {
      g->answer(j, local_daemons_response{entries_of(g, std::move(infos))});
    },
    list_atom::value);
}

void handlers::operator()(kinds_request) {
  gw->answer(job, kinds_response{gw->rt().kinds()});
}

void handlers::operator()(nodes_request) {
  if (!gw->mesh())
    return gw->answer(job, fail(errc::invalid_argument,
                                "this node runs without a mesh"));
  gw->ask<std::vector<member_info>>(
    gw->mesh(),
    [g = gw, j = job](std::vector<member_info>& ms) {
      g->answer(j, nodes_response{std::move(ms)});
    },
    [g = gw, j = job](caf::error e) {
      g->answer(j, to_error_response(e));
    },
    mesh_nodes{});
}

void handlers::operator()(heartbeat_request x) {
  if (!gw->mesh())
    return gw->answer(job, fail(errc::invalid_argument,
                                "this node runs without a mesh"));
  gw->ask<heartbeat>(
    gw->mesh(),
    [g = gw, j = job](heartbeat& own) {
      g->answer(j, heartbeat_response{std::move(own)});
    },
    [g = gw, j = job](caf::error e) {
      g->answer(j, to_error_response(e));
    },
    mesh_heartbeat_in{std::move(x.beat), gw->peer_key(job)});
}

void handlers::operator()(probe_request x) {
  if (!gw->mesh())
    return gw->answer(job, fail(errc::invalid_argument,
                                "this node runs without a mesh"));
  gw->ask<bool>(
    gw->mesh(),
    [g = gw, j = job](bool reached) {
      g->answer(j, probe_response{reached});
    },
    [g = gw, j = job](caf::error e) {
      g->answer(j, to_error_response(e));
    },
    mesh_probe_in{std::move(x)});
}

void handlers::operator()(directory_request x) {
  if (!gw->mesh())
    return gw->answer(job, fail(errc::invalid_argument,
                                "this node runs without a mesh"));
  gw->ask<std::vector<directory_entry>>(
    gw->mesh(),
    [g = gw, j = job](std::vector<directory_entry>& table) {
      g->answer(j, directory_response{std::move(table)});
    },
    [g = gw, j = job](caf::error e) {
      g->answer(j, to_error_response(e));
    },
    mesh_directory_in{std::move(x), gw->peer_key(job)});
}

namespace {

// Spawns `count` daemons of `kind` here, one after the other; `done` gets
// what was spawned and, when it stopped early, why.
struct deploy_run {
  std::string kind;
  uint32_t count = 0;
  deploy_response out;
  std::function<void(deploy_response)> done;
};

void deploy_next(gateway_actor* gw, uint64_t job,
                 std::shared_ptr<deploy_run> run) {
  if (!gw->pending(job))
    return;
  auto& out = run->out;
  if (out.daemons.size() == run->count) {
    if (out.daemons.size() == 1)
      spdlog::info("deployed kind={} origin={}", run->kind,
                   hex_u64(out.daemons.front().origin_hash));
    else
      spdlog::info("deployed kind={} count={} first origin={}", run->kind,
                   out.daemons.size(),
                   hex_u64(out.daemons.front().origin_hash));
    run->done(std::move(out));
    return;
  }
  gw->spawn_one(
    run->kind,
    [gw, job, run](daemon_info& info) {
      run->out.daemons.push_back(gw->local_entry(info));
      deploy_next(gw, job, run);
    },
    [gw, job, run](caf::error err) {
      auto& out = run->out;
      if (err == caf::sec::request_receiver_down)
        err = make_error(errc::shutting_down, "the node is shutting down");
      spdlog::warn("deploy kind={} stopped after {} of {} daemon(s): {}",
                   run->kind, out.daemons.size(), run->count, describe(err));
      out.failure = to_error_response(err);
      run->done(std::move(out));
    });
}

// Tells the mesh about daemons spawned here, so other nodes route to them
// at once rather than after the next reconcile.
void publish_spawned(gateway_actor* gw, const deploy_response& r) {
  if (!gw->mesh() || r.daemons.empty())
    return;
  mesh_local_change change;
  for (const auto& d : r.daemons)
    change.entries.push_back(
      directory_entry{d.origin_hash, d.node, d.epoch, d.kind, false});
  caf::anon_send(gw->mesh(), std::move(change));
}

// The shares of one deployment, gathered in plan order.
struct deploy_gather {
  std::vector<deploy_response> parts;
  size_t waiting = 0;
};

void deploy_gathered(gateway_actor* gw, uint64_t job,
                     const std::shared_ptr<deploy_gather>& g) {
  if (--g->waiting > 0)
    return;
  deploy_response out;
  for (auto& p : g->parts) {
    out.daemons.insert(out.daemons.end(), p.daemons.begin(), p.daemons.end());
    if (p.failure && !out.failure)
      out.failure = p.failure;
  }
  if (out.daemons.empty() && out.failure)
    return gw->answer(job, *out.failure);
  gw->answer(job, std::move(out));
}

} // namespace

void handlers::operator()(deploy_request x) {
  auto max = gw->options().max_deploy_count;
  if (x.kind.empty())
    return gw->answer(job, fail(errc::invalid_argument,
                                "deploy needs a daemon kind"));
  if (x.count == 0 || x.count > max)
    return gw->answer(job, fail(errc::invalid_argument,
                                "deploy count must be 1.." + std::to_string(max)
                                  + ", got " + std::to_string(x.count)));
  auto g_ = gw;
  auto j_ = job;
  if (!gw->mesh() || x.here) {
    auto run = std::make_shared<deploy_run>();
    run->kind = x.kind;
    run->count = x.count;
    run->out.daemons.reserve(x.count);
    run->done = [g_, j_](deploy_response r) {
      publish_spawned(g_, r);
      if (r.daemons.empty() && r.failure)
        return g_->answer(j_, *r.failure);
      g_->answer(j_, std::move(r));
    };
    if (!gw->mesh())
      return deploy_next(gw, job, std::move(run));
    // A share another node placed: the kind's own requirements hold here
    // too (the placing node may not have had the kind to read them).
    return gw->ask<bool>(
      gw->mesh(),
      [g_, j_, run](bool) {
        deploy_next(g_, j_, run);
      },
      [g_, j_](caf::error e) {
        g_->answer(j_, to_error_response(e));
      },
      mesh_admit{x.kind});
  }
  auto kind = x.kind;
  gw->ask<std::vector<mesh_share>>(
    gw->mesh(),
    [g_, j_, kind](std::vector<mesh_share>& shares) {
      auto g = std::make_shared<deploy_gather>();
      g->parts.resize(shares.size());
      g->waiting = shares.size() + 1;
      for (size_t i = 0; i < shares.size(); ++i) {
        auto& sh = shares[i];
        if (!sh.link) {
          auto run = std::make_shared<deploy_run>();
          run->kind = kind;
          run->count = sh.count;
          run->done = [g_, j_, g, i](deploy_response r) {
            publish_spawned(g_, r);
            g->parts[i] = std::move(r);
            deploy_gathered(g_, j_, g);
          };
          deploy_next(g_, j_, std::move(run));
          continue;
        }
        deploy_request part;
        part.kind = kind;
        part.count = sh.count;
        part.here = true;
        auto address = sh.address;
        g_->ask_node(
          sh.link, sh.address, part, 0,
          [g_, j_, g, i, address](control::response res) {
            if (auto* r = std::get_if<deploy_response>(&res))
              g->parts[i] = std::move(*r);
            else if (auto* e = std::get_if<error_response>(&res))
              g->parts[i].failure = error_response{e->code, "node " + address
                                                              + ": "
                                                              + e->message};
            else
              g->parts[i].failure = fail(errc::corrupt_data,
                                         "node " + address
                                           + " answered deploy with another "
                                             "type");
            deploy_gathered(g_, j_, g);
          },
          [g_, j_, g, i, address](caf::error e) {
            auto r = to_error_response(e);
            r.message = "node " + address + ": " + r.message;
            g->parts[i].failure = std::move(r);
            deploy_gathered(g_, j_, g);
          });
      }
      deploy_gathered(g_, j_, g);
    },
    [g_, j_](caf::error e) {
      g_->answer(j_, to_error_response(e));
    },
    mesh_place{std::move(x)});
}

void handlers::operator()(send_request x) {
  if (x.events.empty())
    return gw->answer(job, send_response{});
  event_batch batch{x.events};
  if (auto err = limits::check(batch))
    return gw->answer(job, to_error_response(err));
  gw->ask_daemon<delivery_batch>(
    job, x.daemon_id,
    [g = gw, j = job](delivery_batch& r) {
      g->answer(j, send_response{r.to_deliveries()});
    },
    deliver_atom::value, std::move(batch));
}

void handlers::operator()(high_water_request x) {
  gw->ask_daemon<uint64_t>(
    job, x.daemon_id,
    [g = gw, j = job](uint64_t& seq) {
      g->answer(j, high_water_response{seq});
    },
    hwm_atom::value, x.producer_id);
}

void handlers::operator()(stats_request x) {
  gw->ask_daemon<daemon_stats>(
    job, x.daemon_id,
    [g = gw, j = job](daemon_stats& st) {
      g->answer(j, stats_response{st});
    },
    stats_atom::value);
}

void handlers::operator()(snapshot_request x) {
  gw->ask_daemon<bytes>(
    job, x.daemon_id,
    [g = gw, j = job](bytes& encoded) {
      // The daemon just encoded and signed these bytes: read the one field
      // without verifying the whole snapshot on the gateway's thread (a
      // large one would hold up every other request). A parse failure is a
      // bug; say so rather than hand out bytes nobody can restore.
      auto through = peek_through_seq(encoded);
      if (!through)
        return g->answer(j, to_error_response(through.error()));
      g->answer(j, snapshot_response{std::move(encoded), *through});
    },
    snapshot_atom::value);
}

void handlers::operator()(stop_request x) {
  auto id = x.daemon_id;
  gw->ask<bool>(
    gw->rt().supervisor(),
    [g = gw, j = job, id](bool) {
      g->forget(id);
      spdlog::info("stopped origin={}", hex_u64(id));
      if (g->mesh()) {
        directory_entry tomb;
        tomb.origin = id;
        tomb.stopped = true;
        caf::anon_send(g->mesh(), mesh_local_change{{tomb}});
      }
      g->answer(j, stop_response{});
    },
    [g = gw, j = job, id](caf::error e) {
      if (is(e, errc::daemon_not_found))
        return g->elsewhere(j, id, to_error_response(e));
      if (e == caf::sec::request_receiver_down)
        return g->answer(j, fail(errc::shutting_down,
                                 "the node is shutting down"));
      g->answer(j, to_error_response(e));
    },
    stop_atom::value, id);
}

void handlers::operator()(resume_request x) {
  // The runtime resumes a running daemon as a no-op; an operator asking to
  // resume one has the wrong id or a stale table, so say so. The table, not
  // the daemon: a failed daemon may have no actor to ask.
  gw->ask_sup<std::vector<daemon_info>>(
    job,
    [g = gw, j = job, x](std::vector<daemon_info>& all) {
      auto it = std::find_if(all.begin(), all.end(),
                             [&x](const daemon_info& d) {
                               return d.origin_hash == x.daemon_id;
                             });
      if (it == all.end())
        return g->elsewhere(j, x.daemon_id,
                            fail(errc::daemon_not_found,
                                 "no daemon " + hex_u64(x.daemon_id)
                                   + " on this node"));
      auto entry = g->local_entry(*it);
      if (!is_failed(entry))
        return g->answer(j, fail(errc::wrong_phase,
                                 "daemon " + hex_u64(x.daemon_id)
                                   + " is not failed (phase "
                                   + to_string(entry.phase)
                                   + "): nothing to resume"));
      g->ask<daemon_info>(
        g->rt().supervisor(),
        [g, j, x](daemon_info& info) {
          g->forget(x.daemon_id);
          spdlog::info("resumed origin={} at daemon_seq {}{}",
                       hex_u64(x.daemon_id), info.last_seq,
                       x.accept_loss ? " (loss accepted)" : "");
          g->answer(j, resume_response{g->local_entry(info)});
        },
        [g, j, x](caf::error err) {
          g->forget(x.daemon_id);
          spdlog::warn("resume origin={} failed: {}", hex_u64(x.daemon_id),
                       describe(err));
          g->answer(j, to_error_response(err));
        },
        resume_atom::value, x.daemon_id, x.accept_loss);
    },
    list_atom::value);
}

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

// -- gateway ------------------------------------------------------------------

struct gateway::impl {
  caf::actor_system& sys;
  caf::actor gw;
  std::vector<uint16_t> ports;
  bool stopped = false;
  // Set before stop() ends the gateway: its exit is then expected.
  std::shared_ptr<std::atomic<bool>>
    stopping = std::make_shared<std::atomic<bool>>(false);

  explicit impl(caf::actor_system& s) : sys(s) {}
};

gateway::gateway(caf::actor_system& sys, runtime& rt, gateway_options opts)
  : impl_(std::make_unique<impl>(sys)) {
  auto on_exit = opts.on_unexpected_exit;
  impl_->gw = sys.spawn<gateway_actor>(&rt, std::move(opts));
  if (on_exit) {
    auto stopping = impl_->stopping;
    impl_->gw->attach_functor([stopping, on_exit](const caf::error& reason) {
      if (!*stopping)
        on_exit(reason);
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

void gateway::attach_mesh(caf::actor mesh, const entity_id& node_id,
                          std::string node_address) {
  caf::anon_send(impl_->gw, gateway_mesh{std::move(mesh), node_id,
                                         std::move(node_address)});
}

void gateway::stop() {
  if (impl_->stopped)
    return;
  impl_->stopped = true;
  *impl_->stopping = true;
  if (impl_->sys.has_middleman())
    for (auto port : impl_->ports)
      (void)impl_->sys.middleman().unpublish(impl_->gw, port);
  // The gateway refuses new requests, lets those in flight finish (up to
  // drain_timeout), answers the rest shutting_down, then quits: every
  // client waiting on it gets an answer.
  caf::scoped_actor self{impl_->sys};
  self->monitor(impl_->gw);
  self->send(impl_->gw, gateway_drain{});
  self->receive([](const caf::down_msg&) {});
}

} // namespace mesh
