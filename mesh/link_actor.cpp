#include "mesh/link_actor.hpp"

#include <deque>
#include <map>
#include <optional>
#include <set>
#include <utility>
#include <vector>

#include <caf/actor.hpp>
#include <caf/actor_cast.hpp>
#include <caf/actor_system.hpp>
#include <caf/allowed_unsafe_message_type.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/exit_reason.hpp>
#include <caf/io/middleman.hpp>
#include <caf/io/middleman_actor.hpp>
#include <caf/node_id.hpp>
#include <caf/response_promise.hpp>
#include <caf/scoped_actor.hpp>
#include <caf/sec.hpp>
#include <caf/send.hpp>
#include <caf/stateful_actor.hpp>
#include <caf/system_messages.hpp>

#include "base/errc.hpp"
#include "mesh/control_codec.hpp"
#include "mesh/gateway.hpp"

namespace {

// The deadline of one request the link actor forwarded.
struct link_deadline {
  uint64_t serial;
};

} // namespace

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(link_deadline)

namespace mesh {

namespace {

using link::wire_bytes;

enum class link_phase {
  /// Waiting for the middleman to connect.
  connecting,
  /// ClientHello or ClientFinish sent, waiting for the answer.
  handshaking,
  /// Frames flow.
  ready,
  /// The handshake failed or the connection is gone: everything fails
  /// with `failure`.
  failed,
};

struct link_state {
  std::optional<link_credentials> creds;
  link_options opts;
  std::string address;
  caf::actor gateway;
  link_phase phase = link_phase::connecting;
  link::initiator handshake;
  std::optional<link::session> session;
  caf::error failure;
  // Requests that arrived before the handshake completed, in order.
  std::deque<std::pair<wire_bytes, caf::response_promise>> queued;
  std::vector<caf::response_promise> peer_waiters;
  // Forwarded requests awaiting their answer or their deadline.
  uint64_t next_serial = 0;
  std::map<uint64_t, caf::response_promise> pending;

  static inline const char* name = "mesh.link";
};

using link_actor = caf::stateful_actor<link_state>;

// The error's own words, without the code describe() puts in front (the
// message that carries it names the code once).
std::string words_of(const caf::error& err) {
  const auto& ctx = err.context();
  if (ctx.size() == 1 && ctx.match_element<std::string>(0))
    return ctx.get_as<std::string>(0);
  return describe(err);
}

caf::error went_away(const std::string& address) {
  return make_error(errc::target_unavailable, "node " + address + " went away");
}

caf::error timed_out(const link_state& st, const char* what) {
  return make_error(errc::timeout,
                    std::string{"no "} + what + " from " + st.address
                      + " within "
                      + std::to_string(st.opts.request_timeout.count())
                      + " ms");
}

// Fails everything waiting and everything to come with `err`.
void fail_link(link_actor* self, caf::error err) {
  auto& st = self->state;
  if (st.phase == link_phase::failed)
    return;
  st.phase = link_phase::failed;
  st.failure = std::move(err);
  st.session.reset();
  for (auto& [bytes, rp] : st.queued)
    rp.deliver(st.failure);
  st.queued.clear();
  for (auto& rp : st.peer_waiters)
    rp.deliver(st.failure);
  st.peer_waiters.clear();
  for (auto& [serial, rp] : st.pending)
    rp.deliver(st.failure);
  st.pending.clear();
}

// What a transport error of the link's own requests means for the client.
caf::error transport_error(link_actor* self, caf::error err, const char* what) {
  if (err == caf::sec::request_receiver_down)
    return went_away(self->state.address);
  if (err == caf::sec::request_timeout)
    return timed_out(self->state, what);
  return err;
}

// A plain (unsealed) answer: the node's refusal as a caf::error, or
// corrupt_data when it is not a refusal.
caf::error plain_refusal(const link_state& st, const wire_bytes& bytes) {
  auto decoded = control::decode_response(bytes);
  if (decoded)
    if (auto* err = std::get_if<control::error_response>(&decoded->body))
      return control::to_error(*err);
  return make_error(errc::corrupt_data,
                    "unexpected unsealed answer from " + st.address);
}

void forward(link_actor* self, wire_bytes plain, caf::response_promise rp) {
  auto& st = self->state;
  auto sealed = st.session->seal(plain);
  if (!sealed) {
    rp.deliver(sealed.error());
    return;
  }
  auto serial = ++st.next_serial;
  st.pending.emplace(serial, rp);
  self->delayed_send(self, st.opts.request_timeout, link_deadline{serial});
  // No CAF timeout here: the answer must be opened whenever it comes, even
  // after the deadline answered the client, or the receive counter would
  // fall behind the node's send counter.
  self
    ->request(st.gateway, caf::infinite, request_atom::value,
              std::move(*sealed))
    .then(
      [self, serial](wire_bytes& res) {
        auto& st = self->state;
        caf::expected<wire_bytes> out = wire_bytes{};
        if (link::kind_of(res) == link::kind::frame && st.session) {
          out = st.session->open(res);
          if (!out)
            out = make_error(errc::unauthenticated,
                             "the answer from " + st.address
                               + " does not open: " + describe(out.error()));
        } else if (!link::kind_of(res)) {
          // The node's plain refusal: pass the error Response on as is.
          auto err = plain_refusal(st, res);
          if (is(err, errc::corrupt_data))
            out = std::move(err);
          else
            out = std::move(res);
        } else {
          out = make_error(errc::corrupt_data,
                           "unexpected link message from " + st.address);
        }
        auto it = st.pending.find(serial);
        if (it == st.pending.end())
          return;
        auto rp = std::move(it->second);
        st.pending.erase(it);
        if (out)
          rp.deliver(std::move(*out));
        else
          rp.deliver(out.error());
      },
      [self, serial](caf::error& err) {
        auto& st = self->state;
        auto it = st.pending.find(serial);
        if (it == st.pending.end())
          return;
        auto rp = std::move(it->second);
        st.pending.erase(it);
        rp.deliver(transport_error(self, std::move(err), "answer"));
      });
}

void become_ready(link_actor* self, link::session s) {
  auto& st = self->state;
  st.session.emplace(std::move(s));
  st.phase = link_phase::ready;
  for (auto& rp : st.peer_waiters)
    rp.deliver(st.session->peer());
  st.peer_waiters.clear();
  auto queued = std::move(st.queued);
  st.queued.clear();
  for (auto& [bytes, rp] : queued)
    forward(self, std::move(bytes), std::move(rp));
}

// The handshake failed: the error names the node and why.
caf::error handshake_error(const link_state& st, const caf::error& why) {
  auto code = code_of(why);
  return make_error(code == errc{} ? errc::unauthenticated : code,
                    "link to " + st.address + " refused: " + words_of(why));
}

void send_finish(link_actor* self, wire_bytes finish, link::session s) {
  auto& st = self->state;
  auto sid = s.id();
  self
    ->request(st.gateway, st.opts.request_timeout, request_atom::value,
              std::move(finish))
    .then(
      [self, sid, s = std::make_shared<link::session>(std::move(s))](
        wire_bytes& ready) mutable {
        auto& st = self->state;
        if (st.phase != link_phase::handshaking)
          return;
        if (link::is_ready(ready, sid))
          return become_ready(self, std::move(*s));
        auto err = link::kind_of(ready)
                     ? make_error(errc::corrupt_data, "no LinkReady")
                     : plain_refusal(st, ready);
        fail_link(self, handshake_error(st, err));
      },
      [self](caf::error& err) {
        fail_link(self, transport_error(self, std::move(err), "handshake"));
      });
}

void send_hello(link_actor* self) {
  auto& st = self->state;
  st.phase = link_phase::handshaking;
  self->monitor(st.gateway);
  self
    ->request(st.gateway, st.opts.request_timeout, request_atom::value,
              st.handshake.hello(*st.creds))
    .then(
      [self](wire_bytes& server_hello) {
        auto& st = self->state;
        if (st.phase != link_phase::handshaking)
          return;
        if (!link::kind_of(server_hello))
          return fail_link(self,
                           handshake_error(st,
                                           plain_refusal(st, server_hello)));
        auto fin = st.handshake.finish(*st.creds, server_hello);
        if (!fin)
          return fail_link(self, handshake_error(st, fin.error()));
        send_finish(self, std::move(fin->first), std::move(fin->second));
      },
      [self](caf::error& err) {
        fail_link(self, transport_error(self, std::move(err), "handshake"));
      });
}

caf::behavior link_behavior(link_actor* self) {
  self->set_down_handler([self](caf::down_msg& dm) {
    auto& st = self->state;
    if (dm.source == st.gateway.address())
      fail_link(self, went_away(st.address));
  });
  return {
    [self](request_atom, wire_bytes& plain) -> caf::result<wire_bytes> {
      auto& st = self->state;
      // A response promise takes the answer over: make one only when the
      // answer comes later.
      if (st.phase == link_phase::failed)
        return st.failure;
      auto rp = self->make_response_promise<wire_bytes>();
      if (st.phase == link_phase::ready)
        forward(self, std::move(plain), rp);
      else
        st.queued.emplace_back(std::move(plain), rp);
      return rp;
    },
    [self](link_peer_atom) -> caf::result<entity_id> {
      auto& st = self->state;
      if (st.phase == link_phase::failed)
        return st.failure;
      if (st.phase == link_phase::ready)
        return st.session->peer();
      auto rp = self->make_response_promise<entity_id>();
      st.peer_waiters.push_back(rp);
      return rp;
    },
    [self](link_deadline d) {
      auto& st = self->state;
      auto it = st.pending.find(d.serial);
      if (it == st.pending.end())
        return;
      it->second.deliver(timed_out(st, "answer"));
      st.pending.erase(it);
    },
  };
}

caf::behavior
link_to_gateway(link_actor* self, caf::actor gateway, std::string address,
                std::shared_ptr<link_credentials> creds, link_options opts) {
  auto& st = self->state;
  st.creds.emplace(std::move(*creds));
  st.opts = opts;
  st.address = std::move(address);
  st.gateway = std::move(gateway);
  send_hello(self);
  return link_behavior(self);
}

caf::behavior link_to_address(link_actor* self, std::string host, uint16_t port,
                              std::shared_ptr<link_credentials> creds,
                              link_options opts) {
  auto& st = self->state;
  st.creds.emplace(std::move(*creds));
  st.opts = opts;
  st.address = host + ":" + std::to_string(port);
  auto mm = self->system().middleman().actor_handle();
  self->request(mm, opts.request_timeout, caf::connect_atom::value, host, port)
    .then(
      [self](const caf::node_id&, caf::strong_actor_ptr& ptr,
             const std::set<std::string>&) {
        auto& st = self->state;
        if (st.phase != link_phase::connecting)
          return;
        if (!ptr)
          return fail_link(self,
                           make_error(errc::target_unavailable,
                                      "nothing is published at " + st.address));
        st.gateway = caf::actor_cast<caf::actor>(std::move(ptr));
        send_hello(self);
      },
      [self](caf::error& err) {
        auto& st = self->state;
        if (err == caf::sec::request_timeout)
          return fail_link(self, timed_out(st, "connection"));
        fail_link(self, make_error(errc::target_unavailable,
                                   "cannot connect to " + st.address + " ("
                                     + describe(err) + ")"));
      });
  return link_behavior(self);
}

} // namespace

caf::actor spawn_link(caf::actor_system& sys, std::string host, uint16_t port,
                      link_credentials creds, link_options opts) {
  // Credentials are move-only; a spawn argument must be copyable.
  return sys.spawn(link_to_address, std::move(host), port,
                   std::make_shared<link_credentials>(std::move(creds)), opts);
}

caf::actor spawn_link(caf::actor_system& sys, caf::actor gateway,
                      std::string address, link_credentials creds,
                      link_options opts) {
  return sys.spawn(link_to_gateway, std::move(gateway), std::move(address),
                   std::make_shared<link_credentials>(std::move(creds)), opts);
}

caf::expected<entity_id> await_link(caf::actor_system& sys,
                                    const caf::actor& link,
                                    std::chrono::milliseconds timeout) {
  caf::expected<entity_id> result = make_error(errc::timeout, "no answer");
  caf::scoped_actor self{sys};
  self->request(link, timeout, link_peer_atom::value)
    .receive(
      [&](entity_id& peer) {
        result = peer;
      },
      [&](caf::error& err) {
        if (err == caf::sec::request_timeout)
          result = make_error(errc::timeout,
                              "the link handshake did not finish within "
                                + std::to_string(timeout.count()) + " ms");
        else
          result = std::move(err);
      });
  if (!result)
    caf::anon_send_exit(link, caf::exit_reason::user_shutdown);
  return result;
}

caf::expected<link_connection>
connect_link(caf::actor_system& sys, const std::string& host, uint16_t port,
             const link_credentials& creds, std::chrono::milliseconds timeout) {
  if (!sys.has_middleman())
    return make_error(errc::invalid_argument,
                      "the actor system has no middleman");
  link_options opts;
  opts.request_timeout = timeout;
  auto actor = spawn_link(sys, host, port, creds.clone(), opts);
  auto peer = await_link(sys, actor, timeout);
  if (!peer)
    return std::move(peer.error());
  return link_connection{std::move(actor), *peer};
}

} // namespace mesh
