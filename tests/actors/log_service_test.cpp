// The log actor as a service for migration: range reads of one daemon's
// events beside the appender (racing appends and compactions), pins with an
// owner and a lease that hold compaction back, and compaction on a thread of
// its own so appends are answered while it copies.

#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <future>
#include <string>
#include <thread>
#include <vector>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/scoped_actor.hpp>

#include "actors/log_actor.hpp"
#include "actors/runtime.hpp"
#include "base/errc.hpp"
#include "persistence/log_range.hpp"
#include "persistence/segment.hpp"
#include "support/log_capture.hpp"
#include "support/temp_dir.hpp"

using namespace mesh;
using namespace std::chrono_literals;

namespace {

constexpr uint64_t origin_a = 0xA;
constexpr uint64_t origin_b = 0xB;

std::string payload_for(uint64_t origin, uint64_t dseq) {
  return "event-" + std::to_string(origin) + "-" + std::to_string(dseq);
}

log_batch make_batch(uint64_t origin, uint64_t first, uint64_t count) {
  log_batch b;
  b.origin_hash = origin;
  for (uint64_t d = first; d < first + count; ++d) {
    log_entry head;
    head.origin_hash = origin;
    head.daemon_seq = d;
    head.producer_id = 1;
    head.producer_seq = d;
    auto p = payload_for(origin, d);
    b.add(head, bytes_view{p});
  }
  return b;
}

std::vector<uint64_t> iota(uint64_t from, uint64_t to) {
  std::vector<uint64_t> out;
  for (auto d = from; d <= to; ++d)
    out.push_back(d);
  return out;
}

template<class T, class... Ts>
caf::expected<T> ask(caf::scoped_actor& self, const log_actor& log,
                     caf::duration timeout, Ts&&... xs) {
  caf::expected<T> out = make_error(errc::timeout, "no answer");
  self->request(log, timeout, std::forward<Ts>(xs)...)
    .receive(
      [&](T& x) {
        out = std::move(x);
      },
      [&](caf::error& err) {
        out = std::move(err);
      });
  return out;
}

// Joins a thread that ends by itself, when the scope ends.
struct thread_joiner {
  std::thread& t;
  void join() {
    if (t.joinable())
      t.join();
  }
  ~thread_joiner() {
    join();
  }
};

// One log actor over a segment in a temp dir.
struct log_node {
  test::temp_dir tmp;
  std::string dir = tmp / "log";
  caf::actor_system_config cfg;
  caf::actor_system sys{apply_scheduler_defaults(cfg)};
  caf::scoped_actor self{sys};
  std::shared_ptr<segment> seg;
  log_actor log;

  explicit log_node(uint64_t compact_after, segment_options so = {}) {
    so.policy = fsync_policy::never();
    auto s = segment::open(dir, std::move(so));
    REQUIRE(s);
    seg = std::shared_ptr<segment>(std::move(*s));
    log_actor_config lcfg;
    lcfg.seg = seg;
    lcfg.compact_after = compact_after;
    log = spawn_log_actor(sys, std::move(lcfg));
  }

  ~log_node() {
    if (log)
      (void)close();
  }

  caf::expected<uint64_t> append(uint64_t origin, uint64_t first,
                                 uint64_t count) {
    return ask<uint64_t>(self, log, caf::infinite, append_atom::value,
                         make_batch(origin, first, count));
  }

  caf::expected<log_range> read(const log_range_request& req) {
    return ask<log_range>(self, log, caf::infinite, read_atom::value, req);
  }

  caf::expected<uint64_t> pin(uint64_t origin, uint64_t from,
                              const std::string& owner, uint64_t lease_ms) {
    log_pin p;
    p.origin_hash = origin;
    p.from_daemon_seq = from;
    p.owner = owner;
    p.lease_ms = lease_ms;
    return ask<uint64_t>(self, log, caf::infinite, pin_atom::value, p);
  }

  caf::expected<bool> unpin(uint64_t origin, const std::string& owner) {
    return ask<bool>(self, log, caf::infinite, unpin_atom::value, origin,
                     owner);
  }

  void snapped(uint64_t origin, uint64_t through) {
    self->send(log, snapped_atom::value, origin, uint64_t{0}, through);
  }

  // Closes the log actor; a running compaction finishes first.
  caf::expected<bool> close() {
    auto r = ask<bool>(self, log, caf::infinite, close_atom::value);
    log = nullptr;
    return r;
  }

  // After close: the log as recovery finds it, as (origin, daemon_seq).
  std::pair<uint64_t, std::vector<std::pair<uint64_t, uint64_t>>> reopen() {
    auto s = segment::open(dir);
    REQUIRE(s);
    std::vector<std::pair<uint64_t, uint64_t>> out;
    REQUIRE(!(*s)->for_each(0, [&](const log_record& r) {
      auto e = decode_log_entry(r.payload);
      REQUIRE(e);
      out.emplace_back(e->origin_hash, e->daemon_seq);
      return true;
    }));
    return {(*s)->first_seq(), out};
  }
};

log_range_request range(uint64_t origin, uint64_t from, uint64_t to,
                        uint64_t max_bytes = 1 << 20) {
  log_range_request req;
  req.origin_hash = origin;
  req.from_daemon_seq = from;
  req.to_daemon_seq = to;
  req.max_bytes = max_bytes;
  return req;
}

// Every daemon_seq of `origin` in a reopened log, in log order.
std::vector<uint64_t>
dseqs_of(uint64_t origin,
         const std::vector<std::pair<uint64_t, uint64_t>>& entries) {
  std::vector<uint64_t> out;
  for (auto& [o, d] : entries)
    if (o == origin)
      out.push_back(d);
  return out;
}

} // namespace

TEST_CASE("range reads racing appends return every entry of the range "
          "exactly once, in order") {
  log_node n{1000000};
  constexpr uint64_t total = 3000;
  std::thread appender{[&] {
    caf::scoped_actor me{n.sys};
    for (uint64_t d = 1; d <= total; d += 10) {
      auto a = ask<uint64_t>(me, n.log, caf::infinite, append_atom::value,
                             make_batch(origin_a, d, 10));
      auto b = ask<uint64_t>(me, n.log, caf::infinite, append_atom::value,
                             make_batch(origin_b, d, 10));
      if (!a || !b)
        std::abort();
    }
  }};
  thread_joiner joiner{appender}; // also when a REQUIRE below fails
  auto req = range(origin_a, 1, total, 2000);
  std::vector<uint64_t> got;
  int pages = 0;
  auto deadline = std::chrono::steady_clock::now() + 60s;
  int at_end = 0;
  bool payloads_ok = true;
  for (;;) {
    auto page = n.read(req);
    REQUIRE(page);
    ++pages;
    for (auto& e : page->entries) {
      got.push_back(e.daemon_seq);
      payloads_ok = payloads_ok
                    && std::string(e.payload.begin(), e.payload.end())
                         == payload_for(origin_a, e.daemon_seq);
    }
    if (page->complete)
      break;
    if (page->at_end)
      ++at_end;
    req.from_log_seq = page->next_log_seq;
    REQUIRE(std::chrono::steady_clock::now() < deadline);
  }
  joiner.join();
  CHECK(payloads_ok);
  CHECK(got == iota(1, total));
  // The reads really ran beside the appends: some caught up with the end.
  CHECK(at_end > 0);
}

TEST_CASE("range reads racing compactions return every entry of the range "
          "exactly once, in order") {
  log_node n{100};
  constexpr uint64_t total = 6000;
  std::atomic<bool> stop{false};
  std::thread appender{[&] {
    caf::scoped_actor me{n.sys};
    for (uint64_t d = 1; d <= total; d += 10) {
      auto a = ask<uint64_t>(me, n.log, caf::infinite, append_atom::value,
                             make_batch(origin_a, d, 10));
      auto b = ask<uint64_t>(me, n.log, caf::infinite, append_atom::value,
                             make_batch(origin_b, d, 10));
      if (!a || !b)
        std::abort();
      // B's snapshot covers all of it: only A's unread entries hold the log.
      me->send(n.log, snapped_atom::value, origin_b, uint64_t{0}, d + 9);
    }
  }};
  thread_joiner joiner{appender}; // also when a REQUIRE below fails
  auto req = range(origin_a, 1, total, 100);
  std::vector<uint64_t> got;
  int pages = 0;
  auto deadline = std::chrono::steady_clock::now() + 60s;
  for (;;) {
    auto page = n.read(req);
    REQUIRE(page);
    ++pages;
    for (auto& e : page->entries)
      got.push_back(e.daemon_seq);
    if (page->complete)
      break;
    // What was read is covered by a snapshot now (as on a migration
    // source): compaction may drop it while the next page is read.
    if (!page->entries.empty())
      n.snapped(origin_a, page->entries.back().daemon_seq);
    req.from_log_seq = page->next_log_seq;
    // Paced, so that the reads span several compactions (each takes a
    // few fsyncs).
    std::this_thread::sleep_for(1ms);
    REQUIRE(std::chrono::steady_clock::now() < deadline);
  }
  joiner.join();
  CHECK(got == iota(1, total));
  // Compactions ran while the pages were read.
  INFO("generation " << n.seg->generation());
  CHECK(n.seg->generation() > 4);
}

TEST_CASE("a range read with empty bounds is refused by the log actor") {
  log_node n{1000};
  auto r = n.read(range(origin_a, 9, 3));
  REQUIRE(!r);
  CHECK(is(r.error(), errc::invalid_argument));
}

TEST_CASE("a pin keeps a daemon's entries from compaction") {
  log_node n{50};
  for (uint64_t d = 1; d <= 100; d += 10) {
    REQUIRE(n.append(origin_a, d, 10));
    REQUIRE(n.append(origin_b, d, 10));
  }
  // A's daemon_seq 60 is log seq 10 * 20 + 10 = 110 (A's batches of ten
  // alternate with B's).
  auto hold = n.pin(origin_a, 60, "migration-1", 60000);
  REQUIRE(hold);
  CHECK(*hold == 110);
  // Both snapshots cover everything: without the pin all would go.
  n.snapped(origin_a, 100);
  n.snapped(origin_b, 100);
  REQUIRE(n.close());
  auto [first, entries] = n.reopen();
  CHECK(first == 110);
  CHECK(dseqs_of(origin_a, entries) == iota(60, 100));
}

TEST_CASE("an unpinned daemon's entries are compacted") {
  log_node n{50};
  for (uint64_t d = 1; d <= 100; d += 10) {
    REQUIRE(n.append(origin_a, d, 10));
    REQUIRE(n.append(origin_b, d, 10));
  }
  REQUIRE(n.pin(origin_a, 60, "migration-1", 60000));
  auto released = n.unpin(origin_a, "migration-1");
  REQUIRE(released);
  CHECK(*released);
  n.snapped(origin_a, 100);
  n.snapped(origin_b, 100);
  REQUIRE(n.close());
  auto [first, entries] = n.reopen();
  CHECK(first == 201);
  CHECK(entries.empty());
}

TEST_CASE("a pin whose lease runs out is released, and the log says so") {
  test::log_capture logs;
  log_node n{50};
  for (uint64_t d = 1; d <= 100; d += 10) {
    REQUIRE(n.append(origin_a, d, 10));
    REQUIRE(n.append(origin_b, d, 10));
  }
  REQUIRE(n.pin(origin_a, 60, "crashed-migration", 100));
  std::this_thread::sleep_for(400ms); // the owner never renews
  n.snapped(origin_a, 100);
  n.snapped(origin_b, 100);
  auto gone = n.unpin(origin_a, "crashed-migration");
  REQUIRE(!gone);
  CHECK(is(gone.error(), errc::not_found));
  REQUIRE(n.close());
  CHECK(logs.count("warning", "owned by 'crashed-migration' expired") == 1);
  auto [first, entries] = n.reopen();
  CHECK(first == 201);
  CHECK(entries.empty());
}

TEST_CASE("a pin renewed by its owner outlives its first lease") {
  test::log_capture logs;
  log_node n{50};
  for (uint64_t d = 1; d <= 100; d += 10) {
    REQUIRE(n.append(origin_a, d, 10));
    REQUIRE(n.append(origin_b, d, 10));
  }
  REQUIRE(n.pin(origin_a, 60, "migration-1", 600));
  for (int i = 0; i < 8; ++i) {
    std::this_thread::sleep_for(150ms);
    auto renewed = n.pin(origin_a, 60, "migration-1", 600);
    REQUIRE(renewed);
    CHECK(*renewed == 110);
  }
  // 1.2 s after the pin, twice its lease.
  n.snapped(origin_a, 100);
  n.snapped(origin_b, 100);
  REQUIRE(n.close());
  // Never lapsed in between (a lapsed pin renewed would be a new one).
  CHECK(logs.count("expired") == 0);
  auto [first, entries] = n.reopen();
  CHECK(first == 110);
  CHECK(dseqs_of(origin_a, entries) == iota(60, 100));
}

TEST_CASE("a pin or an unpin by another owner is refused") {
  log_node n{50};
  REQUIRE(n.append(origin_a, 1, 10));
  REQUIRE(n.pin(origin_a, 5, "migration-1", 60000));
  auto other = n.pin(origin_a, 5, "migration-2", 60000);
  REQUIRE(!other);
  CHECK(is(other.error(), errc::already_migrating));
  auto wrong = n.unpin(origin_a, "migration-2");
  REQUIRE(!wrong);
  CHECK(is(wrong.error(), errc::invalid_argument));
  // The owner's pin is untouched.
  REQUIRE(n.unpin(origin_a, "migration-1"));
  auto twice = n.unpin(origin_a, "migration-1");
  REQUIRE(!twice);
  CHECK(is(twice.error(), errc::not_found));
  for (auto [owner, lease] : {std::pair<std::string, uint64_t>{"", 1000},
                              {"m", 0},
                              {"m", max_lease_ms + 1}}) {
    auto bad = n.pin(origin_a, 5, owner, lease);
    REQUIRE(!bad);
    CHECK(is(bad.error(), errc::invalid_argument));
  }
}

TEST_CASE("appends are answered while a compaction copies the log") {
  // The compaction thread stops once its bulk copy is done and waits there
  // until the test has appended.
  std::promise<void> at_copy;
  std::promise<void> go_on;
  auto go_on_f = go_on.get_future().share();
  std::atomic<bool> paused{false};
  segment_options so;
  so.on_step = [&](std::string_view s) {
    if (s != "compaction_bulk_synced" || paused.exchange(true))
      return;
    at_copy.set_value();
    go_on_f.wait();
  };
  log_node n{50, so};
  for (uint64_t d = 1; d <= 100; d += 10) {
    REQUIRE(n.append(origin_a, d, 10));
    REQUIRE(n.append(origin_b, d, 10));
  }
  n.snapped(origin_a, 100);
  n.snapped(origin_b, 100);
  REQUIRE(at_copy.get_future().wait_for(30s) == std::future_status::ready);
  auto seq = ask<uint64_t>(n.self, n.log, caf::duration{10s},
                           append_atom::value, make_batch(origin_a, 101, 1));
  go_on.set_value();
  REQUIRE(seq);
  CHECK(*seq == 201);
  REQUIRE(n.close());
  auto [first, entries] = n.reopen();
  // The compaction dropped 1..200; the append made during it survived.
  CHECK(first == 201);
  CHECK(dseqs_of(origin_a, entries) == std::vector<uint64_t>{101});
}

TEST_CASE("a pin asked for while a compaction runs is answered once it "
          "ended, with what the log still holds") {
  std::promise<void> at_copy;
  std::promise<void> go_on;
  auto go_on_f = go_on.get_future().share();
  std::atomic<bool> paused{false};
  segment_options so;
  so.on_step = [&](std::string_view s) {
    if (s != "compaction_bulk_synced" || paused.exchange(true))
      return;
    at_copy.set_value();
    go_on_f.wait();
  };
  log_node n{50, so};
  for (uint64_t d = 1; d <= 100; d += 10) {
    REQUIRE(n.append(origin_a, d, 10));
    REQUIRE(n.append(origin_b, d, 10));
  }
  // The running compaction drops log seqs 1..200: both snapshots cover all.
  n.snapped(origin_a, 100);
  n.snapped(origin_b, 100);
  REQUIRE(at_copy.get_future().wait_for(30s) == std::future_status::ready);
  auto pinned = std::async(std::launch::async, [&n] {
    caf::scoped_actor me{n.sys};
    log_pin p;
    p.origin_hash = origin_a;
    p.from_daemon_seq = 60;
    p.owner = "migration-1";
    p.lease_ms = 60000;
    return ask<uint64_t>(me, n.log, caf::infinite, pin_atom::value, p);
  });
  // The log cannot promise entries the running compaction may drop.
  auto early = pinned.wait_for(300ms);
  go_on.set_value();
  CHECK(early == std::future_status::timeout);
  auto hold = pinned.get();
  REQUIRE(hold);
  CHECK(*hold == 201);
}
