#include "persistence/segment.hpp"

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <thread>

#include <time.h>
#include <unistd.h>

#include "base/atomic_file.hpp"
#include "base/errc.hpp"
#include "base/file_system.hpp"
#include "persistence/segment_format.hpp"

namespace mesh {

namespace sf = segment_format;

uint64_t unix_now_ns() {
  timespec ts;
  ::clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000ull
         + static_cast<uint64_t>(ts.tv_nsec);
}

bool plausible_timestamp(uint64_t ts_ns, uint64_t now_ns) {
  constexpr auto skew = static_cast<uint64_t>(
    std::chrono::nanoseconds{max_timestamp_skew}.count());
  return ts_ns != 0 && (ts_ns <= now_ns || ts_ns - now_ns <= skew);
}

// -- fsync_policy and retention -----------------------------------------------

fsync_policy fsync_policy::never() {
  fsync_policy p;
  p.type = kind::never;
  p.n = 0;
  return p;
}

fsync_policy fsync_policy::every_n(uint64_t n) {
  fsync_policy p;
  p.type = kind::every_n;
  p.n = std::max<uint64_t>(n, 1);
  return p;
}

fsync_policy fsync_policy::interval(std::chrono::milliseconds period) {
  fsync_policy p;
  p.type = kind::interval;
  p.n = 0;
  p.period = std::clamp(period, std::chrono::milliseconds{1}, max_period);
  return p;
}

fsync_policy fsync_policy::interval_or_bytes(std::chrono::milliseconds period,
                                             uint64_t bytes) {
  fsync_policy p = interval(period);
  p.type = kind::interval_or_bytes;
  p.bytes = std::max<uint64_t>(bytes, 1);
  return p;
}

namespace {

enum class parsed { ok, not_a_number, too_large };

// Decimal digits only; refuses values past `max` instead of wrapping.
parsed parse_u64(std::string_view s, uint64_t max, uint64_t& out) {
  if (s.empty())
    return parsed::not_a_number;
  uint64_t v = 0;
  bool over = false;
  for (char c : s) {
    if (c < '0' || c > '9')
      return parsed::not_a_number;
    auto d = static_cast<uint64_t>(c - '0');
    if (v > (UINT64_MAX - d) / 10)
      over = true;
    else
      v = v * 10 + d;
  }
  if (over || v > max)
    return parsed::too_large;
  out = v;
  return parsed::ok;
}

std::vector<std::string_view> split(std::string_view s, char sep) {
  std::vector<std::string_view> out;
  size_t start = 0;
  for (;;) {
    auto pos = s.find(sep, start);
    if (pos == std::string_view::npos) {
      out.push_back(s.substr(start));
      return out;
    }
    out.push_back(s.substr(start, pos - start));
    start = pos + 1;
  }
}

} // namespace

caf::expected<fsync_policy> fsync_policy::parse(std::string_view text) {
  auto bad = [&](const char* why) {
    return make_error(errc::invalid_argument,
                      "bad fsync policy '" + std::string{text} + "': " + why
                        + " (use never, every_n:N, interval:MS or "
                          "interval_or_bytes:MS:BYTES)");
  };
  auto parts = split(text, ':');
  const auto max_ms = static_cast<uint64_t>(max_period.count());
  // Parses one positive field no larger than `max`; on failure returns the
  // reason, naming the limit.
  auto field = [](std::string_view s, const char* name, uint64_t max,
                  uint64_t& out) -> std::string {
    switch (parse_u64(s, max, out)) {
      case parsed::ok:
        if (out > 0)
          return {};
        [[fallthrough]];
      case parsed::not_a_number:
        return std::string{name} + " must be a positive integer";
      case parsed::too_large:
        return std::string{name} + " must be at most " + std::to_string(max);
    }
    return "?";
  };
  uint64_t a = 0;
  uint64_t b = 0;
  if (parts[0] == "never" && parts.size() == 1)
    return never();
  if (parts[0] == "every_n" && parts.size() == 2) {
    if (auto why = field(parts[1], "N", UINT64_MAX, a); !why.empty())
      return bad(why.c_str());
    return every_n(a);
  }
  if (parts[0] == "interval" && parts.size() == 2) {
    if (auto why = field(parts[1], "MS", max_ms, a); !why.empty())
      return bad(why.c_str());
    return interval(std::chrono::milliseconds{a});
  }
  if (parts[0] == "interval_or_bytes" && parts.size() == 3) {
    if (auto why = field(parts[1], "MS", max_ms, a); !why.empty())
      return bad(why.c_str());
    if (auto why = field(parts[2], "BYTES", UINT64_MAX, b); !why.empty())
      return bad(why.c_str());
    return interval_or_bytes(std::chrono::milliseconds{a}, b);
  }
  return bad("unknown form");
}

std::string fsync_policy::to_string() const {
  switch (type) {
    case kind::never: return "never";
    case kind::every_n: return "every_n:" + std::to_string(n);
    case kind::interval: return "interval:" + std::to_string(period.count());
    case kind::interval_or_bytes:
      return "interval_or_bytes:" + std::to_string(period.count()) + ":"
             + std::to_string(bytes);
  }
  return "?";
}

retention retention::keep_last(uint64_t n) {
  return {kind::keep_last, n};
}

retention retention::max_bytes(uint64_t bytes) {
  return {kind::max_bytes, bytes};
}

retention retention::max_age(std::chrono::nanoseconds age) {
  return {kind::max_age_ns,
          static_cast<uint64_t>(std::max<int64_t>(age.count(), 0))};
}

// -- recovery_report ----------------------------------------------------------

bool recovery_report::clean() const {
  return generation_note.empty() && torn_idx_bytes == 0 && torn_records == 0
         && unpaired_records == 0 && bad_checksum_records == 0
         && out_of_order_records == 0 && !ts_missing
         && bad_timestamp_records == 0 && trimmed_dat_bytes == 0
         && trimmed_ts_bytes == 0 && orphans.empty();
}

uint64_t recovery_report::stranded_records() const {
  uint64_t n = 0;
  for (const auto& g : stranded)
    n += g.records;
  return n;
}

std::string recovery_report::loss_summary() const {
  if (lost_records_estimate == 0 && lost_bytes == 0)
    return {};
  std::string out = "lost about " + std::to_string(lost_records_estimate)
                    + " record(s) that no gap shows (";
  if (orphan_ts_entries > 0)
    out += "ts holds " + std::to_string(orphan_ts_entries)
           + " timestamp(s) beyond the last idx record, ";
  out += std::to_string(lost_bytes) + " dat byte(s) no idx record references";
  if (orphan_ts_entries == 0)
    out += ", more than one append writes ("
           + std::to_string(sf::max_append_bytes) + ")";
  return out + "): idx lost records, e.g. truncated at a record boundary";
}

std::vector<std::string> recovery_report::findings() const {
  std::vector<std::string> out;
  if (!generation_note.empty())
    out.push_back("manifest: " + generation_note);
  if (torn_idx_bytes > 0)
    out.push_back("torn idx tail: " + std::to_string(torn_idx_bytes)
                  + " trailing bytes do not form a whole record");
  if (torn_records > 0)
    out.push_back("torn dat tail: " + std::to_string(torn_records)
                  + " record(s) from seq " + std::to_string(first_torn_seq)
                  + " reference payload bytes past the end of dat");
  if (unpaired_records > 0)
    out.push_back("unfinished append: " + std::to_string(unpaired_records)
                  + " record(s) from seq " + std::to_string(first_unpaired_seq)
                  + " have no timestamp in ts");
  if (bad_checksum_records > 0) {
    std::string runs;
    uint64_t named = 0;
    for (const auto& r : bad_checksum_runs) {
      runs += runs.empty() ? "at idx position " : "; ";
      runs += std::to_string(r.first_position);
      if (r.count > 1)
        runs += ".." + std::to_string(r.first_position + r.count - 1);
      if (r.seq_before > 0 && r.seq_after > 0)
        runs += " (between seq " + std::to_string(r.seq_before) + " and seq "
                + std::to_string(r.seq_after) + ")";
      else if (r.seq_before > 0)
        runs += " (after seq " + std::to_string(r.seq_before) + ")";
      else if (r.seq_after > 0)
        runs += " (before seq " + std::to_string(r.seq_after) + ")";
      named += r.count;
    }
    if (bad_checksum_records > named)
      runs += "; ...";
    out.push_back("bad checksum: " + std::to_string(bad_checksum_records)
                  + " record(s) " + runs);
  }
  if (bad_timestamp_records > 0)
    out.push_back(
      "bad timestamps: " + std::to_string(bad_timestamp_records)
      + " record(s) between seq " + std::to_string(first_bad_timestamp_seq)
      + ".." + std::to_string(last_bad_timestamp_seq)
      + " have a zero or future timestamp; age retention keeps them and "
        "everything after the first");
  if (ts_missing)
    out.push_back("ts file missing: timestamps of "
                  + std::to_string(kept_records) + " record(s) reset to 0");
  if (trimmed_dat_bytes > 0)
    out.push_back("unreferenced dat bytes: "
                  + std::to_string(trimmed_dat_bytes));
  if (trimmed_ts_bytes > 0)
    out.push_back("unreferenced ts bytes: " + std::to_string(trimmed_ts_bytes));
  for (const auto& g : stranded)
    out.push_back("orphan " + g.name + " holds " + std::to_string(g.records)
                  + " record(s) (seq " + std::to_string(g.first_seq) + ".."
                  + std::to_string(g.last_seq) + ") that the live generation "
                  + sf::generation_dir_name(generation)
                  + " lacks: deleting it loses them");
  if (!orphans.empty()) {
    std::string names;
    for (auto& o : orphans)
      names += (names.empty() ? "" : ", ") + o;
    out.push_back("orphans: " + names);
  }
  if (auto loss = loss_summary(); !loss.empty())
    out.push_back(loss);
  if (out_of_order_records > 0)
    out.push_back("out of order: " + std::to_string(out_of_order_records)
                  + " valid record(s) from seq "
                  + std::to_string(first_out_of_order_seq)
                  + " do not advance the seq (stray copies)");
  if (rewrite)
    out.push_back(std::string{ts_missing ? "timestamps lost"
                                         : "damage before the last good record"}
                  + ": the " + std::to_string(kept_records)
                  + " surviving record(s) are rewritten into a new generation");
  return out;
}

// -- internals ----------------------------------------------------------------

namespace {

struct entry {
  sf::idx_record rec;
  uint64_t ts = 0;
};

// The in-memory index: one entry per record, in seq order. Fixed-size chunks
// instead of one vector, so appends never copy the whole index to grow it.
class entry_table {
public:
  static constexpr size_t chunk = 16384;

  size_t size() const {
    return size_;
  }
  bool empty() const {
    return size_ == 0;
  }
  entry& operator[](size_t i) {
    return chunks_[i / chunk][i % chunk];
  }
  const entry& operator[](size_t i) const {
    return chunks_[i / chunk][i % chunk];
  }
  const entry& front() const {
    return (*this)[0];
  }
  const entry& back() const {
    return (*this)[size_ - 1];
  }
  void push_back(const entry& e) {
    if (size_ == chunks_.size() * chunk)
      chunks_.emplace_back(new entry[chunk]);
    (*this)[size_++] = e;
  }
  /// Drops entries from position n on.
  void truncate(size_t n) {
    size_ = std::min(size_, n);
  }
  void assign(const std::vector<entry>& xs) {
    chunks_.clear();
    size_ = 0;
    for (auto& e : xs)
      push_back(e);
  }
  std::vector<entry> slice(size_t from) const {
    std::vector<entry> out;
    out.reserve(size_ - std::min(from, size_));
    for (size_t i = from; i < size_; ++i)
      out.push_back((*this)[i]);
    return out;
  }
  /// Position of the first entry with seq >= `seq`.
  size_t lower_bound(uint64_t seq) const {
    size_t lo = 0;
    size_t hi = size_;
    while (lo < hi) {
      auto mid = lo + (hi - lo) / 2;
      if ((*this)[mid].rec.seq < seq)
        lo = mid + 1;
      else
        hi = mid;
    }
    return lo;
  }

private:
  std::vector<std::unique_ptr<entry[]>> chunks_;
  size_t size_ = 0;
};

std::string path_join(const std::string& a, const std::string& b) {
  return a + "/" + b;
}

// Sequential reads of payloads from dat through a 1 MiB window: records are
// laid out in dat in seq order, so recovery and compaction read each byte once
// with few syscalls.
class payload_reader {
public:
  payload_reader(file_handle* f, uint64_t file_len)
    : f_(f), file_len_(file_len) {}

  caf::error read(uint64_t off, uint32_t len, const uint8_t*& out) {
    if (off > file_len_ || len > file_len_ - off)
      return make_error(errc::corrupt_data,
                        f_->path() + ": payload of " + std::to_string(len)
                          + " bytes at offset " + std::to_string(off)
                          + " runs past the end of the file");
    if (off < buf_off_ || off + len > buf_off_ + buf_.size()) {
      size_t want = std::max<size_t>(len, window);
      want = static_cast<size_t>(std::min<uint64_t>(want, file_len_ - off));
      buf_.resize(want);
      if (auto err = f_->read_at(off, want, buf_.data()))
        return err;
      buf_off_ = off;
    }
    out = buf_.data() + (off - buf_off_);
    return {};
  }

private:
  static constexpr size_t window = 1 << 20;
  file_handle* f_;
  uint64_t file_len_;
  uint64_t buf_off_ = 0;
  bytes buf_;
};

// Where a log directory's live generation is, and what else is in it.
struct layout {
  bool fresh = false;       // no log here yet
  bool manifest_ok = false; // manifest exists, decodes and names `gen`
  sf::manifest man;         // base_seq valid when manifest decoded
  uint32_t gen = 0;
  uint32_t highest_gen = 0; // highest generation-like name seen
  std::vector<std::string> orphans;
};

caf::expected<layout> resolve_layout(file_system* fs, const std::string& dir,
                                     recovery_report& report) {
  layout out;
  auto kind = fs->stat_kind(dir);
  if (!kind)
    return kind.error();
  if (*kind == 0) {
    out.fresh = true;
    return out;
  }
  if (*kind != 2)
    return make_error(errc::invalid_argument, dir + " is not a directory");
  auto names = fs->list_dir(dir);
  if (!names)
    return names.error();
  std::vector<uint32_t> gens;
  std::vector<std::string> unknown;
  bool has_manifest = false;
  for (auto& name : *names) {
    uint32_t g = 0;
    if (name == sf::manifest_name) {
      has_manifest = true;
    } else if (sf::parse_generation_dir_name(name, g)) {
      auto k = fs->stat_kind(path_join(dir, name));
      if (k && *k == 2)
        gens.push_back(g);
      else
        unknown.push_back(name);
    } else if (name.rfind("manifest.tmp.", 0) == 0) {
      out.orphans.push_back(name);
    } else if (name.size() > 4 && name.compare(name.size() - 4, 4, ".tmp") == 0
               && sf::parse_generation_dir_name(name.substr(0, name.size() - 4),
                                                g)) {
      out.orphans.push_back(name);
      out.highest_gen = std::max(out.highest_gen, g);
    } else {
      unknown.push_back(name);
    }
  }
  std::sort(gens.begin(), gens.end());
  if (!gens.empty())
    out.highest_gen = std::max(out.highest_gen, gens.back());
  if (!has_manifest && gens.empty()) {
    if (!unknown.empty())
      return make_error(errc::invalid_argument,
                        dir + " is not a meshd log (it holds '"
                          + unknown.front()
                          + "' but no manifest and no v<N>/ generation)");
    out.fresh = true;
    return out;
  }
  bool decoded = false;
  if (has_manifest) {
    // A manifest is a few dozen bytes; anything larger is not one.
    auto raw = fs->read_file(path_join(dir, sf::manifest_name), 4096);
    if (!raw)
      return raw.error();
    decoded = sf::decode_manifest(*raw, out.man);
  }
  auto has_gen = [&](uint32_t g) {
    return std::binary_search(gens.begin(), gens.end(), g);
  };
  if (decoded && has_gen(out.man.generation)) {
    out.gen = out.man.generation;
    out.manifest_ok = true;
  } else if (!gens.empty()) {
    out.gen = gens.back();
    if (!has_manifest)
      report.generation_note = "manifest missing; using the highest generation "
                               + sf::generation_dir_name(out.gen);
    else if (!decoded)
      report.generation_note = "manifest corrupt; using the highest generation "
                               + sf::generation_dir_name(out.gen);
    else
      report.generation_note = "manifest names "
                               + sf::generation_dir_name(out.man.generation)
                               + ", which is missing; using "
                               + sf::generation_dir_name(out.gen);
  } else if (decoded) {
    // A manifest whose generation directory vanished: the log is empty but
    // keeps counting seqs from base_seq.
    out.gen = out.man.generation;
    report.generation_note = "manifest names "
                             + sf::generation_dir_name(out.gen)
                             + ", which is missing; starting it empty";
  } else {
    return make_error(errc::corrupt_data, dir
                                            + ": manifest is corrupt and no "
                                              "v<N>/ generation exists");
  }
  if (!decoded)
    out.man.base_seq = 1;
  for (auto g : gens)
    if (g != out.gen)
      out.orphans.push_back(sf::generation_dir_name(g));
  std::sort(out.orphans.begin(), out.orphans.end());
  report.generation = out.gen;
  report.orphans = out.orphans;
  return out;
}

// The outcome of the recovery walk over one generation directory.
struct analysis {
  std::vector<entry> kept;
  uint64_t idx_len = 0; // on-disk lengths as found
  uint64_t dat_len = 0;
  uint64_t ts_len = 0;
  uint64_t dat_end = 0; // bytes of dat the kept records reference
  bool ts_exists = true;
};

caf::expected<bytes> read_optional(file_system* fs, const std::string& path,
                                   bool* exists = nullptr) {
  // Bounded by the file's own size (file_system::read_file).
  auto data = fs->read_file(path, UINT64_MAX);
  if (!data && is(data.error(), errc::not_found)) {
    if (exists)
      *exists = false;
    return bytes{};
  }
  if (exists)
    *exists = true;
  return data;
}

// Fills the loss figures of `report` (see recovery_report::lost_*). `whole`
// is the number of whole idx records, `ts_count` of whole ts entries.
void estimate_loss(const analysis& a, uint64_t whole, uint64_t ts_count,
                   recovery_report& report) {
  // A torn idx tail is already reported as the one record it was meant to
  // be; its ts entry is not evidence of more.
  uint64_t described = whole + (report.torn_idx_bytes > 0 ? 1 : 0);
  uint64_t orphan_ts = a.ts_exists && ts_count > described
                         ? ts_count - described
                         : 0;
  uint64_t unref = a.dat_len - std::min(a.dat_len, a.dat_end);
  if (orphan_ts == 0 && unref <= sf::max_append_bytes)
    return;
  report.orphan_ts_entries = orphan_ts;
  report.lost_bytes = unref;
  if (orphan_ts > 0) {
    report.lost_records_estimate = orphan_ts;
    return;
  }
  uint64_t heap_bytes = 0;
  uint64_t heap_records = 0;
  for (const auto& e : a.kept)
    if (!e.rec.is_inline()) {
      heap_bytes += e.rec.length;
      ++heap_records;
    }
  // Without kept heap records there is no mean to divide by; at least one
  // record was lost.
  report.lost_records_estimate = heap_bytes > 0
                                   ? unref / (heap_bytes / heap_records)
                                   : 1;
}

// Decides which records survive. Reads only; `report` gets the findings.
caf::expected<analysis> analyze(file_system* fs, const std::string& gen_dir,
                                recovery_report& report) {
  analysis a;
  // A FIFO or device in place of a log file is refused before anything is
  // decided: a size of 0 from stat would otherwise read as "dat was cut"
  // and recovery would drop every heap record.
  for (auto name : {sf::idx_name, sf::dat_name, sf::ts_name}) {
    auto path = path_join(gen_dir, name);
    auto info = fs->stat(path);
    if (!info)
      return info.error();
    if (info->kind != file_info::type::missing
        && info->kind != file_info::type::regular)
      return make_error(errc::invalid_argument,
                        path + " is not a regular file");
  }
  auto idx = read_optional(fs, path_join(gen_dir, sf::idx_name));
  if (!idx)
    return idx.error();
  a.idx_len = idx->size();
  auto dat_size = fs->file_size(path_join(gen_dir, sf::dat_name));
  if (!dat_size && !is(dat_size.error(), errc::not_found))
    return dat_size.error();
  a.dat_len = dat_size ? *dat_size : 0;
  auto ts = read_optional(fs, path_join(gen_dir, sf::ts_name), &a.ts_exists);
  if (!ts)
    return ts.error();
  a.ts_len = ts->size();

  // A crash while writing an idx record leaves a partial record at the end.
  size_t n = idx->size() / sf::idx_record_size;
  report.torn_idx_bytes = idx->size() % sf::idx_record_size;
  std::vector<entry> recs(n);
  for (size_t i = 0; i < n; ++i)
    recs[i].rec = sf::decode_idx(idx->data() + i * sf::idx_record_size);

  // dat is written before idx, so a crash (or an fsync of idx that reached
  // the disk while dat's did not) can leave idx records pointing past the end
  // of dat. Heap offsets grow with seq, so walking back from the end, the
  // first heap record that fits proves every earlier one fits too; inline
  // records in between carry their payload and say nothing about dat.
  size_t cut = n;
  for (size_t i = n; i-- > 0;) {
    const auto& r = recs[i].rec;
    if (r.is_inline())
      continue;
    if (r.heap_end() > a.dat_len || r.heap_end() < r.location)
      cut = i;
    else
      break;
  }
  if (cut < n) {
    report.torn_records = n - cut;
    report.first_torn_seq = recs[cut].rec.seq;
    recs.resize(cut);
  }

  // ts is written last: records beyond its end belong to an append that never
  // finished, so it never returned to its caller.
  size_t ts_count = ts->size() / sf::ts_record_size;
  if (!a.ts_exists) {
    report.ts_missing = !recs.empty();
  } else {
    if (ts_count < recs.size()) {
      report.unpaired_records = recs.size() - ts_count;
      report.first_unpaired_seq = recs[ts_count].rec.seq;
      recs.resize(ts_count);
    }
    for (size_t i = 0; i < recs.size(); ++i)
      recs[i].ts = load_le64(ts->data() + i * sf::ts_record_size);
    report.trimmed_ts_bytes = ts->size() - recs.size() * sf::ts_record_size;
  }

  // Checksums catch damage anywhere: bit rot, a torn sector in the middle, a
  // stray write. Damaged records are dropped; survivors keep their own ts.
  std::unique_ptr<file_handle> dat_file;
  if (a.dat_len > 0) {
    auto f = fs->open_read(path_join(gen_dir, sf::dat_name));
    if (!f)
      return f.error();
    dat_file = std::move(*f);
  }
  payload_reader reader{dat_file.get(), a.dat_len};
  std::vector<bool> good(recs.size(), false);
  std::vector<bool> stray(recs.size(), false);
  uint64_t prev_seq = 0;
  bool have_prev = false;
  for (size_t i = 0; i < recs.size(); ++i) {
    const auto& r = recs[i].rec;
    if (!sf::plausible(r))
      continue;
    if (r.is_inline()) {
      uint8_t buf[8];
      sf::inline_payload(r, buf);
      good[i] = sf::record_checksum(r, bytes_view{buf, r.length}) == r.checksum;
    } else if (r.heap_end() <= a.dat_len && r.heap_end() >= r.location) {
      // A damaged offset in the middle can point anywhere; only read what
      // lies inside dat. Anything else simply fails the check.
      const uint8_t* p = nullptr;
      if (auto err = reader.read(r.location, r.length, p))
        return err;
      good[i] = sf::record_checksum(r, bytes_view{p, r.length}) == r.checksum;
    }
    if (!good[i])
      continue;
    // A valid record that does not advance the seq is a stray copy (a
    // misdirected write or a tool error): seqs must strictly increase.
    if (have_prev && r.seq <= prev_seq) {
      good[i] = false;
      stray[i] = true;
      if (report.out_of_order_records++ == 0)
        report.first_out_of_order_seq = r.seq;
      continue;
    }
    prev_seq = r.seq;
    have_prev = true;
  }
  // Bad records after the last good one are a tail: truncating removes them.
  // Bad records before a good one force a rewrite.
  size_t last_good = recs.size();
  for (size_t i = recs.size(); i-- > 0;)
    if (good[i]) {
      last_good = i;
      break;
    }
  using run = recovery_report::damaged_run;
  run* open_run = nullptr;
  for (size_t i = 0; i < recs.size(); ++i) {
    if (good[i]) {
      a.kept.push_back(recs[i]);
      if (!recs[i].rec.is_inline())
        a.dat_end = std::max(a.dat_end, recs[i].rec.heap_end());
      if (open_run)
        open_run->seq_after = recs[i].rec.seq;
      open_run = nullptr;
      continue;
    }
    if (last_good != recs.size() && i < last_good)
      report.rewrite = true;
    if (stray[i]) {
      open_run = nullptr;
      continue;
    }
    ++report.bad_checksum_records;
    if (open_run) {
      ++open_run->count;
    } else if (report.bad_checksum_runs.size() < 16) {
      uint64_t before = a.kept.empty() ? 0 : a.kept.back().rec.seq;
      report.bad_checksum_runs.push_back(run{i, 1, before, 0});
      open_run = &report.bad_checksum_runs.back();
    }
  }
  auto now = unix_now_ns();
  for (const auto& e : a.kept) {
    if (plausible_timestamp(e.ts, now))
      continue;
    if (report.bad_timestamp_records++ == 0)
      report.first_bad_timestamp_seq = e.rec.seq;
    report.last_bad_timestamp_seq = e.rec.seq;
  }
  if (report.ts_missing)
    report.rewrite = true;
  report.trimmed_dat_bytes = a.dat_len - std::min(a.dat_len, a.dat_end);
  report.kept_records = a.kept.size();
  estimate_loss(a, n, ts_count, report);
  return a;
}

// The generation after `gen`, or limit_exceeded: generation numbers never
// wrap (a v0 would make every later open find a corrupt manifest).
caf::expected<uint32_t> next_generation(const std::string& dir, uint32_t gen) {
  if (gen >= sf::max_generation)
    return make_error(errc::limit_exceeded,
                      dir + ": generation " + std::to_string(gen)
                        + " is the last one (max_generation "
                        + std::to_string(sf::max_generation)
                        + "); refusing to write another");
  return gen + 1;
}

// limit_exceeded when `count` records starting at `first` would pass max_seq.
caf::error check_seq_room(const std::string& dir, uint64_t first,
                          uint64_t count) {
  if (first > sf::max_seq || count - 1 > sf::max_seq - first)
    return make_error(errc::limit_exceeded,
                      dir + ": appending " + std::to_string(count)
                        + " record(s) from seq " + std::to_string(first)
                        + " would pass the largest seq "
                        + std::to_string(sf::max_seq));
  return {};
}

// Finds the orphan generations of `lay` holding records the live log
// (`kept`, or empty with `base_seq` next) lacks, into report.stranded.
// Only complete v<N> directories count: v<N>.tmp is a subset by
// construction. With `skip_unreadable` an orphan that cannot be analyzed is
// passed over (it is about to be discarded anyway).
caf::error find_stranded(file_system* fs, const std::string& dir,
                         const layout& lay, const std::vector<entry>& kept,
                         uint64_t base_seq, bool skip_unreadable,
                         recovery_report& report) {
  uint64_t live_first = kept.empty() ? base_seq : kept.front().rec.seq;
  auto live_has = [&kept](uint64_t seq) {
    auto it = std::lower_bound(kept.begin(), kept.end(), seq,
                               [](const entry& e, uint64_t s) {
                                 return e.rec.seq < s;
                               });
    return it != kept.end() && it->rec.seq == seq;
  };
  for (const auto& name : lay.orphans) {
    uint32_t g = 0;
    if (!sf::parse_generation_dir_name(name, g))
      continue;
    recovery_report scratch;
    auto a = analyze(fs, path_join(dir, name), scratch);
    if (!a) {
      if (skip_unreadable)
        continue;
      return make_error(errc::corrupt_data,
                        dir + ": cannot tell whether orphan generation " + name
                          + " holds records the live one lacks: "
                          + describe(a.error()));
    }
    recovery_report::stranded_generation sg;
    sg.name = name;
    for (const auto& e : a->kept) {
      if (e.rec.seq < live_first || live_has(e.rec.seq))
        continue;
      if (sg.records++ == 0)
        sg.first_seq = e.rec.seq;
      sg.last_seq = e.rec.seq;
    }
    if (sg.records > 0)
      report.stranded.push_back(std::move(sg));
  }
  return {};
}

caf::error refuse_stranded(const std::string& dir,
                           const recovery_report& report) {
  std::string what;
  for (const auto& g : report.stranded)
    what += (what.empty() ? "" : "; ") + g.name + " holds "
            + std::to_string(g.records) + " record(s) (seq "
            + std::to_string(g.first_seq) + ".." + std::to_string(g.last_seq)
            + ")";
  return make_error(errc::corrupt_data,
                    dir + ": orphan generation " + what
                      + " that the live generation "
                      + sf::generation_dir_name(report.generation)
                      + " lacks (a stale manifest or swapped directories); "
                        "refusing to delete them. Move them aside, or discard "
                        "them with meshseg verify --repair --force");
}

void step(const segment_options& opts, std::string_view name) {
  if (opts.on_step)
    opts.on_step(name);
}

// Replaces the manifest atomically: temp file (written and fsynced), rename,
// fsync of the directory. `renamed` tells the caller whether the rename
// happened, i.e. whether a failure is before or after the point of no return.
caf::error write_manifest(file_system* fs, const std::string& dir,
                          const sf::manifest& m, const segment_options& opts,
                          bool& renamed) {
  static std::atomic<uint64_t> counter{0};
  renamed = false;
  uint8_t buf[sf::manifest_size];
  sf::encode_manifest(m, buf);
  auto tmp = path_join(dir, "manifest.tmp." + std::to_string(::getpid()) + "."
                              + std::to_string(counter.fetch_add(1)));
  if (auto err = fs->write_file(tmp, bytes_view{buf, sizeof(buf)})) {
    (void)fs->remove(tmp);
    return err;
  }
  step(opts, "manifest_temp_written");
  if (auto err = fs->rename(tmp, path_join(dir, sf::manifest_name))) {
    (void)fs->remove(tmp);
    return err;
  }
  renamed = true;
  step(opts, "manifest_renamed");
  return fs->sync_dir(dir);
}

// Writes `entries` (payloads read from `src`, checksums verified on the way)
// into a complete new generation directory v<gen>: first as v<gen>.tmp, fully
// fsynced, then renamed. A directory named v<N> is therefore always complete.
// Returns the entries with their new dat offsets.
caf::expected<std::vector<entry>>
write_generation(file_system* fs, const std::string& dir, uint32_t gen,
                 const std::vector<entry>& entries, file_handle* src,
                 uint64_t src_len, const segment_options& opts) {
  auto final_dir = path_join(dir, sf::generation_dir_name(gen));
  auto tmp_dir = final_dir + ".tmp";
  if (auto err = fs->remove_all(tmp_dir))
    return err;
  if (auto err = fs->remove_all(final_dir))
    return err;
  if (auto err = fs->create_dir(tmp_dir))
    return err;
  auto fail = [&](caf::error err) -> caf::expected<std::vector<entry>> {
    (void)fs->remove_all(tmp_dir);
    return err;
  };
  std::unique_ptr<file_handle> files[3];
  const char* names[3] = {sf::dat_name, sf::idx_name, sf::ts_name};
  for (int i = 0; i < 3; ++i) {
    auto f = fs->open_append(path_join(tmp_dir, names[i]));
    if (!f)
      return fail(f.error());
    files[i] = std::move(*f);
  }
  step(opts, "generation_created");
  std::vector<entry> out;
  out.reserve(entries.size());
  bytes bufs[3];
  constexpr size_t flush_at = 4 << 20;
  auto flush = [&]() -> caf::error {
    for (int i = 0; i < 3; ++i) {
      if (bufs[i].empty())
        continue;
      if (auto err = files[i]->append(bufs[i]))
        return err;
      bufs[i].clear();
    }
    return {};
  };
  payload_reader reader{src, src_len};
  uint64_t dat_off = 0;
  for (const auto& e : entries) {
    const uint8_t* p = nullptr;
    uint8_t inline_buf[8];
    if (e.rec.is_inline()) {
      sf::inline_payload(e.rec, inline_buf);
      p = inline_buf;
    } else if (auto err = reader.read(e.rec.location, e.rec.length, p)) {
      return fail(err);
    }
    bytes_view payload{p, e.rec.length};
    if (sf::record_checksum(e.rec, payload) != e.rec.checksum)
      return fail(
        make_error(errc::corrupt_data,
                   "record seq " + std::to_string(e.rec.seq)
                     + " changed on disk since recovery (bad checksum)"));
    entry ne{sf::make_record(e.rec.seq, payload, dat_off), e.ts};
    if (!ne.rec.is_inline()) {
      bufs[0].insert(bufs[0].end(), payload.begin(), payload.end());
      dat_off += payload.size;
    }
    uint8_t rec[sf::idx_record_size];
    sf::encode_idx(ne.rec, rec);
    bufs[1].insert(bufs[1].end(), rec, rec + sizeof(rec));
    uint8_t tsb[8];
    store_le64(tsb, e.ts);
    bufs[2].insert(bufs[2].end(), tsb, tsb + 8);
    out.push_back(ne);
    if (bufs[0].size() + bufs[1].size() >= flush_at)
      if (auto err = flush())
        return fail(err);
  }
  if (auto err = flush())
    return fail(err);
  step(opts, "generation_written");
  for (auto& f : files)
    if (auto err = f->sync())
      return fail(err);
  if (auto err = fs->sync_dir(tmp_dir))
    return fail(err);
  step(opts, "generation_synced");
  if (auto err = fs->rename(tmp_dir, final_dir))
    return fail(err);
  step(opts, "generation_renamed");
  if (auto err = fs->sync_dir(dir)) {
    (void)fs->remove_all(final_dir);
    return err;
  }
  return out;
}

} // namespace

// -- segment::impl ------------------------------------------------------------

struct segment::impl {
  file_system* fs = nullptr;
  std::string dir;
  segment_options opts;
  recovery_report report;

  // Append state, guarded by mtx.
  mutable std::mutex mtx;
  std::shared_ptr<file_handle> dat;
  std::shared_ptr<file_handle> idx;
  std::shared_ptr<file_handle> ts;
  uint64_t dat_len = 0;
  uint64_t idx_len = 0;
  uint64_t ts_len = 0;
  entry_table index;
  uint64_t next_seq = 1;
  uint32_t gen = 1;
  uint64_t records_since_request = 0;
  uint64_t bytes_since_request = 0;

  std::atomic<uint64_t> last_seq{0};
  std::atomic<bool> poisoned{false};
  std::atomic<bool> closed{false};

  // Sync state. Lock order: sync_mtx before mtx.
  std::mutex sync_mtx;
  std::atomic<uint64_t> durable{0};
  std::atomic<uint64_t> syncs{0};
  std::atomic<uint64_t> failed_syncs{0};

  // Policy worker.
  std::mutex wmtx;
  std::condition_variable wcv;
  bool sync_requested = false;
  bool stop = false;
  std::thread worker;

  void warn(const std::string& line) {
    if (opts.on_warning)
      opts.on_warning(line);
  }

  caf::error refuse() const {
    if (closed.load())
      return make_error(errc::invalid_argument, dir + ": segment is closed");
    if (poisoned.load())
      return make_error(errc::poisoned,
                        dir
                          + ": a failed write could not be rolled back; "
                            "reopen the log to recover");
    return {};
  }

  // Restores one file to `len` after a failed append. If that fails the
  // on-disk files no longer match what we believe, so refuse everything.
  void rollback(file_handle& f, uint64_t len) {
    if (auto err = f.truncate(len)) {
      poisoned = true;
      warn("segment " + dir + " poisoned: rollback of " + f.path() + " to "
           + std::to_string(len) + " bytes failed: " + describe(err));
    }
  }

  // Writes one append's three parts in order and rolls back on failure.
  caf::error write_parts(bytes_view dat_part, bytes_view idx_part,
                         bytes_view ts_part) {
    if (!dat_part.empty())
      if (auto err = dat->append(dat_part)) {
        rollback(*dat, dat_len);
        return err;
      }
    if (auto err = idx->append(idx_part)) {
      rollback(*idx, idx_len);
      if (!dat_part.empty())
        rollback(*dat, dat_len);
      return err;
    }
    if (auto err = ts->append(ts_part)) {
      rollback(*ts, ts_len);
      rollback(*idx, idx_len);
      if (!dat_part.empty())
        rollback(*dat, dat_len);
      return err;
    }
    dat_len += dat_part.size;
    idx_len += idx_part.size;
    ts_len += ts_part.size;
    return {};
  }

  // Called with mtx held after `records` records of `nbytes` bytes landed.
  void note_appended(uint64_t records, uint64_t nbytes) {
    last_seq.store(next_seq - 1, std::memory_order_release);
    bool request = false;
    switch (opts.policy.type) {
      case fsync_policy::kind::never:
      case fsync_policy::kind::interval: return;
      case fsync_policy::kind::every_n:
        records_since_request += records;
        if (records_since_request >= opts.policy.n) {
          records_since_request = 0;
          request = true;
        }
        break;
      case fsync_policy::kind::interval_or_bytes:
        bytes_since_request += nbytes;
        if (bytes_since_request >= opts.policy.bytes) {
          bytes_since_request = 0;
          request = true;
        }
        break;
    }
    if (request) {
      {
        std::lock_guard<std::mutex> guard{wmtx};
        sync_requested = true;
      }
      wcv.notify_one();
      step(opts, "policy_fsync_requested");
    }
  }

  caf::error sync_now() {
    std::lock_guard<std::mutex> sguard{sync_mtx};
    if (auto err = refuse())
      return err;
    std::shared_ptr<file_handle> files[3];
    uint64_t target;
    {
      std::lock_guard<std::mutex> guard{mtx};
      files[0] = dat;
      files[1] = idx;
      files[2] = ts;
      target = next_seq - 1;
    }
    // dat before idx before ts: a crash part-way leaves idx no further than
    // dat and ts no further than idx, which recovery handles.
    for (auto& f : files)
      if (auto err = f->sync()) {
        ++failed_syncs;
        return err;
      }
    uint64_t prev = durable.load();
    while (prev < target && !durable.compare_exchange_weak(prev, target)) {
    }
    ++syncs;
    return {};
  }

  void run_worker() {
    std::unique_lock<std::mutex> lk{wmtx};
    auto period = opts.policy.period;
    while (!stop) {
      if (period.count() > 0)
        wcv.wait_for(lk, period, [this] {
          return stop || sync_requested;
        });
      else
        wcv.wait(lk, [this] {
          return stop || sync_requested;
        });
      if (stop)
        break;
      bool due = sync_requested
                 || (period.count() > 0 && last_seq.load() > durable.load());
      sync_requested = false;
      if (!due) {
        step(opts, "policy_wakeup_idle");
        continue;
      }
      if (poisoned.load())
        continue;
      lk.unlock();
      auto err = sync_now();
      lk.lock();
      if (err)
        warn("segment " + dir
             + ": policy fsync failed, will retry: " + describe(err));
    }
  }

  void start_worker() {
    if (opts.policy.type == fsync_policy::kind::never)
      return;
    worker = std::thread{[this] {
      run_worker();
    }};
  }

  void stop_worker() {
    {
      std::lock_guard<std::mutex> guard{wmtx};
      stop = true;
    }
    wcv.notify_all();
    if (worker.joinable())
      worker.join();
  }

  caf::error open_files(const std::string& gen_dir) {
    const char* names[3] = {sf::dat_name, sf::idx_name, sf::ts_name};
    std::shared_ptr<file_handle> files[3];
    for (int i = 0; i < 3; ++i) {
      auto f = fs->open_append(path_join(gen_dir, names[i]));
      if (!f)
        return f.error();
      files[i] = std::move(*f);
    }
    dat = files[0];
    idx = files[1];
    ts = files[2];
    return {};
  }

  // fsyncs the live files and their directory. Recovery calls it before it
  // publishes durable_seq: the files may hold writes of a crashed process
  // that are in the page cache but not on the disk, and a truncation or a
  // file created by open_files is not durable either until synced.
  caf::error sync_opened() {
    for (auto* f : {dat.get(), idx.get(), ts.get()})
      if (auto err = f->sync())
        return err;
    return fs->sync_dir(gen_dir(gen));
  }

  std::string gen_dir(uint32_t g) const {
    return path_join(dir, sf::generation_dir_name(g));
  }

  caf::error read_payload(const entry& e, bytes& out) const {
    out.resize(e.rec.length);
    if (e.rec.is_inline()) {
      uint8_t buf[8];
      sf::inline_payload(e.rec, buf);
      std::memcpy(out.data(), buf, e.rec.length);
      return {};
    }
    return dat->read_at(e.rec.location, e.rec.length, out.data());
  }

  size_t find(uint64_t seq) const {
    return index.lower_bound(seq);
  }

  // Opens the log: resolves the generation, runs recovery, repairs.
  caf::error recover() {
    auto lay = resolve_layout(fs, dir, report);
    if (!lay)
      return lay.error();
    if (lay->fresh) {
      if (!opts.create_if_missing)
        return make_error(errc::not_found, dir + " holds no meshd log");
      if (auto err = fs->create_dir(dir))
        return err;
      if (auto err = fs->create_dir(gen_dir(1)))
        return err;
      bool renamed = false;
      if (auto err = write_manifest(fs, dir, sf::manifest{1, 1}, opts, renamed))
        return err;
      gen = 1;
      next_seq = 1;
      report.generation = 1;
      if (auto err = open_files(gen_dir(1)))
        return err;
      return sync_opened();
    }
    gen = lay->gen;
    uint64_t base_seq = lay->man.base_seq;
    if (auto err = fs->create_dir(gen_dir(gen)))
      return err;
    auto a = analyze(fs, gen_dir(gen), report);
    if (!a)
      return a.error();
    if (auto err = find_stranded(fs, dir, *lay, a->kept, base_seq,
                                 opts.discard_stranded, report))
      return err;
    if (!report.stranded.empty() && !opts.discard_stranded)
      return refuse_stranded(dir, report);
    if (!report.clean())
      for (auto& line : report.findings())
        warn("segment " + dir + " recovery: " + line);
    bool need_manifest = !lay->manifest_ok;
    if (report.rewrite) {
      // Survivors are not a prefix: write them into a new generation and
      // flip the manifest to it, so the repair is atomic.
      std::unique_ptr<file_handle> src;
      if (a->dat_len > 0) {
        auto f = fs->open_read(path_join(gen_dir(gen), sf::dat_name));
        if (!f)
          return f.error();
        src = std::move(*f);
      }
      auto next = next_generation(dir, std::max(gen, lay->highest_gen));
      if (!next)
        return next.error();
      uint32_t new_gen = *next;
      auto rebased = write_generation(fs, dir, new_gen, a->kept, src.get(),
                                      a->dat_len, opts);
      if (!rebased)
        return rebased.error();
      a->kept = std::move(*rebased);
      report.orphans.push_back(sf::generation_dir_name(gen));
      lay->orphans.push_back(sf::generation_dir_name(gen));
      gen = new_gen;
      need_manifest = true;
    } else {
      // Only a tail is bad: cut every file back to what the survivors use.
      // truncate_file fsyncs, so a crash now cannot bring the tail back.
      auto cut = [&](const char* name, uint64_t have,
                     uint64_t want) -> caf::error {
        if (have <= want)
          return {};
        return fs->truncate_file(path_join(gen_dir(gen), name), want);
      };
      // Reverse write order, ts before idx: a crash between the cuts then
      // leaves ts no longer than idx, like a torn append, and never the ts
      // surplus that proves lost idx records (recovery_report::lost_*).
      uint64_t n = a->kept.size();
      if (auto err = cut(sf::ts_name, a->ts_len, n * sf::ts_record_size))
        return err;
      step(opts, "recovery_cut_ts");
      if (auto err = cut(sf::idx_name, a->idx_len, n * sf::idx_record_size))
        return err;
      step(opts, "recovery_cut_idx");
      if (auto err = cut(sf::dat_name, a->dat_len, a->dat_end))
        return err;
      step(opts, "recovery_cut_dat");
    }
    if (!a->kept.empty())
      base_seq = std::max(base_seq, a->kept.back().rec.seq + 1);
    if (need_manifest) {
      bool renamed = false;
      if (auto err = write_manifest(fs, dir, sf::manifest{gen, base_seq}, opts,
                                    renamed))
        return err;
    }
    // Everything but the live generation is a leftover of a compaction or a
    // repair that crashed before or after its manifest flip.
    bool swept = false;
    for (auto& name : lay->orphans) {
      if (auto err = fs->remove_all(path_join(dir, name)))
        warn("segment " + dir + ": could not remove orphan " + name + ": "
             + describe(err));
      else
        swept = true;
    }
    if (swept)
      (void)fs->sync_dir(dir);
    if (auto err = open_files(gen_dir(gen)))
      return err;
    index.assign(a->kept);
    next_seq = base_seq;
    auto sizes = [](file_handle& f) {
      auto s = f.size();
      return s ? *s : 0;
    };
    dat_len = sizes(*dat);
    idx_len = sizes(*idx);
    ts_len = sizes(*ts);
    last_seq = next_seq - 1;
    if (auto err = sync_opened())
      return err;
    durable = next_seq - 1;
    return {};
  }
};

// -- segment ------------------------------------------------------------------

segment::segment(std::unique_ptr<impl> ptr) : impl_(std::move(ptr)) {}

segment::~segment() {
  if (auto err = close())
    impl_->warn("segment " + impl_->dir + ": close failed: " + describe(err));
}

caf::expected<std::unique_ptr<segment>> segment::open(const std::string& dir,
                                                      segment_options opts) {
  auto pimpl = std::make_unique<impl>();
  pimpl->fs = opts.fs ? opts.fs : real_file_system();
  pimpl->dir = dir;
  pimpl->opts = std::move(opts);
  auto parent = pimpl->fs->stat_kind(parent_dir(dir));
  if (!parent)
    return parent.error();
  if (*parent != 2)
    return make_error(errc::not_found, "parent directory " + parent_dir(dir)
                                         + " of " + dir + " does not exist");
  if (auto err = pimpl->recover())
    return err;
  pimpl->start_worker();
  return std::unique_ptr<segment>{new segment(std::move(pimpl))};
}

caf::expected<recovery_report>
segment::inspect(const std::string& dir,
                 const std::function<void(const log_record&)>& each,
                 file_system* fs) {
  if (!fs)
    fs = real_file_system();
  recovery_report report;
  auto lay = resolve_layout(fs, dir, report);
  if (!lay)
    return lay.error();
  if (lay->fresh) {
    auto kind = fs->stat_kind(dir);
    if (kind && *kind == 0)
      return make_error(errc::not_found, dir + ": no such directory");
    return make_error(errc::not_found,
                      dir + " holds no meshd log (empty directory)");
  }
  auto gdir = path_join(dir, sf::generation_dir_name(lay->gen));
  auto a = analyze(fs, gdir, report);
  if (!a)
    return a.error();
  if (auto err = find_stranded(fs, dir, *lay, a->kept, lay->man.base_seq, false,
                               report))
    return err;
  if (each && !a->kept.empty()) {
    std::unique_ptr<file_handle> src;
    if (a->dat_len > 0) {
      auto f = fs->open_read(path_join(gdir, sf::dat_name));
      if (!f)
        return f.error();
      src = std::move(*f);
    }
    payload_reader reader{src.get(), a->dat_len};
    log_record rec;
    for (const auto& e : a->kept) {
      rec.seq = e.rec.seq;
      rec.timestamp_ns = e.ts;
      rec.payload.resize(e.rec.length);
      if (e.rec.is_inline()) {
        uint8_t buf[8];
        sf::inline_payload(e.rec, buf);
        std::memcpy(rec.payload.data(), buf, e.rec.length);
      } else {
        const uint8_t* p = nullptr;
        if (auto err = reader.read(e.rec.location, e.rec.length, p))
          return err;
        std::memcpy(rec.payload.data(), p, e.rec.length);
      }
      each(rec);
    }
  }
  return report;
}

caf::expected<uint64_t> segment::append(bytes_view payload) {
  return append(payload, unix_now_ns());
}

caf::expected<uint64_t> segment::append(bytes_view payload,
                                        uint64_t timestamp_ns) {
  auto& d = *impl_;
  if (payload.size > sf::max_payload)
    return make_error(errc::invalid_argument,
                      "payload of " + std::to_string(payload.size)
                        + " bytes exceeds the limit of "
                        + std::to_string(sf::max_payload));
  std::lock_guard<std::mutex> guard{d.mtx};
  if (auto err = d.refuse())
    return err;
  if (auto err = check_seq_room(d.dir, d.next_seq, 1))
    return err;
  auto seq = d.next_seq;
  uint8_t rec[sf::idx_record_size];
  entry e{sf::make_record(seq, payload, d.dat_len, rec), timestamp_ns};
  uint8_t tsb[sf::ts_record_size];
  store_le64(tsb, timestamp_ns);
  bytes_view dat_part = e.rec.is_inline() ? bytes_view{} : payload;
  if (auto err = d.write_parts(dat_part, bytes_view{rec, sizeof(rec)},
                               bytes_view{tsb, sizeof(tsb)}))
    return err;
  d.index.push_back(e);
  d.next_seq = seq + 1;
  d.note_appended(1, dat_part.size + sizeof(rec) + sizeof(tsb));
  return seq;
}

caf::expected<uint64_t>
segment::append_batch(const std::vector<bytes_view>& payloads) {
  return append_batch(payloads, unix_now_ns());
}

caf::expected<uint64_t>
segment::append_batch(const std::vector<bytes_view>& payloads,
                      uint64_t timestamp_ns) {
  auto& d = *impl_;
  if (payloads.empty())
    return make_error(errc::invalid_argument, "empty batch");
  size_t heap_bytes = 0;
  for (auto& p : payloads) {
    if (p.size > sf::max_payload)
      return make_error(errc::invalid_argument,
                        "payload of " + std::to_string(p.size)
                          + " bytes exceeds the limit of "
                          + std::to_string(sf::max_payload));
    if (p.size > sf::inline_max)
      heap_bytes += p.size;
  }
  if (heap_bytes > sf::max_append_bytes)
    return make_error(errc::limit_exceeded,
                      "batch of " + std::to_string(heap_bytes)
                        + " payload bytes exceeds the limit of "
                        + std::to_string(sf::max_append_bytes) + " per append");
  // Per-thread scratch buffers: a batch costs three writes and, after the
  // first few batches, no allocation.
  thread_local bytes dat_buf;
  thread_local bytes idx_buf;
  thread_local bytes ts_buf;
  std::lock_guard<std::mutex> guard{d.mtx};
  if (auto err = d.refuse())
    return err;
  if (auto err = check_seq_room(d.dir, d.next_seq, payloads.size()))
    return err;
  dat_buf.resize(heap_bytes);
  idx_buf.resize(payloads.size() * sf::idx_record_size);
  ts_buf.resize(payloads.size() * sf::ts_record_size);
  auto first = d.index.size();
  uint64_t seq = d.next_seq;
  uint64_t dat_off = d.dat_len;
  size_t dat_pos = 0;
  for (size_t i = 0; i < payloads.size(); ++i) {
    auto& p = payloads[i];
    entry e{sf::make_record(seq + i, p, dat_off,
                            idx_buf.data() + i * sf::idx_record_size),
            timestamp_ns};
    if (!e.rec.is_inline()) {
      std::memcpy(dat_buf.data() + dat_pos, p.data, p.size);
      dat_pos += p.size;
      dat_off += p.size;
    }
    store_le64(ts_buf.data() + i * sf::ts_record_size, timestamp_ns);
    d.index.push_back(e);
  }
  if (auto err = d.write_parts(dat_buf, idx_buf, ts_buf)) {
    d.index.truncate(first);
    return err;
  }
  d.next_seq = seq + payloads.size();
  d.note_appended(payloads.size(),
                  dat_buf.size() + idx_buf.size() + ts_buf.size());
  return d.next_seq - 1;
}

caf::error segment::sync() {
  return impl_->sync_now();
}

caf::error segment::close() {
  auto& d = *impl_;
  if (d.closed.load())
    return {};
  d.stop_worker();
  caf::error err;
  if (!d.poisoned.load())
    err = d.sync_now();
  else
    err = d.refuse();
  std::lock_guard<std::mutex> sguard{d.sync_mtx};
  std::lock_guard<std::mutex> guard{d.mtx};
  d.closed = true;
  d.dat.reset();
  d.idx.reset();
  d.ts.reset();
  return err;
}

caf::expected<compaction_result> segment::compact(const retention& r) {
  auto& d = *impl_;
  std::lock_guard<std::mutex> sguard{d.sync_mtx};
  std::lock_guard<std::mutex> guard{d.mtx};
  if (auto err = d.refuse())
    return err;
  size_t n = d.index.size();
  size_t drop = 0;
  switch (r.type) {
    case retention::kind::keep_last:
      drop = n > r.value ? static_cast<size_t>(n - r.value) : 0;
      break;
    case retention::kind::max_bytes: {
      uint64_t total = 0;
      size_t keep = 0;
      for (size_t i = n; i-- > 0;) {
        total += d.index[i].rec.length;
        if (total > r.value)
          break;
        ++keep;
      }
      drop = n - keep;
      break;
    }
    case retention::kind::max_age_ns: {
      auto now = unix_now_ns();
      auto cutoff = now > r.value ? now - r.value : 0;
      // A damaged timestamp says nothing about the record's age: stop there
      // rather than drop it, or anything after it, on a guess.
      while (drop < n && d.index[drop].ts < cutoff
             && plausible_timestamp(d.index[drop].ts, now))
        ++drop;
      break;
    }
  }
  if (drop == 0)
    return compaction_result{0, n, d.gen};
  auto next = next_generation(d.dir, d.gen);
  if (!next)
    return next.error();
  uint32_t new_gen = *next;
  std::vector<entry> keep = d.index.slice(drop);
  auto rebased = write_generation(d.fs, d.dir, new_gen, keep, d.dat.get(),
                                  d.dat_len, d.opts);
  if (!rebased)
    return rebased.error();
  auto abort_new = [&](caf::error err) -> caf::expected<compaction_result> {
    (void)d.fs->remove_all(d.gen_dir(new_gen));
    return err;
  };
  std::shared_ptr<file_handle> old[3] = {d.dat, d.idx, d.ts};
  // Open the new files before the flip: failing here leaves the old
  // generation live and untouched.
  if (auto err = d.open_files(d.gen_dir(new_gen))) {
    d.dat = old[0];
    d.idx = old[1];
    d.ts = old[2];
    return abort_new(err);
  }
  bool renamed = false;
  auto err = write_manifest(d.fs, d.dir, sf::manifest{new_gen, d.next_seq},
                            d.opts, renamed);
  if (err && !renamed) {
    d.dat = old[0];
    d.idx = old[1];
    d.ts = old[2];
    return abort_new(err);
  }
  if (err) {
    // The manifest was renamed but the directory fsync failed: whether the
    // flip is durable is unknown, so appending to either generation could be
    // lost. Refuse writes until a reopen settles it.
    d.poisoned = true;
    d.warn("segment " + d.dir + " poisoned: manifest flip to "
           + sf::generation_dir_name(new_gen)
           + " not durable: " + describe(err));
  }
  auto old_gen = d.gen;
  d.gen = new_gen;
  d.index.assign(*rebased);
  d.dat_len = 0;
  for (auto& e : *rebased)
    if (!e.rec.is_inline())
      d.dat_len = std::max(d.dat_len, e.rec.heap_end());
  d.idx_len = d.index.size() * sf::idx_record_size;
  d.ts_len = d.index.size() * sf::ts_record_size;
  step(d.opts, "manifest_flipped");
  if (!err) {
    if (auto rm = d.fs->remove_all(d.gen_dir(old_gen)))
      d.warn("segment " + d.dir
             + ": could not remove old generation: " + describe(rm));
    else
      (void)d.fs->sync_dir(d.dir);
    // The new generation was fsynced in full before the flip.
    uint64_t prev = d.durable.load();
    uint64_t target = d.next_seq - 1;
    while (prev < target && !d.durable.compare_exchange_weak(prev, target)) {
    }
  }
  if (err)
    return err;
  return compaction_result{drop, d.index.size(), new_gen};
}

caf::expected<log_record> segment::read(uint64_t seq) const {
  auto& d = *impl_;
  std::lock_guard<std::mutex> guard{d.mtx};
  if (d.closed.load())
    return d.refuse();
  auto pos = d.find(seq);
  if (pos == d.index.size() || d.index[pos].rec.seq != seq)
    return make_error(errc::not_found,
                      "seq " + std::to_string(seq) + " is not in " + d.dir);
  const auto& e = d.index[pos];
  log_record out;
  out.seq = seq;
  out.timestamp_ns = e.ts;
  if (auto err = d.read_payload(e, out.payload))
    return err;
  return out;
}

caf::error
segment::for_each(uint64_t from_seq,
                  const std::function<bool(const log_record&)>& f) const {
  auto& d = *impl_;
  std::lock_guard<std::mutex> guard{d.mtx};
  if (d.closed.load())
    return d.refuse();
  log_record rec;
  for (auto pos = d.find(from_seq); pos < d.index.size(); ++pos) {
    const auto& e = d.index[pos];
    rec.seq = e.rec.seq;
    rec.timestamp_ns = e.ts;
    if (auto err = d.read_payload(e, rec.payload))
      return err;
    if (!f(rec))
      break;
  }
  return {};
}

uint64_t segment::first_seq() const {
  std::lock_guard<std::mutex> guard{impl_->mtx};
  return impl_->index.empty() ? impl_->next_seq : impl_->index.front().rec.seq;
}

uint64_t segment::next_seq() const {
  std::lock_guard<std::mutex> guard{impl_->mtx};
  return impl_->next_seq;
}

uint64_t segment::size() const {
  std::lock_guard<std::mutex> guard{impl_->mtx};
  return impl_->index.size();
}

uint64_t segment::durable_seq() const {
  return impl_->durable.load();
}

uint64_t segment::sync_count() const {
  return impl_->syncs.load();
}

uint64_t segment::failed_sync_count() const {
  return impl_->failed_syncs.load();
}

bool segment::poisoned() const {
  return impl_->poisoned.load();
}

uint32_t segment::generation() const {
  std::lock_guard<std::mutex> guard{impl_->mtx};
  return impl_->gen;
}

const std::string& segment::dir() const {
  return impl_->dir;
}

const fsync_policy& segment::policy() const {
  return impl_->opts.policy;
}

const recovery_report& segment::recovery() const {
  return impl_->report;
}

} // namespace mesh
