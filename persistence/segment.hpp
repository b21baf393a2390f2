#pragma once

// An append-only, crash-safe log of (seq, payload, timestamp) records in one
// directory. See docs/formats.md for the files and DESIGN.md section 5.1 for
// the contract. Summary of the guarantees:
//
// - Appends write dat -> idx -> ts, in that order, with O_APPEND and no seek.
//   A record exists once its idx record and its ts entry are both on disk;
//   recovery throws away any tail that lacks one of the three parts.
// - A failed append is rolled back to the previous file lengths. When the
//   rollback itself fails the segment is poisoned: every append, sync and
//   compact fails with errc::poisoned until the segment is reopened, which
//   re-runs recovery against what is really on disk.
// - Durability follows the fsync policy; sync() and close() always fsync all
//   three files (dat -> idx -> ts). durable_seq() tells how far the last
//   successful fsync reached. open() fsyncs what recovery kept (a crashed
//   writer may have left it in the page cache only) before it publishes
//   durable_seq, and fails when that fsync fails.
// - Retention rewrites the surviving suffix into a new generation directory
//   and flips the manifest atomically; a crash at any step leaves either the
//   old or the new generation live, never a mix. The copy runs without the
//   append lock: appends continue while the retained records are copied and
//   wait only for the switch, which copies the few records appended
//   meanwhile, fsyncs and flips.
//
// Cost: a single append is three write(2) calls (two for inline payloads);
// on a 2-core VM that puts single 32-byte appends near 300k/s, where the
// background fsync's writeback competes with the appender.
// TODO(perf): submit the three writes as one linked io_uring submission.
//
// Threading: one owner calls append/sync/compact/read (they serialize on an
// internal mutex, so several threads are safe but contend); a background
// worker runs the policy fsyncs. compact() may run on a thread of its own
// beside the appender. segment_readers (reader()) read on any thread without
// the append lock.

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <caf/expected.hpp>

#include "base/bytes.hpp"
#include "persistence/fsync_policy.hpp"

namespace mesh {

class file_system;
class segment_reader;

/// One record as read back.
struct log_record {
  uint64_t seq = 0;
  uint64_t timestamp_ns = 0;
  bytes payload;
};

/// What recovery found, and did or would do. All counts are records unless
/// named bytes.
struct recovery_report {
  /// Live generation chosen.
  uint32_t generation = 0;
  /// Why that generation, when the manifest did not simply name it.
  std::string generation_note;
  /// Trailing bytes of idx that do not form a whole record.
  uint64_t torn_idx_bytes = 0;
  /// Records at the tail whose payload runs past the end of dat.
  uint64_t torn_records = 0;
  uint64_t first_torn_seq = 0;
  /// Records at the tail without a timestamp (an append cut short).
  uint64_t unpaired_records = 0;
  uint64_t first_unpaired_seq = 0;
  /// Consecutive idx records dropped for a bad checksum (or a seq outside
  /// 1..max_seq). A damaged record's own seq cannot be trusted, so a run is
  /// named by its position in idx (0-based; byte offset = position * 32)
  /// and by the seqs of the intact records around it.
  struct damaged_run {
    uint64_t first_position = 0;
    uint64_t count = 0;
    /// Seq of the nearest intact record before / after the run; 0 = none.
    uint64_t seq_before = 0;
    uint64_t seq_after = 0;
  };
  /// Records whose checksum does not match, anywhere in the file.
  uint64_t bad_checksum_records = 0;
  /// The first few runs of them (at most 16), in idx order.
  std::vector<damaged_run> bad_checksum_runs;
  /// Valid records whose seq does not exceed the one before (stray copies).
  uint64_t out_of_order_records = 0;
  uint64_t first_out_of_order_seq = 0;
  /// The ts file was missing; timestamps were reset to 0.
  bool ts_missing = false;
  /// Kept records whose timestamp is 0 or later than the time of the
  /// analysis plus max_timestamp_skew: the ts file is damaged there. The
  /// records are kept (their checksums hold) with the timestamp as found;
  /// age retention never drops such a record nor anything after it.
  uint64_t bad_timestamp_records = 0;
  uint64_t first_bad_timestamp_seq = 0;
  uint64_t last_bad_timestamp_seq = 0;
  /// dat / ts bytes past what the surviving records reference.
  uint64_t trimmed_dat_bytes = 0;
  uint64_t trimmed_ts_bytes = 0;
  /// Generation directories, unfinished compactions and temp files that
  /// are not part of the live log.
  std::vector<std::string> orphans;
  /// An orphan generation holding records the live generation lacks: seqs
  /// from the live log's first seq on that it does not hold. A compaction
  /// never leaves one (its new generation is a suffix of the old); a stale
  /// manifest or swapped directories do. Recovery refuses to delete it
  /// unless segment_options::discard_stranded.
  struct stranded_generation {
    std::string name;
    /// Records the live generation lacks, and the lowest / highest seq.
    uint64_t records = 0;
    uint64_t first_seq = 0;
    uint64_t last_seq = 0;
  };
  std::vector<stranded_generation> stranded;
  /// The survivors are not a prefix of the files: a new generation holding
  /// only them is (or would be) written.
  bool rewrite = false;
  /// Records that survive.
  uint64_t kept_records = 0;
  /// Records that were appended but are gone without a gap to show for it.
  /// Proof: ts holds entries beyond the last whole idx record (ts is written
  /// and fsynced after idx, and recovery cuts ts before idx, so neither a
  /// crash nor a recovery leaves that), or dat holds more unreferenced bytes
  /// than one append may write (segment_format::max_append_bytes). The
  /// figure is the surplus of ts entries, else those dat bytes divided by
  /// the mean heap payload of the kept records. 0 when no loss is proven.
  uint64_t lost_records_estimate = 0;
  /// ts entries beyond the last whole idx record (part of the proof above).
  uint64_t orphan_ts_entries = 0;
  /// dat bytes past the last payload a kept record references, when a loss
  /// is proven (0 otherwise).
  uint64_t lost_bytes = 0;

  /// True when recovery found nothing to drop, trim or sweep.
  bool clean() const;

  /// Sum of stranded[i].records: what deleting the orphans would lose.
  uint64_t stranded_records() const;

  /// One human-readable line per finding (empty when clean).
  std::vector<std::string> findings() const;

  /// One line with the loss figures ("lost about N record(s) ..."), empty
  /// when nothing was lost. Meant to be logged at error level on start: it
  /// names records that were appended, possibly acknowledged, and are gone.
  std::string loss_summary() const;
};

/// Result of a compaction.
struct compaction_result {
  uint64_t dropped_records = 0;
  uint64_t kept_records = 0;
  uint32_t generation = 0;
};

struct segment_options {
  fsync_policy policy = fsync_policy::every_n(1000);
  /// Non-owning; real_file_system() when null.
  file_system* fs = nullptr;
  /// Create the log when `dir` does not hold one (an empty or missing
  /// directory). A non-empty directory that is not a log is always refused.
  bool create_if_missing = true;
  /// Let recovery delete orphan generations that hold records the live one
  /// lacks (recovery_report::stranded). Without it open fails with
  /// corrupt_data naming them, and changes nothing.
  bool discard_stranded = false;
  /// Receives one line per event an operator should see (recovery damage,
  /// a failed policy fsync). Called from the worker thread too.
  std::function<void(const std::string&)> on_warning;
  /// Test hook: called with a step name between the steps of a compaction
  /// or a recovery rewrite, so crash tests can kill the process there. Also
  /// called with "policy_fsync_requested" when an append makes the policy
  /// ask for an fsync (on the append path, with the segment's lock held: it
  /// must not call back into the segment), and with "policy_wakeup_idle"
  /// from the worker when it woke and found nothing to fsync, so tests can
  /// wait for events instead of sleeping.
  std::function<void(std::string_view)> on_step;
};

class segment {
public:
  /// Opens the log in `dir`, running recovery. The parent of `dir` must
  /// exist; `dir` itself is created when missing and create_if_missing.
  static caf::expected<std::unique_ptr<segment>>
  open(const std::string& dir, segment_options opts = {});

  /// Runs the recovery analysis without changing a single byte on disk.
  /// Calls `each` with every record recovery would keep, in order.
  static caf::expected<recovery_report>
  inspect(const std::string& dir,
          const std::function<void(const log_record&)>& each = {},
          file_system* fs = nullptr);

  /// Closes (and fsyncs), logging failures through on_warning.
  ~segment();

  segment(const segment&) = delete;
  segment& operator=(const segment&) = delete;

  /// Appends one record stamped with the current time; returns its seq.
  caf::expected<uint64_t> append(bytes_view payload);

  /// Appends one record with an explicit timestamp; returns its seq.
  caf::expected<uint64_t> append(bytes_view payload, uint64_t timestamp_ns);

  /// Appends `payloads` as consecutive records, writing each file once.
  /// All or nothing. Returns the seq of the last record.
  caf::expected<uint64_t> append_batch(const std::vector<bytes_view>& payloads);
  caf::expected<uint64_t> append_batch(const std::vector<bytes_view>& payloads,
                                       uint64_t timestamp_ns);

  /// fsyncs dat, idx and ts, in that order.
  caf::error sync();

  /// Stops the fsync worker, fsyncs and closes the files. Idempotent; after
  /// it every call but the accessors fails.
  caf::error close();

  /// Drops the prefix `r` selects (decided over the records there are when
  /// it starts) by rewriting the rest into a new generation. The bulk copy
  /// and its fsync run without the append lock, so appends from other
  /// threads continue; they wait only for the final switch (copy of the
  /// records appended meanwhile, fsync, rename, manifest flip). Compactions
  /// run one at a time.
  caf::expected<compaction_result> compact(const retention& r);

  /// A reader of this segment that never takes the append lock: it reads
  /// what the appender has published, through handles of its own, and stays
  /// valid across compactions (and after close, when it fails its scans).
  std::unique_ptr<segment_reader> reader() const;

  /// Reads one record; not_found when `seq` is not in the log.
  caf::expected<log_record> read(uint64_t seq) const;

  /// Calls `f` for every record with seq >= from_seq until it returns false.
  /// Holds the segment's lock: `f` must not call back into the segment.
  caf::error for_each(uint64_t from_seq,
                      const std::function<bool(const log_record&)>& f) const;

  /// Seq of the oldest record (next_seq() when empty).
  uint64_t first_seq() const;
  /// Seq the next append gets.
  uint64_t next_seq() const;
  /// Number of records.
  uint64_t size() const;
  /// Highest seq covered by a successful fsync (0 = none). Right after open
  /// it is the last recovered seq, fsynced by open itself.
  uint64_t durable_seq() const;
  /// Successful and failed fsync rounds so far.
  uint64_t sync_count() const;
  uint64_t failed_sync_count() const;
  bool poisoned() const;
  uint32_t generation() const;
  const std::string& dir() const;
  const fsync_policy& policy() const;
  /// What recovery found when this segment was opened.
  const recovery_report& recovery() const;

  struct impl;

private:
  explicit segment(std::unique_ptr<impl> ptr);
  std::unique_ptr<impl> impl_;
};

/// Reads records beside the appender (see segment::reader()). One reader is
/// used by one thread at a time; several readers may run at once.
class segment_reader {
public:
  struct shared;
  explicit segment_reader(std::shared_ptr<shared> state);
  ~segment_reader();

  /// Calls `f` for every record with seq >= from_seq, in seq order, up to
  /// the end the appender had published when the call began, until `f`
  /// returns false. Returns the seq to continue from: the one after the last
  /// record `f` saw, or the published next_seq when the scan reached the end.
  /// A compaction flipping the generation meanwhile does not disturb the
  /// scan: it finishes on the generation it began on. corrupt_data when a
  /// record's checksum does not match (the files changed under the log).
  caf::expected<uint64_t> scan(uint64_t from_seq,
                               const std::function<bool(const log_record&)>& f);

  /// The seq the next append gets, as published.
  uint64_t end_seq() const;

private:
  std::shared_ptr<shared> state_;
};

/// Current wall-clock time in unix nanoseconds.
uint64_t unix_now_ns();

/// How far in the future a record's timestamp may lie before recovery calls
/// it damage: one day, far beyond the clock skew between NTP-synced hosts,
/// so a log copied between machines or a clock stepped back is not flagged.
constexpr std::chrono::hours max_timestamp_skew{24};

/// False for a timestamp that is 0 or later than `now_ns` plus
/// max_timestamp_skew.
bool plausible_timestamp(uint64_t ts_ns, uint64_t now_ns);

} // namespace mesh
