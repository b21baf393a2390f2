// segment_bench: append throughput of mesh::segment next to raw write(2)
// baselines measured in the same run, on the same file system.
//
// What is timed: only the append loop (steady_clock around the loop). Opening
// the segment, a short warm-up and close() (which stops the fsync worker and
// fsyncs dat, idx and ts) are outside the timed region; close() is timed on
// its own and printed as "close ms". For the baselines "close ms" is the
// final fdatasync + close(2) of their file(s).
//
// See tools/bench/README.md for the exact definition of every row.

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include <fcntl.h>
#include <sys/statfs.h>
#include <time.h>
#include <unistd.h>

// caf/message.hpp before base/errc.hpp: its CAF_ERROR_CODE_ENUM needs
// caf::message to be a complete type.
#include <caf/message.hpp>

#include "base/bytes.hpp"
#include "base/errc.hpp"
#include "bench_util.hpp"
#include "persistence/segment.hpp"
#include "persistence/segment_format.hpp"

namespace {

using namespace mesh::bench;
namespace fs = std::filesystem;
namespace fmt = mesh::segment_format;

constexpr size_t batch_size = 100;
constexpr size_t pool_size = 64; // distinct payloads cycled through
constexpr uint64_t warmup_records = 1000;

struct options {
  std::string dir;        // parent of the run directory
  double seconds = 0.75;  // time budget per row
  uint64_t max_mib = 256; // cap on bytes written per row
  unsigned trials = 3;    // the budget is split into this many timed runs
  std::string filter;     // substring of the row label
};

[[noreturn]] void die(const std::string& what) {
  std::fprintf(stderr, "segment_bench: %s\n", what.c_str());
  std::exit(1);
}

void usage(FILE* out) {
  std::fprintf(
    out,
    "usage: segment_bench [--dir DIR] [--seconds S] [--trials N] [--max-mib "
    "M]\n"
    "                     [--filter TEXT]\n"
    "\n"
    "Measures mesh::segment append throughput (8 B, 32 B, 1 KiB payloads;\n"
    "policies never, every_n(1000), every_n(1); single and batch-of-%zu\n"
    "appends) beside raw write(2) baselines measured in the same run.\n"
    "\n"
    "  --dir DIR      create the scratch directory inside DIR (default /tmp);\n"
    "                 it is removed at the end. All rows use it.\n"
    "  --seconds S    time budget per row (default 0.75)\n"
    "  --trials N     split each row into N timed runs and report the median\n"
    "                 rate (default 3)\n"
    "  --max-mib M    stop a row once it has written M MiB (default 256)\n"
    "  --filter TEXT  run only rows whose label contains TEXT, e.g.\n"
    "                 \"32 B | every_n(1000) | batch\"\n"
    "  --help         this text\n",
    batch_size);
}

options parse_args(int argc, char** argv) {
  options o;
  for (int i = 1; i < argc; ++i) {
    std::string_view a = argv[i];
    auto value = [&](std::string_view name) -> std::string {
      if (i + 1 >= argc)
        die(std::string{name} + " needs a value");
      return argv[++i];
    };
    if (a == "--help" || a == "-h") {
      usage(stdout);
      std::exit(0);
    } else if (a == "--dir") {
      o.dir = value(a);
    } else if (a == "--seconds") {
      auto v = value(a);
      char* end = nullptr;
      o.seconds = std::strtod(v.c_str(), &end);
      if (end == v.c_str() || *end != '\0' || !(o.seconds > 0)
          || o.seconds > 3600)
        die("--seconds wants a number in (0, 3600], got '" + v + "'");
    } else if (a == "--max-mib") {
      auto v = value(a);
      char* end = nullptr;
      auto n = std::strtoull(v.c_str(), &end, 10);
      if (end == v.c_str() || *end != '\0' || n == 0)
        die("--max-mib wants a positive integer, got '" + v + "'");
      o.max_mib = n;
    } else if (a == "--trials") {
      auto v = value(a);
      char* end = nullptr;
      auto n = std::strtoul(v.c_str(), &end, 10);
      if (end == v.c_str() || *end != '\0' || n == 0 || n > 100)
        die("--trials wants an integer in [1, 100], got '" + v + "'");
      o.trials = static_cast<unsigned>(n);
    } else if (a == "--filter") {
      o.filter = value(a);
    } else {
      usage(stderr);
      die("unknown argument '" + std::string{a} + "'");
    }
  }
  return o;
}

// -- helpers ------------------------------------------------------------------

void write_all(int fd, const uint8_t* p, size_t n) {
  while (n > 0) {
    auto r = ::write(fd, p, n);
    if (r < 0) {
      if (errno == EINTR)
        continue;
      die(std::string{"write: "} + std::strerror(errno));
    }
    p += r;
    n -= static_cast<size_t>(r);
  }
}

void datasync(int fd) {
  if (::fdatasync(fd) != 0)
    die(std::string{"fdatasync: "} + std::strerror(errno));
}

int open_append(const std::string& path) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC,
                  0644);
  if (fd < 0)
    die("open " + path + ": " + std::strerror(errno));
  return fd;
}

/// Bytes the segment writes per record: dat (heap payloads only) + idx + ts.
size_t disk_bytes_per_record(size_t payload) {
  return (payload > fmt::inline_max ? payload : 0) + fmt::idx_record_size
         + fmt::ts_record_size;
}

// -- rows ---------------------------------------------------------------------

enum class row_kind {
  raw_write,
  raw_write_sync,
  raw_write_3,
  seg_never,
  seg_n1000,
  seg_n1
};

const char* policy_label(row_kind k) {
  switch (k) {
    case row_kind::raw_write: return "baseline: write()";
    case row_kind::raw_write_sync: return "baseline: write()+fdatasync";
    case row_kind::raw_write_3: return "baseline: write() x3 files";
    case row_kind::seg_never: return "never";
    case row_kind::seg_n1000: return "every_n(1000)";
    case row_kind::seg_n1: return "every_n(1)";
  }
  return "?";
}

bool is_segment(row_kind k) {
  return k == row_kind::seg_never || k == row_kind::seg_n1000
         || k == row_kind::seg_n1;
}

std::string payload_label(size_t p) {
  return p >= 1024 && p % 1024 == 0 ? std::to_string(p / 1024) + " KiB"
                                    : std::to_string(p) + " B";
}

struct result {
  size_t payload = 0;
  row_kind kind = row_kind::raw_write;
  bool batch = false;
  uint64_t records = 0; // all trials
  double seconds = 0;   // all trials
  double median_rate = 0;
  double cpu_seconds = 0; // process CPU time over all trials
  double close_ms = 0;
  uint64_t fsyncs = 0; // fsync rounds during the timed loop (segment:
                       // sync_count delta)
  bool ran = false;

  double rate() const {
    return median_rate;
  }
  double payload_mbs() const {
    return rate() * payload / 1e6;
  }
  double disk_mbs() const {
    return rate() * disk_bytes_per_record(payload) / 1e6;
  }
  std::string label() const {
    return payload_label(payload) + " | " + policy_label(kind) + " | "
           + (batch ? "batch" + std::to_string(batch_size)
                    : std::string{"single"});
  }
};

struct timed {
  uint64_t records = 0;
  double seconds = 0;
};

/// Runs `step` (which appends some records and returns how many) until the
/// time budget or the record cap is reached; reads the clock every
/// `check_every` steps.
timed run_once(double budget, uint64_t max_records, unsigned check_every,
               const std::function<uint64_t()>& step) {
  timed t;
  auto t0 = clock_type::now();
  for (;;) {
    for (unsigned i = 0; i < check_every; ++i)
      t.records += step();
    if (t.records >= max_records)
      break;
    if (since(t0) >= budget)
      break;
  }
  t.seconds = since(t0);
  return t;
}

/// `trials` back-to-back run_once calls, each with 1/trials of the budget and
/// of the record cap; fills records, seconds and the median per-trial rate.
void run_trials(result& r, const options& o, uint64_t max_records,
                unsigned check_every, const std::function<uint64_t()>& step) {
  std::vector<double> rates;
  double cpu0 = process_cpu();
  for (unsigned i = 0; i < o.trials; ++i) {
    auto t = run_once(o.seconds / o.trials,
                      std::max<uint64_t>(1, max_records / o.trials),
                      check_every, step);
    r.records += t.records;
    r.seconds += t.seconds;
    rates.push_back(t.seconds > 0 ? t.records / t.seconds : 0);
  }
  r.cpu_seconds = process_cpu() - cpu0;
  std::sort(rates.begin(), rates.end());
  r.median_rate = rates.size() % 2
                    ? rates[rates.size() / 2]
                    : (rates[rates.size() / 2 - 1] + rates[rates.size() / 2])
                        / 2;
}

class bench {
public:
  bench(options o, std::string run_dir)
    : opt_(std::move(o)), run_dir_(std::move(run_dir)) {
    std::mt19937_64 rng{0x5eed};
    for (auto& b : noise_)
      b = static_cast<uint8_t>(rng());
  }

  result run(size_t payload, row_kind kind, bool batch) {
    result r;
    r.payload = payload;
    r.kind = kind;
    r.batch = batch;
    if (!opt_.filter.empty()
        && r.label().find(opt_.filter) == std::string::npos)
      return r;
    std::fprintf(stderr, "  running %-55s", r.label().c_str());
    std::fflush(stderr);
    auto dir = run_dir_ + "/row" + std::to_string(row_no_++);
    fs::create_directory(dir);
    uint64_t max_records = std::max<uint64_t>(batch_size,
                                              (opt_.max_mib << 20)
                                                / disk_bytes_per_record(
                                                  payload));
    if (is_segment(kind))
      run_segment(r, dir + "/log", max_records);
    else
      run_raw(r, dir, max_records);
    std::error_code ec;
    fs::remove_all(dir, ec);
    r.ran = true;
    std::fprintf(stderr, " %12.0f rec/s\n", r.rate());
    return r;
  }

private:
  // A pool of distinct payloads of one size, all views into noise_.
  std::vector<mesh::bytes_view> pool(size_t payload) const {
    std::vector<mesh::bytes_view> out;
    for (size_t i = 0; i < pool_size; ++i)
      out.emplace_back(noise_.data() + (i * 977) % (noise_.size() - payload),
                       payload);
    return out;
  }

  void run_segment(result& r, const std::string& dir, uint64_t max_records) {
    mesh::segment_options so;
    switch (r.kind) {
      case row_kind::seg_never: so.policy = mesh::fsync_policy::never(); break;
      case row_kind::seg_n1000:
        so.policy = mesh::fsync_policy::every_n(1000);
        break;
      default: so.policy = mesh::fsync_policy::every_n(1); break;
    }
    so.on_warning = [](const std::string& w) {
      std::fprintf(stderr, "\nsegment warning: %s\n", w.c_str());
    };
    auto opened = mesh::segment::open(dir, std::move(so));
    if (!opened)
      die("segment::open " + dir + ": " + mesh::describe(opened.error()));
    auto seg = std::move(*opened);
    auto singles = pool(r.payload);
    // Batches: pool_size / 8 distinct batch vectors, built before the loop.
    std::vector<std::vector<mesh::bytes_view>> batches(8);
    for (size_t b = 0; b < batches.size(); ++b)
      for (size_t i = 0; i < batch_size; ++i)
        batches[b].push_back(singles[(b * 7 + i) % singles.size()]);

    size_t k = 0;
    std::function<uint64_t()> step;
    if (r.batch) {
      step = [&]() -> uint64_t {
        auto res = seg->append_batch(batches[k++ & 7]);
        if (!res)
          die("append_batch: " + mesh::describe(res.error()));
        return batch_size;
      };
    } else {
      step = [&]() -> uint64_t {
        auto res = seg->append(singles[k++ & (pool_size - 1)]);
        if (!res)
          die("append: " + mesh::describe(res.error()));
        return 1;
      };
    }
    // Warm-up (untimed): first extents, worker thread start, caches.
    for (uint64_t n = 0; n < warmup_records;)
      n += step();
    auto syncs_before = seg->sync_count();
    run_trials(r, opt_, max_records, r.batch ? 1 : 16, step);
    r.fsyncs = seg->sync_count() - syncs_before;
    auto c0 = clock_type::now();
    if (auto err = seg->close())
      die("close: " + mesh::describe(err));
    r.close_ms = since(c0) * 1e3;
    if (seg->failed_sync_count() != 0)
      die("segment reported failed fsyncs");
  }

  void run_raw(result& r, const std::string& dir, uint64_t max_records) {
    const size_t per_rec = disk_bytes_per_record(r.payload);
    const size_t n = r.batch ? batch_size : 1;
    std::vector<int> fds;
    std::function<uint64_t()> step;
    // Buffers hold exactly what one step writes; contents are noise.
    std::vector<uint8_t> buf(per_rec * n);
    std::memcpy(buf.data(), noise_.data(), buf.size());
    if (r.kind == row_kind::raw_write || r.kind == row_kind::raw_write_sync) {
      fds.push_back(open_append(dir + "/raw"));
      int fd = fds[0];
      bool sync = r.kind == row_kind::raw_write_sync;
      step = [&, fd, sync]() -> uint64_t {
        write_all(fd, buf.data(), buf.size());
        if (sync)
          datasync(fd);
        return n;
      };
    } else {
      // Same split as the segment: dat (heap payloads only), idx, ts.
      fds.push_back(open_append(dir + "/dat"));
      fds.push_back(open_append(dir + "/idx"));
      fds.push_back(open_append(dir + "/ts"));
      const size_t dat_len = (r.payload > fmt::inline_max ? r.payload : 0) * n;
      const size_t idx_len = fmt::idx_record_size * n;
      const size_t ts_len = fmt::ts_record_size * n;
      step = [&, dat_len, idx_len, ts_len]() -> uint64_t {
        if (dat_len > 0)
          write_all(fds[0], buf.data(), dat_len);
        write_all(fds[1], buf.data() + dat_len, idx_len);
        write_all(fds[2], buf.data() + dat_len + idx_len, ts_len);
        return n;
      };
    }
    for (uint64_t k = 0; k < warmup_records;)
      k += step();
    unsigned check = (r.kind == row_kind::raw_write_sync || r.batch) ? 1 : 16;
    run_trials(r, opt_, max_records, check, step);
    r.fsyncs = r.kind == row_kind::raw_write_sync ? r.records / n : 0;
    auto c0 = clock_type::now();
    for (int fd : fds) {
      datasync(fd);
      ::close(fd);
    }
    r.close_ms = since(c0) * 1e3;
  }

  options opt_;
  std::string run_dir_;
  unsigned row_no_ = 0;
  std::vector<uint8_t> noise_ = std::vector<uint8_t>(1 << 20);
};

const result* find(const std::vector<result>& rs, size_t payload, row_kind k,
                   bool batch) {
  for (auto& r : rs)
    if (r.ran && r.payload == payload && r.kind == k && r.batch == batch)
      return &r;
  return nullptr;
}

} // namespace

int main(int argc, char** argv) {
  auto opt = parse_args(argc, argv);
  std::string parent = opt.dir.empty() ? std::string{"/tmp"} : opt.dir;
  std::string tmpl = parent + "/segment_bench.XXXXXX";
  std::vector<char> tbuf(tmpl.begin(), tmpl.end());
  tbuf.push_back('\0');
  if (::mkdtemp(tbuf.data()) == nullptr)
    die("mkdtemp in " + parent + ": " + std::strerror(errno));
  std::string run_dir = tbuf.data();

  std::
    fprintf(stderr,
            "segment_bench: scratch dir %s (%s), %.2f s or %llu MiB per row\n",
            run_dir.c_str(), fs_name(run_dir).c_str(), opt.seconds,
            static_cast<unsigned long long>(opt.max_mib));
#ifndef NDEBUG
  std::fprintf(stderr,
               "segment_bench: WARNING: assertions on (not a Release build)\n");
#endif

  bench b{opt, run_dir};
  std::vector<result> results;
  const size_t payloads[] = {8, 32, 1024};
  const row_kind kinds[] = {row_kind::raw_write,   row_kind::raw_write_sync,
                            row_kind::raw_write_3, row_kind::seg_never,
                            row_kind::seg_n1000,   row_kind::seg_n1};
  auto load_before = loadavg();
  auto t_all = clock_type::now();
  for (size_t p : payloads)
    for (auto k : kinds)
      for (bool batch : {false, true})
        results.push_back(b.run(p, k, batch));
  double total = since(t_all);
  std::error_code ec;
  fs::remove_all(run_dir, ec);

  // -- table ------------------------------------------------------------------
  std::printf("\nsegment_bench: %.2f s per row in %u trials (cap %llu MiB "
              "written), "
              "scratch on %s, %ld CPUs, total %.1f s\n"
              "load average before: %s; after: %s\n\n",
              opt.seconds, opt.trials,
              static_cast<unsigned long long>(opt.max_mib),
              fs_name(parent).c_str(), ::sysconf(_SC_NPROCESSORS_ONLN), total,
              load_before.c_str(), loadavg().c_str());
  std::printf("| payload | policy | mode | records | records/s | payload MB/s "
              "| written MB/s "
              "| vs raw write() | CPU us/rec | fsyncs | close ms |\n");
  std::printf("|---|---|---|--:|--:|--:|--:|--:|--:|--:|--:|\n");
  for (auto& r : results) {
    if (!r.ran)
      continue;
    auto raw = find(results, r.payload, row_kind::raw_write, r.batch);
    std::string vs = raw && r.rate() > 0
                       ? fmt_f("%.2fx", raw->rate() / r.rate())
                       : "n/a";
    std::printf("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n",
                payload_label(r.payload).c_str(), policy_label(r.kind),
                r.batch ? ("batch" + std::to_string(batch_size)).c_str()
                        : "single",
                fmt_num(static_cast<double>(r.records)).c_str(),
                fmt_num(r.rate()).c_str(),
                fmt_f("%.1f", r.payload_mbs()).c_str(),
                fmt_f("%.1f", r.disk_mbs()).c_str(), vs.c_str(),
                fmt_f("%.2f", r.records ? r.cpu_seconds * 1e6 / r.records : 0)
                  .c_str(),
                fmt_num(static_cast<double>(r.fsyncs)).c_str(),
                fmt_f("%.1f", r.close_ms).c_str());
  }
  std::printf(
    "\nrecords/s = median of the per-trial rates; records = all trials.\n"
    "vs raw write() = (baseline: write() records/s, same payload and mode) / "
    "(this row's records/s); 1.00x = as fast as the ceiling, higher = slower.\n"
    "MB = 10^6 bytes. written = dat + idx + ts bytes the segment writes per "
    "record "
    "(%zu B idx, %zu B ts, payload to dat only when > %zu B); the baselines "
    "write "
    "the same bytes.\n"
    "Timed: the append loop only; open, a %llu-record warm-up and close() are "
    "excluded, close() (fsync of dat, idx, ts) is shown as close ms.\n"
    "CPU us/rec = process CPU time (all threads, user+sys; not kernel "
    "flusher/journal threads) over the timed loops / records: less sensitive "
    "to other load on the machine than records/s.\n"
    "fsyncs: segment = sync_count() rounds completed during the timed loop "
    "(background worker); write()+fdatasync = fdatasync calls.\n",
    fmt::idx_record_size, fmt::ts_record_size, fmt::inline_max,
    static_cast<unsigned long long>(warmup_records));

  // -- targets ----------------------------------------------------------------
  std::printf("\nTargets:\n");
  bool all = true;
  {
    auto seg = find(results, 32, row_kind::seg_n1000, true);
    auto raw = find(results, 32, row_kind::raw_write, true);
    if (!seg || !raw) {
      std::printf("- n/a  32 B batch%zu every_n(1000) > 1,000,000 rec/s and "
                  "within 3x of "
                  "raw write(): rows not run\n",
                  batch_size);
    } else {
      bool ok_rate = seg->rate() > 1e6;
      double ratio = raw->rate() / seg->rate();
      bool ok_ratio = ratio <= 3.0;
      all = all && ok_rate && ok_ratio;
      std::
        printf("- %s 32 B batch%zu every_n(1000) > 1,000,000 rec/s: %s rec/s\n",
               ok_rate ? "PASS" : "FAIL", batch_size,
               fmt_num(seg->rate()).c_str());
      std::printf("- %s 32 B batch%zu every_n(1000) within 3x of raw write() "
                  "(one write(2) "
                  "of %zu B per batch): %.2fx (raw %s rec/s)\n",
                  ok_ratio ? "PASS" : "FAIL", batch_size,
                  batch_size * disk_bytes_per_record(32), ratio,
                  fmt_num(raw->rate()).c_str());
    }
  }
  {
    auto seg = find(results, 32, row_kind::seg_n1000, false);
    if (!seg) {
      std::printf(
        "- n/a  32 B single every_n(1000) > 300,000 rec/s: row not run\n");
    } else {
      bool ok = seg->rate() > 3e5;
      all = all && ok;
      std::printf("- %s 32 B single every_n(1000) > 300,000 rec/s: %s rec/s\n",
                  ok ? "PASS" : "FAIL", fmt_num(seg->rate()).c_str());
    }
  }
  std::printf("\nOverall: %s\n", all ? "PASS" : "FAIL");
  return 0;
}
