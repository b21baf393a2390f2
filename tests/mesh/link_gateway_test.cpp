// The gateway's side of the link layer, driven by hand with link_crypto
// from scoped actors (each one its own "connection"): sessions bound to the
// actor that ran the handshake, bad frames refused without harm, bounds on
// sessions and handshakes, and a session dropped with its peer.

#include <catch2/catch.hpp>

#include <chrono>
#include <thread>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/exit_reason.hpp>
#include <caf/scoped_actor.hpp>
#include <caf/send.hpp>

#include "actors/runtime.hpp"
#include "base/errc.hpp"
#include "examples/examples.hpp"
#include "mesh/control_codec.hpp"
#include "mesh/gateway.hpp"
#include "mesh/link_actor.hpp"
#include "mesh/link_crypto.hpp"
#include "support/log_capture.hpp"

using namespace mesh;
using namespace mesh::control;
using namespace std::chrono_literals;

namespace {

psk psk_of(uint8_t fill) {
  psk::bytes_type b;
  b.fill(fill);
  return psk::from_bytes(b);
}

// A node (runtime + gateway, not published) with PSK 0x11...
struct node {
  caf::actor_system_config cfg;
  std::unique_ptr<caf::actor_system> sys;
  std::unique_ptr<runtime> rt;
  std::unique_ptr<gateway> gw;
  std::shared_ptr<const link_credentials> creds;

  explicit node(gateway_options opts = {}) {
    mesh::apply_scheduler_defaults(cfg);
    sys = std::make_unique<caf::actor_system>(cfg);
    rt = std::make_unique<runtime>(*sys, runtime_options{});
    for (auto& [kind, factory] : examples::example_kinds())
      REQUIRE(!rt->register_factory(kind, factory));
    REQUIRE(!rt->start());
    creds = std::make_shared<const link_credentials>(
      link_credentials{psk_of(0x11), keypair::generate(), std::nullopt});
    opts.link = creds;
    gw = std::make_unique<gateway>(*sys, *rt, opts);
  }

  ~node() {
    gw.reset();
    rt.reset();
  }
};

// One peer of the gateway, speaking the link protocol by hand from its own
// scoped actor.
struct peer {
  node& n;
  caf::scoped_actor self;
  link_credentials creds;
  std::optional<link::session> session;

  peer(node& nd, uint8_t psk_fill = 0x11)
    : n(nd),
      self(*nd.sys),
      creds{psk_of(psk_fill), keypair::generate(), std::nullopt} {}

  wire_bytes exchange(const wire_bytes& msg) {
    wire_bytes out;
    self->request(n.gw->handle(), 10s, request_atom::value, msg)
      .receive(
        [&](wire_bytes& res) {
          out = std::move(res);
        },
        [&](caf::error& err) {
          FAIL(caf::to_string(err));
        });
    return out;
  }

  // The handshake; returns the node's refusal if any.
  std::optional<error_response> connect() {
    link::initiator ini;
    auto sh = exchange(ini.hello(creds));
    if (!link::kind_of(sh))
      return refusal(sh);
    auto fin = ini.finish(creds, sh);
    REQUIRE(fin);
    auto ready = exchange(fin->first);
    if (!link::kind_of(ready))
      return refusal(ready);
    REQUIRE(link::is_ready(ready, fin->second.id()));
    session.emplace(std::move(fin->second));
    return std::nullopt;
  }

  static error_response refusal(const wire_bytes& res) {
    auto frame = decode_response(res);
    REQUIRE(frame);
    REQUIRE(std::holds_alternative<error_response>(frame->body));
    return std::get<error_response>(frame->body);
  }

  // A sealed request; the answer opened and decoded.
  response ask(const request& req) {
    auto res = exchange(*session->seal(encode(req, 5)));
    REQUIRE(link::kind_of(res) == link::kind::frame);
    auto plain = session->open(res);
    REQUIRE(plain);
    auto frame = decode_response(*plain);
    REQUIRE(frame);
    return std::move(frame->body);
  }
};

bool serves(peer& p) {
  auto res = p.ask(kinds_request{});
  return std::holds_alternative<kinds_response>(res);
}

} // namespace

TEST_CASE("the gateway serves a link and knows the peer's key") {
  node n;
  peer p{n};
  REQUIRE(!p.connect());
  CHECK(p.session->peer() == n.creds->key.id());
  CHECK(serves(p));
  auto dep = p.ask(deploy_request{"counter", 1});
  CHECK(std::holds_alternative<deploy_response>(dep));
}

TEST_CASE("a peer with another PSK is refused at its ClientHello") {
  mesh::test::log_capture logs;
  node n;
  peer p{n, 0x22};
  auto err = p.connect();
  REQUIRE(err);
  CHECK(err->code == errc::unauthenticated);
  CHECK(logs.count("refused a handshake") == 1);
}

TEST_CASE("a bad frame is refused and the session keeps serving") {
  node n;
  peer p{n};
  REQUIRE(!p.connect());
  auto good = *p.session->seal(encode(request{kinds_request{}}, 1));
  auto flipped = good;
  flipped.back() ^= 1;
  CHECK(peer::refusal(p.exchange(flipped)).code == errc::unauthenticated);
  // The genuine frame with the same counter still opens.
  auto res = p.exchange(good);
  REQUIRE(link::kind_of(res) == link::kind::frame);
  REQUIRE(p.session->open(res));
  // Replayed now: refused.
  CHECK(peer::refusal(p.exchange(good)).code == errc::unauthenticated);
  CHECK(serves(p));
}

TEST_CASE("a session is bound to the actor that ran the handshake") {
  node n;
  peer p{n};
  REQUIRE(!p.connect());
  peer thief{n};
  // Another actor sends a frame of p's session (captured, or next in line).
  auto frame = *p.session->seal(
    encode(request{deploy_request{"counter", 1}}, 1));
  CHECK(peer::refusal(thief.exchange(frame)).code == errc::unauthenticated);
  CHECK(n.rt->daemon_count() == 0);
  // p sends it itself: served.
  auto res = p.exchange(frame);
  REQUIRE(link::kind_of(res) == link::kind::frame);
  CHECK(p.session->open(res));
  CHECK(n.rt->daemon_count() == 1);
}

TEST_CASE("a plain request without a session gets unauthenticated") {
  node n;
  peer p{n};
  auto err = peer::refusal(
    p.exchange(encode(request{deploy_request{"counter", 1}}, 3)));
  CHECK(err.code == errc::unauthenticated);
  CHECK(err.message.find("link handshake") != std::string::npos);
  CHECK(n.rt->daemon_count() == 0);
}

TEST_CASE("handshakes and sessions are bounded") {
  gateway_options opts;
  opts.max_handshakes = 2;
  opts.max_sessions = 2;
  node n{opts};
  // Two half-open handshakes fill the table.
  peer a{n}, b{n}, c{n};
  link::initiator ia, ib, ic;
  auto sa = a.exchange(ia.hello(a.creds));
  auto sb = b.exchange(ib.hello(b.creds));
  REQUIRE(link::kind_of(sa) == link::kind::server_hello);
  REQUIRE(link::kind_of(sb) == link::kind::server_hello);
  CHECK(peer::refusal(c.exchange(ic.hello(c.creds))).code
        == errc::limit_exceeded);
  // Finishing them makes two sessions; a third link is refused.
  auto fa = ia.finish(a.creds, sa);
  auto fb = ib.finish(b.creds, sb);
  REQUIRE(link::kind_of(a.exchange(fa->first)) == link::kind::link_ready);
  REQUIRE(link::kind_of(b.exchange(fb->first)) == link::kind::link_ready);
  CHECK(c.connect()->code == errc::limit_exceeded);
}

TEST_CASE("a half-open handshake expires") {
  gateway_options opts;
  opts.max_handshakes = 1;
  opts.handshake_timeout = 200ms;
  node n{opts};
  peer a{n}, b{n};
  link::initiator ia;
  auto sa = a.exchange(ia.hello(a.creds));
  REQUIRE(link::kind_of(sa) == link::kind::server_hello);
  CHECK(b.connect()->code == errc::limit_exceeded);
  std::this_thread::sleep_for(300ms);
  CHECK(!b.connect());
  // The expired handshake cannot finish.
  auto fa = ia.finish(a.creds, sa);
  REQUIRE(fa);
  CHECK(peer::refusal(a.exchange(fa->first)).code == errc::unauthenticated);
}

TEST_CASE("a session ends when its peer goes down") {
  gateway_options opts;
  opts.max_sessions = 1;
  node n{opts};
  auto link = spawn_link(*n.sys, n.gw->handle(), "in-process",
                         link_credentials{psk_of(0x11), keypair::generate(),
                                          std::nullopt});
  REQUIRE(await_link(*n.sys, link, 10s));
  peer p{n};
  CHECK(p.connect()->code == errc::limit_exceeded);
  caf::anon_send_exit(link, caf::exit_reason::user_shutdown);
  auto deadline = std::chrono::steady_clock::now() + 10s;
  std::optional<error_response> refused;
  while ((refused = p.connect()) && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(10ms);
  CHECK(!refused);
  CHECK(serves(p));
}

TEST_CASE("a forged down message does not end a live session") {
  node n;
  peer p{n};
  REQUIRE(!p.connect());
  caf::scoped_actor rogue{*n.sys};
  rogue->send(n.gw->handle(),
              caf::down_msg{caf::actor_cast<caf::actor_addr>(p.self),
                            caf::exit_reason::user_shutdown});
  std::this_thread::sleep_for(50ms);
  CHECK(serves(p));
}
