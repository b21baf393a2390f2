// mesh::client's routing against fake nodes: actors published on loopback
// that answer control requests the way a test wants (moved, a loop, a node
// that moves a daemon in the middle of a window). Real meshd processes:
// tests/integration/client_test.cpp.

#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/exit_reason.hpp>
#include <caf/io/middleman.hpp>
#include <caf/send.hpp>

#include "base/errc.hpp"
#include "identity/keypair.hpp"
#include "mesh/client.hpp"
#include "mesh/gateway.hpp"
#include "mesh/link_crypto.hpp"
#include "mesh/psk.hpp"

using namespace mesh;
using namespace mesh::control;
using namespace std::chrono_literals;

namespace {

using answer_fn = std::function<response(const request&)>;

// The link layer as a node runs it (mesh/link_crypto.hpp), per client
// actor, so mesh::client reaches the fake nodes as it reaches meshd.
struct fake_links {
  link_credentials creds{psk::open(), keypair::generate(), std::nullopt};
  std::map<caf::actor_addr, link::responder> handshakes;
  std::map<caf::actor_addr, link::session> sessions;
};

// A node that answers every request with `answer` and counts them.
caf::behavior fake_node(caf::event_based_actor* self, answer_fn answer,
                        std::shared_ptr<std::atomic<int>> count) {
  auto st = std::make_shared<fake_links>();
  return {
    [self, st, answer, count](request_atom, wire_bytes& bytes) -> wire_bytes {
      auto from = caf::actor_cast<caf::actor_addr>(self->current_sender());
      switch (link::kind_of(bytes).value_or(link::kind::link_ready)) {
        case link::kind::client_hello: {
          auto acc = link::responder::accept(st->creds, bytes);
          REQUIRE(acc);
          st->handshakes.erase(from);
          st->handshakes.emplace(from, std::move(acc->first));
          return std::move(acc->second);
        }
        case link::kind::client_finish: {
          auto it = st->handshakes.find(from);
          REQUIRE(it != st->handshakes.end());
          auto done = it->second.finish(bytes);
          REQUIRE(done);
          st->sessions.erase(from);
          st->sessions.emplace(from, std::move(done->second));
          st->handshakes.erase(it);
          return std::move(done->first);
        }
        case link::kind::frame: {
          auto it = st->sessions.find(from);
          REQUIRE(it != st->sessions.end());
          auto plain = it->second.open(bytes);
          REQUIRE(plain);
          ++*count;
          auto req = decode_request(*plain);
          auto res = req ? encode(answer(req->body), req->id, req->version)
                         : encode(response{to_error_response(req.error())});
          return *it->second.seal(res);
        }
        default: FAIL("unexpected message"); return {};
      }
    },
  };
}

struct fake {
  std::shared_ptr<std::atomic<int>> count = std::make_shared<std::atomic<int>>(
    0);
  caf::actor actor;
  std::string address;
};

// Fake nodes in one actor system; each is stopped with the world.
struct world {
  caf::actor_system_config cfg;
  std::unique_ptr<caf::actor_system> sys;
  std::vector<std::unique_ptr<fake>> nodes;

  world() {
    cfg.load<caf::io::middleman>();
    sys = std::make_unique<caf::actor_system>(cfg);
  }

  ~world() {
    for (auto& n : nodes)
      caf::anon_send_exit(n->actor, caf::exit_reason::user_shutdown);
  }

  // A node whose answers are set later through `answer`.
  fake& add(std::shared_ptr<answer_fn> answer) {
    auto f = std::make_unique<fake>();
    f->actor = sys->spawn(
      fake_node,
      [answer](const request& r) {
        return (*answer)(r);
      },
      f->count);
    auto port = sys->middleman().publish(f->actor, 0, "127.0.0.1");
    REQUIRE(port);
    f->address = "127.0.0.1:" + std::to_string(*port);
    nodes.push_back(std::move(f));
    return *nodes.back();
  }
};

// One applied delivery per event of a send.
response applied(const request& r) {
  send_response res;
  for (const auto& ev : std::get<send_request>(r).events) {
    delivery d;
    d.state = delivery::status::applied;
    d.daemon_seq = ev.producer_seq;
    res.deliveries.push_back(std::move(d));
  }
  return res;
}

std::vector<inbound_event> events(uint64_t first, size_t n) {
  std::vector<inbound_event> xs;
  for (size_t i = 0; i < n; ++i)
    xs.push_back(inbound_event{7, first + i, bytes{'1'}});
  return xs;
}

client connect(world& w, const std::string& address) {
  client_options opts;
  opts.nodes = {address};
  opts.timeout = 10s;
  auto c = client::connect(*w.sys, opts);
  REQUIRE(c);
  return std::move(*c);
}

} // namespace

TEST_CASE("client follows moved to the daemon's node and caches the route") {
  world w;
  auto a_answer = std::make_shared<answer_fn>();
  auto b_answer = std::make_shared<answer_fn>(applied);
  auto& a = w.add(a_answer);
  auto& b = w.add(b_answer);
  *a_answer = [&b](const request&) -> response {
    return moved_response{b.address, 4};
  };
  auto c = connect(w, a.address);
  auto ds = c.send(0x42, events(1, 3));
  REQUIRE(ds);
  CHECK(ds->size() == 3);
  CHECK(c.route_of(0x42) == b.address);
  CHECK(*a.count == 1);
  CHECK(*b.count == 1);
  // The next request goes straight to the daemon's node.
  REQUIRE(c.send(0x42, events(4, 1)));
  CHECK(*a.count == 1);
  CHECK(*b.count == 2);
  // Other daemons still go to the node the client connected to.
  CHECK(c.route_of(0x43) == a.address);
}

TEST_CASE("client calls a moved loop an error after 3 hops") {
  world w;
  auto a_answer = std::make_shared<answer_fn>();
  auto b_answer = std::make_shared<answer_fn>();
  auto& a = w.add(a_answer);
  auto& b = w.add(b_answer);
  *a_answer = [&b](const request&) -> response {
    return moved_response{b.address, 1};
  };
  *b_answer = [&a](const request&) -> response {
    return moved_response{a.address, 1};
  };
  auto c = connect(w, a.address);
  auto ds = c.send(0x42, events(1, 1));
  REQUIRE(!ds);
  CHECK(is(ds.error(), errc::moved));
  CHECK(describe(ds.error()).find("moved more than 3 times")
        != std::string::npos);
  // The first ask and three redirects, no more.
  CHECK(*a.count + *b.count == 4);
}

TEST_CASE("client without follow_moved reports moved naming the node") {
  world w;
  auto b_answer = std::make_shared<answer_fn>(applied);
  auto& b = w.add(b_answer);
  auto a_answer = std::make_shared<answer_fn>([&b](const request&) -> response {
    return moved_response{b.address, 2};
  });
  auto& a = w.add(a_answer);
  client_options opts;
  opts.nodes = {a.address};
  opts.follow_moved = false;
  auto c = client::connect(*w.sys, opts);
  REQUIRE(c);
  auto ds = c->send(0x42, events(1, 1));
  REQUIRE(!ds);
  CHECK(is(ds.error(), errc::moved));
  CHECK(describe(ds.error()).find(b.address) != std::string::npos);
  CHECK(*b.count == 0);
}

TEST_CASE("a window whose daemon moves mid-stream resends the moved batches "
          "in order to the new node") {
  world w;
  auto b_answer = std::make_shared<answer_fn>(applied);
  auto& b = w.add(b_answer);
  auto served = std::make_shared<std::atomic<int>>(0);
  auto a_answer = std::make_shared<answer_fn>(
    [&b, served](const request& r) -> response {
      // The daemon leaves after two batches.
      if (++*served <= 2)
        return applied(r);
      return moved_response{b.address, 9};
    });
  auto& a = w.add(a_answer);
  auto c = connect(w, a.address);
  std::vector<uint64_t> firsts;
  send_window::options opts;
  opts.window = 4;
  opts.on_batch = [&](const send_request& batch,
                      const std::vector<delivery>& ds) {
    CHECK(ds.size() == batch.events.size());
    firsts.push_back(batch.events.front().producer_seq);
  };
  send_window win{c, 0x42, opts};
  for (uint64_t i = 0; i < 10; ++i)
    REQUIRE(!win.push(events(1 + i * 5, 5)));
  REQUIRE(!win.finish());
  std::vector<uint64_t> expected;
  for (uint64_t i = 0; i < 10; ++i)
    expected.push_back(1 + i * 5);
  CHECK(firsts == expected);
  CHECK(win.confirmed() == 10);
  CHECK(win.address() == b.address);
  CHECK(*b.count == 8);
}

TEST_CASE("a window stops at the first refused batch") {
  world w;
  auto served = std::make_shared<std::atomic<int>>(0);
  auto answer = std::make_shared<answer_fn>(
    [served](const request& r) -> response {
      if (++*served == 3)
        return error_response{errc::daemon_failed, "daemon 0x42 failed"};
      return applied(r);
    });
  auto& a = w.add(answer);
  auto c = connect(w, a.address);
  send_window::options opts;
  opts.window = 2;
  send_window win{c, 0x42, opts};
  caf::error err;
  int pushed = 0;
  for (uint64_t i = 0; i < 10 && !err; ++i, ++pushed)
    err = win.push(events(1 + i * 5, 5));
  if (!err)
    err = win.finish();
  REQUIRE(err);
  CHECK(is(err, errc::daemon_failed));
  CHECK(describe(err).find("producer_seq 11..15") != std::string::npos);
  CHECK(win.confirmed() == 2);
  // Nothing was sent after the failure was seen.
  CHECK(pushed <= 5);
  CHECK(win.push(events(100, 1)) == err);
}

TEST_CASE("client connects to the first node that answers") {
  world w;
  auto answer = std::make_shared<answer_fn>([](const request&) -> response {
    return kinds_response{{"counter"}};
  });
  auto& a = w.add(answer);
  client_options opts;
  // Nothing listens on port 1 of loopback.
  opts.nodes = {"127.0.0.1:1", a.address};
  opts.timeout = 5s;
  auto c = client::connect(*w.sys, opts);
  REQUIRE(c);
  CHECK(c->address() == a.address);
  auto kinds = c->kinds();
  REQUIRE(kinds);
  CHECK(*kinds == std::vector<std::string>{"counter"});
  opts.nodes = {"127.0.0.1:1"};
  auto none = client::connect(*w.sys, opts);
  REQUIRE(!none);
  CHECK(is(none.error(), errc::target_unavailable));
}
