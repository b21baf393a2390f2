#include <catch2/catch.hpp>

#include <chrono>
#include <deque>
#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "base/errc.hpp"
#include "base/file_system.hpp"
#include "mesh/membership.hpp"
#include "support/temp_dir.hpp"

using namespace mesh;
using namespace std::chrono_literals;

namespace {

using time_point = membership::time_point;

// Far from the clock's zero, like a real steady_clock reading.
const time_point t0 = time_point{} + 1000h;

entity_id id_of(uint8_t n) {
  entity_id id{};
  id[0] = n;
  id[31] = 0x5a;
  return id;
}

std::string address_of(uint8_t n) {
  return "10.0.0." + std::to_string(n) + ":7400";
}

node_record record_of(uint8_t n, uint64_t incarnation = 100) {
  node_record r;
  r.id = id_of(n);
  r.address = address_of(n);
  r.incarnation = incarnation;
  return r;
}

membership make_core(node_record self, membership_options opts = {}) {
  auto m = membership::make(std::move(self), opts);
  REQUIRE(m);
  return std::move(*m);
}

heartbeat heartbeat_of(node_record from, std::vector<gossip_entry> known = {}) {
  heartbeat hb;
  hb.from = std::move(from);
  hb.known = std::move(known);
  return hb;
}

node_state state_at(const membership& m, uint8_t n, time_point now) {
  auto info = m.find(id_of(n), now);
  REQUIRE(info);
  return info->state;
}

size_t count_to(const std::vector<heartbeat_target>& hbs,
                const std::string& address) {
  size_t n = 0;
  for (const auto& h : hbs)
    n += h.address == address ? 1 : 0;
  return n;
}

size_t count_to(const std::vector<dial_request>& dials,
                const std::string& address) {
  size_t n = 0;
  for (const auto& d : dials)
    n += d.address == address ? 1 : 0;
  return n;
}

// A mesh of membership cores wired the way the mesh service wires them,
// with messages delivered at once unless the sender or receiver is dead or
// the direction is cut. Time moves in 100 ms ticks, the actor's period.
struct sim {
  struct event {
    time_point at;
    std::string node; // the observer
    state_change change;
  };

  time_point now = t0;
  std::map<std::string, membership> nodes;
  std::set<std::string> dead;
  std::set<std::pair<std::string, std::string>> cut;
  std::vector<event> events;
  std::vector<std::pair<std::string, probe_request>> probes;
  // (receiver, sender) -> when the receiver last got a heartbeat.
  std::map<std::pair<std::string, std::string>, time_point> last_heartbeat;

  membership& add(uint8_t n, std::vector<uint8_t> seeds = {},
                  uint64_t incarnation = 100, membership_options opts = {}) {
    auto addr = address_of(n);
    nodes.erase(addr);
    dead.erase(addr);
    auto& m = nodes.emplace(addr, make_core(record_of(n, incarnation), opts))
                .first->second;
    for (auto s : seeds)
      m.add_seed(address_of(s));
    return m;
  }

  membership& at(uint8_t n) {
    return nodes.at(address_of(n));
  }

  bool delivers(const std::string& from, const std::string& to) const {
    return nodes.count(to) > 0 && dead.count(from) == 0 && dead.count(to) == 0
           && cut.count({from, to}) == 0;
  }

  void run(const std::string& at, membership_actions acts) {
    std::deque<std::pair<std::string, membership_actions>> queue;
    queue.emplace_back(at, std::move(acts));
    while (!queue.empty()) {
      auto [self, a] = std::move(queue.front());
      queue.pop_front();
      for (auto& c : a.changes)
        events.push_back({now, self, c});
      for (auto& d : a.dials)
        if (delivers(self, d.address) && delivers(d.address, self))
          queue.emplace_back(self,
                             nodes.at(self)
                               .on_link_up(d.address,
                                           nodes.at(d.address).self().id));
      for (auto& h : a.heartbeats) {
        if (!delivers(self, h.address))
          continue;
        last_heartbeat[{h.address, self}] = now;
        auto hb = nodes.at(self).make_heartbeat();
        queue.emplace_back(h.address,
                           nodes.at(h.address).on_heartbeat(hb, now));
      }
      for (auto& p : a.probes) {
        probes.emplace_back(self, p);
        // The helper's actor pings the target and answers, if the request
        // and the answer get through.
        const auto& helper = p.helper_address;
        if (!delivers(self, helper) || !delivers(helper, self))
          continue;
        bool reached = delivers(helper, p.target_address)
                       && delivers(p.target_address, helper);
        queue.emplace_back(self,
                           nodes.at(self).on_probe_result(p.target, p.helper,
                                                          reached, now));
      }
    }
  }

  void step() {
    now += 100ms;
    for (auto& kv : nodes)
      if (dead.count(kv.first) == 0)
        run(kv.first, kv.second.tick(now));
  }

  void run_for(std::chrono::milliseconds d) {
    auto end = now + d;
    while (now < end)
      step();
  }

  // The first change of `who` to `to` seen by `observer` at or after `from`.
  const event* first(uint8_t observer, uint8_t who, node_state to,
                     time_point from = time_point{}) const {
    for (const auto& e : events)
      if (e.node == address_of(observer) && e.change.id == id_of(who)
          && e.change.to == to && e.at >= from)
        return &e;
    return nullptr;
  }
};

std::chrono::milliseconds ms(time_point::duration d) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(d);
}

} // namespace

// -- options and construction -------------------------------------------------

TEST_CASE("membership options must order their timers", "[membership]") {
  CHECK(!validate(membership_options{}));
  membership_options o;
  o.failure_timeout = o.suspect_after;
  CHECK(is(validate(o), errc::invalid_argument));
  o = {};
  o.suspect_after = o.heartbeat_interval;
  CHECK(is(validate(o), errc::invalid_argument));
  o = {};
  o.heartbeat_interval = 0ms;
  CHECK(is(validate(o), errc::invalid_argument));
  o = {};
  o.rejoin_interval = 0ms;
  CHECK(is(validate(o), errc::invalid_argument));
  o = {};
  o.probe_fanout = 65;
  CHECK(is(validate(o), errc::invalid_argument));
}

TEST_CASE("membership refuses a zero id or an empty own address",
          "[membership]") {
  auto r = record_of(1);
  r.id = entity_id{};
  CHECK(is(membership::make(r, {}).error(), errc::invalid_argument));
  r = record_of(1);
  r.address.clear();
  CHECK(is(membership::make(r, {}).error(), errc::invalid_argument));
  CHECK(membership::make(record_of(1), {}));
}

// -- joining and gossip -------------------------------------------------------

TEST_CASE("a node joins through a seed", "[membership]") {
  sim s;
  s.add(1);
  s.add(2, {1});
  s.step();
  CHECK(state_at(s.at(1), 2, s.now) == node_state::up);
  CHECK(state_at(s.at(2), 1, s.now) == node_state::up);
  // Neither learned the other's record from a rumour: both have it whole.
  CHECK(s.at(1).find(id_of(2), s.now)->node.incarnation == 100);
  CHECK(s.at(1).members(s.now).size() == 2);
}

TEST_CASE("an unreached seed gets a dial and a heartbeat every rejoin "
          "interval",
          "[membership]") {
  auto m = make_core(record_of(1));
  REQUIRE(m.add_seed(address_of(9)));
  CHECK(!m.add_seed(address_of(9)));
  CHECK(!m.add_seed(""));
  CHECK(!m.add_seed(address_of(1)));
  size_t dials = 0;
  size_t hbs = 0;
  for (auto t = t0; t < t0 + 5s; t += 100ms) {
    auto a = m.tick(t);
    dials += count_to(a.dials, address_of(9));
    hbs += count_to(a.heartbeats, address_of(9));
    for (const auto& h : a.heartbeats)
      CHECK(!h.id);
  }
  CHECK(dials == 5);
  CHECK(hbs == 5);
  // Once the seed is heard from, its member entry takes over.
  m.on_heartbeat(heartbeat_of(record_of(9)), t0 + 5s);
  auto a = m.tick(t0 + 7s);
  CHECK(count_to(a.dials, address_of(9)) == 0);
  CHECK(count_to(a.heartbeats, address_of(9)) == 1);
}

TEST_CASE("a seed that turns out to be ourselves is not dialed again",
          "[membership]") {
  auto m = make_core(record_of(1));
  REQUIRE(m.add_seed("localhost:7400"));
  CHECK(count_to(m.tick(t0).dials, "localhost:7400") == 1);
  CHECK(m.on_link_up("localhost:7400", id_of(1)).empty());
  for (auto t = t0 + 100ms; t < t0 + 5s; t += 100ms)
    CHECK(m.tick(t).empty());
}

TEST_CASE("gossip spreads a third node to everyone", "[membership]") {
  sim s;
  s.add(1);
  s.add(2, {1});
  s.run_for(1s);
  // Node 3 knows only node 2.
  s.add(3, {2});
  s.run_for(1s);
  for (uint8_t a : {1, 2, 3})
    for (uint8_t b : {1, 2, 3})
      if (a != b)
        CHECK(state_at(s.at(a), b, s.now) == node_state::up);
  // Node 3 learned of node 1 from node 2's gossip.
  auto joined = s.first(3, 1, node_state::up);
  REQUIRE(joined);
  CHECK(joined->change.why.rfind("gossip from ", 0) == 0);
  CHECK(s.at(1).up_nodes().size() == 3);
}

// -- failure detection --------------------------------------------------------

TEST_CASE("a SIGKILLed node is suspect, probed, then down within 3 s of its "
          "last heartbeat",
          "[membership]") {
  sim s;
  s.add(1);
  s.add(2, {1});
  s.add(3, {1});
  s.run_for(2s);
  auto killed = s.now;
  s.dead.insert(address_of(3));
  s.run_for(5s);

  auto last = s.last_heartbeat.at({address_of(1), address_of(3)});
  CHECK(last <= killed);
  CHECK(ms(killed - last) < 500ms);
  auto suspect = s.first(1, 3, node_state::suspect, killed);
  auto down = s.first(1, 3, node_state::down, killed);
  REQUIRE(suspect);
  REQUIRE(down);
  CHECK(suspect->at < down->at);
  CHECK(suspect->change.from == node_state::up);
  CHECK(down->change.from == node_state::suspect);
  CHECK(ms(suspect->at - last) >= 1000ms);
  // SWIM: node 2 was asked to probe before node 3 was declared down.
  bool probed = false;
  for (const auto& [asker, p] : s.probes)
    probed |= asker == address_of(1) && p.target == id_of(3)
              && p.helper == id_of(2);
  CHECK(probed);
  CHECK(down->change.why.find("none reached it") != std::string::npos);
  // The bounds of the detector: the silence rule, then the 3 s target.
  CHECK(ms(down->at - last) >= 2000ms);
  CHECK(ms(down->at - last) < 2200ms);
  CHECK(ms(down->at - last) < 3000ms);
  // Node 2 agrees on its own.
  CHECK(state_at(s.at(2), 3, s.now) == node_state::down);
  CHECK(s.at(1).up_nodes().size() == 2);
}

TEST_CASE("a node silent toward one peer but reached by the helpers stays up",
          "[membership]") {
  sim s;
  s.add(1);
  s.add(2, {1});
  s.add(3, {1});
  s.run_for(2s);
  // Nothing passes between nodes 1 and 3 any more, in either direction.
  s.cut.insert({address_of(1), address_of(3)});
  s.cut.insert({address_of(3), address_of(1)});
  s.run_for(10s);
  CHECK(s.first(1, 3, node_state::down) == nullptr);
  CHECK(s.first(3, 1, node_state::down) == nullptr);
  // It did become suspect, and a probe through node 2 brought it back.
  auto suspect = s.first(1, 3, node_state::suspect);
  REQUIRE(suspect);
  auto back = s.first(1, 3, node_state::up, suspect->at);
  REQUIRE(back);
  CHECK(back->change.why.find("indirect probe via") != std::string::npos);
}

TEST_CASE("in a two-node mesh a silent node goes down without helpers",
          "[membership]") {
  sim s;
  s.add(1);
  s.add(2, {1});
  s.run_for(2s);
  auto killed = s.now;
  s.dead.insert(address_of(2));
  s.run_for(4s);
  auto down = s.first(1, 2, node_state::down, killed);
  REQUIRE(down);
  CHECK(s.probes.empty());
  CHECK(down->change.why.find("no other node") != std::string::npos);
  auto last = s.last_heartbeat.at({address_of(1), address_of(2)});
  CHECK(ms(down->at - last) < 2200ms);
}

TEST_CASE("a probe answer nobody asked for, or after its deadline, is ignored",
          "[membership]") {
  auto m = make_core(record_of(1));
  m.on_heartbeat(heartbeat_of(record_of(2)), t0);
  m.on_heartbeat(heartbeat_of(record_of(3)), t0);
  // Node 3 keeps talking; node 2 falls silent.
  membership_actions a;
  auto t = t0;
  for (; a.probes.empty() && t < t0 + 5s; t += 100ms) {
    m.on_heartbeat(heartbeat_of(record_of(3)), t);
    a = m.tick(t);
  }
  REQUIRE(a.probes.size() == 1);
  auto p = a.probes.front();
  CHECK(p.helper == id_of(3));
  CHECK(p.target == id_of(2));
  CHECK(p.deadline == t0 + 2000ms);
  // Node 4 was never asked.
  CHECK(m.on_probe_result(id_of(2), id_of(4), true, t).changes.empty());
  CHECK(state_at(m, 2, t) == node_state::suspect);
  // The answer comes too late.
  CHECK(m.on_probe_result(id_of(2), id_of(3), true, p.deadline + 1ms)
          .changes.empty());
  CHECK(state_at(m, 2, p.deadline + 1ms) == node_state::suspect);
}

TEST_CASE("a failed probe answer changes nothing and a timely success keeps "
          "the node up",
          "[membership]") {
  auto m = make_core(record_of(1));
  m.on_heartbeat(heartbeat_of(record_of(2)), t0);
  m.on_heartbeat(heartbeat_of(record_of(3)), t0);
  m.on_heartbeat(heartbeat_of(record_of(4)), t0);
  auto t = t0 + 1000ms;
  m.on_heartbeat(heartbeat_of(record_of(3)), t);
  m.on_heartbeat(heartbeat_of(record_of(4)), t);
  auto a = m.tick(t);
  REQUIRE(a.probes.size() == 2);
  CHECK(m.on_probe_result(id_of(2), id_of(3), false, t + 10ms).changes.empty());
  auto ok = m.on_probe_result(id_of(2), id_of(4), true, t + 20ms);
  REQUIRE(ok.changes.size() == 1);
  CHECK(ok.changes[0].from == node_state::suspect);
  CHECK(ok.changes[0].to == node_state::up);
  CHECK(m.find(id_of(2), t + 20ms)->silent_ms == 0);
}

TEST_CASE("a stall of our own ticks does not declare every peer down at once",
          "[membership]") {
  auto m = make_core(record_of(1));
  m.on_heartbeat(heartbeat_of(record_of(2)), t0);
  m.tick(t0);
  // This process was stopped for 5 s: its next tick finds node 2 silent far
  // beyond the failure timeout.
  auto t = t0 + 5s;
  auto a = m.tick(t);
  REQUIRE(a.changes.size() == 1);
  CHECK(a.changes[0].to == node_state::suspect);
  CHECK(m.tick(t + 900ms).changes.empty());
  // Heard within the suspect window: back up, never down.
  auto b = m.on_heartbeat(heartbeat_of(record_of(2)), t + 950ms);
  REQUIRE(b.changes.size() == 1);
  CHECK(b.changes[0].to == node_state::up);
  // Had it stayed silent, it would have gone down once the window closed.
  auto m2 = make_core(record_of(1));
  m2.on_heartbeat(heartbeat_of(record_of(2)), t0);
  m2.tick(t0);
  m2.tick(t);
  CHECK(m2.tick(t + 900ms).changes.empty());
  auto c = m2.tick(t + 1000ms);
  REQUIRE(c.changes.size() == 1);
  CHECK(c.changes[0].to == node_state::down);
}

TEST_CASE("a lost link asks for redials but changes no state", "[membership]") {
  auto m = make_core(record_of(1));
  m.on_heartbeat(heartbeat_of(record_of(2)), t0);
  m.tick(t0);
  auto a = m.on_link_lost(id_of(2), t0 + 100ms);
  CHECK(a.changes.empty());
  CHECK(count_to(a.dials, address_of(2)) == 1);
  size_t dials = 0;
  for (auto t = t0 + 200ms; t < t0 + 900ms; t += 100ms) {
    m.on_heartbeat(heartbeat_of(record_of(2)), t);
    auto b = m.tick(t);
    CHECK(b.changes.empty());
    dials += count_to(b.dials, address_of(2));
  }
  CHECK(dials == 0);
  auto b = m.tick(t0 + 1100ms);
  CHECK(count_to(b.dials, address_of(2)) == 1);
  CHECK(state_at(m, 2, t0 + 1100ms) == node_state::up);
  // Once the link is back, redials stop.
  auto up = m.on_link_up(address_of(2), id_of(2));
  CHECK(count_to(up.heartbeats, address_of(2)) == 1);
  m.on_heartbeat(heartbeat_of(record_of(2)), t0 + 2100ms);
  CHECK(m.tick(t0 + 2200ms).dials.empty());
  // By address, too.
  CHECK(
    count_to(m.on_link_lost(address_of(2), t0 + 2300ms).dials, address_of(2))
    == 1);
}

// -- coming back --------------------------------------------------------------

TEST_CASE("heartbeats and dials keep going to a down node every rejoin "
          "interval",
          "[membership]") {
  auto m = make_core(record_of(1));
  m.on_heartbeat(heartbeat_of(record_of(2)), t0);
  auto t = t0;
  size_t hbs_up = 0;
  for (; state_at(m, 2, t) != node_state::down; t += 100ms)
    hbs_up += count_to(m.tick(t).heartbeats, address_of(2));
  // Up and suspect: one heartbeat per heartbeat interval.
  CHECK(hbs_up == 4);
  size_t hbs = 0;
  size_t dials = 0;
  for (auto end = t + 5s; t < end; t += 100ms) {
    auto a = m.tick(t);
    hbs += count_to(a.heartbeats, address_of(2));
    dials += count_to(a.dials, address_of(2));
  }
  CHECK(hbs == 5);
  CHECK(dials == 5);
  // Down nodes are not spread by gossip.
  CHECK(m.make_heartbeat().known.empty());
}

TEST_CASE("a SIGCONTed node heard again with the same incarnation is up",
          "[membership]") {
  sim s;
  s.add(1);
  s.add(2, {1});
  s.add(3, {1});
  s.run_for(2s);
  s.dead.insert(address_of(3)); // SIGSTOP
  s.run_for(4s);
  REQUIRE(state_at(s.at(1), 3, s.now) == node_state::down);
  auto resumed = s.now;
  s.dead.erase(address_of(3)); // SIGCONT
  s.run_for(2s);
  auto back = s.first(1, 3, node_state::up, resumed);
  REQUIRE(back);
  CHECK(back->change.from == node_state::down);
  CHECK(!back->change.restarted);
  CHECK(back->change.incarnation == 100);
  CHECK(ms(back->at - resumed) <= 1000ms);
  CHECK(state_at(s.at(2), 3, s.now) == node_state::up);
  CHECK(state_at(s.at(3), 1, s.now) == node_state::up);
}

TEST_CASE("a restarted node with a higher incarnation is up with its new "
          "record",
          "[membership]") {
  sim s;
  s.add(1);
  s.add(2, {1});
  s.add(3, {1});
  s.run_for(2s);
  s.dead.insert(address_of(3)); // SIGKILL
  s.run_for(4s);
  REQUIRE(state_at(s.at(1), 3, s.now) == node_state::down);
  auto restarted = s.now;
  // Same key and address, new incarnation, new capabilities; it knows only
  // its seed.
  auto& n3 = s.add(3, {1}, 200);
  capabilities caps;
  caps.tags = {"gpu"};
  n3.set_self_capabilities(caps);
  s.run_for(2s);
  for (uint8_t observer : {1, 2}) {
    auto back = s.first(observer, 3, node_state::up, restarted);
    REQUIRE(back);
    CHECK(back->change.restarted);
    CHECK(back->change.incarnation == 200);
    auto info = s.at(observer).find(id_of(3), s.now);
    CHECK(info->state == node_state::up);
    CHECK(info->node.incarnation == 200);
    CHECK(info->node.caps.tags == std::vector<std::string>{"gpu"});
  }
}

TEST_CASE("a restart with no downtime in between is still reported",
          "[membership]") {
  auto m = make_core(record_of(1));
  m.on_heartbeat(heartbeat_of(record_of(2, 100)), t0);
  auto again = record_of(2, 200);
  again.address = "10.0.0.22:7401";
  again.caps.tags = {"ssd"};
  auto a = m.on_heartbeat(heartbeat_of(again), t0 + 100ms);
  // The new run's record replaces the old one whole.
  auto info = m.find(id_of(2), t0 + 100ms);
  CHECK(info->node.address == "10.0.0.22:7401");
  CHECK(info->node.caps.tags == std::vector<std::string>{"ssd"});
  REQUIRE(a.changes.size() == 1);
  CHECK(a.changes[0].from == node_state::up);
  CHECK(a.changes[0].to == node_state::up);
  CHECK(a.changes[0].restarted);
  CHECK(count_to(a.dials, "10.0.0.22:7401") == 1);
}

TEST_CASE("an older incarnation is an old rumour and is ignored",
          "[membership]") {
  auto m = make_core(record_of(1));
  auto r2 = record_of(2, 200);
  r2.caps.tags = {"new"};
  m.on_heartbeat(heartbeat_of(r2), t0);
  // A delayed heartbeat of node 2's previous run.
  auto old = record_of(2, 100);
  old.address = "10.9.9.9:1";
  heartbeat_outcome outcome{};
  auto a = m.on_heartbeat(heartbeat_of(old), t0 + 100ms, &outcome);
  CHECK(outcome == heartbeat_outcome::old_incarnation);
  CHECK(a.empty());
  auto info = m.find(id_of(2), t0 + 100ms);
  CHECK(info->node.incarnation == 200);
  CHECK(info->node.address == address_of(2));
  CHECK(info->node.caps.tags == std::vector<std::string>{"new"});
  // The same rumour through node 3's gossip.
  auto b = m.on_heartbeat(heartbeat_of(record_of(3),
                                       {{id_of(2), "10.9.9.9:1", 100}}),
                          t0 + 200ms);
  for (const auto& c : b.changes)
    CHECK(c.id != id_of(2));
  CHECK(m.find(id_of(2), t0 + 200ms)->node.address == address_of(2));
  // Gossip with the same incarnation does not revive a down node either.
  for (auto t = t0 + 300ms; t < t0 + 3s; t += 100ms) {
    m.on_heartbeat(heartbeat_of(record_of(3)), t);
    m.tick(t);
  }
  REQUIRE(state_at(m, 2, t0 + 3s) == node_state::down);
  m.on_heartbeat(heartbeat_of(record_of(3), {{id_of(2), address_of(2), 200}}),
                 t0 + 3s);
  CHECK(state_at(m, 2, t0 + 3s) == node_state::down);
  // A higher one is a restart, even second-hand.
  auto c = m.on_heartbeat(heartbeat_of(record_of(3),
                                       {{id_of(2), address_of(2), 300}}),
                          t0 + 3s);
  REQUIRE(c.changes.size() == 1);
  CHECK(c.changes[0].restarted);
  CHECK(state_at(m, 2, t0 + 3s) == node_state::up);
  // The old process's capabilities are not carried over to the new one.
  CHECK(m.find(id_of(2), t0 + 3s)->node.caps.tags.empty());
}

// -- our own id and bounds ----------------------------------------------------

TEST_CASE("our own id is never taken from another node's word",
          "[membership]") {
  auto m = make_core(record_of(1));
  auto impostor = record_of(1, 999);
  impostor.address = "10.6.6.6:1";
  heartbeat_outcome outcome{};
  auto a = m.on_heartbeat(heartbeat_of(impostor), t0, &outcome);
  CHECK(outcome == heartbeat_outcome::own_id);
  CHECK(a.empty());
  m.on_heartbeat(heartbeat_of(record_of(2), {{id_of(1), "10.6.6.6:1", 999}}),
                 t0);
  CHECK(m.self().address == address_of(1));
  CHECK(m.self().incarnation == 100);
  auto all = m.members(t0);
  REQUIRE(all.size() == 2);
  for (const auto& i : all)
    if (i.node.id == id_of(1)) {
      CHECK(i.node.address == address_of(1));
      CHECK(i.state == node_state::up);
      CHECK(i.silent_ms == 0);
    }
  CHECK(!m.on_link_up("10.6.6.6:1", id_of(1)).heartbeats.size());
}

TEST_CASE("absurd heartbeats are refused whole", "[membership]") {
  auto m = make_core(record_of(1));
  heartbeat_outcome outcome{};
  std::vector<gossip_entry> many;
  for (uint32_t i = 0; i <= membership::max_gossip_entries; ++i) {
    entity_id id{};
    id[0] = 0xee;
    id[1] = static_cast<uint8_t>(i);
    id[2] = static_cast<uint8_t>(i >> 8);
    many.push_back({id, "10.1.1.1:1", 1});
  }
  auto a = m.on_heartbeat(heartbeat_of(record_of(2), many), t0, &outcome);
  CHECK(outcome == heartbeat_outcome::rejected);
  CHECK(a.empty());
  CHECK(m.members(t0).size() == 1);

  auto no_address = record_of(2);
  no_address.address.clear();
  m.on_heartbeat(heartbeat_of(no_address), t0, &outcome);
  CHECK(outcome == heartbeat_outcome::rejected);
  auto long_address = record_of(2);
  long_address.address.assign(membership::max_address_size + 1, 'a');
  m.on_heartbeat(heartbeat_of(long_address), t0, &outcome);
  CHECK(outcome == heartbeat_outcome::rejected);
  auto zero = record_of(2);
  zero.id = entity_id{};
  m.on_heartbeat(heartbeat_of(zero), t0, &outcome);
  CHECK(outcome == heartbeat_outcome::rejected);
  CHECK(m.members(t0).size() == 1);

  // Bad entries in an otherwise fine gossip list are skipped one by one.
  m.on_heartbeat(heartbeat_of(record_of(2), {{id_of(3), "", 1},
                                             {entity_id{}, address_of(4), 1},
                                             {id_of(5), address_of(5), 1}}),
                 t0, &outcome);
  CHECK(outcome == heartbeat_outcome::accepted);
  CHECK(m.members(t0).size() == 3);
  CHECK(!m.find(id_of(3), t0));
}

TEST_CASE("the member table stops growing at its bound", "[membership]") {
  auto m = make_core(record_of(1));
  std::vector<gossip_entry> many;
  for (uint32_t i = 0; i < membership::max_gossip_entries; ++i) {
    entity_id id{};
    id[0] = 0xee;
    id[1] = static_cast<uint8_t>(i);
    id[2] = static_cast<uint8_t>(i >> 8);
    many.push_back({id, "10.1.1.1:1", 1});
  }
  heartbeat_outcome outcome{};
  m.on_heartbeat(heartbeat_of(record_of(2), many), t0, &outcome);
  CHECK(outcome == heartbeat_outcome::accepted);
  CHECK(m.members(t0).size() == membership::max_members + 1);
  m.on_heartbeat(heartbeat_of(record_of(3)), t0, &outcome);
  CHECK(outcome == heartbeat_outcome::table_full);
  CHECK(!m.find(id_of(3), t0));
}

// -- own record and queries ---------------------------------------------------

TEST_CASE("the heartbeat carries the own record and the live members",
          "[membership]") {
  auto m = make_core(record_of(1));
  m.set_self_load(node_load{7, 0.5});
  m.set_self_drained(true);
  m.on_heartbeat(heartbeat_of(record_of(2)), t0);
  auto hb = m.make_heartbeat();
  CHECK(hb.from.id == id_of(1));
  CHECK(hb.from.load.daemons == 7);
  CHECK(hb.from.drained);
  REQUIRE(hb.known.size() == 1);
  CHECK(hb.known[0].id == id_of(2));
  CHECK(hb.known[0].incarnation == 100);
  CHECK(hb.directory_digest == 0);
  auto by_addr = m.find(address_of(2), t0 + 300ms);
  REQUIRE(by_addr);
  CHECK(by_addr->node.id == id_of(2));
  CHECK(by_addr->silent_ms == 300);
  CHECK(!m.find(address_of(7), t0));
}

// -- incarnation --------------------------------------------------------------

TEST_CASE("the incarnation grows across restarts even when the clock steps "
          "back",
          "[membership]") {
  CHECK(next_incarnation(0, 5000) == 5000);
  CHECK(next_incarnation(7000, 5000) == 7001);
  CHECK(next_incarnation(UINT64_MAX, 5) == UINT64_MAX);
  CHECK(next_incarnation(0) > 1'600'000'000'000'000'000ull);
}

TEST_CASE("the incarnation file round-trips and damage is reported",
          "[membership]") {
  test::temp_dir dir;
  auto& fs = *real_file_system();
  auto first = load_incarnation(fs, dir.path());
  REQUIRE(first);
  CHECK(*first == 0);
  REQUIRE(!store_incarnation(fs, dir.path(), 1234567890123));
  auto again = load_incarnation(fs, dir.path());
  REQUIRE(again);
  CHECK(*again == 1234567890123);
  CHECK(is(store_incarnation(fs, dir.path(), 0), errc::invalid_argument));
  for (std::string bad :
       {"", "\n", "12x\n", "-1\n", "0\n", "99999999999999999999\n", " 12\n"}) {
    INFO(bad);
    REQUIRE(!fs.write_file(dir / "incarnation", bytes_view{bad}));
    CHECK(is(load_incarnation(fs, dir.path()).error(), errc::corrupt_data));
  }
}
