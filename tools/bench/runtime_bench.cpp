// runtime_bench: events/s through a counter daemon driven by the blocking
// mesh::runtime facade, next to a raw CAF stateful actor doing the same
// addition, measured in the same run on the same actor system (and, when
// Erlang is installed, next to a gen_server counter).
//
// What is timed: only the delivery loop (steady_clock around it), including
// building each request (filling the event_batch, or the raw actor's vector)
// and reading the answer. Not
// timed: starting the runtime, spawning the daemon, a warm-up, shutdown.
//
// See tools/bench/README.md (section runtime_bench) for every row.

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <memory>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <sys/stat.h>
#include <sys/statfs.h>
#include <time.h>
#include <unistd.h>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/scoped_actor.hpp>
#include <caf/stateful_actor.hpp>
// caf/message.hpp before base/errc.hpp: its CAF_ERROR_CODE_ENUM needs
// caf::message to be a complete type.
#include <caf/message.hpp>
#include <spdlog/spdlog.h>

#include "actors/blocking_client.hpp"
#include "actors/daemon.hpp"
#include "actors/runtime.hpp"
#include "base/bytes.hpp"
#include "base/errc.hpp"
#include "bench_util.hpp"
#include "examples/counter/counter.hpp"
#include "examples/text.hpp"

#ifndef MESHD_RUNTIME_BENCH_ERLANG_DIR
#  define MESHD_RUNTIME_BENCH_ERLANG_DIR ""
#endif

namespace {

using namespace mesh::bench;
namespace fs = std::filesystem;
using mesh::bytes;
using mesh::bytes_view;

constexpr size_t batch_size = 100;
constexpr size_t pool_size = 64; // payloads "1".."64", cycled
constexpr uint64_t warmup_events = 5000;
constexpr uint64_t producer_id = 1;

struct options {
  double seconds = 1.5; // time budget per row
  unsigned trials = 3;  // the budget is split into this many timed runs
  unsigned threads = 0; // scheduler.max-threads; 0 = meshd's default
  double time_box = 55; // whole run; rows not started by then are skipped
  int erlang = -1;      // -1 = if erl is on PATH, 0 = off, 1 = on
  std::string erlang_script;
  std::string dir;        // parent of the scratch directory (log rows)
  std::string filter;     // substring of the row label
  unsigned producers = 4; // threads of the pipelined rows
  std::vector<std::string> caf_args; // extra CAF options (diagnostics only)
};

[[noreturn]] void die(const std::string& what) {
  std::fprintf(stderr, "runtime_bench: %s\n", what.c_str());
  std::exit(1);
}

void usage(FILE* out) {
  std::fprintf(
    out,
    "usage: runtime_bench [--seconds S] [--trials N] [--threads N] [--dir "
    "DIR]\n"
    "                     [--erlang | --no-erlang] [--erlang-script PATH]\n"
    "                     [--time-box S] [--filter TEXT] [--producers N]\n"
    "\n"
    "Events/s through a counter daemon via mesh::runtime deliver (one event\n"
    "per call) and deliver_batch (%zu per call), without and with the event\n"
    "log, beside a raw CAF stateful actor doing the same addition and, when\n"
    "Erlang is installed, an Erlang gen_server counter.\n"
    "\n"
    "  --seconds S        time budget per row (default 1.5)\n"
    "  --trials N         split each row into N timed runs, report the median\n"
    "                     rate (default 3)\n"
    "  --threads N        CAF scheduler.max-threads (default: what meshd\n"
    "                     uses, mesh::apply_scheduler_defaults)\n"
    "  --dir DIR          create the scratch directory for the log rows "
    "inside\n"
    "                     DIR (default /tmp); removed at the end\n"
    "  --erlang           run the Erlang rows (default when erl is on PATH)\n"
    "  --no-erlang        skip them\n"
    "  --erlang-script P  the runner (default %s/run.sh)\n"
    "  --time-box S       stop starting rows after S seconds (default 55); "
    "the\n"
    "                     process aborts at S + 5 s whatever it is doing\n"
    "  --producers N      producer threads of the pipelined rows (default 4)\n"
    "  --filter TEXT      run only rows whose label contains TEXT, e.g.\n"
    "                     \"deliver_batch\" (handy under valgrind)\n"
    "  --caf-arg ARG      hand ARG to actor_system_config::parse, e.g.\n"
    "                     "
    "--caf-arg=--work-stealing.moderate-sleep-duration=0ns;\n"
    "                     repeatable. Diagnostics only: the reference table\n"
    "                     uses CAF's defaults. Shown in the table header.\n"
    "  --help             this text\n",
    batch_size, MESHD_RUNTIME_BENCH_ERLANG_DIR);
}

std::string fmt_g(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}

double parse_double(const std::string& name, const std::string& v, double lo,
                    double hi) {
  char* end = nullptr;
  double x = std::strtod(v.c_str(), &end);
  if (end == v.c_str() || *end != '\0' || !(x > lo) || x > hi)
    die(name + " wants a number in (" + fmt_g(lo) + ", " + fmt_g(hi)
        + "], got '" + v + "'");
  return x;
}

unsigned parse_uint(const std::string& name, const std::string& v, unsigned lo,
                    unsigned hi) {
  char* end = nullptr;
  auto n = std::strtoul(v.c_str(), &end, 10);
  if (end == v.c_str() || *end != '\0' || n < lo || n > hi)
    die(name + " wants an integer in [" + std::to_string(lo) + ", "
        + std::to_string(hi) + "], got '" + v + "'");
  return static_cast<unsigned>(n);
}

options parse_args(int argc, char** argv) {
  options o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc)
        die(a + " needs a value");
      return argv[++i];
    };
    if (a == "--help" || a == "-h") {
      usage(stdout);
      std::exit(0);
    } else if (a == "--seconds") {
      o.seconds = parse_double(a, value(), 0, 60);
    } else if (a == "--trials") {
      o.trials = parse_uint(a, value(), 1, 100);
    } else if (a == "--threads") {
      o.threads = parse_uint(a, value(), 1, 256);
    } else if (a == "--time-box") {
      o.time_box = parse_double(a, value(), 0, 3600);
    } else if (a == "--dir") {
      o.dir = value();
    } else if (a == "--erlang") {
      o.erlang = 1;
    } else if (a == "--no-erlang") {
      o.erlang = 0;
    } else if (a == "--erlang-script") {
      o.erlang_script = value();
    } else if (a == "--producers") {
      o.producers = parse_uint(a, value(), 1, 64);
    } else if (a == "--filter") {
      o.filter = value();
    } else if (a == "--caf-arg") {
      o.caf_args.push_back(value());
    } else if (a.rfind("--caf-arg=", 0) == 0) {
      o.caf_args.push_back(a.substr(10));
    } else {
      usage(stderr);
      die("unknown argument '" + a + "'");
    }
  }
  if (o.erlang_script.empty() && *MESHD_RUNTIME_BENCH_ERLANG_DIR)
    o.erlang_script = std::string{MESHD_RUNTIME_BENCH_ERLANG_DIR} + "/run.sh";
  return o;
}

// -- helpers ------------------------------------------------------------------

std::string shell_quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\'')
      out += "'\\''";
    else
      out.push_back(c);
  }
  return out + "'";
}

// -- the counter
// ----------------------------------------------------------------
//
// The runtime rows run the real examples/counter daemon; the raw CAF actors
// do the same addition with the same parser (examples/text.hpp), so the
// comparison is like for like.

bytes as_text(int64_t x) {
  char buf[24];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, x);
  (void)ec;
  return bytes(reinterpret_cast<const uint8_t*>(buf),
               reinterpret_cast<const uint8_t*>(end));
}

/// Adds every payload to `total`; one total per payload as text.
caf::expected<std::vector<bytes>> add_all(const std::vector<bytes>& payloads,
                                          int64_t& total) {
  std::vector<bytes> out;
  out.reserve(payloads.size());
  for (auto& p : payloads) {
    if (!add_payload(p, total))
      return caf::make_error(caf::sec::invalid_argument);
    out.push_back(as_text(total));
  }
  return out;
}

// -- raw CAF actors (the ceilings)
// ------------------------------------------------

struct raw_state {
  int64_t total = 0;
  static inline const char* name = "bench.raw_counter";
};

/// One payload per message, replies the new total as text. Batched: a
/// vector of payloads per message, replies one total per payload.
caf::behavior raw_counter(caf::stateful_actor<raw_state>* self) {
  return {
    [=](bytes& payload) -> caf::result<bytes> {
      if (!add_payload(payload, self->state.total))
        return caf::sec::invalid_argument;
      return as_text(self->state.total);
    },
    [=](std::vector<bytes>& payloads) -> caf::result<std::vector<bytes>> {
      auto out = add_all(payloads, self->state.total);
      if (!out)
        return std::move(out.error());
      return std::move(*out);
    },
  };
}

// -- rows
// -----------------------------------------------------------------------

enum class row_kind {
  raw,      // scoped_actor request/receive
  raw_spin, // the facade's blocking_client (spin-wait reply actor)
  runtime,
  runtime_log,
  erlang_cast,
  erlang_call
};

struct row {
  row_kind kind = row_kind::raw;
  bool batch = false;
  unsigned producers = 1; // > 1: that many threads deliver concurrently
  std::string label;
  // Results.
  bool ran = false;
  std::string skipped; // why not run (shown in the table)
  uint64_t events = 0; // all trials
  double seconds = 0;  // all trials
  double median_rate = 0;
  double cpu_seconds = -1; // process CPU over the trials (-1 = unknown)
  std::string note;
};

struct timed {
  uint64_t events = 0;
  double seconds = 0;
};

struct bench_clock {
  clock_type::time_point start = clock_type::now();
  double time_box = 55;
  double remaining() const {
    return time_box - since(start);
  }
};

/// `trials` back-to-back timed runs of `step` (which delivers some events and
/// returns how many), each with 1/trials of the budget; the clock is read
/// every `check_every` steps. Stops early at the time box.
void run_trials(row& r, const options& o, const bench_clock& bc,
                unsigned check_every, const std::function<uint64_t()>& step) {
  std::vector<double> rates;
  double cpu0 = process_cpu();
  for (unsigned t = 0; t < o.trials; ++t) {
    double budget = std::min(o.seconds / o.trials,
                             std::max(0.05, bc.remaining()));
    timed tm;
    auto t0 = clock_type::now();
    for (;;) {
      for (unsigned i = 0; i < check_every; ++i)
        tm.events += step();
      if (since(t0) >= budget)
        break;
    }
    tm.seconds = since(t0);
    r.events += tm.events;
    r.seconds += tm.seconds;
    rates.push_back(tm.seconds > 0 ? tm.events / tm.seconds : 0);
  }
  r.cpu_seconds = process_cpu() - cpu0;
  std::sort(rates.begin(), rates.end());
  r.median_rate = rates.size() % 2
                    ? rates[rates.size() / 2]
                    : (rates[rates.size() / 2 - 1] + rates[rates.size() / 2])
                        / 2;
}

/// Like run_trials, with `threads` threads each calling `step(thread)` until
/// the trial's budget is spent (each reads the clock after every step). A
/// trial ends when the last thread returns; its rate is all threads' events
/// over that time.
void run_parallel_trials(row& r, const options& o, const bench_clock& bc,
                         unsigned threads,
                         const std::function<uint64_t(unsigned)>& step) {
  std::vector<double> rates;
  double cpu0 = process_cpu();
  for (unsigned t = 0; t < o.trials; ++t) {
    double budget = std::min(o.seconds / o.trials,
                             std::max(0.05, bc.remaining()));
    std::vector<uint64_t> counts(threads, 0);
    std::vector<std::thread> workers;
    auto t0 = clock_type::now();
    for (unsigned i = 0; i < threads; ++i)
      workers.emplace_back([&, i] {
        uint64_t n = 0;
        do
          n += step(i);
        while (since(t0) < budget);
        counts[i] = n;
      });
    for (auto& w : workers)
      w.join();
    timed tm;
    tm.seconds = since(t0);
    for (auto n : counts)
      tm.events += n;
    r.events += tm.events;
    r.seconds += tm.seconds;
    rates.push_back(tm.seconds > 0 ? tm.events / tm.seconds : 0);
  }
  r.cpu_seconds = process_cpu() - cpu0;
  std::sort(rates.begin(), rates.end());
  r.median_rate = rates.size() % 2
                    ? rates[rates.size() / 2]
                    : (rates[rates.size() / 2 - 1] + rates[rates.size() / 2])
                        / 2;
}

/// Sum of the payload values of events 0..n-1 (event i carries i % 64 + 1).
int64_t expected_sum(uint64_t n) {
  uint64_t full = n / pool_size, rest = n % pool_size;
  return static_cast<int64_t>(full * (pool_size * (pool_size + 1) / 2)
                              + rest * (rest + 1) / 2);
}

std::string text_of(const bytes& b) {
  return std::string(b.begin(), b.end());
}

class bench {
public:
  bench(caf::actor_system& sys, options o, bench_clock bc, std::string scratch)
    : sys_(sys), opt_(std::move(o)), clock_(bc), scratch_(std::move(scratch)) {
    for (size_t i = 1; i <= pool_size; ++i) {
      auto s = std::to_string(i);
      pool_.emplace_back(s.begin(), s.end());
    }
  }

  void run(row& r) {
    if (!opt_.filter.empty()
        && r.label.find(opt_.filter) == std::string::npos) {
      r.skipped = "filtered out";
      return;
    }
    if (clock_.remaining() < opt_.seconds * 0.5) {
      r.skipped = "time box reached";
      return;
    }
    std::fprintf(stderr, "  running %-45s", r.label.c_str());
    std::fflush(stderr);
    next_ = 0;
    switch (r.kind) {
      case row_kind::raw: run_raw(r); break;
      case row_kind::raw_spin: run_raw_spin(r); break;
      case row_kind::runtime:
      case row_kind::runtime_log:
        if (r.producers > 1)
          run_pipelined(r, r.kind == row_kind::runtime_log);
        else
          run_runtime(r, r.kind == row_kind::runtime_log);
        break;
      default: break;
    }
    r.ran = true;
    std::fprintf(stderr, " %12.0f events/s\n", r.median_rate);
  }

private:
  const bytes& next_payload() {
    return pool_[next_++ % pool_size];
  }

  /// The raw actors' batch: the next batch_size payloads.
  std::vector<bytes> next_payloads() {
    std::vector<bytes> ps;
    ps.reserve(batch_size);
    for (size_t i = 0; i < batch_size; ++i)
      ps.push_back(next_payload());
    return ps;
  }

  /// Warm-up, the timed trials, and the check of the last total.
  void time_row(row& r, const std::function<uint64_t()>& step) {
    for (uint64_t n = 0; n < warmup_events;)
      n += step();
    run_trials(r, opt_, clock_, r.batch ? 1 : 16, step);
    check_total(r);
  }

  void run_raw(row& r) {
    auto a = sys_.spawn(raw_counter);
    caf::scoped_actor self{sys_};
    std::function<uint64_t()> step;
    if (!r.batch) {
      step = [&]() -> uint64_t {
        bytes p = next_payload();
        bool ok = false;
        self->request(a, caf::infinite, std::move(p))
          .receive(
            [&](bytes& out) {
              ok = true;
              last_text_ = std::move(out);
            },
            [&](caf::error& e) {
              die("raw actor: " + sys_.render(e));
            });
        if (!ok)
          die("raw actor: no reply");
        return 1;
      };
    } else {
      step = [&]() -> uint64_t {
        auto ps = next_payloads();
        self->request(a, caf::infinite, std::move(ps))
          .receive(
            [&](std::vector<bytes>& out) {
              if (out.size() != batch_size)
                die("raw actor: short batch reply");
              last_text_ = std::move(out.back());
            },
            [&](caf::error& e) {
              die("raw actor: " + sys_.render(e));
            });
        return batch_size;
      };
    }
    time_row(r, step);
    self->send_exit(a, caf::exit_reason::user_shutdown);
  }

  /// Like run_raw, with the hand-off the runtime facade uses: the same
  /// requests, sent by a blocking_client (actors/blocking_client.hpp) whose
  /// thread spins for the answer (then sleeps) exactly as deliver /
  /// deliver_batch do.
  void run_raw_spin(row& r) {
    auto a = sys_.spawn(raw_counter);
    mesh::blocking_client client{sys_, mesh::runtime_options{}.reply_spin};
    auto timeout = std::chrono::seconds(30);
    std::function<uint64_t()> step;
    if (!r.batch) {
      step = [&]() -> uint64_t {
        auto out = client.ask<bytes>(a, timeout, next_payload());
        if (!out)
          die("raw actor: " + sys_.render(out.error()));
        last_text_ = std::move(*out);
        return 1;
      };
    } else {
      step = [&]() -> uint64_t {
        auto out = client.ask<std::vector<bytes>>(a, timeout, next_payloads());
        if (!out)
          die("raw actor: " + sys_.render(out.error()));
        if (out->size() != batch_size)
          die("raw actor: short batch reply");
        last_text_ = std::move(out->back());
        return batch_size;
      };
    }
    time_row(r, step);
    caf::anon_send_exit(a, caf::exit_reason::user_shutdown);
  }

  /// A started runtime (with a fresh data_dir for the log rows) with one
  /// counter daemon.
  std::unique_ptr<mesh::runtime>
  start_runtime(bool with_log, mesh::runtime_options& ro, uint64_t& origin) {
    if (with_log) {
      ro.data_dir = scratch_ + "/row" + std::to_string(row_no_++);
      fs::create_directories(ro.data_dir);
      ro.fsync = mesh::fsync_policy::every_n(1000);
    }
    auto rt = std::make_unique<mesh::runtime>(sys_, ro);
    if (auto err = rt->register_factory("counter", [] {
          return std::make_unique<mesh::examples::counter>();
        }))
      die("register_factory: " + mesh::describe(err));
    if (auto err = rt->start())
      die("start: " + mesh::describe(err));
    auto d = rt->spawn("counter");
    if (!d)
      die("spawn: " + mesh::describe(d.error()));
    origin = d->origin_hash;
    return rt;
  }

  /// Checks stats() against `sent`, notes the snapshots, shuts down.
  void finish_runtime(row& r, std::unique_ptr<mesh::runtime>& rt,
                      uint64_t origin, uint64_t sent,
                      const mesh::runtime_options& ro) {
    auto st = rt->stats(origin);
    if (!st)
      die("stats: " + mesh::describe(st.error()));
    if (st->events_processed != sent || st->duplicates != 0 || st->errors != 0)
      die("stats disagree: processed " + std::to_string(st->events_processed)
          + " of " + std::to_string(sent) + ", duplicates "
          + std::to_string(st->duplicates));
    r.note = "snapshots " + std::to_string(st->snapshots_taken);
    auto t0 = clock_type::now();
    if (auto err = rt->shutdown())
      die("shutdown: " + mesh::describe(err));
    rt.reset();
    r.note += ", shutdown " + std::to_string(static_cast<int>(since(t0) * 1e3))
              + " ms";
    if (!ro.data_dir.empty()) {
      std::error_code ec;
      fs::remove_all(ro.data_dir, ec);
    }
  }

  void run_runtime(row& r, bool with_log) {
    mesh::runtime_options ro;
    uint64_t origin = 0;
    auto rt = start_runtime(with_log, ro, origin);
    uint64_t seq = 0;
    uint64_t last_daemon_seq = 0;
    mesh::event_batch evs;
    std::function<uint64_t()> step;
    if (!r.batch) {
      step = [&]() -> uint64_t {
        auto res = rt->deliver(origin, {producer_id, ++seq, next_payload()});
        if (!res)
          die("deliver: " + mesh::describe(res.error()));
        if (res->state != mesh::delivery::status::applied
            || res->outputs.size() != 1 || res->daemon_seq != ++last_daemon_seq)
          die("deliver: unexpected answer at producer_seq "
              + std::to_string(seq));
        last_text_ = std::move(res->outputs[0].payload);
        return 1;
      };
    } else {
      step = [&]() -> uint64_t {
        // The packed batch, refilled each time (the way a real ingester
        // reuses its buffer).
        evs.clear();
        for (size_t i = 0; i < batch_size; ++i)
          evs.add(producer_id, ++seq, next_payload());
        auto res = rt->deliver_batch(origin, evs);
        if (!res)
          die("deliver_batch: " + mesh::describe(res.error()));
        if (res->size() != batch_size)
          die("deliver_batch: short answer");
        auto back = batch_size - 1;
        last_daemon_seq += batch_size;
        if (res->state(back) != mesh::delivery::status::applied
            || res->output_count(back) != 1
            || res->daemon_seq(back) != last_daemon_seq)
          die("deliver_batch: unexpected answer at producer_seq "
              + std::to_string(seq));
        last_text_ = res->output_at(back, 0).payload.to_bytes();
        return batch_size;
      };
    }
    time_row(r, step);
    finish_runtime(r, rt, origin, next_, ro);
  }

  /// `r.producers` threads, each its own producer (ids 1, 2, ...) with its
  /// own increasing seqs and its own cycle through the payloads, deliver
  /// batches of 100 to one daemon at the same time. The last total must be
  /// the sum of everything all of them sent.
  void run_pipelined(row& r, bool with_log) {
    mesh::runtime_options ro;
    uint64_t origin = 0;
    auto rt = start_runtime(with_log, ro, origin);
    struct producer {
      uint64_t id = 0;
      uint64_t seq = 0;
      uint64_t sent = 0;
      uint64_t last_daemon_seq = 0;
      bytes last_text;
      mesh::event_batch evs;
    };
    std::vector<producer> ps(r.producers);
    for (unsigned i = 0; i < r.producers; ++i)
      ps[i].id = producer_id + i;
    auto step = [&](unsigned i) -> uint64_t {
      auto& p = ps[i];
      p.evs.clear();
      for (size_t k = 0; k < batch_size; ++k)
        p.evs.add(p.id, ++p.seq, pool_[p.sent++ % pool_size]);
      auto res = rt->deliver_batch(origin, p.evs);
      if (!res)
        die("deliver_batch: " + mesh::describe(res.error()));
      if (res->size() != batch_size)
        die("deliver_batch: short answer");
      for (size_t k = 0; k < batch_size; ++k) {
        if (res->state(k) != mesh::delivery::status::applied
            || res->output_count(k) != 1
            || res->daemon_seq(k) <= p.last_daemon_seq)
          die("deliver_batch: unexpected answer for producer "
              + std::to_string(p.id));
        p.last_daemon_seq = res->daemon_seq(k);
      }
      p.last_text = res->output_at(batch_size - 1, 0).payload.to_bytes();
      return batch_size;
    };
    {
      // Warm-up: every producer at once, warmup_events in all.
      std::vector<std::thread> ws;
      for (unsigned i = 0; i < r.producers; ++i)
        ws.emplace_back([&, i] {
          for (uint64_t n = 0; n < warmup_events / r.producers;)
            n += step(i);
        });
      for (auto& w : ws)
        w.join();
    }
    run_parallel_trials(r, opt_, clock_, r.producers, step);
    uint64_t sent = 0;
    int64_t want = 0;
    const producer* last = &ps[0];
    for (auto& p : ps) {
      sent += p.sent;
      want += expected_sum(p.sent);
      if (p.last_daemon_seq > last->last_daemon_seq)
        last = &p;
    }
    if (last->last_daemon_seq != sent)
      die(r.label + ": last daemon_seq " + std::to_string(last->last_daemon_seq)
          + ", expected " + std::to_string(sent));
    if (text_of(last->last_text) != std::to_string(want))
      die(r.label + ": total " + text_of(last->last_text) + ", expected "
          + std::to_string(want));
    finish_runtime(r, rt, origin, sent, ro);
  }

  void check_total(const row& r) {
    auto want = std::to_string(expected_sum(next_));
    if (text_of(last_text_) != want)
      die(r.label + ": total " + text_of(last_text_) + ", expected " + want);
  }

  caf::actor_system& sys_;
  options opt_;
  bench_clock clock_;
  std::string scratch_;
  std::vector<bytes> pool_;
  uint64_t next_ = 0; // events delivered in the current row (warm-up included)
  bytes last_text_;
  unsigned row_no_ = 0;
};

// -- Erlang
// -----------------------------------------------------------------------

/// Runs the Erlang runner and fills the two rows; returns a line for the
/// header ("Erlang: ...").
std::string run_erlang(const options& o, const bench_clock& bc, row& cast,
                       row& call) {
  bool want_cast = o.filter.empty()
                   || cast.label.find(o.filter) != std::string::npos;
  bool want_call = o.filter.empty()
                   || call.label.find(o.filter) != std::string::npos;
  auto skip = [&](const std::string& why) {
    cast.skipped = call.skipped = why;
    return "Erlang: " + why;
  };
  if (o.erlang == 0)
    return skip("skipped (--no-erlang)");
  if (which("erl").empty() || which("erlc").empty())
    return skip("not installed (apt-get install erlang-nox)");
  if (!want_cast && !want_call)
    return skip("filtered out");
  struct stat st;
  if (o.erlang_script.empty() || ::stat(o.erlang_script.c_str(), &st) != 0)
    return skip("runner not found ('" + o.erlang_script
                + "'; pass --erlang-script)");
  // Two rows of o.seconds each, plus VM start and compile (~1-2 s).
  double need = 2 * o.seconds + 3;
  if (bc.remaining() < need)
    return skip("time box reached");
  int limit = static_cast<int>(std::min(bc.remaining(), need + 20));
  char secs[32];
  std::snprintf(secs, sizeof secs, "%.3f", o.seconds);
  std::string cmd = "timeout -k 2 " + std::to_string(limit) + " "
                    + shell_quote(o.erlang_script) + " --seconds " + secs
                    + " --trials " + std::to_string(o.trials);
  std::fprintf(stderr, "  running %-45s", "Erlang gen_server (subprocess)");
  std::fflush(stderr);
  FILE* p = ::popen(cmd.c_str(), "r");
  if (!p)
    return skip(std::string{"popen failed: "} + std::strerror(errno));
  std::string info;
  char line[512];
  while (std::fgets(line, sizeof line, p)) {
    std::string l = line;
    while (!l.empty() && (l.back() == '\n' || l.back() == '\r'))
      l.pop_back();
    char name[32] = {0};
    double rate = 0, secs_all = 0;
    unsigned long long events = 0;
    if (std::sscanf(l.c_str(), "RESULT %31s %lf %llu %lf", name, &rate, &events,
                    &secs_all)
        == 4) {
      row* r = std::string_view{name} == "cast"   ? &cast
               : std::string_view{name} == "call" ? &call
                                                  : nullptr;
      if (r) {
        r->ran = true;
        r->median_rate = rate;
        r->events = events;
        r->seconds = secs_all;
      }
    } else if (l.rfind("INFO ", 0) == 0) {
      info = l.substr(5);
    }
  }
  int rc = ::pclose(p);
  std::fprintf(stderr, " done\n");
  if (!cast.ran || !call.ran) {
    std::string why = "runner failed (exit status " + std::to_string(rc) + ")";
    if (!cast.ran)
      cast.skipped = why;
    if (!call.ran)
      call.skipped = why;
    return "Erlang: " + why;
  }
  return "Erlang: " + info + " (separate BEAM process, default flags)";
}

// -- output
// -----------------------------------------------------------------------

std::atomic<bool> finished{false};

extern "C" void on_alarm(int) {
  if (finished.load())
    return;
  const char msg[] = "\nruntime_bench: time box exceeded, aborting\n";
  auto n = ::write(STDERR_FILENO, msg, sizeof msg - 1);
  (void)n;
  ::_exit(3);
}

} // namespace

int main(int argc, char** argv) {
  auto opt = parse_args(argc, argv);
  bench_clock bc;
  bc.time_box = opt.time_box;
  std::signal(SIGALRM, on_alarm);
  ::alarm(static_cast<unsigned>(opt.time_box + 5.5));

  std::string parent = opt.dir.empty() ? std::string{"/tmp"} : opt.dir;
  std::string tmpl = parent + "/runtime_bench.XXXXXX";
  std::vector<char> tbuf(tmpl.begin(), tmpl.end());
  tbuf.push_back('\0');
  if (::mkdtemp(tbuf.data()) == nullptr)
    die("mkdtemp in " + parent + ": " + std::strerror(errno));
  std::string scratch = tbuf.data();

#ifndef NDEBUG
  std::fprintf(stderr,
               "runtime_bench: WARNING: assertions on (not a Release build)\n");
#endif

  // The runtime logs every spawn and compaction at info; that is noise here.
  spdlog::set_level(spdlog::level::warn);

  // The scheduler meshd runs with (actors/runtime.hpp); --caf-arg and
  // --threads override it.
  caf::actor_system_config cfg;
  mesh::apply_scheduler_defaults(cfg);
  std::string caf_extra;
  if (!opt.caf_args.empty()) {
    caf::actor_system_config::string_list args{opt.caf_args.begin(),
                                               opt.caf_args.end()};
    std::istringstream no_ini;
    if (auto err = cfg.parse(args, no_ini))
      die("--caf-arg: " + caf::to_string(err));
    for (auto& a : opt.caf_args)
      caf_extra += " " + a;
  }
  // CAF 0.17 spells the key without the "caf." prefix that 0.18 added.
  if (opt.threads > 0)
    cfg.set("scheduler.max-threads", static_cast<size_t>(opt.threads));
  std::vector<row> rows;
  auto add = [&](row_kind k, bool batch, std::string label,
                 unsigned producers = 1) {
    row r;
    r.kind = k;
    r.batch = batch;
    r.producers = producers;
    r.label = std::move(label);
    rows.push_back(std::move(r));
  };
  const std::string b = std::to_string(batch_size);
  add(row_kind::raw, false, "raw CAF actor, request/receive, single");
  add(row_kind::raw, true, "raw CAF actor, request/receive, batch" + b);
  add(row_kind::raw_spin, false, "raw CAF actor, spin-wait reply, single");
  add(row_kind::raw_spin, true, "raw CAF actor, spin-wait reply, batch" + b);
  add(row_kind::runtime, false, "runtime deliver, single");
  add(row_kind::runtime, true, "runtime deliver_batch, batch" + b);
  add(row_kind::runtime_log, false, "runtime deliver + log, single");
  add(row_kind::runtime_log, true, "runtime deliver_batch + log, batch" + b);
  if (opt.producers > 1) {
    const std::string np = ", " + std::to_string(opt.producers) + " producers";
    add(row_kind::runtime, true, "runtime deliver_batch, batch" + b + np,
        opt.producers);
    add(row_kind::runtime_log, true,
        "runtime deliver_batch + log, batch" + b + np, opt.producers);
  }
  add(row_kind::erlang_cast, false, "Erlang gen_server:cast");
  add(row_kind::erlang_call, false, "Erlang gen_server:call");

  auto load_before = loadavg();
  size_t workers = 0;
  std::string erlang_line;
  {
    caf::actor_system sys{cfg};
    workers = sys.scheduler().num_workers();
    std::fprintf(stderr,
                 "runtime_bench: CAF %zu worker threads, %.2f s per row in %u "
                 "trials, "
                 "scratch %s\n",
                 workers, opt.seconds, opt.trials, scratch.c_str());
    bench bn{sys, opt, bc, scratch};
    for (auto& r : rows)
      if (r.kind != row_kind::erlang_cast && r.kind != row_kind::erlang_call)
        bn.run(r);
  }
  // The actor system is gone before the BEAM starts: nothing else competes
  // for the two cores.
  auto row_of = [&](row_kind k) -> row& {
    for (auto& r : rows)
      if (r.kind == k)
        return r;
    die("no such row");
  };
  erlang_line = run_erlang(opt, bc, row_of(row_kind::erlang_cast),
                           row_of(row_kind::erlang_call));
  double total = since(bc.start);
  finished = true;
  ::alarm(0);
  std::error_code ec;
  fs::remove_all(scratch, ec);

  // The single-producer rows (the targets are about those).
  auto find = [&](row_kind k, bool batch) -> const row* {
    for (auto& r : rows)
      if (r.ran && r.kind == k && r.batch == batch && r.producers == 1)
        return &r;
    return nullptr;
  };
  const row* raw_single = find(row_kind::raw, false);
  const row* raw_batch = find(row_kind::raw, true);
  // The runtime rows are compared with the raw actor behind the same
  // hand-off (spin-wait reply); request/receive rows with request/receive.
  const row* spin_single = find(row_kind::raw_spin, false);
  const row* spin_batch = find(row_kind::raw_spin, true);

  // -- table ----------------------------------------------------------------
  std::printf(
    "\nruntime_bench: %.2f s per row in %u trials, CAF 0.17 work-stealing "
    "scheduler with meshd's settings (mesh::apply_scheduler_defaults: "
    "aggressive-poll-attempts=100000), %s (%zu workers)%s%s, %ld "
    "CPUs, "
    "log rows on %s, total %.1f s\n"
    "load average before: %s; after: %s\n"
    "%s\n\n",
    opt.seconds, opt.trials,
    opt.threads > 0 ? ("--threads " + std::to_string(opt.threads)).c_str()
                    : "max-threads = cores - 1",
    workers,
    caf_extra.empty() ? "" : ", NON-DEFAULT CAF options:", caf_extra.c_str(),
    ::sysconf(_SC_NPROCESSORS_ONLN), fs_name(parent).c_str(), total,
    load_before.c_str(), loadavg().c_str(), erlang_line.c_str());
  std::printf(
    "| row | events | events/s | us/event | CPU us/event | vs raw | notes |\n");
  std::printf("|---|--:|--:|--:|--:|--:|---|\n");
  for (auto& r : rows) {
    if (!r.ran) {
      if (r.skipped != "filtered out")
        std::printf("| %s | - | - | - | - | - | %s |\n", r.label.c_str(),
                    r.skipped.c_str());
      continue;
    }
    // Single-style rows (one round trip per event) against raw single;
    // batch100 and cast (no wait per event) against raw batch100.
    bool batch_style = r.batch || r.kind == row_kind::erlang_cast;
    bool spin_style = r.kind == row_kind::raw_spin
                      || r.kind == row_kind::runtime
                      || r.kind == row_kind::runtime_log;
    const row* base = spin_style ? (batch_style ? spin_batch : spin_single)
                                 : (batch_style ? raw_batch : raw_single);
    std::string vs = base && base->median_rate > 0 && r.median_rate > 0
                       ? fmt_f("%.0f%%",
                               100.0 * r.median_rate / base->median_rate)
                           + " of raw " + (spin_style ? "spin-wait " : "")
                           + (batch_style ? "batch" : "single")
                       : "n/a";
    std::string cpu = r.cpu_seconds >= 0 && r.events
                        ? fmt_f("%.3f", r.cpu_seconds * 1e6
                                          / static_cast<double>(r.events))
                        : "n/a";
    std::string note = r.note;
    if (r.kind == row_kind::raw)
      note = "ceiling (scoped_actor hand-off)";
    else if (r.kind == row_kind::raw_spin)
      note = "ceiling (the facade's hand-off)";
    else if (r.kind == row_kind::erlang_cast)
      note = "chunks of 10,000 casts + 1 call";
    else if (r.kind == row_kind::erlang_call)
      note = "one call per event";
    if (r.kind == row_kind::runtime_log)
      note = "every_n(1000); " + note;
    std::printf("| %s | %s | %s | %s | %s | %s | %s |\n", r.label.c_str(),
                fmt_num(static_cast<double>(r.events)).c_str(),
                fmt_num(r.median_rate).c_str(),
                fmt_f("%.3f", 1e6 / r.median_rate).c_str(), cpu.c_str(),
                vs.c_str(), note.c_str());
  }
  std::printf(
    "\nevents/s = median of the per-trial rates; events = all trials; us/event "
    "= "
    "1e6 / events/s (wall).\n"
    "CPU us/event = process CPU time (all threads, user+sys) over the timed "
    "loops / "
    "events; n/a for the Erlang rows (other process).\n"
    "vs raw = this row's events/s as a percentage of the raw CAF row of the "
    "same style (single: one round trip per event; batch%zu and cast: no wait "
    "per event) and, for the runtime rows, the same hand-off (spin-wait "
    "reply, as the facade waits; see actors/blocking_client.hpp).\n"
    "One producer (producer_id %llu) with producer_seq 1, 2, 3, ... so every "
    "event "
    "passes the dedup check; payloads \"1\"..\"%zu\" cycled; a %llu-event "
    "warm-up "
    "per row is not timed. Runtime defaults otherwise (snapshot every 10,000 "
    "events, compact after 100,000 records).\n"
    "\"N producers\" rows: N threads (producer_id %llu..%llu, each with its "
    "own "
    "seqs) deliver batches to the same daemon concurrently; not part of the "
    "targets.\n",
    batch_size, static_cast<unsigned long long>(producer_id), pool_size,
    static_cast<unsigned long long>(warmup_events),
    static_cast<unsigned long long>(producer_id),
    static_cast<unsigned long long>(producer_id + opt.producers - 1));

  // -- targets ----------------------------------------------------------------
  std::printf("\nTargets:\n");
  bool all = true, complete = true;
  auto verdict = [&](const row* r, bool ok, const std::string& what,
                     const std::string& got) {
    if (!r) {
      complete = false;
      std::printf("- n/a  %s: row not run\n", what.c_str());
      return;
    }
    all = all && ok;
    std::printf("- %s %s: %s\n", ok ? "PASS" : "FAIL", what.c_str(),
                got.c_str());
  };
  {
    // The raw actor is a plain CAF stateful actor called the CAF
    // way (request/receive). The same actor behind the facade's own
    // spin-wait hand-off is a stricter comparison, printed beside it.
    auto r = find(row_kind::runtime, false);
    bool ok = r && raw_single
              && r->median_rate >= 0.5 * raw_single->median_rate;
    std::string got = r && raw_single
                        ? fmt_num(r->median_rate) + " events/s = "
                            + fmt_f("%.0f%%", 100 * r->median_rate
                                                / raw_single->median_rate)
                            + " of raw request/receive ("
                            + fmt_num(raw_single->median_rate) + ")"
                        : "";
    if (r && spin_single)
      got += "; stricter, not the target: "
             + fmt_f("%.0f%%", 100 * r->median_rate / spin_single->median_rate)
             + " of the raw actor behind the same spin-wait hand-off ("
             + fmt_num(spin_single->median_rate) + ")";
    verdict(r && raw_single ? r : nullptr, ok,
            "runtime deliver single >= 50% of raw CAF single", got);
  }
  {
    auto r = find(row_kind::runtime, true);
    verdict(r, r && r->median_rate >= 5e6,
            "runtime deliver_batch (100) >= 5,000,000 events/s",
            r ? fmt_num(r->median_rate) + " events/s" : "");
  }
  {
    auto r = find(row_kind::runtime_log, true);
    verdict(r, r && r->median_rate >= 1e6,
            "runtime deliver_batch (100) + log every_n(1000) >= 1,000,000 "
            "events/s",
            r ? fmt_num(r->median_rate) + " events/s" : "");
  }
  std::printf("\nOverall: %s\n", !all ? "FAIL"
                                 : complete
                                   ? "PASS"
                                   : "n/a (not every target's rows ran)");
  return 0;
}
