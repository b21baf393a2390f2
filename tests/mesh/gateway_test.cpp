#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <memory>
#include <set>
#include <stdexcept>
#include <thread>

#include <caf/actor_registry.hpp>
#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/exit_reason.hpp>
#include <caf/io/middleman.hpp>
#include <caf/scoped_actor.hpp>
#include <caf/send.hpp>
#include <capnp/serialize.h>

#include "actors/runtime.hpp"
#include "base/errc.hpp"
#include "examples/examples.hpp"
#include "mesh/control.capnp.h"
#include "mesh/control_client.hpp"
#include "mesh/gateway.hpp"
#include "mesh/link_actor.hpp"
#include "snapshot/snapshot.hpp"
#include "support/log_capture.hpp"

using namespace mesh;
using namespace mesh::control;
using namespace std::chrono_literals;

namespace {

bytes b(std::string_view s) {
  return bytes(s.begin(), s.end());
}

std::string text(const bytes& x) {
  return std::string(x.begin(), x.end());
}

// The open PSK and a fresh key: what a test client brings.
link_credentials client_creds() {
  return {psk::open(), keypair::generate(), std::nullopt};
}

// How many sleepy daemons are inside process() right now.
std::atomic<int> sleepers{0};

// Sleeps 2 s in process(), as a slow user daemon would; echoes the payload.
class sleepy_daemon : public daemon {
public:
  std::string_view kind() const override {
    return "sleepy";
  }
  caf::expected<std::vector<bytes>> process(const causal_event& ev) override {
    ++sleepers;
    std::this_thread::sleep_for(2s);
    --sleepers;
    return std::vector<bytes>{ev.payload};
  }
};

// A node (runtime + gateway published on an ephemeral port) and a client
// connected to it, in one actor system.
struct fixture {
  caf::actor_system_config cfg;
  std::unique_ptr<caf::actor_system> sys;
  std::unique_ptr<runtime> rt;
  std::unique_ptr<gateway> gw;
  link_credentials creds = client_creds();
  uint16_t port = 0;
  std::optional<control_client> client;

  explicit fixture(log_limit warn_limit = {}, size_t scheduler_threads = 0) {
    mesh::apply_scheduler_defaults(cfg);
    if (scheduler_threads > 0)
      cfg.set("scheduler.max-threads", scheduler_threads);
    cfg.load<caf::io::middleman>();
    sys = std::make_unique<caf::actor_system>(cfg);
    rt = std::make_unique<runtime>(*sys, runtime_options{});
    for (auto& [kind, factory] : examples::example_kinds())
      REQUIRE(!rt->register_factory(kind, factory));
    REQUIRE(!rt->register_factory("sleepy", [] {
      return std::make_unique<sleepy_daemon>();
    }));
    REQUIRE(!rt->start());
    gateway_options opts;
    opts.max_deploy_count = 50;
    opts.warn_limit = warn_limit;
    gw = std::make_unique<gateway>(*sys, *rt, opts);
    auto p = gw->publish("127.0.0.1", 0);
    REQUIRE(p);
    port = *p;
    auto c = control_client::connect(*sys, "127.0.0.1", port, 10s, creds);
    REQUIRE(c);
    client.emplace(std::move(*c));
  }

  ~fixture() {
    client.reset();
    gw.reset();
    rt.reset();
  }

  template<class T>
  T ask(const request& req) {
    auto res = client->call(req);
    REQUIRE(res);
    if (auto* err = std::get_if<error_response>(&*res))
      FAIL("error response: " << describe(to_error(*err)));
    REQUIRE(std::holds_alternative<T>(*res));
    return std::get<T>(*res);
  }

  error_response ask_error(const request& req) {
    auto res = client->call(req);
    REQUIRE(res);
    REQUIRE(std::holds_alternative<error_response>(*res));
    return std::get<error_response>(*res);
  }

  uint64_t deploy(const std::string& kind = "counter") {
    auto res = ask<deploy_response>(deploy_request{kind, 1});
    REQUIRE(res.daemons.size() == 1);
    return res.daemons[0].origin_hash;
  }

  send_response send(uint64_t id, std::vector<std::string> payloads,
                     uint64_t producer = 0, uint64_t first_seq = 1) {
    send_request req;
    req.daemon_id = id;
    for (auto& p : payloads)
      req.events.push_back({producer, first_seq++, b(p)});
    return ask<send_response>(req);
  }
};

} // namespace

TEST_CASE("kinds lists every registered kind") {
  fixture f;
  auto res = f.ask<kinds_response>(kinds_request{});
  std::set<std::string> kinds(res.kinds.begin(), res.kinds.end());
  CHECK(kinds.count("counter") == 1);
  CHECK(kinds.count("echo") == 1);
  CHECK(kinds.count("window") == 1);
}

TEST_CASE("deploy spawns count daemons that daemons then lists") {
  fixture f;
  auto res = f.ask<deploy_response>(deploy_request{"echo", 3});
  REQUIRE(res.daemons.size() == 3);
  CHECK(!res.failure);
  std::set<uint64_t> ids;
  for (auto& d : res.daemons) {
    CHECK(d.kind == "echo");
    ids.insert(d.origin_hash);
  }
  CHECK(ids.size() == 3);
  auto listed = f.ask<daemons_response>(daemons_request{});
  REQUIRE(listed.daemons.size() == 3);
  for (auto& d : listed.daemons) {
    CHECK(ids.count(d.origin_hash) == 1);
    CHECK(d.phase == daemon_phase::running);
  }
}

TEST_CASE("deploy of an unknown kind is factory_not_found") {
  fixture f;
  auto err = f.ask_error(deploy_request{"no-such-kind", 2});
  CHECK(err.code == errc::factory_not_found);
  CHECK(f.ask<daemons_response>(daemons_request{}).daemons.empty());
}

TEST_CASE("deploy count outside 1..max is invalid_argument") {
  fixture f;
  CHECK(f.ask_error(deploy_request{"echo", 0}).code == errc::invalid_argument);
  auto err = f.ask_error(deploy_request{"echo", 51});
  CHECK(err.code == errc::invalid_argument);
  CHECK(err.message.find("1..50") != std::string::npos);
  CHECK(f.ask_error(deploy_request{"", 1}).code == errc::invalid_argument);
}

TEST_CASE("send delivers a batch in order and returns every output") {
  fixture f;
  auto id = f.deploy();
  auto res = f.send(id, {"1", "2", "3"});
  REQUIRE(res.deliveries.size() == 3);
  std::vector<std::string> totals;
  for (auto& d : res.deliveries) {
    CHECK(d.state == delivery::status::applied);
    REQUIRE(d.outputs.size() == 1);
    totals.push_back(text(d.outputs[0].payload));
  }
  CHECK(totals == std::vector<std::string>{"1", "3", "6"});
  CHECK(res.deliveries[2].daemon_seq == res.deliveries[0].daemon_seq + 2);
}

TEST_CASE("a resent batch from the same producer comes back as duplicates") {
  fixture f;
  auto id = f.deploy();
  f.send(id, {"5", "5"}, 77, 1);
  auto again = f.send(id, {"5", "5", "5"}, 77, 1);
  REQUIRE(again.deliveries.size() == 3);
  CHECK(again.deliveries[0].state == delivery::status::duplicate);
  CHECK(again.deliveries[1].state == delivery::status::duplicate);
  CHECK(again.deliveries[2].state == delivery::status::applied);
  CHECK(text(again.deliveries[2].outputs.at(0).payload) == "15");
  auto hw = f.ask<high_water_response>(high_water_request{id, 77});
  CHECK(hw.producer_seq == 3);
  CHECK(f.ask<high_water_response>(high_water_request{id, 78}).producer_seq
        == 0);
}

TEST_CASE("a rejected event is reported in its delivery") {
  fixture f;
  auto id = f.deploy();
  // Does not fit in 64 bits: the counter rejects it.
  auto res = f.send(id, {"2", "99999999999999999999999"});
  REQUIRE(res.deliveries.size() == 2);
  CHECK(res.deliveries[0].state == delivery::status::applied);
  CHECK(res.deliveries[1].state == delivery::status::rejected);
  CHECK(!res.deliveries[1].error.empty());
  auto next = f.send(id, {"1"});
  CHECK(text(next.deliveries.at(0).outputs.at(0).payload) == "3");
}

TEST_CASE("requests for an unknown daemon are daemon_not_found") {
  fixture f;
  send_request req;
  req.daemon_id = 0x1234;
  req.events.push_back({0, 1, b("1")});
  CHECK(f.ask_error(req).code == errc::daemon_not_found);
  CHECK(f.ask_error(stats_request{0x1234}).code == errc::daemon_not_found);
  CHECK(f.ask_error(snapshot_request{0x1234}).code == errc::daemon_not_found);
  CHECK(f.ask_error(high_water_request{0x1234, 1}).code
        == errc::daemon_not_found);
}

TEST_CASE("stats count the events a daemon processed") {
  fixture f;
  auto id = f.deploy();
  f.send(id, {"1", "1", "1", "1"}, 9, 1);
  f.send(id, {"1"}, 9, 4);
  auto st = f.ask<stats_response>(stats_request{id}).stats;
  CHECK(st.events_processed == 4);
  CHECK(st.duplicates == 1);
  CHECK(st.last_seq == 4);
}

TEST_CASE("snapshot returns a verifiable encoding and its through_seq") {
  fixture f;
  auto id = f.deploy();
  f.send(id, {"4", "6"});
  auto res = f.ask<snapshot_response>(snapshot_request{id});
  CHECK(res.through_seq == 2);
  auto snap = decode_snapshot(res.snapshot);
  REQUIRE(snap);
  CHECK(snap->through_seq == 2);
  CHECK(snap->daemon_kind == "counter");
}

TEST_CASE("stop removes the daemon") {
  fixture f;
  auto id = f.deploy();
  f.ask<stop_response>(stop_request{id});
  CHECK(f.ask<daemons_response>(daemons_request{}).daemons.empty());
  CHECK(f.ask_error(stats_request{id}).code == errc::daemon_not_found);
}

TEST_CASE("garbage bytes get corrupt_data and the gateway keeps serving") {
  fixture f;
  auto res = f.client->call_raw(wire_bytes{'n', 'o', 'p', 'e'});
  REQUIRE(res);
  REQUIRE(std::holds_alternative<error_response>(res->body));
  CHECK(std::get<error_response>(res->body).code == errc::corrupt_data);
  wire_bytes junk(64, '\x7f');
  res = f.client->call_raw(junk);
  REQUIRE(res);
  REQUIRE(std::holds_alternative<error_response>(res->body));
  CHECK(std::get<error_response>(res->body).code == errc::corrupt_data);
  f.ask<kinds_response>(kinds_request{});
}

TEST_CASE("a flood of bad requests writes a bounded number of log lines") {
  mesh::test::log_capture logs;
  fixture f{log_limit{10, 60s}};
  for (int i = 0; i < 2000; ++i) {
    auto res = f.client->call_raw(wire_bytes{'n', 'o', 'p', 'e'});
    REQUIRE(res);
    REQUIRE(std::holds_alternative<error_response>(res->body));
  }
  f.ask<kinds_response>(kinds_request{});
  CHECK(logs.count("bad request") == 10);
  CHECK(logs.count("suppressed") == 0);
  f.gw->stop();
  CHECK(logs.count("suppressed 1990 similar warnings") == 1);
}

TEST_CASE("a flood of unauthenticated requests writes a bounded number of log "
          "lines") {
  mesh::test::log_capture logs;
  fixture f{log_limit{10, 60s}};
  caf::scoped_actor self{*f.sys};
  for (int i = 0; i < 2000; ++i)
    self
      ->request(f.gw->handle(), 10s, request_atom::value,
                encode(request{kinds_request{}}, 1))
      .receive(
        [](const wire_bytes& res) {
          auto frame = decode_response(res);
          REQUIRE(frame);
          REQUIRE(std::holds_alternative<error_response>(frame->body));
          CHECK(std::get<error_response>(frame->body).code
                == errc::unauthenticated);
        },
        [](const caf::error& err) {
          FAIL(caf::to_string(err));
        });
  CHECK(logs.count("refused a request without a link session") == 10);
  f.ask<kinds_response>(kinds_request{});
  f.gw->stop();
  CHECK(logs.count("suppressed 1990 similar warnings") == 1);
}

TEST_CASE("suppressed warnings are summarized once per interval") {
  mesh::test::log_capture logs;
  fixture f{log_limit{3, 1s}};
  for (int i = 0; i < 50; ++i)
    (void)f.client->call_raw(wire_bytes{'x'});
  auto deadline = std::chrono::steady_clock::now() + 10s;
  while (logs.count("suppressed 47 similar warnings") == 0
         && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(20ms);
  CHECK(logs.count("bad request") == 3);
  CHECK(logs.count("suppressed 47 similar warnings") == 1);
}

namespace {

// A published gateway whose on_unexpected_exit counts its calls.
struct watched_gateway {
  caf::actor_system_config cfg;
  std::unique_ptr<caf::actor_system> sys;
  std::unique_ptr<runtime> rt;
  std::unique_ptr<gateway> gw;
  std::shared_ptr<std::atomic<int>>
    exits = std::make_shared<std::atomic<int>>();
  uint16_t port = 0;

  explicit watched_gateway(std::function<void()> before_serve = {}) {
    cfg.load<caf::io::middleman>();
    sys = std::make_unique<caf::actor_system>(cfg);
    rt = std::make_unique<runtime>(*sys, runtime_options{});
    REQUIRE(!rt->start());
    gateway_options opts;
    opts.before_serve = std::move(before_serve);
    auto n = exits;
    opts.on_unexpected_exit = [n](const caf::error&) {
      ++*n;
    };
    gw = std::make_unique<gateway>(*sys, *rt, opts);
    auto p = gw->publish("127.0.0.1", 0);
    REQUIRE(p);
    port = *p;
  }

  ~watched_gateway() {
    gw.reset();
    rt.reset();
  }
};

} // namespace

TEST_CASE("a gateway that dies reports it through on_unexpected_exit") {
  // A bug in the gateway actor: serving a request throws.
  watched_gateway w{[] {
    throw std::runtime_error("bug");
  }};
  auto c = control_client::connect(*w.sys, "127.0.0.1", w.port, 10s,
                                   client_creds());
  CHECK(!c);
  auto deadline = std::chrono::steady_clock::now() + 10s;
  while (*w.exits == 0 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(10ms);
  CHECK(*w.exits == 1);
}

TEST_CASE("a stopped gateway does not report an unexpected exit") {
  watched_gateway w;
  w.gw->stop();
  CHECK(*w.exits == 0);
}

TEST_CASE("publishing removes CAF's named ConfigServ and SpawnServ") {
  watched_gateway w;
  CHECK(w.sys->registry().get(caf::atom("ConfigServ")) == nullptr);
  CHECK(w.sys->registry().get(caf::atom("SpawnServ")) == nullptr);
}

TEST_CASE("the client reports a stopped gateway as target_unavailable") {
  fixture f;
  f.ask<kinds_response>(kinds_request{});
  f.gw->stop();
  auto res = f.client->call(kinds_request{});
  REQUIRE(!res);
  CHECK(is(res.error(), errc::target_unavailable));
  CHECK(describe(res.error()).find("went away") != std::string::npos);
}

TEST_CASE("publishing on a port in use fails naming the address") {
  fixture f;
  gateway second{*f.sys, *f.rt};
  auto p = second.publish("127.0.0.1", f.port);
  REQUIRE(!p);
  CHECK(is(p.error(), errc::io_error));
  CHECK(describe(p.error()).find("127.0.0.1:" + std::to_string(f.port))
        != std::string::npos);
}

TEST_CASE("connecting to a closed port is target_unavailable") {
  caf::actor_system_config cfg;
  mesh::apply_scheduler_defaults(cfg);
  cfg.load<caf::io::middleman>();
  caf::actor_system sys{cfg};
  // Bind and release a port so that nothing listens on it.
  uint16_t port = 0;
  {
    runtime rt{sys, runtime_options{}};
    gateway gw{sys, rt};
    auto p = gw.publish("127.0.0.1", 0);
    REQUIRE(p);
    port = *p;
  }
  auto c = control_client::connect(sys, "127.0.0.1", port, 5s, client_creds());
  REQUIRE(!c);
  CHECK(is(c.error(), errc::target_unavailable));
  CHECK(describe(c.error()).find("127.0.0.1:" + std::to_string(port))
        != std::string::npos);
}

TEST_CASE("the gateway serves an in-process request without any network") {
  caf::actor_system_config cfg;
  mesh::apply_scheduler_defaults(cfg);
  caf::actor_system sys{cfg};
  runtime rt{sys, runtime_options{}};
  for (auto& [kind, factory] : examples::example_kinds())
    REQUIRE(!rt.register_factory(kind, factory));
  REQUIRE(!rt.start());
  gateway gw{sys, rt};
  // A link to the gateway's handle, as a node's own actors would use.
  auto link = spawn_link(sys, gw.handle(), "in-process", client_creds());
  // The actor system waits for every actor: stop the link however the test
  // ends.
  std::shared_ptr<void>
    stop_link{nullptr, [link](void*) {
                caf::anon_send_exit(link, caf::exit_reason::user_shutdown);
              }};
  REQUIRE(await_link(sys, link, 10s));
  auto ask = [&](const request& req) {
    caf::scoped_actor self{sys};
    std::optional<response_frame> out;
    self->request(link, 10s, request_atom::value, encode(req, 11))
      .receive(
        [&](wire_bytes& bytes) {
          auto frame = decode_response(bytes);
          REQUIRE(frame);
          out = std::move(*frame);
        },
        [&](caf::error& err) {
          FAIL(caf::to_string(err));
        });
    REQUIRE(out);
    CHECK(out->id == 11);
    return std::move(out->body);
  };
  auto res = ask(deploy_request{"counter", 2});
  REQUIRE(std::holds_alternative<deploy_response>(res));
  CHECK(std::get<deploy_response>(res).daemons.size() == 2);
  auto none = ask(stop_request{42});
  REQUIRE(std::holds_alternative<error_response>(none));
  CHECK(std::get<error_response>(none).code == errc::daemon_not_found);
}

TEST_CASE("a daemon sleeping in process does not delay another daemon's "
          "answers") {
  // Enough scheduler threads that the sleeping daemon holding one does not
  // starve the others: what is measured is the gateway.
  fixture f{{}, 4};
  auto slow = f.deploy("sleepy");
  // A counter that the former gateway served on the same worker thread as
  // the slow daemon (worker = origin mod 4).
  uint64_t fast = 0;
  for (int i = 0; i < 200 && fast == 0; ++i) {
    auto id = f.deploy("counter");
    if (id % 4 == slow % 4)
      fast = id;
  }
  REQUIRE(fast != 0);
  f.send(fast, {"1"});
  auto other = control_client::connect(*f.sys, "127.0.0.1", f.port, 30s,
                                       f.creds);
  REQUIRE(other);
  std::atomic<bool> slow_ok{false};
  std::thread slow_sender{[&] {
    send_request req;
    req.daemon_id = slow;
    req.events.push_back({0, 1, b("zz")});
    auto r = other->call(req);
    slow_ok = r && std::holds_alternative<send_response>(*r);
  }};
  auto deadline = std::chrono::steady_clock::now() + 10s;
  while (sleepers == 0 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(1ms);
  REQUIRE(sleepers == 1);
  std::chrono::steady_clock::duration worst{0};
  for (int i = 0; i < 5; ++i) {
    auto start = std::chrono::steady_clock::now();
    auto res = f.send(fast, {"1"});
    worst = std::max(worst, std::chrono::steady_clock::now() - start);
    CHECK(res.deliveries.size() == 1);
  }
  // The fast daemon answered while the slow one still slept.
  CHECK(sleepers == 1);
  slow_sender.join();
  CHECK(slow_ok);
  auto worst_ms = std::chrono::duration_cast<std::chrono::milliseconds>(worst)
                    .count();
  INFO("worst latency of the fast daemon: " << worst_ms << " ms");
  std::printf("gateway: fast daemon's worst latency while another sleeps in "
              "process: %lld ms\n",
              static_cast<long long>(worst_ms));
  CHECK(worst < 500ms);
}

TEST_CASE("a response echoes the request id in the agreed version") {
  fixture f;
  auto res = f.client->call_raw(encode(request{kinds_request{}}, 77));
  REQUIRE(res);
  CHECK(res->id == 77);
  CHECK(res->version == protocol_version);
  CHECK(std::holds_alternative<kinds_response>(res->body));
  f.ask<kinds_response>(kinds_request{});
  CHECK(f.client->version() == protocol_version);
}

TEST_CASE("clients of adjacent protocol versions are served") {
  fixture f;
  for (version_range v :
       {version_range{1, 1}, version_range{1, 2}, version_range{2, 3}}) {
    auto c = control_client::connect(*f.sys, "127.0.0.1", f.port, 10s, f.creds,
                                     v);
    REQUIRE(c);
    auto res = c->call(kinds_request{});
    INFO("client speaks " << to_string(v));
    REQUIRE(res);
    CHECK(std::holds_alternative<kinds_response>(*res));
    CHECK(c->version() == std::min<uint16_t>(v.max, protocol_version));
  }
}

TEST_CASE("a client too new or too old gets an error naming both versions") {
  fixture f;
  auto refusal = [&](version_range v) {
    auto c = control_client::connect(*f.sys, "127.0.0.1", f.port, 10s, f.creds,
                                     v);
    REQUIRE(c);
    auto res = c->call(kinds_request{});
    REQUIRE(res);
    REQUIRE(std::holds_alternative<error_response>(*res));
    auto& err = std::get<error_response>(*res);
    CHECK(err.code == errc::unsupported_version);
    return err.message;
  };
  auto node = to_string(supported_versions);
  auto too_new = refusal({protocol_version + 1, protocol_version + 2});
  CHECK(too_new.find("client too new") != std::string::npos);
  CHECK(too_new.find(
          to_string(version_range{protocol_version + 1, protocol_version + 2}))
        != std::string::npos);
  CHECK(too_new.find("this node speaks " + node) != std::string::npos);
  auto too_old = refusal({0, 0});
  CHECK(too_old.find("client too old") != std::string::npos);
  CHECK(too_old.find("speaks control protocol 0,") != std::string::npos);
  CHECK(too_old.find("this node speaks " + node) != std::string::npos);
}

TEST_CASE("a daemon stopped behind the gateway's back is daemon_not_found") {
  fixture f;
  auto id = f.deploy();
  f.send(id, {"1"}); // the gateway caches the daemon's handle
  REQUIRE(!f.rt->stop(id));
  auto start = std::chrono::steady_clock::now();
  CHECK(f.ask_error(stats_request{id}).code == errc::daemon_not_found);
  send_request req;
  req.daemon_id = id;
  req.events.push_back({0, 1, b("1")});
  CHECK(f.ask_error(req).code == errc::daemon_not_found);
  CHECK(std::chrono::steady_clock::now() - start < 5s);
}

TEST_CASE("stop lets a request in flight finish and answers it") {
  fixture f{{}, 4};
  auto slow = f.deploy("sleepy");
  std::optional<caf::expected<response>> got;
  std::thread sender{[&] {
    send_request req;
    req.daemon_id = slow;
    req.events.push_back({0, 1, b("zz")});
    got = f.client->call(req);
  }};
  auto deadline = std::chrono::steady_clock::now() + 10s;
  while (sleepers == 0 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(1ms);
  REQUIRE(sleepers == 1);
  f.gw->stop();
  sender.join();
  REQUIRE(got);
  REQUIRE(*got);
  REQUIRE(std::holds_alternative<send_response>(**got));
  CHECK(
    text(std::get<send_response>(**got).deliveries.at(0).outputs.at(0).payload)
    == "zz");
}

namespace {

// A node built before version negotiation: it speaks version 1 only and
// refuses anything else as such a build did, with no Response.version. It
// runs the link layer as a node does (mesh/link_crypto.hpp), so a client
// reaches it.
struct old_node_link {
  link_credentials creds{psk::open(), keypair::generate(), std::nullopt};
  std::optional<link::responder> handshake;
  std::optional<link::session> session;
};

wire_bytes version_one_answer(const wire_bytes& bytes) {
  std::vector<capnp::word> words(bytes.size() / sizeof(capnp::word));
  std::memcpy(words.data(), bytes.data(), bytes.size());
  capnp::FlatArrayMessageReader reader{
    kj::arrayPtr(words.data(), words.size())};
  auto version = reader.getRoot<schema::Request>().getVersion();
  if (version != 1)
    return encode(response{error_response{errc::unsupported_version,
                                          "request speaks control protocol "
                                            + std::to_string(version)
                                            + ", this build speaks 1"}},
                  0, 1);
  return encode(response{kinds_response{{"old"}}}, 0, 1);
}

caf::behavior version_one_node(caf::event_based_actor*,
                               std::shared_ptr<std::atomic<int>> requests) {
  auto st = std::make_shared<old_node_link>();
  return {
    [requests, st](request_atom, const wire_bytes& bytes) -> wire_bytes {
      switch (link::kind_of(bytes).value_or(link::kind::link_ready)) {
        case link::kind::client_hello: {
          auto acc = link::responder::accept(st->creds, bytes);
          REQUIRE(acc);
          st->handshake.emplace(std::move(acc->first));
          return std::move(acc->second);
        }
        case link::kind::client_finish: {
          auto done = st->handshake->finish(bytes);
          REQUIRE(done);
          st->session.emplace(std::move(done->second));
          return std::move(done->first);
        }
        case link::kind::frame: {
          auto plain = st->session->open(bytes);
          REQUIRE(plain);
          ++*requests;
          return *st->session->seal(version_one_answer(*plain));
        }
        default: FAIL("unexpected message"); return {};
      }
    },
  };
}

} // namespace

TEST_CASE("a client falls back to version 1 for a node that predates "
          "negotiation") {
  caf::actor_system_config cfg;
  cfg.load<caf::io::middleman>();
  caf::actor_system sys{cfg};
  auto requests = std::make_shared<std::atomic<int>>(0);
  auto old = sys.spawn(version_one_node, requests);
  // Ends the fake node however the test ends (the actor system waits for
  // it).
  std::shared_ptr<void>
    stop_old{nullptr, [old](void*) {
               caf::anon_send_exit(old, caf::exit_reason::user_shutdown);
             }};
  auto port = sys.middleman().publish(old, 0, "127.0.0.1");
  REQUIRE(port);
  auto c = control_client::connect(sys, "127.0.0.1", *port, 10s,
                                   client_creds());
  REQUIRE(c);
  for (int i = 0; i < 2; ++i) {
    auto res = c->call(kinds_request{});
    REQUIRE(res);
    REQUIRE(std::holds_alternative<kinds_response>(*res));
    CHECK(std::get<kinds_response>(*res).kinds
          == std::vector<std::string>{"old"});
    CHECK(c->version() == 1);
  }
  // One refused version 2 request, then version 1 only.
  CHECK(*requests == 3);
  // A client that does not speak version 1 gets the old node's refusal.
  auto v2 = control_client::connect(sys, "127.0.0.1", *port, 10s,
                                    client_creds(), {2, 2});
  REQUIRE(v2);
  auto res = v2->call(kinds_request{});
  REQUIRE(res);
  REQUIRE(std::holds_alternative<error_response>(*res));
  CHECK(std::get<error_response>(*res).code == errc::unsupported_version);
}
