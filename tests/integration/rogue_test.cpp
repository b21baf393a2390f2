// A raw CAF client, as anyone who can reach the port can write one, against a
// real meshd (DESIGN.md section 7: CAF's BASP trusts every peer). Nothing it
// sends may stop the gateway or the node, and each kind of unwanted message
// is logged once.

#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>
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

#include "integration/meshd_node.hpp"
#include "integration/process.hpp"
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
    await_log(node, "exceeds the limit");
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
  CHECK(count_lines(log, "bad request") == 2);
  CHECK(count_lines(log, "exceeds the limit") == 1);
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
