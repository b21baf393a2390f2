// A raw CAF client, as anyone who can reach the port can write one, against a
// real meshd (DESIGN.md section 7: CAF's BASP trusts every peer). Nothing it
// sends may stop the gateway or the node, and each kind of unwanted message
// is logged once. Without the mesh PSK, or with captured, replayed or
// altered link messages, it gets `unauthenticated` for every request type
// and changes nothing, while a legitimate meshctl keeps being served.

#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <fstream>
#include <string>
#include <thread>
#include <utility>
#include <variant>
#include <vector>

#include <caf/actor_cast.hpp>
#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/atom.hpp>
#include <caf/exit_reason.hpp>
#include <caf/io/basp_broker.hpp>
#include <caf/io/middleman.hpp>
#include <caf/scoped_actor.hpp>
#include <caf/send.hpp>
#include <sys/stat.h>

#include "base/errc.hpp"
#include "integration/meshd_node.hpp"
#include "integration/process.hpp"
#include "mesh/control_codec.hpp"
#include "mesh/link_crypto.hpp"
#include "mesh/psk.hpp"
#include "support/temp_dir.hpp"

using namespace mesh::test;
using namespace std::chrono_literals;

namespace {

using request_atom = caf::atom_constant<caf::atom("mesh_req")>;

// Lines of `text` containing `what`.
size_t count_lines(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t at = 0; (at = text.find(what, at)) != std::string::npos;
       at += what.size())
    ++n;
  return n;
}

// Waits until meshd has logged `what` (the rogue's sends are asynchronous).
void await_log(const meshd_node& node, const std::string& what) {
  auto deadline = std::chrono::steady_clock::now() + 30s;
  while (node.log().find(what) == std::string::npos) {
    if (std::chrono::steady_clock::now() > deadline)
      FAIL("meshd never logged '" << what << "':\n" << node.log());
    std::this_thread::sleep_for(20ms);
  }
}

struct rogue {
  caf::actor_system_config cfg;
  std::unique_ptr<caf::actor_system> sys;
  caf::actor gw;

  explicit rogue(const std::string& address) {
    cfg.load<caf::io::middleman>();
    sys = std::make_unique<caf::actor_system>(cfg);
    auto colon = address.rfind(':');
    auto host = address.substr(0, colon);
    auto port = static_cast<uint16_t>(std::stoi(address.substr(colon + 1)));
    auto h = sys->middleman().remote_actor(host, port);
    REQUIRE(h);
    gw = *h;
  }

  // A request with the gateway's message shape; returns whether it got any
  // answer (the answer itself does not matter).
  bool ask(std::vector<char> bytes) {
    caf::scoped_actor self{*sys};
    bool answered = false;
    self->request(gw, std::chrono::seconds{60}, request_atom::value, bytes)
      .receive(
        [&](const std::vector<char>&) {
          answered = true;
        },
        [&](const caf::error&) {
          answered = false;
        });
    return answered;
  }
};

} // namespace

TEST_CASE("no message from a raw CAF client stops the gateway") {
  temp_dir dir;
  meshd_node node{dir.path(), dir / "data"};
  node.start();
  auto id = first_line(node.ok({"deploy", "counter"}));
  node.ok({"send", id, "5"});
  {
    rogue r{node.address()};
    // The gateway's former internal stop atom.
    caf::anon_send(r.gw, caf::atom("mesh_drn"));
    await_log(node, "'mesh_drn'");
    caf::anon_send_exit(r.gw, caf::exit_reason::kill);
    await_log(node, "exit message (reason exit_reason(kill))");
    {
      // An exit message with a sender (not anonymous).
      caf::scoped_actor self{*r.sys};
      self->send_exit(r.gw, caf::exit_reason::user_shutdown);
    }
    await_log(node, "exit message (reason exit_reason(user_shutdown))");
    caf::anon_send(r.gw, int32_t{42}, std::string{"hello"}, 3.5);
    await_log(node, "\"hello\"");
    // An error as a plain message (CAF's default error handler quits).
    caf::anon_send(r.gw, caf::make_error(caf::sec::runtime_error));
    await_log(node, "error message");
    // The right shape with garbage bytes, and with too many of them.
    CHECK(r.ask(std::vector<char>(64, '\x7f')));
    CHECK(r.ask(std::vector<char>((80u << 20) + 8, '\0')));
    await_log(node, "refused a request without a link session");
  }
  // Every kind was logged once, and the node still serves meshctl.
  CHECK(node.ok({"send", id, "1"}) == "6\n");
  CHECK(node.running());
  auto log = node.log();
  INFO("meshd log:\n" << log);
  CHECK(count_lines(log, "'mesh_drn'") == 1);
  CHECK(count_lines(log, "exit message (reason exit_reason(kill))") == 1);
  CHECK(count_lines(log, "exit message (reason exit_reason(user_shutdown))")
        == 1);
  CHECK(count_lines(log, "\"hello\"") == 1);
  CHECK(count_lines(log, "error message") == 1);
  // Garbage and oversized bytes are not link messages: refused unread.
  CHECK(count_lines(log, "refused a request without a link session") == 2);
  CHECK(node.terminate(60s) == 0);
}

TEST_CASE("meshd exits non-zero when its gateway dies") {
  temp_dir dir;
  meshd_node node{dir.path(), dir / "data"};
  // The test hook makes the gateway's first request throw inside the
  // gateway actor, as a bug would (docs/operations.md, "Test hooks").
  ::setenv("MESHD_FAULT_INJECTION", "gateway-throw", 1);
  node.start();
  ::unsetenv("MESHD_FAULT_INJECTION");
  auto r = node.ctl({"daemons"});
  CHECK(r.code == 3);
  auto deadline = std::chrono::steady_clock::now() + 60s;
  while (node.running() && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(20ms);
  INFO("meshd log:\n" << node.log());
  REQUIRE(!node.running());
  CHECK(node.terminate(1s) == 1);
  CHECK(count_lines(node.log(), "gateway terminated") == 1);
}

TEST_CASE("a raw CAF client cannot reach CAF's ConfigServ or SpawnServ") {
  temp_dir dir;
  meshd_node node{dir.path(), dir / "data"};
  node.start();
  rogue r{node.address()};
  auto nid = r.gw.node();
  // What middleman::remote_lookup does, with a deadline: ask the node's
  // ConfigServ (addressed by name) for the handle of its SpawnServ.
  caf::scoped_actor self{*r.sys};
  auto basp = r.sys->middleman().named_broker<caf::io::basp_broker>(
    caf::atom("BASP"));
  REQUIRE(basp);
  bool served = false;
  std::string what;
  self
    ->request(basp, std::chrono::seconds{10}, caf::forward_atom::value, nid,
              caf::atom("ConfigServ"),
              caf::make_message(caf::get_atom::value, caf::atom("SpawnServ")))
    .receive(
      [&](const caf::strong_actor_ptr& p) {
        served = p != nullptr;
      },
      [&](const caf::error& err) {
        what = caf::to_string(err);
      });
  INFO("ConfigServ lookup: " << what);
  CHECK(!served);
  auto spawned = r.sys->middleman()
                   .remote_spawn<caf::actor>(nid, "anything",
                                             caf::make_message(),
                                             std::chrono::seconds{10});
  REQUIRE(!spawned);
  INFO("remote_spawn: " << caf::to_string(spawned.error()));
  // unknown_type would mean the node's SpawnServ looked the name up.
  CHECK(spawned.error() != caf::sec::unknown_type);
  CHECK(node.ok({"kinds"}).find("counter") != std::string::npos);
}

TEST_CASE("a raw CAF client cannot answer the gateway's requests in the "
          "runtime's place") {
  temp_dir dir;
  meshd_node node{dir.path(), dir / "data"};
  node.start();
  auto id = first_line(node.ok({"deploy", "counter"}));
  rogue r{node.address()};
  // The gateway's requests to the supervisor and the daemons carry
  // sequential ids: forge answers to the first few thousand, anonymously
  // (as CAF bounces a request whose receiver is gone) and with a sender,
  // while meshctl's requests are in flight.
  std::atomic<bool> done{false};
  std::thread forger{[&] {
    caf::scoped_actor self{*r.sys};
    auto sender = caf::actor_cast<caf::strong_actor_ptr>(self);
    while (!done) {
      for (uint64_t n = 1; n < 2000 && !done; ++n) {
        auto mid = caf::make_message_id(n).response_id();
        r.gw->enqueue(nullptr, mid,
                      caf::make_message(
                        caf::make_error(caf::sec::request_receiver_down)),
                      nullptr);
        r.gw->enqueue(sender, mid, caf::make_message(uint64_t{999}), nullptr);
      }
    }
  }};
  for (int i = 1; i <= 20; ++i)
    CHECK(node.ok({"send", id, "1"}) == std::to_string(i) + "\n");
  CHECK(node.ok({"high-water", id, "--producer", "0x1"}) == "0\n");
  done = true;
  forger.join();
  await_log(node, "response to no request the gateway sent to that actor");
  CHECK(node.running());
}

// -- the link layer -----------------------------------------------------------

namespace {

using mesh::link::wire_bytes;
namespace control = mesh::control;
namespace link = mesh::link;

// One actor of a raw CAF client talking to the gateway: the link protocol
// by hand (mesh/link_crypto.hpp), so a test can capture, replay and alter
// every message. Sessions are bound to the actor, so one `actor` is one
// "connection".
struct raw_link {
  caf::actor gw;
  caf::scoped_actor self;
  mesh::link_credentials creds;
  std::optional<link::session> session;
  // What the handshake sent, for replays.
  wire_bytes hello;
  wire_bytes finish;

  raw_link(rogue& r, mesh::psk key)
    : gw(r.gw),
      self(*r.sys),
      creds{std::move(key), mesh::keypair::generate(), std::nullopt} {}

  wire_bytes exchange(const wire_bytes& msg) {
    wire_bytes out;
    self->request(gw, std::chrono::seconds{30}, request_atom::value, msg)
      .receive(
        [&](wire_bytes& res) {
          out = std::move(res);
        },
        [&](caf::error& err) {
          FAIL(caf::to_string(err));
        });
    return out;
  }

  // The handshake; false when the node refused it.
  bool connect() {
    link::initiator ini;
    hello = ini.hello(creds);
    auto sh = exchange(hello);
    if (!link::kind_of(sh))
      return false;
    auto fin = ini.finish(creds, sh);
    if (!fin)
      return false;
    finish = fin->first;
    auto ready = exchange(finish);
    if (!link::is_ready(ready, fin->second.id()))
      return false;
    session.emplace(std::move(fin->second));
    return true;
  }

  // A genuine request over the session; its decoded answer.
  control::response ask(const control::request& req) {
    auto res = exchange(*session->seal(control::encode(req, 1)));
    REQUIRE(link::kind_of(res) == link::kind::frame);
    auto plain = session->open(res);
    REQUIRE(plain);
    auto frame = control::decode_response(*plain);
    REQUIRE(frame);
    return std::move(frame->body);
  }
};

// The answer is the gateway's plain refusal `unauthenticated`, which even
// a client without a session decodes.
bool is_unauthenticated(const wire_bytes& res) {
  if (link::kind_of(res))
    return false;
  auto frame = control::decode_response(res);
  if (!frame)
    return false;
  auto* err = std::get_if<control::error_response>(&frame->body);
  return err != nullptr && err->code == mesh::errc::unauthenticated;
}

template<size_t... I>
std::vector<control::request> default_requests(std::index_sequence<I...>) {
  return {control::request{std::in_place_index<I>}...};
}

// Every request type (default fields, so a type added later is covered),
// and each request that names a daemon once more naming `daemon`.
std::vector<control::request> every_request(uint64_t daemon) {
  auto all = default_requests(
    std::make_index_sequence<std::variant_size_v<control::request>>{});
  control::send_request send;
  send.daemon_id = daemon;
  send.events.push_back({7, 1, mesh::bytes{'1', '0', '0'}});
  all.push_back(control::deploy_request{"counter", 3});
  all.push_back(std::move(send));
  all.push_back(control::stop_request{daemon});
  all.push_back(control::resume_request{daemon, true});
  all.push_back(control::snapshot_request{daemon});
  all.push_back(control::stats_request{daemon});
  all.push_back(control::high_water_request{daemon, 7});
  // Membership and directory messages with content: a node claiming to
  // join, and an entry that would take the daemon over.
  control::heartbeat_request beat;
  beat.beat.from.id = mesh::keypair::generate().id();
  beat.beat.from.address = "127.0.0.1:1";
  beat.beat.from.incarnation = 1;
  all.push_back(std::move(beat));
  control::directory_request hijack;
  hijack.entries.push_back(mesh::directory_entry{daemon,
                                                 mesh::keypair::generate().id(),
                                                 1000, "counter", false});
  hijack.want_table = true;
  all.push_back(std::move(hijack));
  all.push_back(
    control::probe_request{mesh::keypair::generate().id(), "127.0.0.1:1", 100});
  return all;
}

// What the node's state looks like to an operator.
std::string state_of(const meshd_node& node, const std::string& id) {
  return node.ok({"daemons"}) + node.ok({"stats", id})
         + node.ok({"high-water", id, "--producer", "0x7"});
}

} // namespace

TEST_CASE("without the PSK, or with replayed or altered link messages, every "
          "request is unauthenticated and changes nothing") {
  temp_dir dir;
  meshd_node node{dir.path(), dir / "data"};
  node.start();
  auto id = first_line(node.ok({"deploy", "counter"}));
  node.ok({"send", id, "5"});
  auto daemon = std::stoull(id, nullptr, 16);
  auto before = state_of(node, id);
  auto mesh_psk = mesh::load_psk_file(node.psk_file());
  REQUIRE(mesh_psk);

  // A legitimate meshctl is served throughout.
  std::atomic<bool> done{false};
  std::atomic<int> served{0};
  std::atomic<int> refused{0};
  std::thread legit{[&] {
    while (!done) {
      auto r = node.ctl({"daemons"});
      (r.code == 0 ? served : refused)++;
    }
  }};

  rogue r{node.address()};
  auto requests = every_request(daemon);
  INFO("request types: " << requests.size());

  SECTION("a plain request, as today's clients and raw CAF peers send") {
    raw_link p{r, mesh::psk::open()};
    for (auto& req : requests)
      CHECK(is_unauthenticated(p.exchange(control::encode(req, 1))));
  }

  SECTION("a client with the open PSK, and one with another PSK") {
    for (auto* key : {"open", "random"}) {
      raw_link p{r, std::string{key} == "open" ? mesh::psk::open()
                                               : mesh::psk::generate()};
      INFO(key);
      link::initiator ini;
      CHECK(is_unauthenticated(p.exchange(ini.hello(p.creds))));
      // Frames of a session it made up.
      link::initiator other;
      auto own = link::responder::accept(p.creds, other.hello(p.creds));
      REQUIRE(own);
      auto fin = other.finish(p.creds, own->second);
      REQUIRE(fin);
      for (auto& req : requests)
        CHECK(is_unauthenticated(
          p.exchange(*fin->second.seal(control::encode(req, 1)))));
    }
  }

  SECTION("a replayed handshake") {
    raw_link victim{r, mesh_psk->clone()};
    REQUIRE(victim.connect());
    raw_link replayer{r, mesh::psk::open()};
    // The captured hello gets a fresh ServerHello (its MAC is valid), but
    // the captured finish is for another transcript.
    auto sh = replayer.exchange(victim.hello);
    REQUIRE(link::kind_of(sh) == link::kind::server_hello);
    CHECK(is_unauthenticated(replayer.exchange(victim.finish)));
    auto patched = victim.finish;
    std::copy(sh.begin() + 5, sh.begin() + 21, patched.begin() + 4);
    CHECK(is_unauthenticated(replayer.exchange(patched)));
    // Replayed by the victim's own actor: the same.
    CHECK(is_unauthenticated(victim.exchange(victim.finish)));
    for (auto& req : requests)
      CHECK(is_unauthenticated(replayer.exchange(control::encode(req, 1))));
  }

  SECTION("a replayed sealed frame, on the same link and on another") {
    raw_link victim{r, mesh_psk->clone()};
    REQUIRE(victim.connect());
    raw_link second{r, mesh_psk->clone()};
    REQUIRE(second.connect());
    raw_link thief{r, mesh::psk::open()};
    auto replays = [&](const wire_bytes& frame) {
      CHECK(is_unauthenticated(thief.exchange(frame)));
      CHECK(is_unauthenticated(second.exchange(frame)));
      auto relabelled = frame;
      std::copy(second.session->id().begin(), second.session->id().end(),
                relabelled.begin() + 4);
      CHECK(is_unauthenticated(second.exchange(relabelled)));
    };
    auto defaults = default_requests(
      std::make_index_sequence<std::variant_size_v<control::request>>{});
    for (auto& req : requests) {
      INFO(control::name_of(req));
      bool harmless = std::find_if(defaults.begin(), defaults.end(),
                                   [&req](const control::request& d) {
                                     return control::encode(d, 1)
                                            == control::encode(req, 1);
                                   })
                      != defaults.end();
      auto frame = *victim.session->seal(control::encode(req, 1));
      if (harmless) {
        // Default fields name no daemon and deploy nothing: served
        // genuinely once (changing nothing), then replayed on the same
        // link, from another actor and on another link.
        auto res = victim.exchange(frame);
        REQUIRE(link::kind_of(res) == link::kind::frame);
        REQUIRE(victim.session->open(res));
        CHECK(is_unauthenticated(victim.exchange(frame)));
        replays(frame);
      } else {
        // Captured but never delivered (it would change the daemon; from
        // the victim's own actor it would be served, as it is genuine):
        // replayed from another actor and on another link.
        replays(frame);
        // The victim's send counter moved past it: a fresh session.
        victim.session.reset();
        REQUIRE(victim.connect());
      }
    }
  }

  SECTION("flipped bytes anywhere in a frame") {
    raw_link victim{r, mesh_psk->clone()};
    REQUIRE(victim.connect());
    for (auto& req : requests) {
      auto frame = *victim.session->seal(control::encode(req, 1));
      for (size_t i = 0; i < frame.size(); ++i) {
        auto x = frame;
        x[i] ^= static_cast<char>(1 << (i % 8));
        INFO("byte " << i << " of " << control::name_of(req));
        CHECK(is_unauthenticated(victim.exchange(x)));
      }
      // The frame itself was never delivered: the victim's session cannot
      // go on (its next counter is taken). A fresh link per request.
      victim.session.reset();
      REQUIRE(victim.connect());
    }
    // The link still serves genuine frames.
    CHECK(std::holds_alternative<control::kinds_response>(
      victim.ask(control::kinds_request{})));
  }

  done = true;
  legit.join();
  CHECK(served > 0);
  CHECK(refused == 0);
  CHECK(state_of(node, id) == before);
  CHECK(node.running());
  CHECK(node.terminate(60s) == 0);
}

TEST_CASE("meshd refuses a bad PSK file, and no PSK file on a non-loopback "
          "address, with one line and exit code 2") {
  temp_dir dir;
  auto start = [&](std::vector<std::string> extra) {
    std::vector<std::string> argv{meshd_binary(), "--data-dir", dir / "data"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    return run(argv, dir.path());
  };
  {
    std::ofstream{dir / "short.psk"} << "abcd\n";
    ::chmod((dir / "short.psk").c_str(), 0600);
    auto r = start(
      {"--listen", "127.0.0.1:0", "--psk-file", dir / "short.psk"});
    CHECK(r.code == 2);
    CHECK(r.err_lines() == 1);
    CHECK(r.err.find("malformed") != std::string::npos);
  }
  {
    std::ofstream{dir / "open.psk"} << std::string(64, 'a') << "\n";
    ::chmod((dir / "open.psk").c_str(), 0644);
    auto r = start({"--listen", "127.0.0.1:0", "--psk-file", dir / "open.psk"});
    CHECK(r.code == 2);
    CHECK(r.err_lines() == 1);
    CHECK(r.err.find("insecure_permissions") != std::string::npos);
  }
  {
    auto r = start({"--listen", "127.0.0.1:0", "--psk-file", dir / "none"});
    CHECK(r.code == 2);
    CHECK(r.err_lines() == 1);
    CHECK(r.err.find("does not exist") != std::string::npos);
  }
  for (auto* addr : {"0.0.0.0:0", "[::]:0"}) {
    auto r = start({"--listen", addr});
    INFO(addr << ": " << r.err);
    CHECK(r.code == 2);
    CHECK(r.err_lines() == 1);
    CHECK(r.err.find("without --psk-file") != std::string::npos);
  }
}

TEST_CASE("an authenticated peer cannot speak for another node: a heartbeat "
          "whose sender is not the link's key is refused and changes "
          "nothing") {
  temp_dir dir;
  meshd_node node{dir.path(), dir / "data"};
  node.start();
  auto mesh_psk = mesh::load_psk_file(node.psk_file());
  REQUIRE(mesh_psk);
  auto nodes_before = node.ok({"--json", "nodes"});
  rogue r{node.address()};
  raw_link p{r, mesh_psk->clone()};
  REQUIRE(p.connect());
  control::heartbeat_request beat;
  beat.beat.from.id = mesh::keypair::generate().id(); // not p's key
  beat.beat.from.address = "127.0.0.1:1";
  beat.beat.from.incarnation = 1;
  auto res = p.ask(beat);
  auto* err = std::get_if<control::error_response>(&res);
  REQUIRE(err != nullptr);
  CHECK(err->code == mesh::errc::unauthenticated);
  // The node's view is unchanged: nobody joined.
  auto after = node.ok({"--json", "nodes"});
  CHECK(after.find("127.0.0.1:1\"") == std::string::npos);
  CHECK(std::count(after.begin(), after.end(), '{')
        == std::count(nodes_before.begin(), nodes_before.end(), '{'));
  // Its own key is accepted: a PSK holder may join as a node.
  beat.beat.from.id = p.creds.key.id();
  auto ok = p.ask(beat);
  CHECK(std::holds_alternative<control::heartbeat_response>(ok));
}
