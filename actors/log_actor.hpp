#pragma once

// The node's write-ahead event log as an actor. Group commit: appends are
// queued and a flush message is sent to self; by the time it arrives every
// append already in the mailbox has joined the queue, and the whole queue is
// written with one batch append (one write per file). Replies go out after
// the write, and after an fsync when the policy is every_n:1.
//
// It also decides compaction: it knows, per daemon, the log seqs of entries
// newer than that daemon's last snapshot; the prefix older than all of them
// is dropped once it is large enough.

#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

#include <caf/fwd.hpp>

#include "actors/messages.hpp"

namespace mesh {

class segment;

struct log_actor_config {
  /// Owned by the actor from spawn on (null = no durable log: appends are
  /// answered at once).
  std::shared_ptr<segment> seg;
  /// fsync before answering (every_n:1). The actor then runs on its own
  /// thread (caf::detached) so that the fsync does not hold up a scheduler
  /// worker.
  bool sync_each_commit = false;
  /// Compact once this many records are no longer needed.
  uint64_t compact_after = 100000;
  /// (origin, daemon_seq, log_seq) of entries recovered at start-up.
  std::vector<std::tuple<uint64_t, uint64_t, uint64_t>> pending;
};

log_actor spawn_log_actor(caf::actor_system& sys, log_actor_config cfg);

/// True when `p` asks for an fsync before an append is acknowledged.
bool requires_sync_ack(const fsync_policy& p);

} // namespace mesh
