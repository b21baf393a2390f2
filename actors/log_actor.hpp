#pragma once

// The node's write-ahead event log as an actor. Group commit: appends are
// queued and a flush message is sent to self; by the time it arrives every
// append already in the mailbox has joined the queue, and the whole queue is
// written with as few batch appends as its size allows (one write per file
// each). Replies go out after the write, and after an fsync when the policy
// is every_n:1.
//
// One failing batch fails only itself: when a group write fails, its batches
// are written again one by one, so only the one that cannot be written gets
// the error. Per daemon the log holds a gap-free run of daemon_seqs: after a
// failed batch, every later batch of that daemon that does not start where
// the log ends is refused too (it was built on top of the failed one), until
// the daemon, rolled back, sends again from the first seq the log lacks.
// After a failed fsync the log refuses every append until the node restarts:
// what reached the disk is unknown, and only recovery can tell.
//
// It also decides compaction: it knows, per daemon, the log seqs of entries
// newer than that daemon's last snapshot; the prefix older than all of them
// is dropped once it is large enough. A daemon whose old entries hold that
// prefix back (typically an idle one, which never snapshots by itself) is
// asked to snapshot, so the log stays bounded whatever the mix of busy and
// idle daemons.

#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

#include <caf/fwd.hpp>

#include "actors/messages.hpp"
#include "persistence/segment.hpp"

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
  /// Largest number of payload bytes one segment write of a group commit
  /// carries; a larger queue is written in several.
  size_t max_group_bytes = 16u << 20;
  /// (origin, epoch, daemon_seq, log_seq) of entries recovered at start-up.
  std::vector<std::tuple<uint64_t, uint64_t, uint64_t, uint64_t>> pending;
};

log_actor spawn_log_actor(caf::actor_system& sys, log_actor_config cfg);

/// True when `p` asks for an fsync before an append is acknowledged.
bool requires_sync_ack(const fsync_policy& p);

} // namespace mesh
