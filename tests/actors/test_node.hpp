#pragma once

// One runtime on a fresh data directory, the fixture the runtime tests share:
// start, stop and restart it on the same directory, spawn daemons, send them
// text events and read a sum daemon's total. Kinds: "sum" always, plus the
// ones a test registers in `kinds` before start().

#include <catch2/catch.hpp>

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>

#include "actors/runtime.hpp"
#include "snapshot/snapshot.hpp"
#include "support/temp_dir.hpp"
#include "test_daemons.hpp"

namespace mesh::test {

/// A sum daemon's total, read through a snapshot.
inline int64_t sum_total(runtime& rt, uint64_t origin) {
  auto s = rt.snapshot(origin);
  REQUIRE(s);
  auto snap = decode_snapshot(*s);
  REQUIRE(snap);
  REQUIRE(snap->state);
  return static_cast<int64_t>(load_le64(snap->state->data()));
}

struct test_node {
  test::temp_dir dir;
  caf::actor_system_config cfg;
  caf::actor_system sys{apply_scheduler_defaults(cfg)};
  /// Used by every start(); data_dir and fs are filled in there.
  runtime_options opts;
  /// Non-owning; the real file system when null.
  file_system* fs = nullptr;
  /// Registered by start() after "sum".
  std::vector<std::pair<std::string, daemon_factory>> kinds;
  std::unique_ptr<runtime> rt;

  explicit test_node(runtime_options o = {}, file_system* f = nullptr,
                     bool start_now = true)
    : opts(std::move(o)), fs(f) {
    if (start_now)
      start();
  }

  void start() {
    auto o = opts;
    o.data_dir = dir.path();
    o.fs = fs;
    rt = std::make_unique<runtime>(sys, std::move(o));
    REQUIRE(!rt->register_factory("sum", [] {
      return std::make_unique<test::sum_daemon>();
    }));
    for (auto& [kind, factory] : kinds)
      REQUIRE(!rt->register_factory(kind, factory));
    REQUIRE(!rt->start());
  }

  void stop() {
    REQUIRE(!rt->shutdown());
    rt.reset();
  }

  void restart() {
    stop();
    start();
  }

  uint64_t spawn(const std::string& kind = "sum") {
    auto d = rt->spawn(kind);
    REQUIRE(d);
    return d->origin_hash;
  }

  /// Delivers one anonymous event; its one output's text, or the error.
  caf::expected<std::string> send(uint64_t origin, const std::string& x) {
    auto r = rt->deliver(origin, {0, 0, to_bytes(x)});
    if (!r)
      return r.error();
    REQUIRE(r->outputs.size() == 1);
    return text(r->outputs[0].payload);
  }

  /// A sum daemon's total, read through a snapshot.
  int64_t total(uint64_t origin) {
    return sum_total(*rt, origin);
  }

  /// The daemon's line in daemons().
  daemon_info listed(uint64_t origin) {
    auto all = rt->daemons();
    REQUIRE(all);
    for (auto& d : *all)
      if (d.origin_hash == origin)
        return d;
    FAIL("daemon " << hex_u64(origin) << " is not listed");
    return {};
  }
};

} // namespace mesh::test
