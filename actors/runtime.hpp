#pragma once

// The C++ API for running daemons on one node, for embedding meshd in a
// program and for the meshd binary itself. Every call blocks until the
// runtime's actors answered (or `request_timeout` passed).
//
//   caf::actor_system_config cfg;
//   caf::actor_system sys{cfg};
//   mesh::runtime rt{sys, opts};
//   rt.register_factory("counter", [] { return std::make_unique<counter>(); });
//   rt.start();                                  // recovers from data_dir
//   auto d = rt.spawn("counter");
//   auto r = rt.deliver(d->origin_hash, {producer, 1, payload});
//
// Lifecycle: registering -> ready -> shutting_down. Spawning before start()
// fails not_ready; spawning or registering after shutdown() fails
// shutting_down. Registering new kinds while ready is allowed.

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <caf/expected.hpp>
#include <caf/fwd.hpp>

#include "actors/daemon.hpp"
#include "base/bytes.hpp"
#include "identity/fwd.hpp"
#include "persistence/segment.hpp"
#include "snapshot/causal.hpp"

namespace mesh {

/// What happens when a daemon's process() fails.
struct restart_policy {
  /// Restarts allowed within `window`; one more failure stops the daemon
  /// and shows it as failed.
  uint32_t max_restarts = 1;
  /// 0 = the whole lifetime of the daemon.
  std::chrono::milliseconds window{0};

  /// One restart in the daemon's lifetime (the default).
  static restart_policy once();
  static restart_policy bounded(uint32_t max_restarts,
                                std::chrono::milliseconds within);
};

struct runtime_options {
  /// Where the event log, snapshots and daemon records live. Empty = nothing
  /// is durable (tests and benchmarks of the pure actor path).
  std::string data_dir;
  /// fsync policy of the event log (see docs/operations.md for what each
  /// guarantees).
  fsync_policy fsync = fsync_policy::every_n(1000);
  /// Snapshot a daemon automatically after this many applied events (0 =
  /// never) or this much time since its last snapshot (0 = never).
  uint64_t snapshot_every_events = 10000;
  std::chrono::milliseconds snapshot_every{0};
  restart_policy restart = restart_policy::once();
  /// Snapshot every daemon on shutdown (false: the next start replays the
  /// log from the last snapshot instead; faster shutdown, slower start).
  bool snapshot_on_shutdown = true;
  /// Compact the event log once this many records at its head are covered
  /// by every daemon's snapshot.
  uint64_t compact_after = 100000;
  /// How long a facade call waits for the actors.
  std::chrono::milliseconds request_timeout{30000};
};

/// A daemon as the node's table lists it.
struct daemon_info {
  uint64_t origin_hash = 0;
  entity_id id{};
  std::string kind;
  /// Last input daemon_seq applied.
  uint64_t last_seq = 0;
  /// "running" or "failed".
  std::string state;
  uint64_t epoch = 0;
};

struct daemon_stats {
  uint64_t events_processed = 0;
  uint64_t events_emitted = 0;
  uint64_t duplicates = 0;
  uint64_t errors = 0;
  uint64_t snapshots_taken = 0;
  uint64_t restarts = 0;
  uint64_t last_seq = 0;
};

/// One event from a producer. producer_id 0 = anonymous: no deduplication.
struct inbound_event {
  uint64_t producer_id = 0;
  uint64_t producer_seq = 0;
  bytes payload;
};

/// The answer for one inbound event.
struct delivery {
  enum class status : uint8_t { applied, duplicate, rejected };
  status state = status::applied;
  /// applied: the daemon_seq assigned; duplicate: the daemon_seq it was
  /// applied at (0 when older than the remembered window); rejected: the
  /// daemon_seq it was recorded at.
  uint64_t daemon_seq = 0;
  /// rejected: why.
  std::string error;
  std::vector<causal_event> outputs;
};

class runtime {
public:
  runtime(caf::actor_system& sys, runtime_options opts);

  /// Shuts down (snapshotting every daemon) if still running.
  ~runtime();

  runtime(const runtime&) = delete;
  runtime& operator=(const runtime&) = delete;

  caf::error register_factory(const std::string& kind, daemon_factory factory);

  /// Opens the data directory and brings back every daemon it holds
  /// (snapshot, then replay of its logged events). Idempotent.
  caf::error start();

  /// Snapshots and stops every daemon, closes the log. Idempotent.
  caf::error shutdown();

  bool is_ready() const;

  /// A new daemon of `kind` with a fresh identity.
  caf::expected<daemon_info> spawn(const std::string& kind);

  /// A new daemon of `kind` with the given identity. already_registered when
  /// a daemon with this identity runs (the first one is left untouched).
  caf::expected<daemon_info> spawn(const std::string& kind, const keypair& id);

  /// Rebuilds a daemon from an encoded snapshot. `id` must be the identity
  /// the snapshot was taken under (snapshot_identity_mismatch otherwise).
  caf::expected<daemon_info> spawn_from_snapshot(const keypair& id,
                                                 bytes_view snapshot);

  /// Delivers one event. A rejected event comes back as process_failed.
  caf::expected<delivery> deliver(uint64_t origin_hash, inbound_event ev);

  /// Delivers events in order as one message; one delivery per event.
  caf::expected<std::vector<delivery>>
  deliver_batch(uint64_t origin_hash, std::vector<inbound_event> evs);

  /// Highest producer_seq of `producer_id` the daemon has applied (0 = none).
  caf::expected<uint64_t> high_water_mark(uint64_t origin_hash,
                                          uint64_t producer_id);

  /// Stops the daemon and deletes its durable state.
  caf::error stop(uint64_t origin_hash);

  /// Takes (and persists) a signed snapshot; returns its encoding.
  caf::expected<bytes> snapshot(uint64_t origin_hash);

  caf::expected<daemon_stats> stats(uint64_t origin_hash);

  caf::expected<daemon_info> info(uint64_t origin_hash);

  std::vector<daemon_info> daemons();

  size_t daemon_count();

  /// The node's own producer id (stable across restarts when data_dir is
  /// set; see actors/nonce_actor.hpp).
  caf::expected<uint64_t> producer_id();

  /// Kinds that can be spawned.
  std::vector<std::string> kinds() const;

  const runtime_options& options() const;

  struct impl;

private:
  std::unique_ptr<impl> impl_;
};

} // namespace mesh
