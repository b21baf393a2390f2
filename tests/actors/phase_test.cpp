// Daemon phases (actors/daemon_phase.hpp): the transition table itself, and
// the same moves through the daemon and supervisor actors: freeze and
// release, freeze and forward to another daemon, standby replay then
// activate, and the refusals of every request in a phase that does not
// take it.

#include <catch2/catch.hpp>

#include <algorithm>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/scoped_actor.hpp>
#include <caf/send.hpp>

#include "actors/daemon_actor.hpp"
#include "actors/daemon_core.hpp"
#include "actors/daemon_phase.hpp"
#include "actors/factory_registry.hpp"
#include "actors/log_actor.hpp"
#include "actors/runtime.hpp"
#include "actors/spawn_spec.hpp"
#include "actors/store_actor.hpp"
#include "actors/supervisor_actor.hpp"
#include "base/errc.hpp"
#include "identity/keypair.hpp"
#include "persistence/node_store.hpp"
#include "persistence/segment.hpp"
#include "support/marker_fs.hpp"
#include "support/temp_dir.hpp"
#include "test_daemons.hpp"

using namespace mesh;
using mesh::test::text;
using mesh::test::to_bytes;

namespace {

using P = daemon_phase;

constexpr P all_phases[] = {P::starting, P::running, P::standby,
                            P::frozen,   P::failed,  P::stopped};

// -- the table ----------------------------------------------------------------

// The allowed moves, written out here independently of the table: DESIGN.md
// section 6 plus the choices actors/daemon_phase.hpp documents.
const std::vector<std::pair<P, P>> expected_allowed{
  {P::starting, P::running}, {P::starting, P::standby},
  {P::starting, P::failed},  {P::starting, P::stopped},
  {P::running, P::frozen},   {P::running, P::failed},
  {P::running, P::stopped},  {P::standby, P::running},
  {P::standby, P::failed},   {P::standby, P::stopped},
  {P::frozen, P::running},   {P::frozen, P::failed},
  {P::frozen, P::stopped},   {P::failed, P::running},
  {P::failed, P::stopped},
};

bool expected(P from, P to) {
  for (auto& [f, t] : expected_allowed)
    if (f == from && t == to)
      return true;
  return false;
}

} // namespace

TEST_CASE("every phase has a name that parses back, and nothing else parses") {
  for (auto p : all_phases) {
    INFO(to_string(p));
    auto back = parse_daemon_phase(to_string(p));
    REQUIRE(back);
    CHECK(*back == p);
  }
  CHECK(std::string{to_string(P::standby)} == "standby");
  CHECK(!parse_daemon_phase("Running"));
  CHECK(!parse_daemon_phase(""));
  CHECK(!parse_daemon_phase("unknown"));
}

TEST_CASE("the transition table allows exactly the designed moves") {
  int allowed = 0;
  int refused = 0;
  for (auto from : all_phases) {
    for (auto to : all_phases) {
      INFO(to_string(from) << " -> " << to_string(to));
      auto want = expected(from, to);
      CHECK(transition_allowed(from, to) == want);
      auto err = check_transition(from, to);
      if (want) {
        CHECK(!err);
        ++allowed;
        continue;
      }
      ++refused;
      REQUIRE(err);
      CHECK(is(err, errc::wrong_phase));
      // The refusal names both phases.
      auto what = describe(err);
      CHECK(what.find(std::string{"phase "} + to_string(from))
            != std::string::npos);
      CHECK(what.find(std::string{"phase "} + to_string(to))
            != std::string::npos);
    }
  }
  CHECK(allowed == 15);
  CHECK(refused == 21);
  CHECK(phase_transitions.size() == expected_allowed.size());
}

// -- through the actors -------------------------------------------------------

namespace {

template<class R, class Handle, class... Ts>
caf::expected<R> ask(caf::actor_system& sys, const Handle& h, Ts&&... xs) {
  caf::scoped_actor self{sys};
  caf::expected<R> out = make_error(errc::timeout, "no answer");
  self->request(h, std::chrono::seconds{20}, std::forward<Ts>(xs)...)
    .receive(
      [&](R& r) {
        out = std::move(r);
      },
      [&](caf::error& e) {
        out = std::move(e);
      });
  return out;
}

event_batch batch_of(uint64_t producer, uint64_t first_seq,
                     const std::vector<std::string>& payloads) {
  event_batch evs;
  auto seq = first_seq;
  for (auto& p : payloads)
    evs.add(producer, producer == 0 ? 0 : seq++, to_bytes(p));
  return evs;
}

std::shared_ptr<daemon_core> sum_core(const keypair& key,
                                      restart_policy policy) {
  auto make = []() -> caf::expected<std::unique_ptr<mesh::daemon>> {
    return std::unique_ptr<mesh::daemon>{std::make_unique<test::sum_daemon>()};
  };
  return std::make_shared<daemon_core>("sum", key.clone(), make,
                                       std::make_unique<test::sum_daemon>(),
                                       policy);
}

/// One node: an event log on a real segment and a supervisor.
struct node {
  caf::actor_system& sys;
  test::temp_dir dir;
  /// Daemon records and snapshots (null: nothing but the log is durable).
  std::shared_ptr<node_store> store;
  log_actor log;
  supervisor_actor sup;

  explicit node(caf::actor_system& s, bool durable = false,
                restart_policy policy = restart_policy::once())
    : sys(s) {
    auto log_dir = dir.path();
    if (durable) {
      store = std::make_shared<node_store>(dir.path());
      REQUIRE(!store->open());
      log_dir = store->log_dir();
    }
    segment_options so;
    so.policy = fsync_policy::never();
    auto seg = segment::open(log_dir, so);
    REQUIRE(seg);
    log_actor_config lcfg;
    lcfg.seg = std::shared_ptr<segment>(std::move(*seg));
    log = spawn_log_actor(sys, std::move(lcfg));
    auto registry = std::make_shared<factory_registry>();
    REQUIRE(!registry->add("sum", [] {
      return std::make_unique<test::sum_daemon>();
    }));
    supervisor_config scfg;
    scfg.store = store;
    scfg.registry = registry;
    scfg.restart = policy;
    sup = spawn_supervisor(sys, std::move(scfg));
    REQUIRE(ask<bool>(sys, sup, start_atom::value, log));
  }

  ~node() {
    ask<bool>(sys, sup, shutdown_atom::value);
  }

  daemon_info spawn(const keypair& key, bool standby = false) {
    spawn_spec spec{"sum", key};
    if (standby)
      spec.flags |= spawn_flags::standby;
    auto info = ask<daemon_info>(sys, sup, spawn_atom::value, std::move(spec));
    REQUIRE(info);
    return *info;
  }

  daemon_actor lookup(uint64_t origin) {
    auto d = ask<daemon_actor>(sys, sup, lookup_atom::value, origin);
    REQUIRE(d);
    return *d;
  }

  daemon_info listed(uint64_t origin) {
    auto all = ask<std::vector<daemon_info>>(sys, sup, list_atom::value);
    REQUIRE(all);
    for (auto& d : *all)
      if (d.origin_hash == origin)
        return d;
    FAIL("daemon " << hex_u64(origin) << " is not listed");
    return {};
  }

  std::vector<log_entry> logged(uint64_t origin) {
    auto es = ask<std::vector<log_entry>>(sys, log, read_atom::value, origin,
                                          uint64_t{0});
    REQUIRE(es);
    return *es;
  }
};

struct fixture {
  caf::actor_system_config cfg;
  caf::actor_system sys{apply_scheduler_defaults(cfg)};
  /// For daemon actors spawned without a supervisor: snapshots, rollbacks
  /// and rebuilds run on it.
  store_actor store = spawn_store_actor(sys, {});

  ~fixture() {
    caf::scoped_actor self{sys};
    self->request(store, caf::infinite, close_atom::value, final_snapshots{})
      .receive([](std::vector<std::string>&) {}, [](caf::error&) {});
  }
};

/// Requests sent from one scoped actor, answered later.
struct pending_deliveries {
  using handle = decltype(std::declval<caf::scoped_actor&>()
                            ->request(std::declval<caf::actor>(),
                                      std::chrono::seconds{1},
                                      deliver_atom::value,
                                      std::declval<event_batch>()));

  caf::scoped_actor self;
  std::vector<handle> handles;

  explicit pending_deliveries(caf::actor_system& sys) : self(sys) {}

  void send(const daemon_actor& d, const event_batch& evs) {
    handles.push_back(self->request(caf::actor_cast<caf::actor>(d),
                                    std::chrono::seconds{20},
                                    deliver_atom::value, evs));
  }

  /// Each request's one answer, in sending order.
  std::vector<caf::expected<delivery_batch>> answers() {
    std::vector<caf::expected<delivery_batch>> out;
    for (auto& h : handles) {
      caf::expected<delivery_batch> r = make_error(errc::timeout, "none");
      h.receive(
        [&](delivery_batch& b) {
          r = std::move(b);
        },
        [&](caf::error& e) {
          r = std::move(e);
        });
      out.push_back(std::move(r));
    }
    handles.clear();
    return out;
  }
};

uint64_t processed(caf::actor_system& sys, const daemon_actor& d) {
  auto st = ask<daemon_stats>(sys, d, stats_atom::value);
  REQUIRE(st);
  return st->events_processed;
}

} // namespace

TEST_CASE("a frozen daemon holds input in arrival order and release applies "
          "it, answering each producer once") {
  fixture f;
  node n{f.sys};
  auto key = keypair::generate();
  auto info = n.spawn(key);
  CHECK(info.phase == P::running);
  auto d = n.lookup(info.origin_hash);
  REQUIRE(
    ask<delivery_batch>(f.sys, d, deliver_atom::value, batch_of(1, 1, {"1"})));
  auto frozen = ask<daemon_info>(f.sys, n.sup, freeze_atom::value,
                                 info.origin_hash);
  REQUIRE(frozen);
  CHECK(frozen->phase == P::frozen);
  CHECK(frozen->last_seq == 1);
  CHECK(n.listed(info.origin_hash).phase == P::frozen);
  // Ten batches of two events from two producers, interleaved.
  pending_deliveries p{f.sys};
  for (uint64_t i = 0; i < 10; ++i)
    p.send(d, batch_of(2 + i % 2, 1 + i / 2 * 2,
                       {std::to_string(i * 2 + 1), std::to_string(i * 2 + 2)}));
  // Held: none of it was applied (stats queue behind the deliveries).
  CHECK(processed(f.sys, d) == 1);
  auto released = ask<uint64_t>(f.sys, n.sup, release_atom::value,
                                info.origin_hash);
  REQUIRE(released);
  CHECK(*released == 10);
  auto answers = p.answers();
  REQUIRE(answers.size() == 10);
  int64_t total = 1;
  uint64_t seq = 1;
  for (size_t i = 0; i < answers.size(); ++i) {
    INFO("batch " << i);
    REQUIRE(answers[i]);
    REQUIRE(answers[i]->size() == 2);
    for (size_t j = 0; j < 2; ++j) {
      total += static_cast<int64_t>(i * 2 + j + 1);
      CHECK(answers[i]->state(j) == delivery::status::applied);
      CHECK(answers[i]->daemon_seq(j) == ++seq);
      CHECK(text(answers[i]->output_at(j, 0).payload.to_bytes())
            == std::to_string(total));
    }
  }
  // Applied once each, and the daemon serves again.
  CHECK(processed(f.sys, d) == 21);
  CHECK(n.listed(info.origin_hash).phase == P::running);
  auto after = ask<delivery_batch>(f.sys, d, deliver_atom::value,
                                   batch_of(0, 0, {"0"}));
  REQUIRE(after);
  CHECK(after->daemon_seq(0) == 22);
}

TEST_CASE("a freeze is answered only once the input before it is in the "
          "log") {
  const std::string marker = "HOLD-THIS-APPEND";
  test::temp_dir dir;
  // The marked append waits until released, then fails.
  test::marker_fs fs{marker};
  fixture f;
  segment_options so;
  so.fs = &fs;
  so.policy = fsync_policy::never();
  auto seg = segment::open(dir.path(), so);
  REQUIRE(seg);
  log_actor_config lcfg;
  lcfg.seg = std::shared_ptr<segment>(std::move(*seg));
  // Its own thread, so the daemon runs while the write is held.
  lcfg.sync_each_commit = true;
  auto log = spawn_log_actor(f.sys, std::move(lcfg));
  daemon_actor_config c;
  c.core = sum_core(keypair::generate(), restart_policy::once());
  c.log = log;
  c.store = f.store;
  auto origin = c.core->origin();
  auto d = spawn_daemon_actor(f.sys, std::move(c));
  fs.hold();
  pending_deliveries p{f.sys};
  p.send(d, batch_of(1, 1, {marker}));
  fs.wait_until_held();
  // The append is in flight: the freeze waits for it.
  caf::scoped_actor self{f.sys};
  bool early = false;
  self->request(d, std::chrono::milliseconds{300}, freeze_atom::value)
    .receive(
      [&](daemon_info&) {
        early = true;
      },
      [&](caf::error&) {});
  CHECK(!early);
  fs.release();
  auto answers = p.answers();
  REQUIRE(answers.size() == 1);
  REQUIRE(!answers[0]);
  CHECK(is(answers[0].error(), errc::io_error));
  // The cut-over point is what the log holds: the failed input rolled back.
  auto info = ask<daemon_info>(f.sys, d, info_atom::value);
  REQUIRE(info);
  CHECK(info->phase == P::frozen);
  CHECK(info->last_seq == 0);
  auto logged = ask<std::vector<log_entry>>(f.sys, log, read_atom::value,
                                            origin, uint64_t{0});
  REQUIRE(logged);
  CHECK(logged->empty());
  ask<bool>(f.sys, d, stop_atom::value, false);
  ask<bool>(f.sys, log, close_atom::value);
}

TEST_CASE("a frozen daemon hands its held input to another daemon, which "
          "answers the producers") {
  fixture f;
  node n{f.sys};
  auto src = n.spawn(keypair::generate());
  auto dst = n.spawn(keypair::generate());
  auto s = n.lookup(src.origin_hash);
  auto t = n.lookup(dst.origin_hash);
  REQUIRE(ask<delivery_batch>(f.sys, s, deliver_atom::value,
                              batch_of(0, 0, {"100"})));
  REQUIRE(ask<daemon_info>(f.sys, n.sup, freeze_atom::value, src.origin_hash));
  pending_deliveries p{f.sys};
  for (int i = 1; i <= 4; ++i)
    p.send(s, batch_of(7, static_cast<uint64_t>(i), {std::to_string(i)}));
  // And one more, answered after the four.
  p.send(s, batch_of(7, 5, {"5"}));
  CHECK(processed(f.sys, s) == 1);
  auto forwarded = ask<uint64_t>(f.sys, n.sup, forward_atom::value,
                                 src.origin_hash, t);
  REQUIRE(forwarded);
  CHECK(*forwarded == 5);
  auto answers = p.answers();
  int64_t total = 0;
  for (size_t i = 0; i < answers.size(); ++i) {
    INFO("batch " << i);
    REQUIRE(answers[i]);
    total += static_cast<int64_t>(i + 1);
    // The target's own seqs and totals: the source's 100 is not in them.
    CHECK(answers[i]->daemon_seq(0) == i + 1);
    CHECK(text(answers[i]->output_at(0, 0).payload.to_bytes())
          == std::to_string(total));
  }
  REQUIRE(answers.size() == 5);
  CHECK(total == 15);
  CHECK(processed(f.sys, s) == 1);
  CHECK(processed(f.sys, t) == 5);
  // The source stays frozen and holds what comes next.
  CHECK(n.listed(src.origin_hash).phase == P::frozen);
  auto none = ask<uint64_t>(f.sys, s, forward_atom::value,
                            caf::actor_cast<caf::actor>(t));
  REQUIRE(none);
  CHECK(*none == 0);
}

TEST_CASE("input held by a frozen daemon that stops is refused, not applied") {
  fixture f;
  node n{f.sys};
  auto info = n.spawn(keypair::generate());
  auto d = n.lookup(info.origin_hash);
  REQUIRE(ask<daemon_info>(f.sys, d, freeze_atom::value));
  pending_deliveries p{f.sys};
  p.send(d, batch_of(1, 1, {"1"}));
  p.send(d, batch_of(1, 2, {"2"}));
  REQUIRE(ask<bool>(f.sys, n.sup, stop_atom::value, info.origin_hash));
  for (auto& a : p.answers()) {
    REQUIRE(!a);
    CHECK(is(a.error(), errc::wrong_phase));
    CHECK(describe(a.error()).find("stopped") != std::string::npos);
  }
  CHECK(n.logged(info.origin_hash).empty());
  // Stopped is final: the daemon is gone.
  auto gone = ask<daemon_actor>(f.sys, n.sup, lookup_atom::value,
                                info.origin_hash);
  REQUIRE(!gone);
  CHECK(is(gone.error(), errc::daemon_not_found));
}

TEST_CASE("a frozen daemon refuses input beyond its bound with "
          "limit_exceeded") {
  fixture f;
  daemon_actor_config c;
  c.core = sum_core(keypair::generate(), restart_policy::once());
  c.frozen_max_events = 3;
  c.store = f.store;
  auto d = spawn_daemon_actor(f.sys, std::move(c));
  REQUIRE(ask<daemon_info>(f.sys, d, freeze_atom::value));
  pending_deliveries p{f.sys};
  p.send(d, batch_of(1, 1, {"1", "2"}));
  p.send(d, batch_of(1, 3, {"3", "4"}));
  p.send(d, batch_of(1, 3, {"3"}));
  auto refused = ask<delivery_batch>(f.sys, d, deliver_atom::value,
                                     batch_of(1, 4, {"4"}));
  REQUIRE(!refused);
  CHECK(is(refused.error(), errc::limit_exceeded));
  CHECK(describe(refused.error()).find("limit is 3 events")
        != std::string::npos);
  auto released = ask<uint64_t>(f.sys, d, release_atom::value);
  REQUIRE(released);
  CHECK(*released == 2);
  auto answers = p.answers();
  REQUIRE(answers[0]);
  CHECK(answers[0]->daemon_seq(1) == 2);
  REQUIRE(!answers[1]);
  CHECK(is(answers[1].error(), errc::limit_exceeded));
  REQUIRE(answers[2]);
  CHECK(answers[2]->daemon_seq(0) == 3);
  ask<bool>(f.sys, d, stop_atom::value, false);
}

TEST_CASE("a standby daemon replays log entries with the source's dedup and "
          "chain, logs them, and serves once activated") {
  fixture f;
  node a{f.sys};
  node b{f.sys};
  auto key = keypair::generate();
  auto src = a.spawn(key);
  auto s = a.lookup(src.origin_hash);
  REQUIRE(ask<delivery_batch>(f.sys, s, deliver_atom::value,
                              batch_of(7, 1, {"1", "2", "bad", "3"})));
  auto entries = a.logged(src.origin_hash);
  REQUIRE(entries.size() == 4);

  auto dst = b.spawn(key, true);
  CHECK(dst.phase == P::standby);
  CHECK(b.listed(dst.origin_hash).phase == P::standby);
  // Not routable.
  auto lookup = ask<daemon_actor>(f.sys, b.sup, lookup_atom::value,
                                  dst.origin_hash);
  REQUIRE(!lookup);
  CHECK(is(lookup.error(), errc::wrong_phase));
  // Two rounds that overlap, as catch-up rounds may.
  std::vector<log_entry> first(entries.begin(), entries.begin() + 2);
  auto r1 = ask<uint64_t>(f.sys, b.sup, replay_atom::value, dst.origin_hash,
                          first);
  REQUIRE(r1);
  CHECK(*r1 == 2);
  auto r2 = ask<uint64_t>(f.sys, b.sup, replay_atom::value, dst.origin_hash,
                          entries);
  REQUIRE(r2);
  CHECK(*r2 == 4);
  // Durable through the target's own log, like live input.
  auto relogged = b.logged(dst.origin_hash);
  REQUIRE(relogged.size() == 4);
  for (size_t i = 0; i < 4; ++i) {
    CHECK(relogged[i].daemon_seq == entries[i].daemon_seq);
    CHECK(relogged[i].producer_seq == entries[i].producer_seq);
    CHECK(relogged[i].state == entries[i].state);
    CHECK(relogged[i].payload == entries[i].payload);
  }

  auto active = ask<daemon_info>(f.sys, b.sup, activate_atom::value,
                                 dst.origin_hash);
  REQUIRE(active);
  CHECK(active->phase == P::running);
  CHECK(active->last_seq == 4);
  auto t = b.lookup(dst.origin_hash);
  // The dedup marks came along: a resend is a duplicate at its seq.
  auto dup = ask<delivery_batch>(f.sys, t, deliver_atom::value,
                                 batch_of(7, 2, {"2"}));
  REQUIRE(dup);
  CHECK(dup->state(0) == delivery::status::duplicate);
  CHECK(dup->daemon_seq(0) == 2);
  // The chain continues exactly as on the source.
  auto on_src = ask<delivery_batch>(f.sys, s, deliver_atom::value,
                                    batch_of(7, 5, {"4"}));
  auto on_dst = ask<delivery_batch>(f.sys, t, deliver_atom::value,
                                    batch_of(7, 5, {"4"}));
  REQUIRE(on_src);
  REQUIRE(on_dst);
  CHECK(on_dst->daemon_seq(0) == 5);
  auto x = on_src->output_at(0, 0);
  auto y = on_dst->output_at(0, 0);
  CHECK(text(y.payload.to_bytes()) == "10");
  CHECK(text(y.payload.to_bytes()) == text(x.payload.to_bytes()));
  CHECK(y.link.origin_hash == x.link.origin_hash);
  CHECK(y.link.sequence == x.link.sequence);
  CHECK(y.link.parent_hash == x.link.parent_hash);
}

TEST_CASE("a replay with a gap, out of order or of another origin is refused "
          "whole") {
  fixture f;
  node a{f.sys};
  node b{f.sys};
  auto key = keypair::generate();
  auto src = a.spawn(key);
  auto other = a.spawn(keypair::generate());
  REQUIRE(ask<delivery_batch>(f.sys, a.lookup(src.origin_hash),
                              deliver_atom::value,
                              batch_of(7, 1, {"1", "2", "3"})));
  REQUIRE(ask<delivery_batch>(f.sys, a.lookup(other.origin_hash),
                              deliver_atom::value, batch_of(7, 1, {"1"})));
  auto es = a.logged(src.origin_hash);
  auto foreign = a.logged(other.origin_hash);
  REQUIRE(es.size() == 3);
  REQUIRE(foreign.size() == 1);
  auto dst = b.spawn(key, true);
  struct bad_case {
    const char* name;
    std::vector<log_entry> entries;
    const char* says;
  };
  std::vector<bad_case> cases{
    {"gap at the start", {es[1], es[2]}, "gap"},
    {"gap inside", {es[0], es[2]}, "gap"},
    {"out of order", {es[0], es[1], es[0]}, "follows"},
    {"another origin", {es[0], foreign[0]}, "an entry of daemon"},
  };
  for (auto& c : cases) {
    INFO(c.name);
    auto r = ask<uint64_t>(f.sys, b.sup, replay_atom::value, dst.origin_hash,
                           c.entries);
    REQUIRE(!r);
    CHECK(is(r.error(), errc::invalid_argument));
    CHECK(describe(r.error()).find(c.says) != std::string::npos);
  }
  // Nothing of the refused calls was applied or logged.
  CHECK(b.logged(dst.origin_hash).empty());
  auto ok = ask<uint64_t>(f.sys, b.sup, replay_atom::value, dst.origin_hash,
                          es);
  REQUIRE(ok);
  CHECK(*ok == 3);
}

namespace {

/// A request to a daemon actor and what it must get in each phase.
enum class outcome { ok, wrong_phase, daemon_failed, held };

struct phase_request {
  const char* name;
  /// Sends the request to `d` (`other`: a second running daemon).
  std::function<caf::expected<void>(caf::actor_system&, const daemon_actor& d,
                                    const daemon_actor& other)>
    send;
  outcome in_running, in_standby, in_frozen, in_failed;
  /// The phase after an `ok` answer (the phase stays on a refusal).
  std::optional<P> moves_to;
};

template<class R, class... Ts>
caf::expected<void>
ask_void(caf::actor_system& sys, const daemon_actor& d, Ts&&... xs) {
  auto r = ask<R>(sys, d, std::forward<Ts>(xs)...);
  if (!r)
    return r.error();
  return {};
}

std::vector<phase_request> phase_requests() {
  using o = outcome;
  return {
    {"freeze",
     [](caf::actor_system& sys, const daemon_actor& d, const daemon_actor&) {
       return ask_void<daemon_info>(sys, d, freeze_atom::value);
     },
     o::ok, o::wrong_phase, o::wrong_phase, o::wrong_phase, P::frozen},
    {"release",
     [](caf::actor_system& sys, const daemon_actor& d, const daemon_actor&) {
       return ask_void<uint64_t>(sys, d, release_atom::value);
     },
     o::wrong_phase, o::wrong_phase, o::ok, o::wrong_phase, P::running},
    {"forward",
     [](caf::actor_system& sys, const daemon_actor& d,
        const daemon_actor& other) {
       return ask_void<uint64_t>(sys, d, forward_atom::value,
                                 caf::actor_cast<caf::actor>(other));
     },
     o::wrong_phase, o::wrong_phase, o::ok, o::wrong_phase, P::frozen},
    {"activate",
     [](caf::actor_system& sys, const daemon_actor& d, const daemon_actor&) {
       return ask_void<daemon_info>(sys, d, activate_atom::value);
     },
     o::wrong_phase, o::ok, o::wrong_phase, o::wrong_phase, P::running},
    {"replay",
     [](caf::actor_system& sys, const daemon_actor& d, const daemon_actor&) {
       return ask_void<uint64_t>(sys, d, replay_atom::value,
                                 std::vector<log_entry>{});
     },
     o::wrong_phase, o::ok, o::wrong_phase, o::wrong_phase, P::standby},
    {"deliver",
     [](caf::actor_system& sys, const daemon_actor& d, const daemon_actor&) {
       return ask_void<delivery_batch>(sys, d, deliver_atom::value,
                                       batch_of(0, 0, {"1"}));
     },
     o::ok, o::wrong_phase, o::held, o::daemon_failed, std::nullopt},
    {"resume",
     [](caf::actor_system& sys, const daemon_actor& d, const daemon_actor&) {
       return ask_void<daemon_info>(sys, d, resume_atom::value, false);
     },
     // Resuming a running daemon is a no-op (the gateway refuses it with
     // wrong_phase before it gets here); a standby or frozen one is refused.
     o::ok, o::wrong_phase, o::wrong_phase, o::ok, P::running},
  };
}

/// A daemon actor in `phase` (no supervisor, no log).
daemon_actor in_phase(caf::actor_system& sys, const store_actor& store,
                      P phase) {
  daemon_actor_config c;
  c.core = sum_core(keypair::generate(), restart_policy{0, {}});
  c.store = store;
  c.standby = phase == P::standby;
  auto d = spawn_daemon_actor(sys, std::move(c));
  if (phase == P::frozen)
    REQUIRE(ask<daemon_info>(sys, d, freeze_atom::value));
  if (phase == P::failed) {
    // No restart allowed: the first rejected event fails the daemon.
    auto r = ask<delivery_batch>(sys, d, deliver_atom::value,
                                 batch_of(0, 0, {"bad"}));
    REQUIRE(r);
  }
  auto info = ask<daemon_info>(sys, d, info_atom::value);
  REQUIRE(info);
  REQUIRE(info->phase == phase);
  return d;
}

} // namespace

TEST_CASE("every request in every phase is taken or refused as the table "
          "says") {
  fixture f;
  daemon_actor_config oc;
  oc.core = sum_core(keypair::generate(), restart_policy::once());
  oc.store = f.store;
  auto other = spawn_daemon_actor(f.sys, std::move(oc));
  for (auto& req : phase_requests()) {
    for (auto phase : {P::running, P::standby, P::frozen, P::failed}) {
      INFO(req.name << " in phase " << to_string(phase));
      auto want = phase == P::running   ? req.in_running
                  : phase == P::standby ? req.in_standby
                  : phase == P::frozen  ? req.in_frozen
                                        : req.in_failed;
      auto d = in_phase(f.sys, f.store, phase);
      if (want == outcome::held) {
        pending_deliveries p{f.sys};
        p.send(d, batch_of(0, 0, {"1"}));
        CHECK(processed(f.sys, d) == 0);
        auto released = ask<uint64_t>(f.sys, d, release_atom::value);
        REQUIRE(released);
        CHECK(*released == 1);
        auto answers = p.answers();
        REQUIRE(answers[0]);
        CHECK(answers[0]->daemon_seq(0) == 1);
      } else {
        auto r = req.send(f.sys, d, other);
        switch (want) {
          case outcome::ok: CHECK(r); break;
          case outcome::wrong_phase:
            REQUIRE(!r);
            CHECK(is(r.error(), errc::wrong_phase));
            CHECK(describe(r.error()).find(to_string(phase))
                  != std::string::npos);
            break;
          case outcome::daemon_failed:
            REQUIRE(!r);
            CHECK(is(r.error(), errc::daemon_failed));
            break;
          case outcome::held: break;
        }
        auto info = ask<daemon_info>(f.sys, d, info_atom::value);
        REQUIRE(info);
        auto now = want == outcome::ok && req.moves_to ? *req.moves_to : phase;
        CHECK(to_string(info->phase) == std::string{to_string(now)});
      }
      // Stop is taken in every phase.
      CHECK(ask<bool>(f.sys, d, stop_atom::value, false));
    }
  }
  ask<bool>(f.sys, other, stop_atom::value, false);
}

TEST_CASE("a failed daemon resumes to running and the supervisor lists each "
          "phase") {
  fixture f;
  node n{f.sys, false, restart_policy{0, {}}};
  auto info = n.spawn(keypair::generate());
  auto d = n.lookup(info.origin_hash);
  REQUIRE(ask<delivery_batch>(f.sys, d, deliver_atom::value,
                              batch_of(0, 0, {"bad"})));
  CHECK(n.listed(info.origin_hash).phase == P::failed);
  // A failed daemon cannot be frozen: the supervisor passes the refusal on.
  auto fr = ask<daemon_info>(f.sys, n.sup, freeze_atom::value,
                             info.origin_hash);
  REQUIRE(!fr);
  CHECK(is(fr.error(), errc::wrong_phase));
  auto resumed = ask<daemon_info>(f.sys, n.sup, resume_atom::value,
                                  info.origin_hash, false);
  REQUIRE(resumed);
  CHECK(resumed->phase == P::running);
  CHECK(n.listed(info.origin_hash).phase == P::running);
  // Phase requests for a daemon the node does not have.
  auto none = ask<daemon_info>(f.sys, n.sup, activate_atom::value,
                               uint64_t{0x1234});
  REQUIRE(!none);
  CHECK(is(none.error(), errc::daemon_not_found));
}

TEST_CASE("a standby daemon logs replayed entries under its own epoch") {
  fixture f;
  node a{f.sys};
  node b{f.sys};
  auto key = keypair::generate();
  auto src = a.spawn(key);
  REQUIRE(src.epoch == 1);
  REQUIRE(ask<delivery_batch>(f.sys, a.lookup(src.origin_hash),
                              deliver_atom::value,
                              batch_of(7, 1, {"1", "2", "3"})));
  auto entries = a.logged(src.origin_hash);
  REQUIRE(entries.size() == 3);
  // The target knew an earlier life of this identity: its copy is a new
  // life there, and recovery on the target trusts only that life's entries.
  auto earlier = b.spawn(key);
  REQUIRE(ask<bool>(f.sys, b.sup, stop_atom::value, earlier.origin_hash));
  auto dst = b.spawn(key, true);
  REQUIRE(dst.epoch == 2);
  auto r = ask<uint64_t>(f.sys, b.sup, replay_atom::value, dst.origin_hash,
                         entries);
  REQUIRE(r);
  CHECK(*r == 3);
  auto relogged = b.logged(dst.origin_hash);
  REQUIRE(relogged.size() == 3);
  for (auto& e : relogged) {
    INFO("daemon_seq " << e.daemon_seq);
    CHECK(e.epoch == dst.epoch);
  }
}

TEST_CASE("a standby daemon's record is written only when it is activated") {
  fixture f;
  node n{f.sys, true};
  auto recorded = [&n](uint64_t origin) {
    auto all = n.store->list_daemons();
    REQUIRE(all);
    return std::count(all->begin(), all->end(), origin);
  };
  auto running = n.spawn(keypair::generate());
  CHECK(recorded(running.origin_hash) == 1);
  auto standby = n.spawn(keypair::generate(), true);
  // A crash now must not bring the migration's copy back as a daemon.
  CHECK(recorded(standby.origin_hash) == 0);
  REQUIRE(
    ask<daemon_info>(f.sys, n.sup, activate_atom::value, standby.origin_hash));
  CHECK(recorded(standby.origin_hash) == 1);
  // A second activation is refused and writes nothing.
  auto again = ask<daemon_info>(f.sys, n.sup, activate_atom::value,
                                standby.origin_hash);
  REQUIRE(!again);
  CHECK(is(again.error(), errc::wrong_phase));
}
