#pragma once

// The directory contract (mesh/directory.hpp), written once for every
// backend. A test file defines a backend type with
//
//   struct my_backend {
//     /// A fresh, empty directory (a new bucket for a networked backend).
//     static std::unique_ptr<mesh::directory> make();
//   };
//
// then `#define MESHD_DIRECTORY_BACKENDS my_backend` (a comma-separated list
// of such types) and includes this header; every case below then runs once
// per backend, named "<case> - <backend>".
//
// The cases use only the directory interface. Expected winners are spelled
// out by hand, never computed with mesh::supersedes, so that a wrong merge
// rule fails here rather than agreeing with itself.

#include <algorithm>
#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "base/errc.hpp"
#include "mesh/directory.hpp"

#ifndef MESHD_DIRECTORY_BACKENDS
#  error                                                                       \
    "define MESHD_DIRECTORY_BACKENDS before including directory_contract.hpp"
#endif

namespace mesh::contract {

inline entity_id node_n(uint8_t n) {
  entity_id id{};
  id.fill(n);
  return id;
}

inline directory_entry entry(uint64_t origin, uint8_t node, uint64_t epoch,
                             bool stopped = false,
                             std::string kind = "counter") {
  directory_entry e;
  e.origin = origin;
  e.node = node_n(node);
  e.epoch = epoch;
  e.kind = std::move(kind);
  e.stopped = stopped;
  return e;
}

inline bool same(const directory_entry& a, const directory_entry& b) {
  return a.origin == b.origin && a.node == b.node && a.epoch == b.epoch
         && a.kind == b.kind && a.stopped == b.stopped;
}

inline bool same(const std::vector<directory_entry>& a,
                 const std::vector<directory_entry>& b) {
  if (a.size() != b.size())
    return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (!same(a[i], b[i]))
      return false;
  return true;
}

inline directory_entry must_lookup(const directory& d, uint64_t origin) {
  auto r = d.lookup(origin);
  REQUIRE(r);
  REQUIRE(r->has_value());
  return **r;
}

inline std::vector<directory_entry> must_entries(const directory& d) {
  auto r = d.entries();
  REQUIRE(r);
  return *r;
}

inline uint64_t must_digest(const directory& d) {
  auto r = d.digest();
  REQUIRE(r);
  return *r;
}

} // namespace mesh::contract

TEMPLATE_TEST_CASE("directory contract: an unknown origin is absent",
                   "[directory]", MESHD_DIRECTORY_BACKENDS) {
  using namespace mesh;
  auto d = TestType::make();
  auto r = d->lookup(42);
  REQUIRE(r);
  CHECK(!r->has_value());
  CHECK(contract::must_entries(*d).empty());
  CHECK(contract::must_digest(*d) == 0);
  REQUIRE(d->size());
  CHECK(*d->size() == 0);
  REQUIRE(d->publish(contract::entry(7, 1, 1)));
  r = d->lookup(42);
  REQUIRE(r);
  CHECK(!r->has_value());
}

TEMPLATE_TEST_CASE("directory contract: the higher epoch wins in any "
                   "arrival order",
                   "[directory]", MESHD_DIRECTORY_BACKENDS) {
  using namespace mesh;
  using contract::entry;
  // One origin, five claims; epoch 9 on node 3 must win however they
  // arrive. Every permutation, so each claim arrives first and last.
  std::vector<directory_entry> claims{entry(5, 1, 1), entry(5, 2, 4),
                                      entry(5, 3, 9), entry(5, 4, 2),
                                      entry(5, 5, 7)};
  const auto winner = claims[2];
  std::vector<size_t> order{0, 1, 2, 3, 4};
  size_t permutations = 0;
  do {
    auto d = TestType::make();
    uint64_t best_epoch = 0;
    for (auto i : order) {
      auto applied = d->publish(claims[i]);
      REQUIRE(applied);
      // Applied exactly when it beats everything seen so far.
      CHECK(*applied == (claims[i].epoch > best_epoch));
      best_epoch = std::max(best_epoch, claims[i].epoch);
    }
    CHECK(contract::same(contract::must_lookup(*d, 5), winner));
    ++permutations;
  } while (std::next_permutation(order.begin(), order.end()));
  CHECK(permutations == 120);
}

TEMPLATE_TEST_CASE("directory contract: a lower epoch is refused without an "
                   "error and changes nothing",
                   "[directory]", MESHD_DIRECTORY_BACKENDS) {
  using namespace mesh;
  using contract::entry;
  auto d = TestType::make();
  REQUIRE(d->publish(entry(1, 1, 5)));
  auto before = contract::must_digest(*d);
  auto older = d->publish(entry(1, 2, 4));
  REQUIRE(older);
  CHECK(!*older);
  auto again = d->publish(entry(1, 1, 5));
  REQUIRE(again);
  CHECK(!*again);
  CHECK(contract::must_digest(*d) == before);
  CHECK(contract::same(contract::must_lookup(*d, 1), entry(1, 1, 5)));
}

TEMPLATE_TEST_CASE("directory contract: a tombstone ends its epoch and only "
                   "a higher epoch revives the origin",
                   "[directory]", MESHD_DIRECTORY_BACKENDS) {
  using namespace mesh;
  using contract::entry;
  auto d = TestType::make();
  REQUIRE(d->publish(entry(3, 1, 2)));
  auto stop = d->publish(entry(3, 1, 2, true));
  REQUIRE(stop);
  CHECK(*stop);
  auto got = contract::must_lookup(*d, 3);
  CHECK(got.stopped);
  // A late live claim of the stopped epoch, from any node, and an older
  // one, must not bring the daemon back.
  for (auto late : {entry(3, 1, 2), entry(3, 1, 1), entry(3, 2, 2)}) {
    auto r = d->publish(late);
    REQUIRE(r);
    CHECK(!*r);
  }
  CHECK(contract::must_lookup(*d, 3).stopped);
  // The tombstone arriving before the live entry it ends wins as well.
  auto d2 = TestType::make();
  REQUIRE(d2->publish(entry(3, 1, 2, true)));
  auto live = d2->publish(entry(3, 1, 2));
  REQUIRE(live);
  CHECK(!*live);
  CHECK(contract::must_lookup(*d2, 3).stopped);
  // Tombstones are listed, never reported as running somewhere.
  CHECK(contract::must_entries(*d).size() == 1);
  auto on = d->entries_on(contract::node_n(1));
  REQUIRE(on);
  CHECK(on->empty());
  // A redeploy (higher epoch) replaces the tombstone.
  auto redeploy = d->publish(entry(3, 2, 3));
  REQUIRE(redeploy);
  CHECK(*redeploy);
  CHECK(contract::same(contract::must_lookup(*d, 3), entry(3, 2, 3)));
}

TEMPLATE_TEST_CASE("directory contract: equal epochs on two nodes resolve "
                   "to the lower node id in both orders",
                   "[directory]", MESHD_DIRECTORY_BACKENDS) {
  using namespace mesh;
  using contract::entry;
  for (bool low_first : {true, false}) {
    auto d = TestType::make();
    auto low = entry(9, 0x10, 4);
    auto high = entry(9, 0x20, 4);
    REQUIRE(d->publish(low_first ? low : high));
    auto second = d->publish(low_first ? high : low);
    REQUIRE(second);
    CHECK(*second == !low_first);
    CHECK(contract::same(contract::must_lookup(*d, 9), low));
  }
  // Two tombstones of one epoch: the same rule.
  auto d = TestType::make();
  REQUIRE(d->publish(entry(9, 0x20, 4, true)));
  REQUIRE(d->publish(entry(9, 0x10, 4, true)));
  CHECK(contract::same(contract::must_lookup(*d, 9), entry(9, 0x10, 4, true)));
}

TEMPLATE_TEST_CASE("directory contract: merge is idempotent and commutative",
                   "[directory]", MESHD_DIRECTORY_BACKENDS) {
  using namespace mesh;
  // 200 origins, each with a random history of claims and stops; two
  // replicas receive the same updates in different orders and different
  // chunkings, one of them twice over.
  std::mt19937_64 rng{20240609};
  std::vector<directory_entry> updates;
  for (uint64_t o = 0; o < 200; ++o) {
    uint64_t origin = o * 0x9e3779b97f4a7c15ull;
    auto claims = 1 + rng() % 6;
    for (uint64_t i = 0; i < claims; ++i)
      updates.push_back(contract::entry(origin,
                                        static_cast<uint8_t>(1 + rng() % 4),
                                        1 + rng() % 5, rng() % 4 == 0,
                                        rng() % 2 ? "counter" : "upper"));
  }
  auto a = TestType::make();
  auto b = TestType::make();
  auto shuffled = updates;
  std::shuffle(shuffled.begin(), shuffled.end(), rng);
  auto all = a->merge(updates);
  REQUIRE(all);
  CHECK(*all > 0);
  size_t applied_b = 0;
  for (size_t i = 0; i < shuffled.size(); i += 37) {
    std::vector<directory_entry> chunk(shuffled.begin() + i,
                                       shuffled.begin()
                                         + std::min(shuffled.size(), i + 37));
    auto n = b->merge(chunk);
    REQUIRE(n);
    applied_b += *n;
  }
  CHECK(applied_b >= 200);
  CHECK(contract::must_digest(*a) == contract::must_digest(*b));
  CHECK(contract::same(contract::must_entries(*a), contract::must_entries(*b)));
  // Again, whole or in any order: nothing changes.
  auto again = b->merge(updates);
  REQUIRE(again);
  CHECK(*again == 0);
  auto again_a = a->merge(shuffled);
  REQUIRE(again_a);
  CHECK(*again_a == 0);
  CHECK(contract::must_digest(*a) == contract::must_digest(*b));
  // Merging one replica's table into an empty one reproduces it.
  auto c = TestType::make();
  REQUIRE(c->merge(contract::must_entries(*a)));
  CHECK(contract::same(contract::must_entries(*c), contract::must_entries(*a)));
  CHECK(contract::must_digest(*c) == contract::must_digest(*a));
}

TEMPLATE_TEST_CASE("directory contract: entries are sorted by origin",
                   "[directory]", MESHD_DIRECTORY_BACKENDS) {
  using namespace mesh;
  auto d = TestType::make();
  for (uint64_t o : {50ull, 3ull, ~0ull, 0ull, 17ull})
    REQUIRE(d->publish(contract::entry(o, 1, 1)));
  auto all = contract::must_entries(*d);
  REQUIRE(all.size() == 5);
  std::vector<uint64_t> origins;
  for (auto& e : all)
    origins.push_back(e.origin);
  CHECK(origins == std::vector<uint64_t>{0, 3, 17, 50, ~0ull});
}

TEMPLATE_TEST_CASE("directory contract: the digest changes with every change "
                   "and does not depend on order",
                   "[directory]", MESHD_DIRECTORY_BACKENDS) {
  using namespace mesh;
  using contract::entry;
  auto d = TestType::make();
  REQUIRE(d->publish(entry(1, 1, 1)));
  REQUIRE(d->publish(entry(2, 1, 1)));
  std::vector<uint64_t> seen{0, contract::must_digest(*d)};
  // Each step changes one field of one entry.
  for (auto step : {entry(1, 1, 2),                // epoch
                    entry(1, 1, 2, true),          // stopped
                    entry(2, 1, 1, true),          // stopped
                    entry(2, 1, 2, true, "upper"), // epoch and kind
                    entry(3, 1, 1),                // a new origin
                    entry(3, 1, 2, false, "x"),    // epoch and kind
                    entry(3, 1, 2, false, "a")})   // kind (tie-break)
  {
    auto r = d->publish(step);
    REQUIRE(r);
    REQUIRE(*r);
    auto now = contract::must_digest(*d);
    CHECK(std::find(seen.begin(), seen.end(), now) == seen.end());
    seen.push_back(now);
  }
  // A node change alone, at a tie (lower id at the same epoch).
  auto e = TestType::make();
  REQUIRE(e->publish(entry(1, 2, 1)));
  auto before = contract::must_digest(*e);
  REQUIRE(e->publish(entry(1, 1, 1)));
  CHECK(contract::must_digest(*e) != before);
  // Order independence: the same final table built backwards.
  auto f = TestType::make();
  REQUIRE(f->publish(entry(3, 1, 2, false, "a")));
  REQUIRE(f->publish(entry(2, 1, 2, true, "upper")));
  REQUIRE(f->publish(entry(1, 1, 2, true)));
  CHECK(contract::must_digest(*f) == contract::must_digest(*d));
}

TEMPLATE_TEST_CASE("directory contract: on_change fires once per applied "
                   "change and sees it applied",
                   "[directory]", MESHD_DIRECTORY_BACKENDS) {
  using namespace mesh;
  using contract::entry;
  auto d = TestType::make();
  std::vector<directory_entry> calls;
  bool visible = true;
  auto* dir = d.get();
  d->on_change([&calls, &visible, dir](const directory_entry& e) {
    calls.push_back(e);
    auto now = dir->lookup(e.origin);
    visible = visible && now && now->has_value() && contract::same(**now, e);
  });
  REQUIRE(d->publish(entry(1, 1, 2)));
  REQUIRE(d->publish(entry(1, 1, 2)));       // duplicate
  REQUIRE(d->publish(entry(1, 2, 1)));       // older
  REQUIRE(d->publish(entry(1, 2, 2)));       // loses the tie-break
  REQUIRE(d->publish(entry(1, 1, 2, true))); // stop
  CHECK(calls.size() == 2);
  auto n = d->merge({entry(2, 1, 1), entry(2, 1, 1), entry(1, 1, 1),
                     entry(3, 1, 4), entry(2, 1, 3)});
  REQUIRE(n);
  CHECK(*n == 3);
  REQUIRE(calls.size() == 5);
  CHECK(contract::same(calls[0], entry(1, 1, 2)));
  CHECK(contract::same(calls[1], entry(1, 1, 2, true)));
  CHECK(contract::same(calls[2], entry(2, 1, 1)));
  CHECK(contract::same(calls[3], entry(3, 1, 4)));
  CHECK(contract::same(calls[4], entry(2, 1, 3)));
  CHECK(visible);
  // An empty callback removes it.
  d->on_change({});
  REQUIRE(d->publish(entry(4, 1, 1)));
  CHECK(calls.size() == 5);
}

TEMPLATE_TEST_CASE("directory contract: entries_on lists a node's live "
                   "daemons",
                   "[directory]", MESHD_DIRECTORY_BACKENDS) {
  using namespace mesh;
  using contract::entry;
  auto d = TestType::make();
  REQUIRE(d->merge({entry(30, 1, 1), entry(10, 1, 1), entry(20, 2, 1),
                    entry(40, 1, 1, true), entry(50, 1, 1)}));
  auto on1 = d->entries_on(contract::node_n(1));
  REQUIRE(on1);
  std::vector<uint64_t> origins;
  for (auto& e : *on1)
    origins.push_back(e.origin);
  CHECK(origins == std::vector<uint64_t>{10, 30, 50});
  // A daemon that moved to node 2 leaves node 1's list.
  REQUIRE(d->publish(entry(50, 2, 2)));
  on1 = d->entries_on(contract::node_n(1));
  REQUIRE(on1);
  CHECK(on1->size() == 2);
  auto on2 = d->entries_on(contract::node_n(2));
  REQUIRE(on2);
  REQUIRE(on2->size() == 2);
  CHECK((*on2)[0].origin == 20);
  CHECK((*on2)[1].origin == 50);
  auto none = d->entries_on(contract::node_n(9));
  REQUIRE(none);
  CHECK(none->empty());
}

TEMPLATE_TEST_CASE("directory contract: a malformed entry is refused and a "
                   "merge containing one applies nothing",
                   "[directory]", MESHD_DIRECTORY_BACKENDS) {
  using namespace mesh;
  using contract::entry;
  auto d = TestType::make();
  auto no_node = entry(1, 0, 1);
  auto r = d->publish(no_node);
  REQUIRE(!r);
  CHECK(is(r.error(), errc::invalid_argument));
  CHECK(describe(r.error()).find("0x0000000000000001") != std::string::npos);
  auto long_kind = entry(2, 1, 1, false,
                         std::string(max_directory_kind_size + 1, 'k'));
  r = d->publish(long_kind);
  REQUIRE(!r);
  CHECK(is(r.error(), errc::invalid_argument));
  // Exactly at the bound is fine.
  auto at_bound = d->publish(
    entry(3, 1, 1, false, std::string(max_directory_kind_size, 'k')));
  REQUIRE(at_bound);
  CHECK(*at_bound);
  auto before = contract::must_digest(*d);
  auto m = d->merge({entry(4, 1, 1), long_kind, entry(5, 1, 1)});
  REQUIRE(!m);
  CHECK(is(m.error(), errc::invalid_argument));
  CHECK(contract::must_digest(*d) == before);
  CHECK(contract::must_entries(*d).size() == 1);
}
