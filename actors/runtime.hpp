#pragma once

// The C++ API for running daemons on one node, for embedding meshd in a
// program and for the meshd binary itself. Every call blocks until the
// runtime's actors answered (or `request_timeout` passed). It is a thin
// layer over the actor protocol (actors/messages.hpp): each call is one
// typed request to the supervisor or a daemon actor (actors/blocking_client
// sends it and waits; actors/daemon_handles caches daemon handles), and an
// actor that wants no blocking talks to supervisor() itself.
//
//   caf::actor_system_config cfg;
//   caf::actor_system sys{mesh::apply_scheduler_defaults(cfg)};
//   mesh::runtime rt{sys, opts};
//   rt.register_factory("counter", [] { return std::make_unique<counter>(); });
//   rt.start();                                  // recovers from data_dir
//   auto d = rt.spawn("counter");
//   auto r = rt.deliver(d->origin_hash, {producer, 1, payload});
//
// For throughput, batch: fill a reused mesh::event_batch and call
// deliver_batch(origin, batch); read the answers from the delivery_batch.
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

#include "actors/batch.hpp"
#include "actors/daemon.hpp"
#include "actors/daemon_info.hpp"
#include "actors/messages.hpp"
#include "base/bytes.hpp"
#include "identity/fwd.hpp"
#include "persistence/segment.hpp"
#include "snapshot/causal.hpp"

namespace mesh {

class file_system;

struct runtime_options {
  /// Where the event log, snapshots and daemon records live. Empty = nothing
  /// is durable (tests and benchmarks of the pure actor path).
  std::string data_dir;
  /// Every file the runtime touches goes through this (non-owning; must
  /// outlive the runtime). Null = the real file system. Tests inject faults
  /// here (base/file_system.hpp).
  file_system* fs = nullptr;
  /// fsync policy of the event log (see docs/operations.md for what each
  /// guarantees).
  fsync_policy fsync = fsync_policy::every_n(1000);
  /// Snapshot a daemon automatically after this many applied events (0 =
  /// not by count) or this much time since its last snapshot (0 = not by
  /// time). Either way a daemon also snapshots on shutdown (when anything
  /// changed), on request, when the event log asks for it (its old entries
  /// hold compaction back) and once 100,000 inputs piled up since its last
  /// snapshot (the bound of its in-memory rebuild journal).
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
  /// How long deliver / deliver_batch spin for the daemon's answer before
  /// they sleep (0 = sleep at once). The answer to a batch usually comes
  /// within tens of microseconds, and one sleep/wake hand-off costs about
  /// as much again on small VMs; see actors/reply.hpp.
  std::chrono::microseconds reply_spin{100};
};

/// The CAF settings meshd runs with: the meshd message types (the type-id
/// block, register_message_types() in actors/messages.hpp, so that every
/// request to the runtime's actors can be serialized) and the scheduler.
/// Call on the config before the actor_system is built (and before parsing
/// user options, so that those still win):
///
///  - scheduler.max-threads = cores - 1 (at least 1). CAF's default is
///    max(cores, 4): on a 2-core machine four workers would fight over two
///    cores with the threads that are not workers (callers of this facade,
///    the event log's fsync thread, the middleman). One core is left to them.
///  - work-stealing.aggressive-poll-attempts = 100,000 (CAF: 100). A worker
///    that runs out of work polls its queue this often (about 0.25 ms)
///    before it naps. With CAF's 100 polls a worker naps within a
///    microsecond, and a request that arrives a few microseconds later (the
///    next batch of a producer that just got its answer) waits for the nap,
///    about 50 us on a VM. The price is a quarter millisecond of one core
///    after each burst of work.
caf::actor_system_config&
apply_scheduler_defaults(caf::actor_system_config& cfg);

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
  /// daemon_not_found when no daemon has this origin, or when the daemon
  /// stopped after it took the batch but before it answered: then some of
  /// the events may have been applied (the error says so), and resending
  /// them with the same producer seqs is safe; anonymous ones may apply
  /// twice. limit_exceeded (naming the limit, actors/limits.hpp) for a
  /// batch too large or an event payload too large; nothing is applied.
  /// daemon_failed when the daemon has failed. io_error when the event log
  /// could not write the batch: nothing of it was applied, and the daemon
  /// keeps serving.
  caf::expected<std::vector<delivery>>
  deliver_batch(uint64_t origin_hash, const std::vector<inbound_event>& evs);
  /// The same with packed events and answers (actors/batch.hpp): a few
  /// allocations per batch instead of several per event. The fast path; the
  /// other two calls convert into it.
  caf::expected<delivery_batch> deliver_batch(uint64_t origin_hash,
                                              const event_batch& evs);

  /// Highest producer_seq of `producer_id` the daemon has applied (0 = none).
  caf::expected<uint64_t> high_water_mark(uint64_t origin_hash,
                                          uint64_t producer_id);

  /// Stops the daemon and deletes its durable state. Works on a failed
  /// daemon too.
  caf::error stop(uint64_t origin_hash);

  /// A failed daemon serves again from its last good state. When the
  /// failure lost logged inputs (a log gap found at recovery), `accept_loss`
  /// must be true: their daemon_seqs are skipped. A daemon whose actor died
  /// is rebuilt from its snapshot and the event log.
  caf::expected<daemon_info> resume(uint64_t origin_hash, bool accept_loss);

  /// Takes (and persists) a signed snapshot; returns its encoding.
  caf::expected<bytes> snapshot(uint64_t origin_hash);

  caf::expected<daemon_stats> stats(uint64_t origin_hash);

  caf::expected<daemon_info> info(uint64_t origin_hash);

  /// Every daemon, failed ones included, sorted by origin. An error when the
  /// supervisor does not answer (for example after shutdown).
  caf::expected<std::vector<daemon_info>> daemons();

  caf::expected<size_t> daemon_count();

  /// The node's own producer id (stable across restarts when data_dir is
  /// set; see actors/nonce_actor.hpp).
  caf::expected<uint64_t> producer_id();

  /// Kinds that can be spawned.
  std::vector<std::string> kinds() const;

  /// The placement filter `kind` states (daemon::requirements()), read from
  /// a throwaway instance built by its factory. Errors: factory_not_found,
  /// process_failed (the factory or requirements() threw).
  caf::expected<capability_filter>
  kind_requirements(const std::string& kind) const;

  const runtime_options& options() const;

  /// The node's supervisor, for code that talks to the runtime's actors
  /// directly (the gateway, asynchronously; see docs/plugins.md, section
  /// "The actor protocol"). Every call above is one request to it or, through
  /// its lookup_atom, to a daemon actor; a null handle after shutdown.
  supervisor_actor supervisor() const;

  struct impl;

private:
  std::unique_ptr<impl> impl_;
};

} // namespace mesh
