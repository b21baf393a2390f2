// Recovery of a disk segment: the walk over one generation directory that
// decides which records survive (analyze), and the recovery_report methods
// that describe what it found. Reads only; the repair that follows (cut or
// rewrite) is segment::impl::recover in segment.cpp.

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "base/errc.hpp"
#include "base/file_system.hpp"
#include "persistence/segment.hpp"
#include "persistence/segment_format.hpp"
#include "persistence/segment_internal.hpp"

namespace mesh {

namespace sf = segment_format;

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

namespace segment_internal {

namespace {

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

} // namespace

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

} // namespace segment_internal

} // namespace mesh
