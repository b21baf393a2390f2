#pragma once

// The single-threaded heart of a daemon, free of CAF so that start-up
// recovery, the daemon actor and tests share one implementation:
// deduplication by producer high-water marks, daemon_seq assignment, the
// output chain, failure handling with rebuild-by-replay, and snapshots.
//
// Rebuild after a rejected event: a fresh object from the factory, restore of
// the last snapshot's state, then replay of every event accepted since that
// snapshot (kept in an in-memory journal that each snapshot clears; the
// journal forces a snapshot when it grows past journal_limit).

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
#include "actors/runtime.hpp"
#include "identity/keypair.hpp"
#include "persistence/node_store.hpp"
#include "snapshot/snapshot.hpp"

namespace mesh {

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

  /// Adopts a decoded snapshot: restores the state into the current object
  /// and takes over the chain head, dedup marks and through_seq.
  caf::error restore(const snapshot& snap);

  /// Whether apply() builds log entries (on when the daemon has an event
  /// log; off saves a payload copy per event). On by default.
  void set_logging(bool on) {
    logging_ = on;
  }
  bool logging() const {
    return logging_;
  }

  /// Applies one inbound event (dedup, seq, process, outputs or rebuild) and
  /// appends its answer to `out`. When logging is on and the event got a
  /// daemon_seq (applied or rejected), appends its log entry to `log`.
  /// Returns true when the event got a daemon_seq; false for a duplicate or
  /// when the daemon has failed.
  bool apply(const event_ref& ev, uint64_t now_ns, delivery_batch& out,
             log_batch& log);

  /// Re-applies a logged entry during start-up recovery. Outputs advance the
  /// chain exactly as they did the first time.
  void replay(const log_entry& e);

  /// Builds a snapshot of the current state and marks it as the new rebuild
  /// base. The caller encodes, signs and stores it.
  snapshot take_snapshot(snapshot_kind kind, uint64_t now_ns);

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
  void rebase();

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

  /// An event accepted since the last snapshot; its payload is
  /// journal_data_[offset, offset + size).
  struct journal_entry {
    uint64_t producer_id;
    uint64_t producer_seq;
    uint64_t seq;
    uint64_t received_at_ns;
    size_t offset;
    size_t size;
  };

  caf::expected<std::vector<bytes>> run(const causal_event& ev);
  /// Fills input_ (reusing its payload buffer) with the input event.
  void make_input(uint64_t producer_id, uint64_t producer_seq,
                  bytes_view payload, uint64_t seq, uint64_t now_ns);
  void journal_append(uint64_t producer_id, uint64_t producer_seq,
                      bytes_view payload, uint64_t seq, uint64_t now_ns);
  void journal_clear();
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
  std::vector<journal_entry> journal_;
  bytes journal_data_;
  /// The event handed to process(); reused so that its payload buffer is
  /// not allocated per event.
  causal_event input_;
  bool logging_ = true;
  std::deque<std::chrono::steady_clock::time_point> restart_times_;
  daemon_stats stats_;
  bool failed_ = false;
  std::string failure_;
};

} // namespace mesh
