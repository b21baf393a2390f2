#include "tools/meshseg/commands.hpp"

#include <algorithm>
#include <functional>
#include <iostream>
#include <iterator>
#include <memory>
#include <utility>

#include "base/errc.hpp"
#include "base/file_system.hpp"
#include "persistence/log_entry.hpp"
#include "persistence/segment.hpp"
#include "persistence/segment_format.hpp"
#include "tools/meshseg/render.hpp"

namespace mesh::meshseg {

namespace {

// Largest input file `append` reads into memory.
constexpr uint64_t max_input_bytes = uint64_t{4} << 30;

namespace fmt = segment_format;

// -- seq ranges ---------------------------------------------------------------

/// A set of seqs kept as sorted, merged, inclusive ranges: a damaged log can
/// claim millions of records, so seqs are never stored one by one.
class seq_ranges {
public:
  void add(uint64_t first, uint64_t last) {
    if (first > last)
      return;
    // Recovery hands records over in order, so extending the last range or
    // starting a new one after it is the common case.
    if (ranges_.empty()
        || (ranges_.back().second < UINT64_MAX
            && first > ranges_.back().second + 1)) {
      ranges_.emplace_back(first, last);
      return;
    }
    if (first >= ranges_.back().first) {
      ranges_.back().second = std::max(ranges_.back().second, last);
      return;
    }
    ranges_.emplace_back(first, last);
    normalize();
  }

  void add(uint64_t seq) {
    add(seq, seq);
  }

  bool empty() const {
    return ranges_.empty();
  }

  uint64_t first() const {
    return ranges_.front().first;
  }

  uint64_t last() const {
    return ranges_.back().second;
  }

  /// "1..4, 6, 9..12"; "none" when empty.
  std::string to_string() const {
    if (ranges_.empty())
      return "none";
    std::string out;
    for (const auto& [a, b] : ranges_) {
      if (!out.empty())
        out += ", ";
      out += std::to_string(a);
      if (b != a)
        out += ".." + std::to_string(b);
    }
    return out;
  }

private:
  void normalize() {
    std::sort(ranges_.begin(), ranges_.end());
    std::vector<std::pair<uint64_t, uint64_t>> merged;
    for (const auto& r : ranges_) {
      if (!merged.empty()
          && (merged.back().second == UINT64_MAX
              || r.first <= merged.back().second + 1))
        merged.back().second = std::max(merged.back().second, r.second);
      else
        merged.push_back(r);
    }
    ranges_ = std::move(merged);
  }

  std::vector<std::pair<uint64_t, uint64_t>> ranges_;
};

std::string plural(uint64_t n, const char* one, const char* many) {
  return std::to_string(n) + " " + (n == 1 ? one : many);
}

std::string records(uint64_t n) {
  return plural(n, "record", "records");
}

// -- input checks -------------------------------------------------------------

void print_error(std::ostream& err, const std::string& what) {
  err << "meshseg: " << what << '\n';
}

/// Checks that `dir` is a directory, or missing when `may_be_missing` (append
/// creates it). Whether it holds a log is for the segment to say:
/// segment::inspect and segment::open refuse foreign directories.
bool check_dir(const std::string& dir, bool may_be_missing, std::ostream& err) {
  auto kind = real_file_system()->stat_kind(dir);
  if (!kind) {
    print_error(err, "cannot access " + dir + ": " + describe(kind.error()));
    return false;
  }
  if (*kind == 0 && !may_be_missing) {
    print_error(err, dir + ": no such directory");
    return false;
  }
  if (*kind != 0 && *kind != 2) {
    print_error(err, dir + ": not a directory");
    return false;
  }
  return true;
}

segment_options writer_options(std::ostream& err, bool create) {
  segment_options opts;
  // An offline tool writes once and syncs explicitly at the end.
  opts.policy = fsync_policy::never();
  opts.create_if_missing = create;
  opts.on_warning = [&err](const std::string& line) {
    err << "meshseg: warning: " << line << '\n';
  };
  return opts;
}

/// Opens the log for writing; prints the error and returns null on failure.
std::unique_ptr<segment> open_log(const std::string& dir, segment_options opts,
                                  std::ostream& err) {
  auto seg = segment::open(dir, std::move(opts));
  if (!seg) {
    print_error(err, describe(seg.error()));
    return nullptr;
  }
  return std::move(*seg);
}

/// Collects the seqs of the records in `seg`; prints the error and returns
/// false on failure. A repaired log can have gaps, so first..next is not
/// enough.
bool live_seqs(const segment& seg, seq_ranges& out, std::ostream& err) {
  auto e = seg.for_each(seg.first_seq(), [&out](const log_record& rec) {
    out.add(rec.seq);
    return true;
  });
  if (e) {
    print_error(err, "read " + seg.dir() + ": " + describe(e));
    return false;
  }
  return true;
}

/// fsyncs and closes `seg`; prints the error and returns false on failure.
bool finish(segment& seg, std::ostream& err) {
  if (auto e = seg.sync()) {
    print_error(err, "sync " + seg.dir() + ": " + describe(e));
    return false;
  }
  if (auto e = seg.close()) {
    print_error(err, "close " + seg.dir() + ": " + describe(e));
    return false;
  }
  return true;
}

// -- append -------------------------------------------------------------------

/// Splits `text` into lines: the bytes between newlines, without the
/// newline. A final newline ends the last line rather than starting an
/// empty one.
std::vector<std::string> split_lines(const std::string& text) {
  std::vector<std::string> lines;
  size_t start = 0;
  while (start < text.size()) {
    auto nl = text.find('\n', start);
    if (nl == std::string::npos) {
      lines.push_back(text.substr(start));
      break;
    }
    lines.push_back(text.substr(start, nl - start));
    start = nl + 1;
  }
  return lines;
}

bool read_lines(const std::string& file, std::vector<std::string>& lines,
                std::ostream& err) {
  std::string text;
  if (file == "-") {
    text.assign(std::istreambuf_iterator<char>{std::cin},
                std::istreambuf_iterator<char>{});
    if (std::cin.bad()) {
      print_error(err, "cannot read stdin");
      return false;
    }
  } else {
    auto data = real_file_system()->read_file(file, max_input_bytes);
    if (!data) {
      print_error(err, "cannot read " + file + ": " + describe(data.error()));
      return false;
    }
    text.assign(data->begin(), data->end());
  }
  lines = split_lines(text);
  if (lines.empty()) {
    print_error(err, (file == "-" ? std::string{"stdin"} : file)
                       + " holds no lines: nothing to append");
    return false;
  }
  return true;
}

/// Turns the textual payloads into bytes. `source` is the file they came
/// from (empty for command-line payloads), to name a bad one.
bool to_payloads(const std::vector<std::string>& texts, bool hex,
                 const std::string& source, std::vector<bytes>& out,
                 std::ostream& err) {
  auto where = [&source](size_t i) {
    return source.empty() ? "payload " + std::to_string(i + 1)
                          : source + " line " + std::to_string(i + 1);
  };
  out.clear();
  out.reserve(texts.size());
  for (size_t i = 0; i < texts.size(); ++i) {
    bytes b;
    if (!hex) {
      b.assign(texts[i].begin(), texts[i].end());
    } else if (!from_hex(texts[i], b)) {
      auto shown = texts[i].size() > 40 ? texts[i].substr(0, 40) + "..."
                                        : texts[i];
      print_error(err, where(i) + " is not valid hex: " + json_string(shown));
      return false;
    }
    if (b.size() > fmt::max_payload) {
      print_error(err, where(i) + " has " + std::to_string(b.size())
                         + " bytes, more than the maximum of "
                         + std::to_string(fmt::max_payload));
      return false;
    }
    out.push_back(std::move(b));
  }
  return true;
}

// -- verify -------------------------------------------------------------------

/// What recovery drops, gathered from a report and the records it keeps.
struct drop_summary {
  /// Records lost, counting a torn idx tail as the record it was meant to be.
  uint64_t count = 0;
  /// Seqs of the dropped records, as far as the report names them.
  seq_ranges seqs;
  /// More records have a bad checksum than the report lists seqs for.
  bool seqs_incomplete = false;
};

drop_summary summarize_drops(const std::string& dir, const recovery_report& r,
                             const seq_ranges& kept, uint64_t kept_count) {
  drop_summary d;
  uint64_t highest = kept.empty() ? 0 : kept.last();
  if (r.torn_records > 0) {
    d.seqs.add(r.first_torn_seq, r.first_torn_seq + r.torn_records - 1);
    highest = std::max(highest, r.first_torn_seq + r.torn_records - 1);
  }
  if (r.unpaired_records > 0) {
    d.seqs.add(r.first_unpaired_seq,
               r.first_unpaired_seq + r.unpaired_records - 1);
    highest = std::max(highest, r.first_unpaired_seq + r.unpaired_records - 1);
  }
  // A damaged record's own seq is not trusted: its seqs follow from the
  // intact records around its run when seqs there are consecutive.
  uint64_t named = 0;
  for (const auto& run : r.bad_checksum_runs) {
    uint64_t first = 0;
    if (run.seq_before > 0 && run.seq_after > 0) {
      if (run.seq_after - run.seq_before - 1 == run.count)
        first = run.seq_before + 1;
    } else if (run.seq_before > 0) {
      first = run.seq_before + 1; // a tail: the seqs that would follow
    } else if (run.seq_after > run.count) {
      first = run.seq_after - run.count;
    }
    if (first == 0) {
      d.seqs_incomplete = true;
      continue;
    }
    d.seqs.add(first, first + run.count - 1);
    highest = std::max(highest, first + run.count - 1);
    named += run.count;
  }
  if (r.bad_checksum_records > named)
    d.seqs_incomplete = true;
  // Orphan generations holding records the live one lacks: deleting them
  // drops those records too.
  for (const auto& g : r.stranded) {
    if (g.last_seq - g.first_seq + 1 == g.records)
      d.seqs.add(g.first_seq, g.last_seq);
    else
      d.seqs_incomplete = true;
  }
  // Every whole idx record is either kept or dropped, so the idx length
  // gives the exact count even when the categories above overlap.
  auto idx = dir + "/" + fmt::generation_dir_name(r.generation) + "/"
             + fmt::idx_name;
  auto idx_size = real_file_system()->file_size(idx);
  uint64_t whole = idx_size ? *idx_size / fmt::idx_record_size : 0;
  d.count = whole > kept_count
              ? whole - kept_count
              : r.torn_records + r.unpaired_records + r.bad_checksum_records;
  d.count += r.stranded_records();
  // A torn idx tail is the record the writer was appending when it stopped;
  // it would have followed the highest whole record.
  if (r.torn_idx_bytes > 0) {
    d.count += 1;
    if (highest > 0)
      d.seqs.add(highest + 1);
  }
  return d;
}

void print_findings(const recovery_report& r, std::ostream& out) {
  for (const auto& line : r.findings())
    out << "  - " << line << '\n';
}

std::string kept_text(uint64_t count, const seq_ranges& kept) {
  auto text = records(count);
  if (count > 0)
    text += " (seq " + kept.to_string() + ")";
  return text;
}

std::string dropped_text(const drop_summary& d) {
  if (d.count == 0)
    return "no records";
  auto text = records(d.count);
  if (!d.seqs.empty())
    text += " (seq " + d.seqs.to_string() + (d.seqs_incomplete ? ", ..." : "")
            + ")";
  return text;
}

/// A log as segment::inspect sees it, without changing it.
struct log_state {
  recovery_report report;
  /// Seqs of the records recovery would keep, and how many.
  seq_ranges kept;
  uint64_t count = 0;
  uint64_t last_seq = 0;
  /// Kept records whose seq is not above the one before. Recovery already
  /// drops stray copies of old records (recovery_report::out_of_order_records);
  /// this independent check guards the operator tool against a regression
  /// there, since it is the tool that declares a log intact.
  uint64_t out_of_order = 0;
  uint64_t first_disorder_seq = 0;
  uint64_t first_disorder_after = 0;

  void observe(const log_record& rec) {
    if (count > 0 && rec.seq <= last_seq && out_of_order++ == 0) {
      first_disorder_seq = rec.seq;
      first_disorder_after = last_seq;
    }
    kept.add(rec.seq);
    last_seq = rec.seq;
    ++count;
  }

  bool intact() const {
    return report.clean() && out_of_order == 0;
  }
};

/// One finding line for the records out of seq order.
std::string order_finding(const log_state& st) {
  return "seq order: " + records(st.out_of_order) + " not above the seq before"
         + " (first: seq " + std::to_string(st.first_disorder_seq)
         + " follows seq " + std::to_string(st.first_disorder_after)
         + "); recovery keeps them, it does not repair this";
}

/// Runs segment::inspect on `dir` into `st`, also handing every kept record
/// to `each`; prints the error and returns false on failure.
bool inspect_log(const std::string& dir, log_state& st, std::ostream& err,
                 const std::function<void(const log_record&)>& each = {}) {
  auto collect = [&st, &each](const log_record& rec) {
    st.observe(rec);
    if (each)
      each(rec);
  };
  auto report = segment::inspect(dir, collect);
  if (!report) {
    print_error(err, describe(report.error()));
    return false;
  }
  st.report = std::move(*report);
  return true;
}

/// Runs the recovery `before` describes and says what it dropped and kept.
/// Returns exit_damaged when the log is still not intact afterwards.
int repair(const std::string& dir, const log_state& before, bool force,
           std::ostream& out, std::ostream& err) {
  if (before.report.clean() && before.out_of_order == 0) {
    out << "ok: nothing to repair: " << kept_text(before.count, before.kept)
        << ", generation " << before.report.generation << '\n';
    return exit_ok;
  }
  if (before.report.clean()) {
    out << "cannot repair " << dir << ": recovery finds nothing to drop\n"
        << "  - " << order_finding(before) << '\n';
    return exit_damaged;
  }
  auto drops = summarize_drops(dir, before.report, before.kept, before.count);
  if (!before.report.stranded.empty() && !force) {
    out << "refusing to repair " << dir << ": it would drop "
        << dropped_text(drops) << ", including "
        << records(before.report.stranded_records())
        << " in orphan generations that the live generation "
        << before.report.generation << " lacks\n";
    print_findings(before.report, out);
    out << "  to drop them: meshseg verify --repair --force " << dir
        << " (or move the orphan generations aside first)\n";
    return exit_damaged;
  }
  std::vector<std::string> warnings;
  auto opts = writer_options(err, false);
  opts.discard_stranded = force;
  // Recovery reports what it did through recovery(); its warnings repeat
  // those findings, so they are kept back unless the repair fails.
  opts.on_warning = [&warnings](const std::string& line) {
    warnings.push_back(line);
  };
  auto seg = open_log(dir, std::move(opts), err);
  if (!seg) {
    for (const auto& w : warnings)
      err << "meshseg: warning: " << w << '\n';
    return exit_error;
  }
  auto report = seg->recovery();
  if (!finish(*seg, err))
    return exit_error;
  seg.reset();
  // Read the result back the way verify would.
  log_state after;
  if (!inspect_log(dir, after, err))
    return exit_error;
  out << "repaired " << dir << ": dropped " << dropped_text(drops) << ", kept "
      << kept_text(after.count, after.kept) << ", generation "
      << after.report.generation << '\n';
  print_findings(report, out);
  if (after.intact() && report.loss_summary().empty())
    return exit_ok;
  if (after.intact()) {
    // The log is consistent again, but records were lost before the repair:
    // a script must not read that as success.
    out << "repaired, but records were lost (see above)\n";
    return exit_damaged;
  }
  out << "still damaged after the repair:\n";
  print_findings(after.report, out);
  if (after.out_of_order > 0)
    out << "  - " << order_finding(after) << '\n';
  return exit_damaged;
}

} // namespace

// -- commands -----------------------------------------------------------------

int run_append(const append_args& args, std::ostream& out, std::ostream& err) {
  if (args.payloads.empty() == args.from_file.empty()) {
    print_error(err, "append needs PAYLOAD... or --from-file FILE (one of "
                     "them); see meshseg append --help");
    return exit_error;
  }
  std::vector<std::string> texts = args.payloads;
  if (!args.from_file.empty() && !read_lines(args.from_file, texts, err))
    return exit_error;
  std::vector<bytes> payloads;
  if (!to_payloads(texts, args.hex, args.from_file, payloads, err))
    return exit_error;
  if (!check_dir(args.dir, true, err))
    return exit_error;
  auto seg = open_log(args.dir, writer_options(err, true), err);
  if (!seg)
    return exit_error;
  std::vector<bytes_view> views(payloads.begin(), payloads.end());
  auto last = seg->append_batch(views);
  if (!last) {
    print_error(err, "append to " + args.dir + ": " + describe(last.error()));
    return exit_error;
  }
  if (!finish(*seg, err))
    return exit_error;
  seq_ranges seqs;
  seqs.add(*last - (views.size() - 1), *last);
  out << "appended seq " << seqs.to_string() << " to " << args.dir << '\n';
  return exit_ok;
}

namespace {

const char* status_name(log_entry::status st) {
  return st == log_entry::status::accepted ? "accepted" : "rejected";
}

// A log entry's header fields for `dump --entries`, each with a leading
// separator.
std::string entry_text(const log_entry& e) {
  return " origin=" + hex_u64(e.origin_hash)
         + " epoch=" + std::to_string(e.epoch)
         + " daemon_seq=" + std::to_string(e.daemon_seq)
         + " producer=" + hex_u64(e.producer_id) + "/"
         + std::to_string(e.producer_seq) + " status=" + status_name(e.state);
}

std::string entry_json(const log_entry& e) {
  return ",\"origin\":\"" + hex_u64(e.origin_hash)
         + "\",\"epoch\":" + std::to_string(e.epoch)
         + ",\"daemon_seq\":" + std::to_string(e.daemon_seq)
         + ",\"producer_id\":\"" + hex_u64(e.producer_id)
         + "\",\"producer_seq\":" + std::to_string(e.producer_seq)
         + ",\"status\":\"" + status_name(e.state) + "\"";
}

} // namespace

int run_dump(const dump_args& args, std::ostream& out, std::ostream& err) {
  if (!check_dir(args.dir, false, err))
    return exit_error;
  auto print = [&out, json{args.json},
                entries{args.entries}](const log_record& rec) {
    bytes_view payload{rec.payload};
    std::string fields;
    // The entry's own payload, shown instead of the whole record.
    bytes inner;
    if (entries) {
      auto e = decode_log_entry(payload);
      if (e) {
        fields = json ? entry_json(*e) : entry_text(*e);
        inner = std::move(e->payload);
        payload = bytes_view{inner};
      } else {
        auto why = describe(e.error());
        fields = json ? ",\"entry_error\":" + json_string(why)
                      : " entry_error=" + json_string(why);
      }
    }
    bool text = printable(payload);
    if (json) {
      out << "{\"seq\":" << rec.seq << ",\"timestamp_ns\":" << rec.timestamp_ns
          << ",\"time\":\"" << format_utc(rec.timestamp_ns)
          << "\",\"length\":" << rec.payload.size() << fields
          << ",\"encoding\":\"" << (text ? "text" : "hex") << "\",\"payload\":"
          << (text ? json_string(payload.as_chars())
                   : "\"" + to_hex(payload) + "\"")
          << "}\n";
    } else {
      out << "seq=" << rec.seq << " time=" << format_utc(rec.timestamp_ns)
          << " length=" << rec.payload.size() << fields << ' '
          << (text ? "text=" + json_string(payload.as_chars())
                   : "hex=" + to_hex(payload))
          << '\n';
    }
  };
  log_state st;
  bool ok = inspect_log(args.dir, st, err, print);
  out.flush();
  if (!ok)
    return exit_error;
  if (!st.intact())
    print_error(err, "warning: " + args.dir + " is damaged; shown are the "
                       + records(st.count)
                       + " recovery would keep (see meshseg verify " + args.dir
                       + ")");
  else if (st.count == 0)
    print_error(err, args.dir + ": the log holds no records (generation "
                       + std::to_string(st.report.generation) + ")");
  return exit_ok;
}

int run_verify(const verify_args& args, std::ostream& out, std::ostream& err) {
  if (!check_dir(args.dir, false, err))
    return exit_error;
  log_state st;
  if (!inspect_log(args.dir, st, err))
    return exit_error;
  if (args.repair)
    return repair(args.dir, st, args.force, out, err);
  const auto& report = st.report;
  if (st.intact()) {
    out << "ok: " << records(st.count);
    if (st.count > 0)
      out << ", seq " << st.kept.to_string();
    out << ", generation " << report.generation << '\n';
    return exit_ok;
  }
  auto drops = summarize_drops(args.dir, report, st.kept, st.count);
  out << "damaged: recovery would drop " << dropped_text(drops) << " and keep "
      << kept_text(st.count, st.kept) << ", generation " << report.generation
      << '\n';
  print_findings(report, out);
  if (st.out_of_order > 0)
    out << "  - " << order_finding(st) << '\n';
  if (!report.clean())
    out << "  repair with: meshseg verify --repair "
        << (report.stranded.empty() ? "" : "--force ") << args.dir << '\n';
  return exit_damaged;
}

int run_compact(const compact_args& args, std::ostream& out,
                std::ostream& err) {
  retention r;
  if (args.keep_last) {
    r = retention::keep_last(*args.keep_last);
  } else if (args.max_bytes) {
    r = retention::max_bytes(*args.max_bytes);
  } else if (args.max_age_seconds) {
    constexpr uint64_t max_seconds = UINT64_MAX / 1'000'000'000u;
    if (*args.max_age_seconds > max_seconds) {
      print_error(err, "--max-age " + std::to_string(*args.max_age_seconds)
                         + " is too large (at most "
                         + std::to_string(max_seconds) + " seconds)");
      return exit_error;
    }
    r = retention::max_age(std::chrono::seconds{*args.max_age_seconds});
  } else {
    print_error(err, "compact needs exactly one of --keep-last, --max-bytes, "
                     "--max-age");
    return exit_error;
  }
  if (!check_dir(args.dir, false, err))
    return exit_error;
  auto seg = open_log(args.dir, writer_options(err, false), err);
  if (!seg)
    return exit_error;
  auto res = seg->compact(r);
  if (!res) {
    print_error(err, "compact " + args.dir + ": " + describe(res.error()));
    return exit_error;
  }
  seq_ranges kept;
  if (!live_seqs(*seg, kept, err) || !finish(*seg, err))
    return exit_error;
  out << "compacted " << args.dir << ": dropped "
      << records(res->dropped_records) << ", kept "
      << kept_text(res->kept_records, kept) << ", generation "
      << res->generation << '\n';
  return exit_ok;
}

} // namespace mesh::meshseg
