#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <functional>
#include <thread>

#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/errc.hpp"
#include "base/file_system.hpp"
#include "persistence/segment.hpp"
#include "persistence/segment_format.hpp"
#include "support/file_bytes.hpp"
#include "support/recording_fs.hpp"
#include "support/temp_dir.hpp"

using namespace mesh;
using namespace std::chrono_literals;
namespace sf = mesh::segment_format;

namespace {

std::string text(const bytes& b) {
  return std::string(b.begin(), b.end());
}

// A log directory inside a temp dir, with paths to the live files.
struct fixture {
  test::temp_dir tmp;
  std::string dir = tmp / "log";

  std::string file(const char* name, uint32_t gen = 1) const {
    return dir + "/v" + std::to_string(gen) + "/" + name;
  }

  std::unique_ptr<segment> open(segment_options opts = {}) {
    if (opts.policy.type == fsync_policy::kind::every_n
        && opts.policy.n == 1000)
      opts.policy = fsync_policy::never();
    auto seg = segment::open(dir, std::move(opts));
    REQUIRE(seg);
    return std::move(*seg);
  }

  std::vector<log_record> all(segment& seg) {
    std::vector<log_record> out;
    auto err = seg.for_each(0, [&](const log_record& r) {
      out.push_back(r);
      return true;
    });
    REQUIRE(!err);
    return out;
  }

  std::vector<uint64_t> seqs(segment& seg) {
    std::vector<uint64_t> out;
    for (auto& r : all(seg))
      out.push_back(r.seq);
    return out;
  }
};

// Appends payloads with timestamps 1000 + seq.
void fill(segment& seg, const std::vector<std::string>& payloads) {
  for (auto& p : payloads) {
    auto seq = seg.append(bytes_view{p}, 1000 + seg.next_seq());
    REQUIRE(seq);
  }
}

const std::string heap_a = "heap payload A (longer than eight)";
const std::string heap_b = "heap payload B (longer than eight)";

template<class Pred>
bool eventually(Pred pred, std::chrono::milliseconds limit = 5s) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline) {
    if (pred())
      return true;
    std::this_thread::sleep_for(2ms);
  }
  return pred();
}

// Counts the fsync worker's test-hook steps (segment_options::on_step).
struct policy_steps {
  std::atomic<int> requested{0};
  std::atomic<int> idle{0};

  std::function<void(std::string_view)> hook() {
    return [this](std::string_view s) {
      if (s == "policy_fsync_requested")
        ++requested;
      else if (s == "policy_wakeup_idle")
        ++idle;
    };
  }
};

// Runs `body` in a forked child and returns its exit code, or -1 when it did
// not finish within `limit` (the child is then killed): a hang fails the
// test instead of blocking the suite.
int in_child_within(const std::function<int()>& body,
                    std::chrono::milliseconds limit) {
  std::fflush(nullptr);
  auto pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0)
    ::_exit(body());
  auto deadline = std::chrono::steady_clock::now() + limit;
  int status = 0;
  while (::waitpid(pid, &status, WNOHANG) == 0) {
    if (std::chrono::steady_clock::now() >= deadline) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &status, 0);
      return -1;
    }
    std::this_thread::sleep_for(5ms);
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

} // namespace

// -- basics -------------------------------------------------------------------

TEST_CASE("records survive close and reopen with seq, payload and timestamp") {
  fixture f;
  {
    auto seg = f.open();
    fill(*seg, {"a", heap_a, "", "12345678", heap_b});
    CHECK(seg->next_seq() == 6);
    REQUIRE(!seg->close());
  }
  auto seg = f.open();
  CHECK(seg->recovery().clean());
  auto recs = f.all(*seg);
  REQUIRE(recs.size() == 5);
  CHECK(text(recs[0].payload) == "a");
  CHECK(text(recs[1].payload) == heap_a);
  CHECK(text(recs[2].payload).empty());
  CHECK(text(recs[3].payload) == "12345678");
  CHECK(text(recs[4].payload) == heap_b);
  for (size_t i = 0; i < recs.size(); ++i) {
    CHECK(recs[i].seq == i + 1);
    CHECK(recs[i].timestamp_ns == 1000 + i + 1);
  }
  CHECK(seg->next_seq() == 6);
}

TEST_CASE("payloads of at most eight bytes ride inline and skip dat") {
  fixture f;
  auto seg = f.open();
  fill(*seg, {"", "x", "12345678"});
  REQUIRE(!seg->sync());
  CHECK(test::file_size(f.file("dat")) == 0);
  CHECK(test::file_size(f.file("idx")) == 3 * sf::idx_record_size);
  CHECK(test::file_size(f.file("ts")) == 3 * sf::ts_record_size);
  fill(*seg, {"123456789"});
  REQUIRE(!seg->sync());
  CHECK(test::file_size(f.file("dat")) == 9);
}

TEST_CASE("read finds a record by seq and reports a missing one") {
  fixture f;
  auto seg = f.open();
  fill(*seg, {"one", heap_a, "three"});
  auto r = seg->read(2);
  REQUIRE(r);
  CHECK(text(r->payload) == heap_a);
  auto missing = seg->read(9);
  REQUIRE(!missing);
  CHECK(is(missing.error(), errc::not_found));
}

TEST_CASE("for_each starts at the requested seq and stops when told") {
  fixture f;
  auto seg = f.open();
  fill(*seg, {"1", "2", "3", "4", "5"});
  std::vector<uint64_t> seen;
  REQUIRE(!seg->for_each(3, [&](const log_record& r) {
    seen.push_back(r.seq);
    return r.seq < 4;
  }));
  CHECK(seen == std::vector<uint64_t>{3, 4});
}

TEST_CASE("an oversized payload is refused with invalid_argument") {
  fixture f;
  auto seg = f.open();
  std::string big(sf::max_payload + 1, 'x');
  auto r = seg->append(bytes_view{big});
  REQUIRE(!r);
  CHECK(is(r.error(), errc::invalid_argument));
  CHECK(seg->size() == 0);
}

TEST_CASE("a closed segment refuses appends") {
  fixture f;
  auto seg = f.open();
  REQUIRE(!seg->close());
  REQUIRE(!seg->close());
  CHECK(!seg->append(bytes_view{"x"}));
  CHECK(seg->sync());
}

TEST_CASE("open refuses a missing parent directory and never creates it") {
  test::temp_dir tmp;
  auto seg = segment::open(tmp / "no/such/log");
  REQUIRE(!seg);
  CHECK(is(seg.error(), errc::not_found));
  CHECK(describe(seg.error()).find("parent directory") != std::string::npos);
  CHECK_FALSE(test::exists(tmp / "no"));
}

TEST_CASE("open refuses a non-empty directory that is not a log") {
  test::temp_dir tmp;
  test::spit(tmp / "notes.txt", {'h', 'i'});
  auto seg = segment::open(tmp.path());
  REQUIRE(!seg);
  CHECK(is(seg.error(), errc::invalid_argument));
  CHECK(describe(seg.error()).find("notes.txt") != std::string::npos);
}

TEST_CASE("inspect of a missing or empty directory says there is no log") {
  test::temp_dir tmp;
  auto a = segment::inspect(tmp / "missing");
  REQUIRE(!a);
  CHECK(is(a.error(), errc::not_found));
  auto b = segment::inspect(tmp.path());
  REQUIRE(!b);
  CHECK(describe(b.error()).find("no meshd log") != std::string::npos);
}

// -- write and fsync order
// ------------------------------------------------------

TEST_CASE(
  "an append writes dat then idx then ts and sync fsyncs in the same order") {
  fixture f;
  test::recording_fs rec{real_file_system()};
  segment_options opts;
  opts.fs = &rec;
  opts.policy = fsync_policy::never();
  auto seg = f.open(opts);
  rec.clear();
  REQUIRE(seg->append(bytes_view{heap_a}));
  CHECK(rec.events()
        == std::vector<std::string>{"write:dat", "write:idx", "write:ts"});
  rec.clear();
  REQUIRE(seg->append(bytes_view{"tiny"}));
  CHECK(rec.events() == std::vector<std::string>{"write:idx", "write:ts"});
  rec.clear();
  REQUIRE(!seg->sync());
  CHECK(rec.events()
        == std::vector<std::string>{"sync:dat", "sync:idx", "sync:ts"});
}

TEST_CASE("a batch append writes each file once") {
  fixture f;
  test::recording_fs rec{real_file_system()};
  segment_options opts;
  opts.fs = &rec;
  opts.policy = fsync_policy::never();
  auto seg = f.open(opts);
  std::vector<std::string> storage;
  for (int i = 0; i < 100; ++i)
    storage.push_back(i % 3 == 0 ? std::to_string(i)
                                 : heap_a + std::to_string(i));
  std::vector<bytes_view> views(storage.begin(), storage.end());
  rec.clear();
  auto last = seg->append_batch(views, 77);
  REQUIRE(last);
  CHECK(*last == 100);
  CHECK(rec.events()
        == std::vector<std::string>{"write:dat", "write:idx", "write:ts"});
  REQUIRE(!seg->close());
  auto again = f.open();
  auto recs = f.all(*again);
  REQUIRE(recs.size() == 100);
  for (int i = 0; i < 100; ++i) {
    CHECK(text(recs[i].payload) == storage[i]);
    CHECK(recs[i].timestamp_ns == 77);
  }
}

TEST_CASE("a batch of only inline payloads skips dat") {
  fixture f;
  test::recording_fs rec{real_file_system()};
  segment_options opts;
  opts.fs = &rec;
  auto seg = f.open(opts);
  rec.clear();
  std::vector<bytes_view> views{bytes_view{"a"}, bytes_view{"bb"},
                                bytes_view{"ccc"}};
  REQUIRE(seg->append_batch(views));
  CHECK(rec.events() == std::vector<std::string>{"write:idx", "write:ts"});
}

// -- recovery
// -------------------------------------------------------------------

TEST_CASE(
  "a torn idx tail is truncated on reopen and the truncation is fsynced") {
  fixture f;
  {
    auto seg = f.open();
    fill(*seg, {"a", heap_a, "c"});
  }
  test::append_bytes(f.file("idx"), std::vector<uint8_t>(13, 0xee));
  test::recording_fs rec{real_file_system()};
  segment_options opts;
  opts.fs = &rec;
  auto seg = f.open(opts);
  CHECK(seg->recovery().torn_idx_bytes == 13);
  CHECK(f.seqs(*seg) == std::vector<uint64_t>{1, 2, 3});
  CHECK(test::file_size(f.file("idx")) == 3 * sf::idx_record_size);
  CHECK(rec.count("truncate:idx") == 1);
  REQUIRE(seg->append(bytes_view{"d"}));
  CHECK(seg->next_seq() == 5);
}

TEST_CASE(
  "a torn dat tail drops the torn heap record and every record after it") {
  fixture f;
  {
    auto seg = f.open();
    // heap, inline, heap (torn), inline after it
    fill(*seg, {heap_a, "in1", heap_b, "in2"});
  }
  auto dat = f.file("dat");
  test::truncate_to(dat, test::file_size(dat) - 5);
  auto seg = f.open();
  CHECK(seg->recovery().torn_records == 2);
  CHECK(seg->recovery().first_torn_seq == 3);
  CHECK(f.seqs(*seg) == std::vector<uint64_t>{1, 2});
  // The partial bytes of the torn payload are unreferenced and trimmed.
  CHECK(test::file_size(dat) == heap_a.size());
  CHECK(test::file_size(f.file("idx")) == 2 * sf::idx_record_size);
  CHECK(test::file_size(f.file("ts")) == 2 * sf::ts_record_size);
}

TEST_CASE("inline records between torn heap records do not stop the walk") {
  fixture f;
  {
    auto seg = f.open();
    fill(*seg, {"lead", heap_a, "mid", heap_b, "tail"});
  }
  // Cut dat inside heap_a: heap_b is torn too, although an inline record
  // sits between them and the last record is inline.
  test::truncate_to(f.file("dat"), 4);
  auto seg = f.open();
  CHECK(seg->recovery().first_torn_seq == 2);
  CHECK(f.seqs(*seg) == std::vector<uint64_t>{1});
}

TEST_CASE("external truncation of dat to the first heap record drops "
          "everything from it") {
  fixture f;
  {
    auto seg = f.open();
    fill(*seg, {"one", heap_a, "three", heap_b, "five"});
  }
  test::truncate_to(f.file("dat"), 0);
  auto seg = f.open();
  CHECK(f.seqs(*seg) == std::vector<uint64_t>{1});
  CHECK(seg->recovery().torn_records == 4);
}

TEST_CASE("dat bytes no record references are trimmed") {
  fixture f;
  {
    auto seg = f.open();
    fill(*seg, {heap_a, "x"});
  }
  test::append_bytes(f.file("dat"), std::vector<uint8_t>(100, 'z'));
  auto seg = f.open();
  CHECK(seg->recovery().trimmed_dat_bytes == 100);
  CHECK(test::file_size(f.file("dat")) == heap_a.size());
  CHECK(f.seqs(*seg) == std::vector<uint64_t>{1, 2});
}

TEST_CASE(
  "a record without a timestamp is an unfinished append and is dropped") {
  fixture f;
  {
    auto seg = f.open();
    fill(*seg, {"a", heap_a, "c"});
  }
  test::truncate_to(f.file("ts"), 2 * sf::ts_record_size + 3);
  auto seg = f.open();
  CHECK(seg->recovery().unpaired_records == 1);
  CHECK(seg->recovery().first_unpaired_seq == 3);
  CHECK(f.seqs(*seg) == std::vector<uint64_t>{1, 2});
  CHECK(test::file_size(f.file("ts")) == 2 * sf::ts_record_size);
}

TEST_CASE("checksum damage mid-file drops only the damaged record and ts stays "
          "paired") {
  fixture f;
  {
    auto seg = f.open();
    for (int i = 1; i <= 6; ++i) {
      auto p = heap_a + std::to_string(i);
      REQUIRE(seg->append(bytes_view{p}, 5000 + i));
    }
  }
  // Damage the payload of seq 3 (heap records are laid out back to back).
  auto len = heap_a.size() + 1;
  test::flip_byte(f.file("dat"), 2 * len + 4);
  auto seg = f.open();
  const auto& rep = seg->recovery();
  CHECK(rep.bad_checksum_records == 1);
  REQUIRE(rep.bad_checksum_runs.size() == 1);
  CHECK(rep.bad_checksum_runs[0].first_position == 2);
  CHECK(rep.bad_checksum_runs[0].seq_before == 2);
  CHECK(rep.bad_checksum_runs[0].seq_after == 4);
  CHECK(rep.rewrite);
  auto recs = f.all(*seg);
  REQUIRE(recs.size() == 5);
  std::vector<uint64_t> want{1, 2, 4, 5, 6};
  for (size_t i = 0; i < recs.size(); ++i) {
    CHECK(recs[i].seq == want[i]);
    CHECK(recs[i].timestamp_ns == 5000 + want[i]);
    CHECK(text(recs[i].payload) == heap_a + std::to_string(want[i]));
  }
  // The repair went into a new generation; the next open is clean.
  CHECK(seg->generation() == 2);
  seg.reset();
  auto again = f.open();
  CHECK(again->recovery().clean());
  CHECK(f.seqs(*again) == want);
  REQUIRE(again->append(bytes_view{"next"}));
  CHECK(again->next_seq() == 8);
}

TEST_CASE("a damaged idx record is dropped by its checksum") {
  fixture f;
  {
    auto seg = f.open();
    fill(*seg, {"a", "b", "c", "d"});
  }
  // Flip a bit in the inline payload of seq 2.
  test::flip_byte(f.file("idx"), 1 * sf::idx_record_size + 8);
  auto seg = f.open();
  CHECK(f.seqs(*seg) == std::vector<uint64_t>{1, 3, 4});
  CHECK(seg->recovery().bad_checksum_records == 1);
}

TEST_CASE(
  "a bad checksum on the last record is a tail and is truncated in place") {
  fixture f;
  {
    auto seg = f.open();
    fill(*seg, {"a", heap_a});
  }
  test::flip_byte(f.file("dat"), 0);
  auto seg = f.open();
  CHECK_FALSE(seg->recovery().rewrite);
  CHECK(seg->generation() == 1);
  CHECK(f.seqs(*seg) == std::vector<uint64_t>{1});
  CHECK(test::file_size(f.file("dat")) == 0);
}

TEST_CASE("a missing ts file keeps the records with zero timestamps") {
  fixture f;
  {
    auto seg = f.open();
    fill(*seg, {"a", heap_a});
  }
  ::unlink(f.file("ts").c_str());
  auto seg = f.open();
  CHECK(seg->recovery().ts_missing);
  auto recs = f.all(*seg);
  REQUIRE(recs.size() == 2);
  CHECK(recs[0].timestamp_ns == 0);
  seg.reset();
  // The lost timestamps stay reported: recovery does not invent them.
  auto again = f.open();
  auto rep = again->recovery();
  CHECK_FALSE(rep.ts_missing);
  CHECK_FALSE(rep.rewrite);
  CHECK(rep.bad_timestamp_records == 2);
  CHECK(rep.kept_records == 2);
}

TEST_CASE("inspect reports damage without changing a byte") {
  fixture f;
  {
    auto seg = f.open();
    fill(*seg, {"a", heap_a, heap_b});
  }
  test::append_bytes(f.file("idx"), std::vector<uint8_t>(7, 1));
  test::flip_byte(f.file("dat"), 3);
  auto idx_before = test::slurp(f.file("idx"));
  auto dat_before = test::slurp(f.file("dat"));
  std::vector<uint64_t> seen;
  auto rep = segment::inspect(f.dir, [&](const log_record& r) {
    seen.push_back(r.seq);
  });
  REQUIRE(rep);
  CHECK_FALSE(rep->clean());
  CHECK(rep->torn_idx_bytes == 7);
  REQUIRE(rep->bad_checksum_runs.size() == 1);
  CHECK(rep->bad_checksum_runs[0].first_position == 1);
  CHECK(seen == std::vector<uint64_t>{1, 3});
  CHECK(test::slurp(f.file("idx")) == idx_before);
  CHECK(test::slurp(f.file("dat")) == dat_before);
  CHECK_FALSE(rep->findings().empty());
}

// -- rollback and poisoning
// -------------------------------------------------------

namespace {

void check_rollback_at_write(int nth) {
  fixture f;
  fault_injecting_file_system faulty{real_file_system()};
  segment_options opts;
  opts.fs = &faulty;
  auto seg = f.open(opts);
  fill(*seg, {"first", heap_a});
  REQUIRE(!seg->sync());
  auto sizes = [&] {
    return std::vector<uint64_t>{test::file_size(f.file("dat")),
                                 test::file_size(f.file("idx")),
                                 test::file_size(f.file("ts"))};
  };
  auto before = sizes();
  // The nth write of the next heap append fails after half of its bytes.
  faulty.fail_nth(fs_op::write, static_cast<uint64_t>(nth), 5);
  auto r = seg->append(bytes_view{heap_b});
  REQUIRE(!r);
  CHECK(is(r.error(), errc::io_error));
  CHECK_FALSE(seg->poisoned());
  CHECK(sizes() == before);
  CHECK(seg->next_seq() == 3);
  auto ok = seg->append(bytes_view{heap_b});
  REQUIRE(ok);
  CHECK(*ok == 3);
  seg.reset();
  auto again = f.open();
  CHECK(again->recovery().clean());
  CHECK(f.seqs(*again) == std::vector<uint64_t>{1, 2, 3});
}

} // namespace

TEST_CASE("a write failing half-way in dat is rolled back") {
  check_rollback_at_write(1);
}

TEST_CASE("a write failing half-way in idx rolls back idx and dat") {
  check_rollback_at_write(2);
}

TEST_CASE("a write failing half-way in ts rolls back ts, idx and dat") {
  check_rollback_at_write(3);
}

TEST_CASE("a failed batch append leaves nothing behind") {
  fixture f;
  fault_injecting_file_system faulty{real_file_system()};
  segment_options opts;
  opts.fs = &faulty;
  auto seg = f.open(opts);
  fill(*seg, {"keep"});
  faulty.fail_nth(fs_op::write, 2, 40);
  std::vector<bytes_view> views{bytes_view{heap_a}, bytes_view{"x"},
                                bytes_view{heap_b}};
  REQUIRE(!seg->append_batch(views));
  CHECK(seg->size() == 1);
  CHECK(seg->next_seq() == 2);
  REQUIRE(!seg->sync());
  CHECK(test::file_size(f.file("idx")) == sf::idx_record_size);
  CHECK(test::file_size(f.file("dat")) == 0);
}

TEST_CASE("a failed rollback poisons the segment until it is reopened") {
  fixture f;
  fault_injecting_file_system faulty{real_file_system()};
  segment_options opts;
  opts.fs = &faulty;
  std::vector<std::string> warnings;
  opts.on_warning = [&](const std::string& w) {
    warnings.push_back(w);
  };
  auto seg = f.open(opts);
  fill(*seg, {"a", heap_a});
  faulty.fail_nth(fs_op::write, 2, 10); // idx write tears
  faulty.fail_from(fs_op::truncate, 1); // and cannot be undone
  auto r = seg->append(bytes_view{heap_b});
  REQUIRE(!r);
  CHECK(seg->poisoned());
  CHECK(is(seg->append(bytes_view{"x"}).error(), errc::poisoned));
  CHECK(is(seg->sync(), errc::poisoned));
  CHECK(is(seg->compact(retention::keep_last(1)).error(), errc::poisoned));
  CHECK(std::any_of(warnings.begin(), warnings.end(), [](const std::string& w) {
    return w.find("poisoned") != std::string::npos;
  }));
  faulty.clear();
  seg.reset();
  // Reopening runs recovery against the disk: the torn idx tail and the
  // orphan dat bytes go, the two good records stay.
  auto again = f.open();
  CHECK(f.seqs(*again) == std::vector<uint64_t>{1, 2});
  CHECK(again->recovery().torn_idx_bytes == 10);
  CHECK_FALSE(again->poisoned());
  REQUIRE(again->append(bytes_view{"ok"}));
}

// -- fsync policies
// -------------------------------------------------------------

TEST_CASE("fsync policies parse from text and print back") {
  for (auto txt :
       {"never", "every_n:1000", "interval:50", "interval_or_bytes:20:4096"}) {
    auto p = fsync_policy::parse(txt);
    REQUIRE(p);
    CHECK(p->to_string() == txt);
  }
  for (auto txt : {"", "always", "every_n", "every_n:0", "every_n:x",
                   "interval:", "interval_or_bytes:5", "never:1"}) {
    auto p = fsync_policy::parse(txt);
    REQUIRE(!p);
    CHECK(is(p.error(), errc::invalid_argument));
  }
}

TEST_CASE("fsync periods beyond the maximum are refused, naming it") {
  auto max_ms = std::to_string(fsync_policy::max_period.count());
  auto over_ms = std::to_string(fsync_policy::max_period.count() + 1);
  auto ok = fsync_policy::parse("interval:" + max_ms);
  REQUIRE(ok);
  CHECK(ok->period == fsync_policy::max_period);
  auto ok2 = fsync_policy::parse("interval_or_bytes:" + max_ms + ":1");
  REQUIRE(ok2);
  CHECK(ok2->period == fsync_policy::max_period);
  for (auto txt : {"interval:" + over_ms, "interval_or_bytes:" + over_ms + ":1",
                   std::string{"interval:9223372036855"},
                   std::string{"interval_or_bytes:9223372036855:4096"}}) {
    INFO(txt);
    auto p = fsync_policy::parse(txt);
    REQUIRE(!p);
    CHECK(is(p.error(), errc::invalid_argument));
    CHECK(describe(p.error()).find(max_ms) != std::string::npos);
  }
  // The factories clamp instead of overflowing.
  CHECK(fsync_policy::interval(std::chrono::milliseconds::max()).period
        == fsync_policy::max_period);
}

TEST_CASE("counts up to the largest u64 parse; one more is refused") {
  auto max = std::to_string(UINT64_MAX);
  auto n = fsync_policy::parse("every_n:" + max);
  REQUIRE(n);
  CHECK(n->n == UINT64_MAX);
  auto b = fsync_policy::parse("interval_or_bytes:5:" + max);
  REQUIRE(b);
  CHECK(b->bytes == UINT64_MAX);
  for (auto txt : {std::string{"every_n:18446744073709551616"},
                   std::string{"interval_or_bytes:5:18446744073709551616"},
                   std::string{"every_n:99999999999999999999"}}) {
    INFO(txt);
    auto p = fsync_policy::parse(txt);
    REQUIRE(!p);
    CHECK(describe(p.error()).find(max) != std::string::npos);
  }
}

TEST_CASE("a segment with the longest fsync period, or one past it, closes "
          "promptly") {
  for (auto period :
       {fsync_policy::max_period, std::chrono::milliseconds{9223372036855}}) {
    INFO("period " << period.count() << " ms");
    fixture f;
    auto dir = f.dir;
    auto code = in_child_within(
      [dir, period] {
        segment_options opts;
        opts.policy = fsync_policy::interval(period);
        auto seg = segment::open(dir, opts);
        if (!seg || !(*seg)->append(bytes_view{"x"}))
          return 2;
        // An overflowed deadline makes the worker's timed wait return at
        // once: it spins a core and starves close(). Idle, it must sleep.
        auto cpu_before = std::clock();
        std::this_thread::sleep_for(300ms);
        auto cpu_ms = (std::clock() - cpu_before) * 1000 / CLOCKS_PER_SEC;
        if (cpu_ms > 100)
          return 4;
        return (*seg)->close() ? 3 : 0;
      },
      10s);
    CHECK(code == 0);
  }
}

TEST_CASE("policy never fsyncs only on sync and close") {
  fixture f;
  test::recording_fs rec{real_file_system()};
  policy_steps steps;
  segment_options opts;
  opts.fs = &rec;
  opts.policy = fsync_policy::never();
  opts.on_step = steps.hook();
  auto seg = f.open(opts);
  rec.clear();
  for (int i = 0; i < 50; ++i)
    REQUIRE(seg->append(bytes_view{"x"}));
  // Requests are made on the append path, so this is exact, not a guess
  // after a sleep; and with no worker nothing else fsyncs.
  CHECK(steps.requested == 0);
  CHECK(rec.count("sync:") == 0);
  CHECK(seg->durable_seq() == 0);
  REQUIRE(!seg->sync());
  CHECK(rec.count("sync:") == 3);
  CHECK(seg->durable_seq() == 50);
  REQUIRE(seg->append(bytes_view{"y"}));
  REQUIRE(!seg->close());
  CHECK(rec.count("sync:") == 6);
  CHECK(steps.requested == 0);
  CHECK(steps.idle == 0);
}

TEST_CASE("policy every_n fsyncs in the background after n records") {
  fixture f;
  policy_steps steps;
  segment_options opts;
  opts.policy = fsync_policy::every_n(10);
  opts.on_step = steps.hook();
  auto seg = f.open(opts);
  for (int i = 0; i < 9; ++i)
    REQUIRE(seg->append(bytes_view{"x"}));
  CHECK(steps.requested == 0);
  CHECK(seg->sync_count() == 0);
  REQUIRE(seg->append(bytes_view{"x"}));
  CHECK(steps.requested == 1);
  // durable_seq and sync_count are two counters: wait for both.
  CHECK(eventually([&] {
    return seg->durable_seq() >= 10 && seg->sync_count() >= 1;
  }));
}

TEST_CASE("policy fsyncs coalesce while one is running") {
  fixture f;
  test::recording_fs rec{real_file_system()};
  rec.sync_delay = 30ms;
  segment_options opts;
  opts.fs = &rec;
  opts.policy = fsync_policy::every_n(1);
  auto seg = f.open(opts);
  for (int i = 0; i < 300; ++i)
    REQUIRE(seg->append(bytes_view{"x"}));
  CHECK(eventually([&] {
    return seg->durable_seq() == 300;
  }));
  // 300 requests, each fsync round takes ~90 ms: they must have merged.
  CHECK(seg->sync_count() < 30);
}

TEST_CASE("a failed policy fsync is logged and the worker keeps going") {
  fixture f;
  fault_injecting_file_system faulty{real_file_system()};
  segment_options opts;
  opts.fs = &faulty;
  opts.policy = fsync_policy::every_n(1);
  std::mutex mtx;
  std::vector<std::string> warnings;
  opts.on_warning = [&](const std::string& w) {
    std::lock_guard<std::mutex> guard{mtx};
    warnings.push_back(w);
  };
  auto seg = f.open(opts);
  faulty.fail_nth(fs_op::sync, 1);
  REQUIRE(seg->append(bytes_view{"a"}));
  CHECK(eventually([&] {
    return seg->failed_sync_count() == 1;
  }));
  REQUIRE(seg->append(bytes_view{"b"}));
  CHECK(eventually([&] {
    return seg->durable_seq() == 2;
  }));
  std::lock_guard<std::mutex> guard{mtx};
  REQUIRE(warnings.size() == 1);
  CHECK(warnings[0].find("policy fsync failed") != std::string::npos);
}

TEST_CASE("an explicit sync reports its failure to the caller") {
  fixture f;
  fault_injecting_file_system faulty{real_file_system()};
  segment_options opts;
  opts.fs = &faulty;
  auto seg = f.open(opts);
  REQUIRE(seg->append(bytes_view{"a"}));
  faulty.fail_nth(fs_op::sync, 2);
  auto err = seg->sync();
  CHECK(is(err, errc::io_error));
  CHECK(seg->durable_seq() == 0);
  REQUIRE(!seg->sync());
  CHECK(seg->durable_seq() == 1);
}

TEST_CASE("policy interval fsyncs pending records after the period") {
  fixture f;
  policy_steps steps;
  segment_options opts;
  opts.policy = fsync_policy::interval(20ms);
  opts.on_step = steps.hook();
  auto seg = f.open(opts);
  REQUIRE(seg->append(bytes_view{"a"}));
  CHECK(eventually(
    [&] {
      return seg->durable_seq() == 1 && seg->sync_count() >= 1;
    },
    2s));
  auto syncs = seg->sync_count();
  // Three timer wake-ups with nothing new: each was a chance to fsync an
  // idle log, and none did.
  auto idle = steps.idle.load();
  CHECK(eventually(
    [&] {
      return steps.idle >= idle + 3;
    },
    2s));
  CHECK(seg->sync_count() == syncs);
}

TEST_CASE("policy interval_or_bytes fsyncs early once enough bytes pile up") {
  fixture f;
  policy_steps steps;
  segment_options opts;
  opts.policy = fsync_policy::interval_or_bytes(60000ms, 4096);
  opts.on_step = steps.hook();
  auto seg = f.open(opts);
  std::string big(1000, 'b');
  REQUIRE(seg->append(bytes_view{big}));
  CHECK(steps.requested == 0);
  // Each append adds 1040 bytes: the fourth crosses 4096.
  for (int i = 0; i < 2; ++i)
    REQUIRE(seg->append(bytes_view{big}));
  CHECK(steps.requested == 0);
  REQUIRE(seg->append(bytes_view{big}));
  CHECK(steps.requested == 1);
  CHECK(eventually(
    [&] {
      return seg->durable_seq() >= 4;
    },
    2s));
}

// -- retention and compaction
// -----------------------------------------------------

TEST_CASE("retention by count keeps the newest records in a new generation") {
  fixture f;
  auto seg = f.open();
  for (int i = 1; i <= 10; ++i)
    fill(*seg, {i % 2 ? heap_a + std::to_string(i) : std::to_string(i)});
  auto res = seg->compact(retention::keep_last(3));
  REQUIRE(res);
  CHECK(res->dropped_records == 7);
  CHECK(res->kept_records == 3);
  CHECK(res->generation == 2);
  CHECK(f.seqs(*seg) == std::vector<uint64_t>{8, 9, 10});
  CHECK_FALSE(test::exists(f.dir + "/v1"));
  REQUIRE(seg->append(bytes_view{heap_b}));
  seg.reset();
  auto again = f.open();
  CHECK(again->recovery().clean());
  auto recs = f.all(*again);
  REQUIRE(recs.size() == 4);
  CHECK(text(recs[0].payload) == "8");
  CHECK(text(recs[1].payload) == heap_a + "9");
  CHECK(recs[1].timestamp_ns == 1009);
  CHECK(text(recs[3].payload) == heap_b);
}

TEST_CASE("retention by bytes keeps the longest suffix within the budget") {
  fixture f;
  auto seg = f.open();
  std::string p(100, 'p');
  for (int i = 0; i < 10; ++i)
    fill(*seg, {p});
  auto res = seg->compact(retention::max_bytes(350));
  REQUIRE(res);
  CHECK(res->kept_records == 3);
  CHECK(seg->first_seq() == 8);
}

TEST_CASE("retention by age drops records older than the limit") {
  fixture f;
  auto seg = f.open();
  auto now = unix_now_ns();
  uint64_t hour = 3600ull * 1000000000ull;
  REQUIRE(seg->append(bytes_view{"old1"}, now - 3 * hour));
  REQUIRE(seg->append(bytes_view{"old2"}, now - 2 * hour));
  REQUIRE(seg->append(bytes_view{"new"}, now));
  auto res = seg->compact(retention::max_age(std::chrono::hours{1}));
  REQUIRE(res);
  CHECK(res->dropped_records == 2);
  CHECK(f.seqs(*seg) == std::vector<uint64_t>{3});
}

TEST_CASE("compaction with nothing to drop changes nothing") {
  fixture f;
  auto seg = f.open();
  fill(*seg, {"a", "b"});
  auto res = seg->compact(retention::keep_last(5));
  REQUIRE(res);
  CHECK(res->dropped_records == 0);
  CHECK(seg->generation() == 1);
}

TEST_CASE("compacting every record keeps seqs counting across reopen") {
  fixture f;
  {
    auto seg = f.open();
    fill(*seg, {"a", "b", "c"});
    REQUIRE(seg->compact(retention::keep_last(0)));
    CHECK(seg->size() == 0);
    CHECK(seg->first_seq() == 4);
  }
  auto seg = f.open();
  CHECK(seg->next_seq() == 4);
  auto r = seg->append(bytes_view{"d"});
  REQUIRE(r);
  CHECK(*r == 4);
}

TEST_CASE("a missing manifest falls back to the highest complete generation") {
  fixture f;
  {
    auto seg = f.open();
    fill(*seg, {"a", "b", "c", "d"});
    REQUIRE(seg->compact(retention::keep_last(2)));
  }
  ::unlink((f.dir + "/manifest").c_str());
  auto seg = f.open();
  CHECK(seg->generation() == 2);
  CHECK(seg->recovery().generation_note.find("missing") != std::string::npos);
  CHECK(f.seqs(*seg) == std::vector<uint64_t>{3, 4});
  CHECK(test::exists(f.dir + "/manifest"));
  seg.reset();
  CHECK(f.open()->recovery().clean());
}

TEST_CASE("a corrupt manifest falls back to the highest complete generation") {
  fixture f;
  {
    auto seg = f.open();
    fill(*seg, {"a", "b", "c"});
    REQUIRE(seg->compact(retention::keep_last(1)));
  }
  test::flip_byte(f.dir + "/manifest", 9);
  auto seg = f.open();
  CHECK(seg->generation() == 2);
  CHECK(seg->recovery().generation_note.find("corrupt") != std::string::npos);
  CHECK(f.seqs(*seg) == std::vector<uint64_t>{3});
}

TEST_CASE("orphan generations and unfinished compactions are swept on open") {
  fixture f;
  {
    auto seg = f.open();
    fill(*seg, {"a", "b", "c"});
    REQUIRE(seg->compact(retention::keep_last(2))); // live: v2
  }
  // An older generation left by a crash after the flip, a newer one whose
  // flip never happened, an unfinished compaction and a manifest temp file.
  ::mkdir((f.dir + "/v1").c_str(), 0755);
  test::spit(f.dir + "/v1/idx", {1, 2, 3});
  ::mkdir((f.dir + "/v3").c_str(), 0755);
  ::mkdir((f.dir + "/v4.tmp").c_str(), 0755);
  test::spit(f.dir + "/manifest.tmp.1.1", {0});
  auto seg = f.open();
  CHECK(seg->generation() == 2);
  CHECK(seg->recovery().orphans.size() == 4);
  CHECK(f.seqs(*seg) == std::vector<uint64_t>{2, 3});
  for (auto name : {"v1", "v3", "v4.tmp", "manifest.tmp.1.1"})
    CHECK_FALSE(test::exists(f.dir + "/" + name));
}

TEST_CASE("a compaction failing at any file-system call leaves the old log "
          "live and usable") {
  for (auto op :
       {fs_op::mkdir, fs_op::open, fs_op::write, fs_op::sync, fs_op::rename}) {
    for (uint64_t nth = 1; nth <= 8; ++nth) {
      fixture f;
      fault_injecting_file_system faulty{real_file_system()};
      segment_options opts;
      opts.fs = &faulty;
      opts.policy = fsync_policy::never();
      auto seg = f.open(opts);
      for (int i = 1; i <= 6; ++i)
        fill(*seg, {heap_a + std::to_string(i)});
      faulty.fail_nth(op, nth);
      auto res = seg->compact(retention::keep_last(2));
      faulty.clear();
      INFO("op " << static_cast<int>(op) << " nth " << nth);
      if (res) {
        // The failure hit a step after the point of no return, or the
        // compaction needed fewer calls than nth.
        if (!seg->poisoned())
          CHECK(f.seqs(*seg) == std::vector<uint64_t>{5, 6});
      } else if (!seg->poisoned()) {
        CHECK(f.seqs(*seg) == std::vector<uint64_t>{1, 2, 3, 4, 5, 6});
        REQUIRE(seg->append(bytes_view{"after"}));
      }
      seg.reset();
      auto again = segment::open(f.dir);
      REQUIRE(again);
      auto seqs = f.seqs(**again);
      bool old_live = seqs.size() >= 6 && seqs.front() == 1;
      bool new_live = !seqs.empty() && seqs.front() == 5;
      CHECK((old_live || new_live));
      auto names = real_file_system()->list_dir(f.dir);
      REQUIRE(names);
      CHECK(names->size() == 2); // manifest + the live generation
    }
  }
}

TEST_CASE("a crash between any two steps of compaction leaves a readable log") {
  const char* steps[] = {"generation_created",    "generation_written",
                         "generation_synced",     "generation_renamed",
                         "manifest_temp_written", "manifest_renamed",
                         "manifest_flipped"};
  for (auto crash_at : steps) {
    fixture f;
    {
      auto seg = f.open();
      for (int i = 1; i <= 6; ++i)
        fill(*seg, {i % 2 ? heap_a + std::to_string(i) : std::to_string(i)});
    }
    auto pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      segment_options opts;
      opts.policy = fsync_policy::never();
      std::string target = crash_at;
      opts.on_step = [target](std::string_view s) {
        if (s == target)
          ::_exit(0); // dies here, no destructors, no cleanup
      };
      auto seg = segment::open(f.dir, opts);
      if (!seg)
        ::_exit(2);
      (void)(*seg)->compact(retention::keep_last(2));
      ::_exit(3); // the step never came
    }
    int status = 0;
    ::waitpid(pid, &status, 0);
    INFO("crash at " << crash_at);
    REQUIRE(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);
    auto seg = f.open();
    auto recs = f.all(*seg);
    bool old_live = recs.size() == 6 && recs.front().seq == 1;
    bool new_live = recs.size() == 2 && recs.front().seq == 5;
    CHECK((old_live || new_live));
    for (auto& r : recs)
      CHECK(text(r.payload)
            == (r.seq % 2 ? heap_a + std::to_string(r.seq)
                          : std::to_string(r.seq)));
    auto names = real_file_system()->list_dir(f.dir);
    REQUIRE(names);
    CHECK(names->size() == 2);
    REQUIRE(seg->append(bytes_view{"after crash"}));
  }
}

TEST_CASE(
  "a recovery rewrite interrupted by a crash is redone on the next open") {
  for (auto crash_at :
       {"generation_written", "generation_renamed", "manifest_renamed"}) {
    fixture f;
    {
      auto seg = f.open();
      for (int i = 1; i <= 4; ++i)
        fill(*seg, {heap_a + std::to_string(i)});
    }
    test::flip_byte(f.file("dat"), 3); // seq 1 damaged: forces a rewrite
    auto pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      segment_options opts;
      std::string target = crash_at;
      opts.on_step = [target](std::string_view s) {
        if (s == target)
          ::_exit(0);
      };
      (void)segment::open(f.dir, opts);
      ::_exit(3);
    }
    int status = 0;
    ::waitpid(pid, &status, 0);
    INFO("crash at " << crash_at);
    CHECK(WEXITSTATUS(status) == 0);
    auto seg = f.open();
    CHECK(f.seqs(*seg) == std::vector<uint64_t>{2, 3, 4});
    seg.reset();
    CHECK(f.open()->recovery().clean());
  }
}

TEST_CASE("a damaged dat offset in the middle drops only that record") {
  fixture f;
  std::string p(20, 'q');
  {
    auto seg = f.open();
    for (int i = 0; i < 10; ++i)
      fill(*seg, {p});
  }
  // seq 3's location field now points far past the end of dat.
  test::flip_byte(f.file("idx"), 2 * sf::idx_record_size + 14);
  auto rep = segment::inspect(f.dir);
  REQUIRE(rep);
  REQUIRE(rep->bad_checksum_runs.size() == 1);
  CHECK(rep->bad_checksum_runs[0].first_position == 2);
  CHECK(rep->bad_checksum_runs[0].count == 1);
  auto seg = f.open();
  CHECK(f.seqs(*seg) == std::vector<uint64_t>{1, 2, 4, 5, 6, 7, 8, 9, 10});
}

TEST_CASE("a stray copy of an old record is dropped and seqs keep increasing") {
  fixture f;
  {
    auto seg = f.open();
    fill(*seg, {"a", "b", "c", "d", "e"});
  }
  auto idx = test::slurp(f.file("idx"));
  auto ts = test::slurp(f.file("ts"));
  std::vector<uint8_t> rec2(idx.begin() + 32, idx.begin() + 64);
  std::vector<uint8_t> ts2(ts.begin() + 8, ts.begin() + 16);
  test::append_bytes(f.file("idx"), rec2);
  test::append_bytes(f.file("ts"), ts2);
  auto seg = f.open();
  CHECK(seg->recovery().out_of_order_records == 1);
  CHECK(seg->recovery().first_out_of_order_seq == 2);
  CHECK(f.seqs(*seg) == std::vector<uint64_t>{1, 2, 3, 4, 5});
  auto r = seg->append(bytes_view{"f"});
  REQUIRE(r);
  CHECK(*r == 6);
}

// -- seq and generation limits
// -------------------------------------------------------------

namespace {

void write_manifest_file(const std::string& dir, uint32_t gen,
                         uint64_t base_seq) {
  uint8_t buf[sf::manifest_size];
  sf::encode_manifest(sf::manifest{gen, base_seq}, buf);
  test::spit(dir + "/manifest", std::vector<uint8_t>(buf, buf + sizeof(buf)));
}

// An empty log directory whose manifest names `gen` with `base_seq`.
void make_empty_log(const std::string& dir, uint32_t gen, uint64_t base_seq) {
  ::mkdir(dir.c_str(), 0755);
  ::mkdir((dir + "/" + sf::generation_dir_name(gen)).c_str(), 0755);
  write_manifest_file(dir, gen, base_seq);
}

} // namespace

TEST_CASE("a manifest base_seq past max_seq + 1 is corrupt and never wraps "
          "the log") {
  for (uint64_t base : {UINT64_MAX, sf::max_seq + 2}) {
    INFO("base_seq " << base);
    fixture f;
    make_empty_log(f.dir, 1, base);
    uint8_t buf[sf::manifest_size];
    sf::encode_manifest(sf::manifest{1, base}, buf);
    sf::manifest m;
    CHECK_FALSE(sf::decode_manifest(bytes_view{buf, sizeof(buf)}, m));
    auto seg = f.open();
    CHECK(seg->recovery().generation_note.find("corrupt") != std::string::npos);
    auto a = seg->append(bytes_view{"a"});
    auto b = seg->append(bytes_view{"b"});
    REQUIRE(a);
    REQUIRE(b);
    CHECK(*a >= 1);
    CHECK(*b == *a + 1);
  }
}

TEST_CASE("appends up to max_seq succeed and the one past it fails") {
  fixture f;
  make_empty_log(f.dir, 1, sf::max_seq - 1);
  {
    auto seg = f.open();
    CHECK(seg->recovery().clean());
    // A batch that would run past max_seq fails as a whole.
    std::vector<bytes_view> three{bytes_view{"1"}, bytes_view{"2"},
                                  bytes_view{"3"}};
    auto over = seg->append_batch(three);
    REQUIRE(!over);
    CHECK(is(over.error(), errc::limit_exceeded));
    CHECK(describe(over.error()).find(std::to_string(sf::max_seq))
          != std::string::npos);
    CHECK(seg->size() == 0);
    auto a = seg->append(bytes_view{heap_a});
    REQUIRE(a);
    CHECK(*a == sf::max_seq - 1);
    auto b = seg->append(bytes_view{"last"});
    REQUIRE(b);
    CHECK(*b == sf::max_seq);
    auto c = seg->append(bytes_view{"one too many"});
    REQUIRE(!c);
    CHECK(is(c.error(), errc::limit_exceeded));
    CHECK(seg->size() == 2);
    CHECK(seg->next_seq() == sf::max_seq + 1);
  }
  // Reopen, then compact everything: the manifest records max_seq + 1,
  // which is still valid, and the log stays full instead of wrapping.
  auto seg = f.open();
  CHECK(seg->recovery().clean());
  CHECK(seg->next_seq() == sf::max_seq + 1);
  REQUIRE(seg->compact(retention::keep_last(0)));
  seg.reset();
  auto again = f.open();
  CHECK(again->recovery().clean());
  CHECK(again->next_seq() == sf::max_seq + 1);
  CHECK(!again->append(bytes_view{"x"}));
}

TEST_CASE("an idx record with a seq past max_seq is damage, not a wrap") {
  fixture f;
  {
    auto seg = f.open();
    fill(*seg, {"a", "b"});
  }
  // A record with a valid checksum but seq 2^64-1 after seq 2.
  uint8_t rec[sf::idx_record_size];
  sf::make_record(UINT64_MAX, bytes_view{"z"}, 0, rec);
  test::append_bytes(f.file("idx"),
                     std::vector<uint8_t>(rec, rec + sizeof(rec)));
  test::append_bytes(f.file("ts"), std::vector<uint8_t>(8, 1));
  auto seg = f.open();
  CHECK_FALSE(seg->recovery().clean());
  CHECK(f.seqs(*seg) == std::vector<uint64_t>{1, 2});
  auto next = seg->append(bytes_view{"c"});
  REQUIRE(next);
  CHECK(*next == 3);
}

TEST_CASE("generations up to max_generation are valid; compaction refuses to "
          "pass it") {
  CHECK(sf::max_generation == UINT32_MAX - 1);
  uint32_t g = 0;
  CHECK(sf::parse_generation_dir_name("v4294967294", g));
  CHECK(g == sf::max_generation);
  CHECK_FALSE(sf::parse_generation_dir_name("v4294967295", g));
  fixture f;
  make_empty_log(f.dir, sf::max_generation, 1);
  auto seg = f.open();
  CHECK(seg->recovery().clean());
  CHECK(seg->generation() == sf::max_generation);
  fill(*seg, {"a", "b", "c"});
  auto res = seg->compact(retention::keep_last(1));
  REQUIRE(!res);
  CHECK(is(res.error(), errc::limit_exceeded));
  CHECK(describe(res.error()).find(std::to_string(sf::max_generation))
        != std::string::npos);
  // The log is untouched and usable.
  CHECK(seg->generation() == sf::max_generation);
  CHECK(f.seqs(*seg) == std::vector<uint64_t>{1, 2, 3});
  REQUIRE(seg->append(bytes_view{"d"}));
  seg.reset();
  auto again = f.open();
  CHECK(again->recovery().clean());
  CHECK(f.seqs(*again) == std::vector<uint64_t>{1, 2, 3, 4});
}

TEST_CASE("a recovery rewrite refuses to pass max_generation") {
  fixture f;
  make_empty_log(f.dir, sf::max_generation, 1);
  {
    auto seg = f.open();
    for (int i = 1; i <= 3; ++i)
      fill(*seg, {heap_a + std::to_string(i)});
  }
  test::flip_byte(f.file("dat", sf::max_generation), 3); // forces a rewrite
  auto before = test::slurp(f.file("idx", sf::max_generation));
  auto seg = segment::open(f.dir, {});
  REQUIRE(!seg);
  CHECK(is(seg.error(), errc::limit_exceeded));
  CHECK(test::slurp(f.file("idx", sf::max_generation)) == before);
}

TEST_CASE("a manifest naming generation 2^32-1 is corrupt") {
  fixture f;
  ::mkdir(f.dir.c_str(), 0755);
  ::mkdir((f.dir + "/v4294967295").c_str(), 0755);
  write_manifest_file(f.dir, UINT32_MAX, 1);
  uint8_t buf[sf::manifest_size];
  sf::encode_manifest(sf::manifest{UINT32_MAX, 1}, buf);
  sf::manifest m;
  CHECK_FALSE(sf::decode_manifest(bytes_view{buf, sizeof(buf)}, m));
  auto seg = segment::open(f.dir, {});
  REQUIRE(!seg);
  CHECK(describe(seg.error()).find("manifest") != std::string::npos);
}

// -- durability published by recovery
// -------------------------------------------------------------

TEST_CASE("open fsyncs what recovery kept before it publishes durable_seq") {
  fixture f;
  {
    auto seg = f.open();
    fill(*seg, {"a", heap_a, "c"});
  }
  test::append_bytes(f.file("idx"), std::vector<uint8_t>(13, 0xee));
  SECTION("after a repair") {}
  SECTION("of a clean log") {
    test::truncate_to(f.file("idx"), 3 * sf::idx_record_size);
  }
  // The files may hold writes of a crashed process that never reached the
  // disk: recovery must fsync them before calling them durable.
  test::recording_fs rec{real_file_system()};
  segment_options opts;
  opts.fs = &rec;
  auto seg = f.open(opts);
  auto events = rec.events();
  for (auto name : {"sync:dat", "sync:idx", "sync:ts", "sync_dir:v1"})
    CHECK(std::count(events.begin(), events.end(), name) == 1);
  CHECK(seg->durable_seq() == 3);
}

TEST_CASE("a failing fsync during recovery fails open instead of claiming "
          "durability") {
  for (uint64_t nth = 1; nth <= 4; ++nth) {
    INFO("failing sync " << nth);
    fixture f;
    {
      auto seg = f.open();
      fill(*seg, {"a", heap_a, "c"});
    }
    fault_injecting_file_system faulty{real_file_system()};
    faulty.fail_nth(fs_op::sync, nth);
    segment_options opts;
    opts.fs = &faulty;
    opts.policy = fsync_policy::never();
    auto seg = segment::open(f.dir, opts);
    CHECK(faulty.failures() == 1);
    REQUIRE(!seg);
    CHECK(is(seg.error(), errc::io_error));
    // Nothing was lost: the next open succeeds.
    auto again = f.open();
    CHECK(f.seqs(*again) == std::vector<uint64_t>{1, 2, 3});
    CHECK(again->durable_seq() == 3);
  }
}

// -- special files in place of log files
// -------------------------------------------------------------

TEST_CASE("a FIFO or /dev/zero in place of a log file fails open and inspect "
          "fast, naming the file, and changes nothing") {
  for (auto name : {"idx", "dat", "ts", "manifest"}) {
    for (bool fifo : {true, false}) {
      INFO((fifo ? "FIFO as " : "/dev/zero as ") << name);
      fixture f;
      {
        auto seg = f.open();
        fill(*seg, {"a", heap_a, "c", heap_b});
      }
      std::string path = std::string{name} == "manifest" ? f.dir + "/manifest"
                                                         : f.file(name);
      auto saved = test::slurp(path);
      auto idx_before = test::slurp(f.file("idx"));
      REQUIRE(::unlink(path.c_str()) == 0);
      if (fifo)
        REQUIRE(::mkfifo(path.c_str(), 0644) == 0);
      else
        REQUIRE(::symlink("/dev/zero", path.c_str()) == 0);
      auto dir = f.dir;
      // In a child with a deadline: a hang fails the test, and a reader
      // that grows its memory without bound hits the address-space limit.
      auto code = in_child_within(
        [dir, name] {
      // Not under AddressSanitizer: its shadow memory alone reserves
      // terabytes of address space.
#ifndef __SANITIZE_ADDRESS__
          struct rlimit lim = {1u << 30, 1u << 30};
          ::setrlimit(RLIMIT_AS, &lim);
#endif
          auto opened = segment::open(dir, {});
          if (opened)
            return 4;
          auto text = describe(opened.error());
          if (text.find(name) == std::string::npos
              || text.find("not a regular file") == std::string::npos)
            return 5;
          auto inspected = segment::inspect(dir);
          if (inspected)
            return 2;
          if (describe(inspected.error()).find(name) == std::string::npos)
            return 3;
          return 0;
        },
        10s);
      CHECK(code == 0);
      if (std::string{name} != "idx")
        CHECK(test::slurp(f.file("idx")) == idx_before);
      ::unlink(path.c_str());
      test::spit(path, saved);
    }
  }
}

// -- damaged timestamps and damaged idx records
// -------------------------------------------------------------

TEST_CASE("zeroed timestamps are damage named by seq range, and age retention "
          "drops none of them") {
  fixture f;
  uint64_t two_hours_ago = unix_now_ns() - 7200ull * 1000000000ull;
  {
    auto seg = f.open();
    for (int i = 0; i < 1000; ++i)
      REQUIRE(seg->append(bytes_view{heap_a}, two_hours_ago));
  }
  test::spit(f.file("ts"), std::vector<uint8_t>(1000 * sf::ts_record_size, 0));
  auto inspected = segment::inspect(f.dir);
  REQUIRE(inspected);
  CHECK_FALSE(inspected->clean());
  CHECK(inspected->bad_timestamp_records == 1000);
  CHECK(inspected->first_bad_timestamp_seq == 1);
  CHECK(inspected->last_bad_timestamp_seq == 1000);
  CHECK(inspected->kept_records == 1000);
  bool named = false;
  for (auto& line : inspected->findings())
    named |= line.find("bad timestamp") != std::string::npos
             && line.find("seq 1..1000") != std::string::npos;
  CHECK(named);
  auto seg = f.open();
  auto res = seg->compact(retention::max_age(std::chrono::hours{1}));
  REQUIRE(res);
  CHECK(res->dropped_records == 0);
  CHECK(seg->size() == 1000);
}

TEST_CASE("age retention stops at the first zero or future timestamp") {
  fixture f;
  auto now = unix_now_ns();
  uint64_t hour = 3600ull * 1000000000ull;
  auto seg = f.open();
  for (int i = 0; i < 3; ++i)
    REQUIRE(seg->append(bytes_view{"old"}, now - 3 * hour));
  REQUIRE(seg->append(bytes_view{"zero"}, 0));
  for (int i = 0; i < 2; ++i)
    REQUIRE(seg->append(bytes_view{"old"}, now - 3 * hour));
  REQUIRE(seg->append(bytes_view{"future"}, now + 48 * hour));
  REQUIRE(seg->append(bytes_view{"skewed"}, now + hour));
  auto res = seg->compact(retention::max_age(std::chrono::hours{1}));
  REQUIRE(res);
  CHECK(res->dropped_records == 3);
  CHECK(f.seqs(*seg) == std::vector<uint64_t>{4, 5, 6, 7, 8});
  seg.reset();
  auto again = f.open();
  // Zero and two days ahead are damage; one hour ahead is clock skew.
  const auto& rep = again->recovery();
  CHECK(rep.bad_timestamp_records == 2);
  CHECK(rep.first_bad_timestamp_seq == 4);
  CHECK(rep.last_bad_timestamp_seq == 7);
}

TEST_CASE("zeroed idx records are named by position and by the seqs around "
          "them") {
  fixture f;
  {
    auto seg = f.open();
    fill(*seg, {"1", "2", "3", "4", "5", "6", "7", "8"});
  }
  auto idx = test::slurp(f.file("idx"));
  std::fill(idx.begin() + 2 * sf::idx_record_size,
            idx.begin() + 5 * sf::idx_record_size, 0);
  test::spit(f.file("idx"), idx);
  auto rep = segment::inspect(f.dir);
  REQUIRE(rep);
  CHECK(rep->bad_checksum_records == 3);
  REQUIRE(rep->bad_checksum_runs.size() == 1);
  auto& run = rep->bad_checksum_runs[0];
  CHECK(run.first_position == 2);
  CHECK(run.count == 3);
  CHECK(run.seq_before == 2);
  CHECK(run.seq_after == 6);
  bool named = false;
  for (auto& line : rep->findings()) {
    CHECK(line.find("seq 0") == std::string::npos);
    named |= line.find("idx position 2..4") != std::string::npos
             && line.find("between seq 2 and seq 6") != std::string::npos;
  }
  CHECK(named);
}

// -- loss that no gap shows
// -------------------------------------------------------------

namespace {

// Writes `batches` batches of 100 records of 32 bytes each.
void fill_batches(segment& seg, int batches) {
  std::vector<std::string> storage(100, std::string(32, 'p'));
  std::vector<bytes_view> views(storage.begin(), storage.end());
  for (int i = 0; i < batches; ++i)
    REQUIRE(seg.append_batch(views));
}

} // namespace

TEST_CASE("idx cut at a record boundary is reported as lost records with "
          "figures") {
  fixture f;
  {
    auto seg = f.open();
    fill_batches(*seg, 100);
  }
  test::truncate_to(f.file("idx"), 3998 * sf::idx_record_size);
  auto inspected = segment::inspect(f.dir);
  REQUIRE(inspected);
  CHECK(inspected->lost_records_estimate == 6002);
  CHECK(inspected->lost_bytes == 6002 * 32);
  auto seg = f.open();
  const auto& rep = seg->recovery();
  CHECK(rep.lost_records_estimate == 6002);
  CHECK(rep.lost_bytes == 6002 * 32);
  auto line = rep.loss_summary();
  INFO(line);
  CHECK(line.find("6002 record(s)") != std::string::npos);
  CHECK(line.find(std::to_string(6002 * 32)) != std::string::npos);
  CHECK(line.find('\n') == std::string::npos);
  CHECK(f.seqs(*seg).size() == 3998);
  // What recovery trimmed is gone: the next open finds nothing lost.
  seg.reset();
  auto again = f.open();
  CHECK(again->recovery().clean());
  CHECK(again->recovery().loss_summary().empty());
}

TEST_CASE("a torn append is not reported as a loss") {
  fixture f;
  {
    auto seg = f.open();
    fill_batches(*seg, 3);
  }
  SECTION("dat written, idx not") {
    test::append_bytes(f.file("dat"), std::vector<uint8_t>(3200, 'p'));
  }
  SECTION("idx half written") {
    test::append_bytes(f.file("dat"), std::vector<uint8_t>(3200, 'p'));
    test::append_bytes(f.file("idx"), std::vector<uint8_t>(40 * 32 + 5, 1));
  }
  SECTION("ts not written") {
    test::truncate_to(f.file("ts"), 250 * sf::ts_record_size);
  }
  auto seg = f.open();
  CHECK_FALSE(seg->recovery().clean());
  CHECK(seg->recovery().lost_records_estimate == 0);
  CHECK(seg->recovery().lost_bytes == 0);
  CHECK(seg->recovery().loss_summary().empty());
}

TEST_CASE("dat bytes beyond what one append may write are reported as lost") {
  fixture f;
  {
    auto seg = f.open();
    fill_batches(*seg, 3);
  }
  auto extra = sf::max_append_bytes + 64;
  test::truncate_to(f.file("dat"), test::file_size(f.file("dat")) + extra);
  auto seg = f.open();
  const auto& rep = seg->recovery();
  CHECK(rep.lost_bytes == extra);
  // Estimated from the mean payload of the kept heap records (32 bytes).
  CHECK(rep.lost_records_estimate == extra / 32);
  CHECK_FALSE(rep.loss_summary().empty());
}

TEST_CASE("a batch whose dat part exceeds max_append_bytes is refused") {
  fixture f;
  auto seg = f.open();
  std::string big(sf::max_payload, 'b');
  std::vector<bytes_view> views(sf::max_append_bytes / sf::max_payload + 1,
                                bytes_view{big});
  auto r = seg->append_batch(views);
  REQUIRE(!r);
  CHECK(is(r.error(), errc::limit_exceeded));
  CHECK(seg->size() == 0);
}

TEST_CASE("a crash between the cuts of a recovery never reads as a loss") {
  for (auto crash_at : {"recovery_cut_ts", "recovery_cut_idx"}) {
    INFO(crash_at);
    fixture f;
    {
      auto seg = f.open();
      fill(*seg, {heap_a, "in1", heap_b, "in2"});
    }
    // seq 3's payload is torn: recovery cuts ts, idx and dat.
    test::truncate_to(f.file("dat"), heap_a.size() + 5);
    std::string target = crash_at;
    auto dir = f.dir;
    auto code = in_child_within(
      [dir, target] {
        segment_options opts;
        opts.on_step = [target](std::string_view s) {
          if (s == target)
            ::_exit(0);
        };
        (void)segment::open(dir, opts);
        return 3;
      },
      10s);
    REQUIRE(code == 0);
    auto seg = f.open();
    CHECK(seg->recovery().loss_summary().empty());
    CHECK(f.seqs(*seg) == std::vector<uint64_t>{1, 2});
  }
}

// -- orphan generations holding records the live one lacks
// -------------------------------------------------------------

namespace {

// A log in `dir` whose manifest names v1 with seqs 1..1000 while the orphan
// v2 holds seqs 801..1200 (as a stale manifest leaves it). With `swap`, the
// names are swapped: v2 is live with 1..1000, the orphan v1 holds 801..1200.
void make_stranded_log(const test::temp_dir& tmp, const std::string& dir,
                       bool swap) {
  segment_options opts;
  opts.policy = fsync_policy::never();
  {
    auto a = segment::open(dir, opts);
    REQUIRE(a);
    for (int i = 1; i <= 1000; ++i)
      REQUIRE((*a)->append(bytes_view{heap_a + std::to_string(i)}));
  }
  auto other = tmp / "other";
  {
    auto b = segment::open(other, opts);
    REQUIRE(b);
    for (int i = 1; i <= 1200; ++i)
      REQUIRE((*b)->append(bytes_view{heap_a + std::to_string(i)}));
    REQUIRE((*b)->compact(retention::keep_last(400)));
  }
  REQUIRE(::rename((other + "/v2").c_str(), (dir + "/v2").c_str()) == 0);
  if (swap) {
    REQUIRE(::rename((dir + "/v1").c_str(), (dir + "/tmp").c_str()) == 0);
    REQUIRE(::rename((dir + "/v2").c_str(), (dir + "/v1").c_str()) == 0);
    REQUIRE(::rename((dir + "/tmp").c_str(), (dir + "/v2").c_str()) == 0);
    write_manifest_file(dir, 2, 1);
  }
}

} // namespace

TEST_CASE("recovery refuses to delete an orphan generation holding records "
          "the live one lacks") {
  for (bool swap : {false, true}) {
    INFO((swap ? "swapped generations" : "stale manifest"));
    test::temp_dir tmp;
    auto dir = tmp / "log";
    make_stranded_log(tmp, dir, swap);
    std::string orphan = swap ? "v1" : "v2";
    auto rep = segment::inspect(dir);
    REQUIRE(rep);
    CHECK_FALSE(rep->clean());
    REQUIRE(rep->stranded.size() == 1);
    CHECK(rep->stranded[0].name == orphan);
    CHECK(rep->stranded[0].records == 200);
    CHECK(rep->stranded[0].first_seq == 1001);
    CHECK(rep->stranded[0].last_seq == 1200);
    CHECK(rep->stranded_records() == 200);
    auto seg = segment::open(dir, {});
    REQUIRE(!seg);
    CHECK(is(seg.error(), errc::corrupt_data));
    auto text = describe(seg.error());
    CHECK(text.find("200 record(s) (seq 1001..1200)") != std::string::npos);
    CHECK(test::exists(dir + "/" + orphan));
    // Forced, the orphan goes and the report says what went with it.
    segment_options opts;
    opts.discard_stranded = true;
    auto forced = segment::open(dir, opts);
    REQUIRE(forced);
    CHECK((*forced)->recovery().stranded_records() == 200);
    CHECK_FALSE(test::exists(dir + "/" + orphan));
    CHECK((*forced)->next_seq() == 1001);
  }
}

TEST_CASE("an orphan holding only records the live generation has or "
          "compacted away is swept") {
  fixture f;
  {
    auto seg = f.open();
    for (int i = 1; i <= 6; ++i)
      fill(*seg, {heap_a + std::to_string(i)});
  }
  // v1 (1..6) survives a compaction to v2 (5..6) whose old-generation
  // delete never happened.
  auto copy = f.tmp / "copy";
  REQUIRE(::system(("cp -r " + f.dir + "/v1 " + copy).c_str()) == 0);
  {
    auto seg = f.open();
    REQUIRE(seg->compact(retention::keep_last(2)));
  }
  REQUIRE(::rename(copy.c_str(), (f.dir + "/v1").c_str()) == 0);
  auto seg = f.open();
  CHECK(seg->recovery().stranded.empty());
  CHECK_FALSE(test::exists(f.dir + "/v1"));
  CHECK(f.seqs(*seg) == std::vector<uint64_t>{5, 6});
}

TEST_CASE("a torn idx record with its timestamp is one dropped record, not a "
          "loss") {
  fixture f;
  {
    auto seg = f.open();
    fill_batches(*seg, 1);
  }
  test::truncate_to(f.file("idx"), 100 * sf::idx_record_size - 5);
  auto seg = f.open();
  CHECK(seg->recovery().torn_idx_bytes == sf::idx_record_size - 5);
  CHECK(seg->recovery().loss_summary().empty());
}
