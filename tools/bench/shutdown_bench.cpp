// shutdown_bench: how long a node takes to stop (and start again) with many
// daemons, next to the baseline of writing the same snapshot files one by
// one with an fsync each, on the same file system.
//
// Rows, for each daemon count N:
//   changed    every daemon took one event since its last snapshot, so the
//              shutdown writes N snapshots
//   unchanged  nothing new since the last snapshot: nothing to write
//   baseline   N files of the same size written the way one atomic file is
//              (temp file, fsync, rename, fsync of the directory), in a loop

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <spdlog/spdlog.h>

#include "actors/runtime.hpp"
#include "base/atomic_file.hpp"
#include "base/errc.hpp"
#include "base/file_system.hpp"
#include "bench_util.hpp"
#include "examples/counter/counter.hpp"

using namespace mesh;
using mesh::bench::since;

namespace {

struct options {
  std::vector<unsigned> counts{1000, 10000};
  std::string dir = "/tmp";
};

void usage(FILE* out) {
  std::fprintf(out,
               "usage: shutdown_bench [--daemons N]... [--dir DIR]\n"
               "\n"
               "Times mesh::runtime::shutdown() and start() with N counter\n"
               "daemons, next to writing N snapshot-sized files one by one.\n"
               "\n"
               "  --daemons N  a daemon count to run (repeatable; default\n"
               "               1000 and 10000)\n"
               "  --dir DIR    where the scratch data directory is made\n"
               "               (default /tmp); put it on the disk you care\n"
               "               about: on tmpfs fsync measures nothing\n"
               "  --help       this text\n");
}

[[noreturn]] void die(const std::string& what) {
  std::fprintf(stderr, "shutdown_bench: %s\n", what.c_str());
  std::exit(1);
}

options parse_args(int argc, char** argv) {
  options o;
  bool counts_given = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc)
        die(a + " needs a value (see --help)");
      return argv[++i];
    };
    if (a == "--help" || a == "-h") {
      usage(stdout);
      std::exit(0);
    } else if (a == "--daemons") {
      auto v = value();
      char* end = nullptr;
      auto n = std::strtoul(v.c_str(), &end, 10);
      if (v.empty() || *end != '\0' || n < 1 || n > 1000000)
        die("--daemons must be 1..1000000, not '" + v + "'");
      if (!counts_given)
        o.counts.clear();
      counts_given = true;
      o.counts.push_back(static_cast<unsigned>(n));
    } else if (a == "--dir") {
      o.dir = value();
    } else {
      usage(stderr);
      die("unknown argument '" + a + "'");
    }
  }
  return o;
}

struct node {
  caf::actor_system_config cfg;
  caf::actor_system sys{apply_scheduler_defaults(cfg)};
  std::unique_ptr<runtime> rt;

  explicit node(const std::string& dir) {
    runtime_options opts;
    opts.data_dir = dir;
    opts.snapshot_every_events = 0;
    rt = std::make_unique<runtime>(sys, opts);
    if (auto err = rt->register_factory("counter", [] {
          return std::make_unique<examples::counter>();
        }))
      die(describe(err));
  }
};

std::string make_scratch(const std::string& parent) {
  auto pattern = parent + "/shutdown_bench.XXXXXX";
  std::vector<char> buf(pattern.begin(), pattern.end());
  buf.push_back('\0');
  if (!::mkdtemp(buf.data()))
    die("cannot create a scratch directory in " + parent + ": "
        + std::strerror(errno));
  return buf.data();
}

struct result {
  unsigned n = 0;
  double spawn_s = 0;
  double changed_s = 0;
  double start_s = 0;
  double unchanged_s = 0;
  double baseline_s = 0;
  size_t snapshot_bytes = 0;
};

result run(unsigned n, const std::string& parent) {
  result res;
  res.n = n;
  auto dir = make_scratch(parent);
  std::vector<uint64_t> ids;
  {
    node nd{dir};
    if (auto err = nd.rt->start())
      die(describe(err));
    std::fprintf(stderr, "  %u daemons: spawning\n", n);
    auto t0 = bench::clock_type::now();
    for (unsigned i = 0; i < n; ++i) {
      auto d = nd.rt->spawn("counter");
      if (!d)
        die("spawn: " + describe(d.error()));
      ids.push_back(d->origin_hash);
    }
    res.spawn_s = since(t0);
    for (auto id : ids) {
      bytes one{'1'};
      if (auto r = nd.rt->deliver(id, {0, 0, one}); !r)
        die("deliver: " + describe(r.error()));
    }
    std::fprintf(stderr, "  %u daemons: shutdown, all changed\n", n);
    t0 = bench::clock_type::now();
    if (auto err = nd.rt->shutdown())
      die("shutdown: " + describe(err));
    res.changed_s = since(t0);
  }
  {
    node nd{dir};
    std::fprintf(stderr, "  %u daemons: start\n", n);
    auto t0 = bench::clock_type::now();
    if (auto err = nd.rt->start())
      die(describe(err));
    res.start_s = since(t0);
    auto count = nd.rt->daemon_count();
    if (!count || *count != n)
      die("restart brought back the wrong number of daemons");
    auto snap = nd.rt->snapshot(ids.front());
    if (!snap)
      die("snapshot: " + describe(snap.error()));
    res.snapshot_bytes = snap->size();
    std::fprintf(stderr, "  %u daemons: shutdown, none changed\n", n);
    t0 = bench::clock_type::now();
    if (auto err = nd.rt->shutdown())
      die("shutdown: " + describe(err));
    res.unchanged_s = since(t0);
  }
  {
    auto base = dir + "/baseline";
    auto& fs = *real_file_system();
    if (auto err = fs.create_dir(base))
      die(describe(err));
    bytes data(res.snapshot_bytes, 0x5a);
    std::fprintf(stderr, "  %u daemons: baseline\n", n);
    auto t0 = bench::clock_type::now();
    for (unsigned i = 0; i < n; ++i)
      if (auto err = write_file_atomic(fs, base + "/" + std::to_string(i), data,
                                       0600))
        die(describe(err));
    res.baseline_s = since(t0);
  }
  (void)real_file_system()->remove_all(dir);
  return res;
}

} // namespace

int main(int argc, char** argv) {
  auto o = parse_args(argc, argv);
  spdlog::set_level(spdlog::level::warn);
  std::printf("## shutdown_bench\n\n");
  std::printf("- scratch on: %s\n", bench::fs_name(o.dir).c_str());
  std::printf("- load before: %s\n\n", bench::loadavg().c_str());
  std::printf("| daemons | snapshot B | spawn s | shutdown, all changed s | "
              "start s | shutdown, none changed s | baseline: N atomic files "
              "s |\n");
  std::printf("|---:|---:|---:|---:|---:|---:|---:|\n");
  std::fflush(stdout);
  for (auto n : o.counts) {
    auto r = run(n, o.dir);
    std::printf("| %u | %zu | %.2f | %.2f | %.2f | %.2f | %.2f |\n", r.n,
                r.snapshot_bytes, r.spawn_s, r.changed_s, r.start_s,
                r.unchanged_s, r.baseline_s);
    std::fflush(stdout);
  }
  std::printf("\nThe baseline writes N files of the snapshot's size one by "
              "one (temp file, fsync, rename, directory fsync): what a "
              "shutdown cost before snapshots were written together.\n");
  return 0;
}
