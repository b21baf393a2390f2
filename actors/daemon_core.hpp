#pragma once

// The single-threaded heart of a daemon, free of CAF so that start-up
// recovery, the daemon actor and tests share one implementation:
// deduplication by producer high-water marks, daemon_seq assignment, the
// output chain, failure handling with rebuild-by-replay, and snapshots.
//
// The rebuild base is the last snapshot (its state, chain head, dedup marks
// and through_seq); every input since then, accepted or rejected, is kept in
// an in-memory journal that each snapshot clears (the journal forces a
// snapshot when it grows past journal_limit). From base + journal the core
// can rebuild itself:
//   - after a rejected event: a fresh object from the factory, restore of the
//     base state, replay of the accepted journal entries (the output chain,
//     already released, stays as it is);
//   - after a failed log write (rollback_to): the same, but only up to the
//     last event the log holds, with the chain head, dedup marks and last_seq
//     of that point, so memory never holds an event the log does not.
//
// User code is contained: a throw of any type, or an error, from the
// factory, restore(), process(), snapshot() or state_version() becomes an
// error value here and never escapes into the actor.

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <caf/expected.hpp>

#include "actors/batch.hpp"
#include "actors/daemon.hpp"
#include "actors/daemon_info.hpp"
#include "identity/keypair.hpp"
#include "persistence/log_entry.hpp"
#include "snapshot/snapshot.hpp"

namespace mesh {

/// daemon_failed naming the daemon and why it failed.
caf::error daemon_failed_error(uint64_t origin, const std::string& reason);

class daemon_core {
public:
  using maker = std::function<caf::expected<std::unique_ptr<daemon>>()>;

  /// Events accepted since the last snapshot before one is forced.
  static constexpr size_t journal_limit = 100000;

  /// Per producer, how many recent (producer_seq -> daemon_seq) pairs are
  /// remembered to answer duplicates with the seq they were applied at.
  static constexpr size_t recent_window = 1024;

  daemon_core(std::string kind, keypair identity, maker make,
              std::unique_ptr<daemon> instance, restart_policy policy);

  /// A core whose daemon could not be built or recovered: it holds no user
  /// object, refuses every input with the reason and is listed as failed.
  static std::shared_ptr<daemon_core>
  failed_core(std::string kind, keypair identity, std::string why);

  /// Adopts a decoded snapshot: restores the state into the current object
  /// and takes over the chain head, dedup marks and through_seq.
  caf::error restore(const snapshot& snap);

  /// The daemon's life on this node (daemon_record.hpp): every log entry
  /// and snapshot it makes carries it. Set before the daemon serves.
  void set_epoch(uint64_t epoch) {
    epoch_ = epoch;
  }
  uint64_t epoch() const {
    return epoch_;
  }

  /// Whether apply() builds log entries (on when the daemon has an event
  /// log; off saves a payload copy per event). On by default.
  void set_logging(bool on) {
    logging_ = on;
  }
  bool logging() const {
    return logging_;
  }

  /// When on, apply() leaves the rebuild after a rejected event pending
  /// instead of running it (the factory, restore and a replay of the
  /// journal: user code of unbounded cost); the caller runs it with
  /// finish_rebuild() before the next apply(), wherever it likes (the daemon
  /// actor: on the store actor's thread). Off by default.
  void set_deferred_rebuild(bool on) {
    defer_rebuild_ = on;
  }
  /// A rejected event left a rebuild pending; apply() must not be called
  /// until finish_rebuild() ran.
  bool rebuild_pending() const {
    return pending_rebuild_.has_value();
  }
  /// Runs the pending rebuild under the restart policy. Returns false when
  /// the daemon failed instead (limit reached or rebuild failed).
  bool finish_rebuild();

  /// Applies one inbound event (dedup, seq, process, outputs or rebuild) and
  /// appends its answer to `out`. When logging is on and the event got a
  /// daemon_seq (applied or rejected), appends its log entry to `log`.
  /// Returns true when the event got a daemon_seq; false for a duplicate or
  /// when the daemon has failed.
  bool apply(const event_ref& ev, uint64_t now_ns, delivery_batch& out,
             log_batch& log);

  /// Re-applies a logged entry during start-up recovery. Outputs advance the
  /// chain exactly as they did the first time. Entries must follow
  /// last_seq() without a gap (recovery checks that before calling).
  void replay(const log_entry& e);

  /// Builds a snapshot of the current state and marks it as the new rebuild
  /// base. The caller encodes, signs and stores it. Fails (and leaves the
  /// base as it was) when the daemon's snapshot() or state_version() throws.
  caf::expected<snapshot> take_snapshot(snapshot_kind kind, uint64_t now_ns);

  /// A snapshot taken as by take_snapshot(), encoded and signed with the
  /// daemon's identity (encode_snapshot()).
  struct encoded_snapshot {
    uint64_t through_seq = 0;
    bytes encoded;
  };

  /// take_snapshot() and encode_snapshot() in one, without a second copy of
  /// the state: the encoding reads the state snapshot() returned, which is
  /// then moved into the rebuild base. The base moves even when the encoding
  /// fails (e.g. too large), as with take_snapshot().
  caf::expected<encoded_snapshot> take_encoded_snapshot(snapshot_kind kind,
                                                        uint64_t now_ns);

  /// Forgets every input after `seq` (the log does not hold them): rebuilds
  /// the object from the base and the journal up to `seq`, and restores the
  /// chain head, dedup marks and last_seq of that point. `seq` must lie in
  /// [base seq, last_seq()]. On a failed rebuild the daemon is failed.
  caf::error rollback_to(uint64_t seq);

  /// Marks the daemon failed with `why` (recovery found its log damaged, or
  /// its actor died). lost_through > 0 says that inputs last_seq()+1 ..
  /// lost_through were logged once and are lost.
  void fail(std::string why, uint64_t lost_through = 0);

  /// Makes a failed daemon serve again from its current (last good) state:
  /// a fresh object, restore, journal replay; the restart history is
  /// cleared. When inputs were lost (lost_through() > 0), `accept_loss`
  /// must be true: their daemon_seqs are skipped, never reused. The caller
  /// snapshots right after, so the skip is durable before new input.
  caf::error resume(bool accept_loss);

  /// Inputs up to this daemon_seq are lost (0 = none).
  uint64_t lost_through() const {
    return lost_through_;
  }

  /// daemon_seq of the rebuild base (the last snapshot's through_seq).
  uint64_t base_seq() const {
    return base_seq_;
  }

  uint64_t high_water_mark(uint64_t producer_id) const;

  bool failed() const {
    return failed_;
  }
  const std::string& failure() const {
    return failure_;
  }
  uint64_t origin() const {
    return origin_;
  }
  const keypair& identity() const {
    return identity_;
  }
  const std::string& kind() const {
    return kind_;
  }
  const daemon_stats& stats() const {
    return stats_;
  }
  uint64_t last_seq() const {
    return last_seq_;
  }
  /// Events applied since the last snapshot.
  size_t journal_size() const {
    return journal_.size();
  }

  /// Marks the current state as the new rebuild base without building a
  /// snapshot (for auto-snapshots that nothing keeps: no node_store). Counts
  /// as a snapshot taken in stats(), like take_snapshot().
  caf::error rebase();

private:
  struct producer_marks {
    uint64_t hwm = 0;
    uint64_t applied_at = 0;
    /// (producer_seq, daemon_seq) in the order noted.
    std::deque<std::pair<uint64_t, uint64_t>> recent;
    /// producer_seq strictly increases along `recent` (always, unless a log
    /// replayed out of order): duplicates are looked up by binary search.
    bool ordered = true;
  };

  /// An input since the last snapshot; its payload is
  /// journal_data_[offset, offset + size).
  struct journal_entry {
    uint64_t producer_id;
    uint64_t producer_seq;
    uint64_t seq;
    uint64_t received_at_ns;
    size_t offset;
    size_t size;
    /// The chain head after this input's outputs.
    chain_head head;
    uint32_t outputs;
    bool rejected;
  };

  caf::expected<std::vector<bytes>> run(const causal_event& ev);
  /// The daemon's snapshot() and state_version(), contained.
  caf::expected<std::pair<std::optional<bytes>, uint32_t>> user_state() const;
  /// A fresh object with the base state restored and the accepted journal
  /// entries replayed. On error the current object is kept.
  caf::error rebuild_instance();
  /// Fills input_ (reusing its payload buffer) with the input event.
  void make_input(uint64_t producer_id, uint64_t producer_seq,
                  bytes_view payload, uint64_t seq, uint64_t now_ns);
  void journal_append(uint64_t producer_id, uint64_t producer_seq,
                      bytes_view payload, uint64_t seq, uint64_t now_ns,
                      uint32_t outputs, bool rejected);
  void journal_clear();
  /// Makes the current state (seq, chain head, marks) the rebuild base.
  void set_base(std::optional<bytes> state, uint32_t version);

  /// A snapshot of the current state; the base is left as it is.
  caf::expected<snapshot> make_snapshot(snapshot_kind kind, uint64_t now_ns);

  void note_applied(uint64_t producer_id, uint64_t producer_seq, uint64_t seq);
  void note_applied(producer_marks& pm, uint64_t producer_seq, uint64_t seq);
  /// The daemon_seq `producer_seq` was applied at, 0 when not remembered.
  static uint64_t applied_at(const producer_marks& pm, uint64_t producer_seq);
  /// Returns false when the restart policy is exhausted or rebuild failed.
  bool rebuild(const std::string& why);

  std::string kind_;
  keypair identity_;
  uint64_t origin_;
  maker make_;
  std::unique_ptr<daemon> instance_;
  restart_policy policy_;
  chain_builder chain_;
  uint64_t last_seq_ = 0;
  std::map<uint64_t, producer_marks> marks_;
  std::optional<bytes> base_state_;
  uint32_t base_state_version_ = 1;
  uint64_t base_seq_ = 0;
  chain_head base_head_;
  std::vector<dedup_mark> base_marks_;
  std::vector<journal_entry> journal_;
  bytes journal_data_;
  /// The event handed to process(); reused so that its payload buffer is
  /// not allocated per event.
  causal_event input_;
  bool logging_ = true;
  uint64_t epoch_ = 1;
  bool defer_rebuild_ = false;
  /// Why the event that left a rebuild pending was rejected.
  std::optional<std::string> pending_rebuild_;
  std::deque<std::chrono::steady_clock::time_point> restart_times_;
  daemon_stats stats_;
  bool failed_ = false;
  std::string failure_;
  uint64_t lost_through_ = 0;
};

} // namespace mesh
