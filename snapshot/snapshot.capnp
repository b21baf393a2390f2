# The snapshot format: the durable, signed image of one daemon.
# docs/formats-snapshot.md describes the encoding byte by byte; the codec is
# snapshot/snapshot.cpp. Field numbers are part of the format: add new fields
# at the end with the next number, never renumber or retype one.

@0xb1368655bce17122;

using Cxx = import "/capnp/c++.capnp";
$Cxx.namespace("mesh::schema");

# Why the snapshot was taken (mesh::snapshot_kind).
enum SnapshotKind {
  local @0;
  migration @1;
}

# Head of the daemon's output chain (mesh::chain_head).
struct ChainHead {
  sequence @0 :UInt64;
  hash @1 :UInt64;
}

# A producer's high-water mark (mesh::dedup_mark).
struct DedupMark {
  producerId @0 :UInt64;
  producerSeq @1 :UInt64;
  appliedAt @2 :UInt64;
}

# The signed content (mesh::snapshot).
struct Snapshot {
  # Layout version of this struct's meaning; readers reject any version they
  # do not know before looking at anything else in the body.
  formatVersion @0 :UInt32;
  kind @1 :SnapshotKind;
  # Factory name of the daemon, e.g. "counter".
  daemonKind @2 :Text;
  # The daemon's ed25519 public key; exactly 32 bytes. Also the key the
  # signature in SignedSnapshot is checked against.
  entityId @3 :Data;
  throughSeq @4 :UInt64;
  chainHead @5 :ChainHead;
  state :union {
    # A stateless daemon (mesh::snapshot::state == nullopt). Discriminant 0,
    # so an unset union reads as stateless.
    none @6 :Void;
    # The bytes returned by the daemon's snapshot(); may be empty.
    bytes @7 :Data;
  }
  stateVersion @8 :UInt32;
  dedupMarks @9 :List(DedupMark);
  createdAtNs @10 :UInt64;
  # The life of the daemon that took it (mesh::log_entry::epoch). 0 in
  # snapshots written before epochs existed: read as epoch 1.
  epoch @11 :UInt64;
}

# What goes to disk and over the wire.
struct SignedSnapshot {
  # A complete single-segment Cap'n Proto message (segment table included,
  # as written by capnp::messageToFlatArray) whose root is a Snapshot in
  # canonical form.
  body @0 :Data;
  # ed25519 signature over exactly the bytes of `body`, by the key named in
  # body.entityId; exactly 64 bytes.
  signature @1 :Data;
}
