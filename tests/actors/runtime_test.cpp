#include <catch2/catch.hpp>

#include <atomic>
#include <map>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_map>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>

#include "actors/runtime.hpp"
#include "base/errc.hpp"
#include "identity/entity_id.hpp"
#include "identity/keypair.hpp"
#include "snapshot/snapshot.hpp"
#include "support/colliding_keys.hpp"
#include "support/temp_dir.hpp"
#include "test_daemons.hpp"

using namespace mesh;
using mesh::test::text;
using mesh::test::to_bytes;

namespace {

struct fixture {
  caf::actor_system_config cfg;
  caf::actor_system sys{mesh::apply_scheduler_defaults(cfg)};
  std::atomic<int> made{0};
  /// Every daemon object holds a copy.
  test::keepalive token = std::make_shared<int>(0);
  std::unique_ptr<runtime> rt;

  explicit fixture(runtime_options opts = {}) {
    rt = std::make_unique<runtime>(sys, std::move(opts));
    REQUIRE(!rt->register_factory("echo", [this] {
      auto d = std::make_unique<test::echo_daemon>();
      d->alive = token;
      return d;
    }));
    REQUIRE(!rt->register_factory("sum", [this] {
      ++made;
      auto d = std::make_unique<test::sum_daemon>();
      d->alive = token;
      return d;
    }));
  }

  /// Waits (up to 10 s) until no daemon object is alive; true when none is.
  bool no_daemon_alive() {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds{10};
    while (token.use_count() > 1) {
      if (std::chrono::steady_clock::now() > deadline)
        return false;
      std::this_thread::sleep_for(std::chrono::milliseconds{1});
    }
    return true;
  }

  ~fixture() {
    rt.reset();
  }

  uint64_t spawn(const std::string& kind = "sum") {
    auto d = rt->spawn(kind);
    REQUIRE(d);
    return d->origin_hash;
  }

  std::string send(uint64_t origin, const std::string& payload,
                   uint64_t producer = 0, uint64_t seq = 0) {
    auto r = rt->deliver(origin, {producer, seq, to_bytes(payload)});
    REQUIRE(r);
    REQUIRE(r->outputs.size() == 1);
    return text(r->outputs[0].payload);
  }
};

} // namespace

// -- lifecycle ----------------------------------------------------------------

TEST_CASE("spawn before start fails not_ready") {
  fixture f;
  auto d = f.rt->spawn("echo");
  REQUIRE(!d);
  CHECK(is(d.error(), errc::not_ready));
  CHECK_FALSE(f.rt->is_ready());
}

TEST_CASE("start is idempotent") {
  fixture f;
  REQUIRE(!f.rt->start());
  REQUIRE(!f.rt->start());
  CHECK(f.rt->is_ready());
  f.spawn("echo");
  CHECK(f.rt->daemon_count() == 1);
}

TEST_CASE("shutdown rejects later spawn and register") {
  fixture f;
  REQUIRE(!f.rt->start());
  REQUIRE(!f.rt->shutdown());
  CHECK_FALSE(f.rt->is_ready());
  auto d = f.rt->spawn("echo");
  REQUIRE(!d);
  CHECK(is(d.error(), errc::shutting_down));
  auto err = f.rt->register_factory("late", [] {
    return std::make_unique<test::echo_daemon>();
  });
  CHECK(is(err, errc::shutting_down));
  CHECK(is(f.rt->start(), errc::shutting_down));
}

TEST_CASE("a second registration of a kind is rejected") {
  fixture f;
  auto err = f.rt->register_factory("echo", [] {
    return std::make_unique<test::echo_daemon>();
  });
  CHECK(is(err, errc::factory_already_registered));
}

TEST_CASE("new kinds may be registered after start") {
  fixture f;
  REQUIRE(!f.rt->start());
  REQUIRE(!f.rt->register_factory("late_echo", [] {
    return std::make_unique<test::echo_daemon>();
  }));
  auto d = f.rt->spawn("late_echo");
  REQUIRE(d);
  CHECK(d->kind == "late_echo");
}

TEST_CASE("of 32 concurrent registrations of one kind exactly one wins") {
  fixture f;
  std::atomic<int> wins{0};
  std::atomic<int> dupes{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < 32; ++i)
    threads.emplace_back([&] {
      auto err = f.rt->register_factory("contested", [] {
        return std::make_unique<test::echo_daemon>();
      });
      if (!err)
        ++wins;
      else if (is(err, errc::factory_already_registered))
        ++dupes;
    });
  for (auto& t : threads)
    t.join();
  CHECK(wins == 1);
  CHECK(dupes == 31);
}

TEST_CASE("spawning an unknown kind fails factory_not_found") {
  fixture f;
  REQUIRE(!f.rt->start());
  auto d = f.rt->spawn("nope");
  REQUIRE(!d);
  CHECK(is(d.error(), errc::factory_not_found));
  CHECK(f.rt->daemon_count() == 0);
}

TEST_CASE("the factory runs once per spawn") {
  fixture f;
  REQUIRE(!f.rt->start());
  f.spawn();
  f.spawn();
  f.spawn();
  CHECK(f.made == 3);
}

TEST_CASE("a spawn racing shutdown never leaves a daemon behind") {
  for (int round = 0; round < 10; ++round) {
    fixture f;
    REQUIRE(!f.rt->start());
    std::atomic<int> ok{0};
    std::thread spawner([&] {
      for (int i = 0; i < 20; ++i)
        if (f.rt->spawn("echo"))
          ++ok;
    });
    std::this_thread::sleep_for(std::chrono::microseconds{200 * round});
    REQUIRE(!f.rt->shutdown());
    spawner.join();
    // The runtime says it is shut down rather than "no daemons"...
    auto count = f.rt->daemon_count();
    REQUIRE(!count);
    CHECK(is(count.error(), errc::shutting_down));
    // ... and no daemon object outlives it.
    CHECK(f.no_daemon_alive());
  }
}

TEST_CASE("shutdown drains every daemon") {
  fixture f;
  REQUIRE(!f.rt->start());
  for (int i = 0; i < 5; ++i)
    f.spawn();
  CHECK(f.rt->daemon_count() == 5);
  REQUIRE(!f.rt->shutdown());
  CHECK(f.no_daemon_alive());
  CHECK(!f.rt->daemon_count());
}

// -- delivery -----------------------------------------------------------------

TEST_CASE("echo round trip with stats") {
  fixture f;
  REQUIRE(!f.rt->start());
  auto id = f.spawn("echo");
  auto r = f.rt->deliver(id, {0, 0, to_bytes("hello")});
  REQUIRE(r);
  CHECK(r->state == delivery::status::applied);
  CHECK(r->daemon_seq == 1);
  REQUIRE(r->outputs.size() == 1);
  CHECK(text(r->outputs[0].payload) == "hello");
  CHECK(r->outputs[0].link.origin_hash == id);
  CHECK(r->outputs[0].link.sequence == 0);
  CHECK(r->outputs[0].link.parent_hash == 0);
  auto r2 = f.rt->deliver(id, {0, 0, to_bytes("again")});
  REQUIRE(r2);
  CHECK(
    follows(r->outputs[0].link, r->outputs[0].payload, r2->outputs[0].link));
  auto st = f.rt->stats(id);
  REQUIRE(st);
  CHECK(st->events_processed == 2);
  CHECK(st->events_emitted == 2);
  CHECK(st->last_seq == 2);
  CHECK(st->errors == 0);
}

TEST_CASE("deliver_batch answers every event in order") {
  fixture f;
  REQUIRE(!f.rt->start());
  auto id = f.spawn();
  std::vector<inbound_event> evs;
  for (int i = 1; i <= 100; ++i)
    evs.push_back({7, static_cast<uint64_t>(i), to_bytes(std::to_string(i))});
  auto r = f.rt->deliver_batch(id, evs);
  REQUIRE(r);
  REQUIRE(r->size() == 100);
  CHECK(text(r->back().outputs[0].payload) == "5050");
  CHECK(r->back().daemon_seq == 100);
}

TEST_CASE("packed deliver_batch answers every event: seqs, outputs, chain") {
  fixture f;
  REQUIRE(!f.rt->start());
  auto id = f.spawn("echo");
  event_batch evs;
  for (int i = 1; i <= 50; ++i)
    evs.add(3, static_cast<uint64_t>(i), to_bytes(std::to_string(i)));
  evs.add(3, 7, to_bytes("dup")); // producer 3's seq 7 again
  evs.add(0, 0, bytes_view{});    // anonymous and empty
  auto r = f.rt->deliver_batch(id, evs);
  REQUIRE(r);
  REQUIRE(r->size() == 52);
  // Each output continues the chain of the one before.
  bool first = true;
  causal_link prev_link;
  bytes prev_payload;
  auto check_chain = [&](size_t i, uint64_t seq) {
    REQUIRE(r->output_count(i) == 1);
    auto o = r->output_at(i, 0);
    CHECK(o.link.origin_hash == id);
    CHECK(o.link.horizon == seq);
    if (first)
      CHECK(o.link.sequence == 0);
    else
      CHECK(follows(prev_link, prev_payload, o.link));
    first = false;
    prev_link = o.link;
    prev_payload = o.payload.to_bytes();
  };
  for (size_t i = 0; i < 50; ++i) {
    CHECK(r->state(i) == delivery::status::applied);
    CHECK(r->daemon_seq(i) == i + 1);
    check_chain(i, i + 1);
    CHECK(text(r->output_at(i, 0).payload.to_bytes()) == std::to_string(i + 1));
  }
  CHECK(r->state(50) == delivery::status::duplicate);
  CHECK(r->daemon_seq(50) == 7);
  CHECK(r->output_count(50) == 0);
  CHECK(r->state(51) == delivery::status::applied);
  CHECK(r->daemon_seq(51) == 51);
  check_chain(51, 51);
  CHECK(r->output_at(51, 0).payload.empty());
  // The vector form is the same call converted: one delivery per event.
  auto v = r->to_deliveries();
  REQUIRE(v.size() == 52);
  CHECK(v[49].outputs[0].payload == to_bytes("50"));
  CHECK(v[50].state == delivery::status::duplicate);
}

TEST_CASE("packed deliver_batch carries a rejection's error per event") {
  fixture f;
  REQUIRE(!f.rt->start());
  auto id = f.spawn();
  event_batch evs;
  evs.add(1, 1, to_bytes("10"));
  evs.add(1, 2, to_bytes("bad"));
  evs.add(1, 3, to_bytes("5"));
  auto r = f.rt->deliver_batch(id, evs);
  REQUIRE(r);
  REQUIRE(r->size() == 3);
  CHECK(r->state(0) == delivery::status::applied);
  CHECK(r->state(1) == delivery::status::rejected);
  CHECK(r->daemon_seq(1) == 2);
  CHECK(r->error(1).find("bad") != std::string_view::npos);
  CHECK(r->output_count(1) == 0);
  // Rebuilt from before the failure, then the third event.
  CHECK(r->state(2) == delivery::status::applied);
  CHECK(text(r->output_at(2, 0).payload.to_bytes()) == "15");
}

TEST_CASE("an empty packed batch is answered without asking the daemon") {
  fixture f;
  REQUIRE(!f.rt->start());
  auto r = f.rt->deliver_batch(12345, event_batch{});
  REQUIRE(r);
  CHECK(r->empty());
}

TEST_CASE("deliver without spinning still gets every answer") {
  runtime_options opts;
  opts.reply_spin = std::chrono::microseconds{0};
  fixture f{opts};
  REQUIRE(!f.rt->start());
  auto id = f.spawn();
  for (int i = 1; i <= 20; ++i)
    CHECK(f.send(id, "1", 1, i) == std::to_string(i));
}

TEST_CASE("deliveries racing stop end in an answer or daemon_not_found, "
          "never a timeout") {
  runtime_options opts;
  // Long enough that a lost promise would show as a slow call.
  opts.request_timeout = std::chrono::milliseconds{20000};
  fixture f{opts};
  REQUIRE(!f.rt->start());
  for (int round = 0; round < 20; ++round) {
    auto id = f.spawn("echo");
    std::atomic<bool> stopped{false};
    int answered = 0, gone = 0, other = 0;
    auto slowest = std::chrono::steady_clock::duration::zero();
    std::thread sender{[&] {
      for (int i = 0; i < 100000; ++i) {
        auto t0 = std::chrono::steady_clock::now();
        auto r = f.rt->deliver(id, {0, 0, to_bytes("x")});
        slowest = std::max(slowest, std::chrono::steady_clock::now() - t0);
        if (r)
          ++answered;
        else if (is(r.error(), errc::daemon_not_found))
          ++gone;
        else
          ++other;
        if (!r && stopped)
          break;
      }
    }};
    std::this_thread::sleep_for(std::chrono::milliseconds{1 + round % 5});
    REQUIRE(!f.rt->stop(id));
    stopped = true;
    sender.join();
    INFO("round " << round << ": " << answered << " answered");
    CHECK(other == 0);
    CHECK(gone >= 1);
    CHECK(slowest < std::chrono::seconds{5});
  }
}

namespace {

/// Counts how often each payload reaches process(), across incarnations.
struct process_counts {
  std::mutex mtx;
  std::map<std::string, int> n;
};

class counting_daemon : public daemon {
public:
  explicit counting_daemon(std::shared_ptr<process_counts> c)
    : counts_(std::move(c)) {}
  std::string_view kind() const override {
    return "counting";
  }
  caf::expected<std::vector<bytes>> process(const causal_event& ev) override {
    std::lock_guard<std::mutex> guard{counts_->mtx};
    ++counts_->n[text(ev.payload)];
    return std::vector<bytes>{};
  }
  std::optional<bytes> snapshot() const override {
    return bytes{};
  }

private:
  std::shared_ptr<process_counts> counts_;
};

} // namespace

TEST_CASE("a delivery the daemon accepted is never resent to its successor") {
  // The daemon is stopped and brought back from a snapshot (same identity)
  // over and over while anonymous events stream in. A batch the old
  // incarnation accepted but did not answer (its log append was in flight)
  // must come back as an error, not be resent to the new incarnation:
  // anonymous events have no dedup, so that would apply them twice.
  test::temp_dir dir;
  runtime_options opts;
  opts.data_dir = dir.path();
  // Every commit fsyncs: the window between apply and answer is wide.
  opts.fsync = fsync_policy::every_n(1);
  fixture f{opts};
  auto counts = std::make_shared<process_counts>();
  REQUIRE(!f.rt->register_factory("counting", [counts] {
    return std::make_unique<counting_daemon>(counts);
  }));
  REQUIRE(!f.rt->start());
  auto key = keypair::generate();
  auto d = f.rt->spawn("counting", key);
  REQUIRE(d);
  auto id = d->origin_hash;
  std::atomic<bool> done{false};
  int ok = 0, gone = 0, other = 0;
  std::thread sender{[&] {
    for (int i = 0; !done; ++i) {
      auto r = f.rt->deliver(id, {0, 0, to_bytes("e" + std::to_string(i))});
      if (r)
        ++ok;
      else if (is(r.error(), errc::daemon_not_found))
        ++gone;
      else
        ++other;
    }
  }};
  // Busy threads that yield now and then stretch the windows between the
  // actors' steps, as a loaded machine does.
  std::vector<std::thread> hogs;
  for (int h = 0; h < 3; ++h)
    hogs.emplace_back([&] {
      while (!done) {
        volatile uint64_t x = 0;
        for (int j = 0; j < 200000; ++j)
          x = x + j;
        std::this_thread::yield();
      }
    });
  for (int round = 0; round < 150; ++round) {
    auto snap = f.rt->snapshot(id);
    REQUIRE(snap);
    REQUIRE(!f.rt->stop(id));
    REQUIRE(f.rt->spawn_from_snapshot(key, *snap));
  }
  done = true;
  sender.join();
  for (auto& h : hogs)
    h.join();
  INFO(ok << " answered, " << gone << " daemon_not_found");
  CHECK(other == 0);
  CHECK(ok > 0);
  std::lock_guard<std::mutex> guard{counts->mtx};
  int twice = 0;
  for (auto& [payload, n] : counts->n)
    if (n > 1)
      ++twice;
  CHECK(twice == 0);
}

TEST_CASE("stop then deliver gives daemon_not_found") {
  fixture f;
  REQUIRE(!f.rt->start());
  auto id = f.spawn("echo");
  CHECK(f.send(id, "x") == "x");
  REQUIRE(!f.rt->stop(id));
  auto r = f.rt->deliver(id, {0, 0, to_bytes("y")});
  REQUIRE(!r);
  CHECK(is(r.error(), errc::daemon_not_found));
  CHECK(is(f.rt->stop(id), errc::daemon_not_found));
  CHECK(f.rt->daemon_count() == 0);
}

TEST_CASE(
  "a duplicate producer seq is answered with the seq it was applied at") {
  fixture f;
  REQUIRE(!f.rt->start());
  auto id = f.spawn();
  CHECK(f.send(id, "5", 42, 1) == "5");
  CHECK(f.send(id, "5", 42, 2) == "10");
  auto dup = f.rt->deliver(id, {42, 1, to_bytes("5")});
  REQUIRE(dup);
  CHECK(dup->state == delivery::status::duplicate);
  CHECK(dup->daemon_seq == 1);
  CHECK(dup->outputs.empty());
  // Another producer's seq 1 is its own.
  CHECK(f.send(id, "1", 43, 1) == "11");
  auto hwm = f.rt->high_water_mark(id, 42);
  REQUIRE(hwm);
  CHECK(*hwm == 2);
  CHECK(*f.rt->high_water_mark(id, 99) == 0);
  CHECK(f.rt->stats(id)->duplicates == 1);
}

// -- snapshots and identity ---------------------------------------------------

TEST_CASE("counter snapshot, stop and spawn_from_snapshot continue at 6") {
  fixture f;
  REQUIRE(!f.rt->start());
  auto kp = keypair::generate();
  auto d = f.rt->spawn("sum", kp);
  REQUIRE(d);
  for (int i = 1; i <= 5; ++i)
    f.send(d->origin_hash, "1", 9, static_cast<uint64_t>(i));
  auto snap = f.rt->snapshot(d->origin_hash);
  REQUIRE(snap);
  REQUIRE(!f.rt->stop(d->origin_hash));
  auto again = f.rt->spawn_from_snapshot(kp, *snap);
  REQUIRE(again);
  CHECK(again->origin_hash == d->origin_hash);
  CHECK(again->last_seq == 5);
  CHECK(f.send(d->origin_hash, "1", 9, 6) == "6");
  // Dedup marks travelled in the snapshot.
  auto dup = f.rt->deliver(d->origin_hash, {9, 5, to_bytes("1")});
  REQUIRE(dup);
  CHECK(dup->state == delivery::status::duplicate);
}

TEST_CASE("spawn_from_snapshot rejects another identity's snapshot") {
  fixture f;
  REQUIRE(!f.rt->start());
  auto kp = keypair::generate();
  auto d = f.rt->spawn("sum", kp);
  REQUIRE(d);
  auto snap = f.rt->snapshot(d->origin_hash);
  REQUIRE(snap);
  auto other = keypair::generate();
  auto r = f.rt->spawn_from_snapshot(other, *snap);
  REQUIRE(!r);
  CHECK(is(r.error(), errc::snapshot_identity_mismatch));
  CHECK(f.rt->daemon_count() == 1);
}

TEST_CASE(
  "a tampered snapshot is rejected with bad_signature or corrupt_data") {
  fixture f;
  REQUIRE(!f.rt->start());
  auto kp = keypair::generate();
  auto d = f.rt->spawn("sum", kp);
  REQUIRE(d);
  auto snap = f.rt->snapshot(d->origin_hash);
  REQUIRE(snap);
  REQUIRE(!f.rt->stop(d->origin_hash));
  (*snap)[snap->size() / 2] ^= 0x01;
  auto r = f.rt->spawn_from_snapshot(kp, *snap);
  REQUIRE(!r);
  CHECK(
    (is(r.error(), errc::bad_signature) || is(r.error(), errc::corrupt_data)));
}

TEST_CASE(
  "the same identity twice is rejected and the first daemon keeps working") {
  fixture f;
  REQUIRE(!f.rt->start());
  auto kp = keypair::generate();
  auto d = f.rt->spawn("sum", kp);
  REQUIRE(d);
  CHECK(f.send(d->origin_hash, "3") == "3");
  auto again = f.rt->spawn("sum", kp);
  REQUIRE(!again);
  CHECK(is(again.error(), errc::already_registered));
  auto snap = f.rt->snapshot(d->origin_hash);
  REQUIRE(snap);
  auto from_snap = f.rt->spawn_from_snapshot(kp, *snap);
  REQUIRE(!from_snap);
  CHECK(is(from_snap.error(), errc::already_registered));
  CHECK(f.send(d->origin_hash, "4") == "7");
  CHECK(f.rt->daemon_count() == 1);
}

// -- failures -----------------------------------------------------------------

TEST_CASE("a rejected event returns the error and the daemon is rebuilt") {
  fixture f;
  REQUIRE(!f.rt->start());
  auto id = f.spawn();
  CHECK(f.send(id, "10", 1, 1) == "10");
  auto r = f.rt->deliver(id, {1, 2, to_bytes("bad")});
  REQUIRE(!r);
  CHECK(is(r.error(), errc::process_failed));
  CHECK(describe(r.error()).find("bad") != std::string::npos);
  // State from before the failure is intact after the rebuild.
  CHECK(f.send(id, "5", 1, 3) == "15");
  auto st = f.rt->stats(id);
  REQUIRE(st);
  CHECK(st->errors == 1);
  CHECK(st->restarts == 1);
  CHECK(st->last_seq == 3);
}

TEST_CASE("an exception from process is a rejection, not a crash") {
  fixture f;
  REQUIRE(!f.rt->start());
  auto id = f.spawn();
  CHECK(f.send(id, "2") == "2");
  auto r = f.rt->deliver(id, {0, 0, to_bytes("throw")});
  REQUIRE(!r);
  CHECK(describe(r.error()).find("boom") != std::string::npos);
  CHECK(f.send(id, "2") == "4");
}

TEST_CASE("restart policy once: a second failure stops the daemon as failed") {
  fixture f;
  REQUIRE(!f.rt->start());
  auto id = f.spawn();
  CHECK(!f.rt->deliver(id, {0, 0, to_bytes("bad1")}));
  CHECK(f.send(id, "1") == "1");
  CHECK(!f.rt->deliver(id, {0, 0, to_bytes("bad2")}));
  auto r = f.rt->deliver(id, {0, 0, to_bytes("1")});
  REQUIRE(!r);
  CHECK(describe(r.error()).find("failed") != std::string::npos);
  auto info = f.rt->info(id);
  REQUIRE(info);
  CHECK(info->phase == daemon_phase::failed);
  auto list = f.rt->daemons();
  REQUIRE(list);
  REQUIRE(list->size() == 1);
  CHECK((*list)[0].phase == daemon_phase::failed);
  CHECK((*list)[0].reason.find("restart limit") != std::string::npos);
}

TEST_CASE("restart policy bounded allows max_restarts within the window") {
  runtime_options opts;
  opts.restart = restart_policy::bounded(3, std::chrono::minutes{1});
  fixture f{opts};
  REQUIRE(!f.rt->start());
  auto id = f.spawn();
  for (int i = 0; i < 3; ++i) {
    CHECK(!f.rt->deliver(id, {0, 0, to_bytes("bad")}));
    CHECK(f.rt->info(id)->phase == daemon_phase::running);
  }
  CHECK(!f.rt->deliver(id, {0, 0, to_bytes("bad")}));
  CHECK(f.rt->info(id)->phase == daemon_phase::failed);
}

TEST_CASE("restart policy bounded forgets failures older than the window") {
  runtime_options opts;
  opts.restart = restart_policy::bounded(1, std::chrono::milliseconds{50});
  fixture f{opts};
  REQUIRE(!f.rt->start());
  auto id = f.spawn();
  for (int i = 0; i < 3; ++i) {
    CHECK(!f.rt->deliver(id, {0, 0, to_bytes("bad")}));
    std::this_thread::sleep_for(std::chrono::milliseconds{80});
  }
  CHECK(f.rt->info(id)->phase == daemon_phase::running);
  CHECK(f.rt->stats(id)->restarts == 3);
}

TEST_CASE("a rebuild replays events since the last snapshot on top of it") {
  fixture f;
  REQUIRE(!f.rt->start());
  auto id = f.spawn();
  CHECK(f.send(id, "100") == "100");
  REQUIRE(f.rt->snapshot(id));
  CHECK(f.send(id, "20") == "120");
  CHECK(f.send(id, "3") == "123");
  CHECK(!f.rt->deliver(id, {0, 0, to_bytes("bad")}));
  CHECK(f.send(id, "1") == "124");
}

TEST_CASE("spawn_from_snapshot tells apart identities colliding on the low 32 "
          "bits of origin_hash") {
  auto found = test::find_low32_collision(0x5c);
  REQUIRE(found);
  auto a = test::seeded_key(found->first, 0x5c);
  auto b = test::seeded_key(found->second, 0x5c);
  REQUIRE(static_cast<uint32_t>(a.origin_hash())
          == static_cast<uint32_t>(b.origin_hash()));
  fixture f;
  REQUIRE(!f.rt->start());
  auto d = f.rt->spawn("sum", a);
  REQUIRE(d);
  f.send(d->origin_hash, "5");
  auto snap = f.rt->snapshot(d->origin_hash);
  REQUIRE(snap);
  auto r = f.rt->spawn_from_snapshot(b, *snap);
  REQUIRE(!r);
  CHECK(is(r.error(), errc::snapshot_identity_mismatch));
  CHECK(f.rt->daemon_count() == 1);
  CHECK(f.send(d->origin_hash, "1") == "6");
}
