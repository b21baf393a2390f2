# The control protocol between meshctl (or any client) and a node's gateway
# (docs/protocol.md). One Request travels as the bytes of one CAF message
# (request_atom, std::vector<char>); the gateway answers with the bytes of
# one Response. Evolve by appending fields and union members; never
# renumber or change a field's type. A new request type is one union member
# here (its request and its response, under the same name), its binding in
# control_codec.cpp, its handler in gateway.cpp and its client command
# (docs/protocol.md, "How to add a request").

@0xef399487b86b0780;

using Cxx = import "/capnp/c++.capnp";
$Cxx.namespace("mesh::control::schema");

struct Request {
  # The newest protocol version the client speaks. Version 1 clients send
  # only this field; the node then treats minVersion as equal to it.
  version @0 :UInt16;

  union {
    daemons @1 :Void;
    kinds @2 :Void;
    deploy @3 :Deploy;
    send @4 :Send;
    highWater @5 :HighWater;
    stats @6 :DaemonRef;
    snapshot @7 :DaemonRef;
    stop @8 :DaemonRef;
    resume @9 :Resume;
    # Since version 3: the mesh's nodes as this node sees them.
    nodes @12 :Void;
    # Since version 3, node to node: the sender's heartbeat; the answer is
    # the receiver's. Accepted only when `from` is the key that
    # authenticated the link.
    heartbeat @13 :Heartbeat;
    # Since version 3, node to node: reach `target` directly and say
    # whether it answered (an indirect probe, docs/protocol.md).
    probe @14 :Probe;
    # Since version 3, node to node: directory entries to apply; with
    # wantTable the answer holds the receiver's entries of the buckets whose
    # digests differ from DirectorySync.bucketDigests (the whole table when
    # those are absent).
    directory @15 :DirectorySync;
    # Since version 3, node to node: the daemons this node runs (`daemons`
    # lists the whole mesh).
    localDaemons @16 :Void;
  }

  # Since version 2. Chosen by the client, echoed in the Response.
  requestId @10 :UInt64;
  # Since version 2: the oldest protocol version the client speaks.
  minVersion @11 :UInt16;
  # Since version 3: what a node that does not run the addressed daemon
  # does with the request.
  route @17 :Route;
  # Since version 3: set by a node that forwarded the request to the node
  # that runs the daemon; that node never forwards it again.
  forwarded @18 :Bool;
}

enum Route {
  # Pass the request on to the node that runs the daemon (one hop, with a
  # deadline) and relay its answer.
  forward @0;
  # Answer `moved` naming that node, so the client asks it directly.
  redirect @1;
}

struct Requirement {
  # 0 tag, 1 label, 2 min_cores, 3 min_memory_mb (mesh/mesh_types.hpp).
  type @0 :UInt8;
  key @1 :Text;
  value @2 :Text;
  number @3 :UInt64;
}

struct Label {
  key @0 :Text;
  value @1 :Text;
}

struct NodeRecord {
  # The node's ed25519 public key.
  id @0 :Data;
  address @1 :Text;
  incarnation @2 :UInt64;
  tags @3 :List(Text);
  labels @4 :List(Label);
  cores @5 :UInt32;
  memoryMb @6 :UInt64;
  kinds @7 :List(Text);
  daemons @8 :UInt32;
  saturation @9 :Float64;
  drained @10 :Bool;
}

struct NodeInfo {
  node @0 :NodeRecord;
  # "up", "suspect" or "down".
  state @1 :Text;
  silentMs @2 :UInt64;
}

struct GossipEntry {
  id @0 :Data;
  address @1 :Text;
  incarnation @2 :UInt64;
}

struct Heartbeat {
  from @0 :NodeRecord;
  known @1 :List(GossipEntry);
  directoryDigest @2 :UInt64;
  directorySize @3 :UInt64;
}

struct Probe {
  target @0 :Data;
  address @1 :Text;
  timeoutMs @2 :UInt32;
}

struct DirEntry {
  origin @0 :UInt64;
  node @1 :Data;
  epoch @2 :UInt64;
  kind @3 :Text;
  stopped @4 :Bool;
}

struct DirectorySync {
  entries @0 :List(DirEntry);
  wantTable @1 :Bool;
  # With wantTable: the sender's digest of each directory bucket
  # (mesh/directory.hpp); the receiver answers only the entries of the
  # buckets whose digests differ from its own. Empty: the whole table.
  bucketDigests @2 :List(UInt64);
}

struct Deploy {
  kind @0 :Text;
  count @1 :UInt32;
  # Since version 3: hard placement filters; every one must hold.
  requirements @2 :List(Requirement);
  # Since version 3: only this node (its id) may run them.
  onNode @3 :Data;
  # Since version 3, node to node: spawn them here, placement is done.
  here @4 :Bool;
}

struct Send {
  # The daemon's origin hash.
  daemonId @0 :UInt64;
  # Applied in list order, as one batch.
  events @1 :List(Event);
}

struct Event {
  # 0 = anonymous: no deduplication.
  producerId @0 :UInt64;
  producerSeq @1 :UInt64;
  payload @2 :Data;
}

struct HighWater {
  daemonId @0 :UInt64;
  producerId @1 :UInt64;
}

struct DaemonRef {
  daemonId @0 :UInt64;
}

struct Resume {
  daemonId @0 :UInt64;
  # Skip inputs the daemon lost (a log gap found at recovery); without it
  # such a daemon stays failed and the error says which inputs are lost.
  acceptLoss @1 :Bool;
}

struct Response {
  union {
    error @0 :Error;
    daemons @1 :List(DaemonInfo);
    kinds @2 :List(Text);
    deploy @3 :DeployResult;
    send @4 :List(Delivery);
    highWater @5 :UInt64;
    stats @6 :Stats;
    snapshot @7 :SnapshotResult;
    stop @8 :Void;
    # The daemon as it runs again.
    resume @9 :DaemonInfo;
    # Since version 2: the daemon lives on another node now; ask there.
    # Never sent to a version 1 client (it gets error `moved` instead).
    moved @12 :Moved;
    nodes @13 :List(NodeInfo);
    heartbeat @14 :Heartbeat;
    # Whether the target answered the probe in time.
    probe @15 :Bool;
    # The receiver's table when the request asked for it, else empty.
    directory @16 :List(DirEntry);
    localDaemons @17 :List(DaemonInfo);
  }

  # Since version 2: the Request's requestId.
  requestId @10 :UInt64;
  # Since version 2: the version this response is written in, agreed from
  # both sides' ranges. 0 from a node that predates negotiation.
  version @11 :UInt16;
}

struct Moved {
  # Where the daemon runs now: the node's address (host:port).
  node @0 :Text;
  # The daemon's epoch there (its life counter in the mesh).
  epoch @1 :UInt64;
}

struct Error {
  # A mesh::errc value (base/errc.hpp); 0 never appears.
  code @0 :UInt8;
  message @1 :Text;
}

struct DaemonInfo {
  originHash @0 :UInt64;
  # The 32-byte ed25519 public key.
  entityId @1 :Data;
  kind @2 :Text;
  lastSeq @3 :UInt64;
  # The daemon's phase: "starting", "running", "standby", "frozen",
  # "failed" or "stopped" (actors/daemon_phase.hpp).
  state @4 :Text;
  epoch @5 :UInt64;
  # Why the daemon failed; empty while it runs.
  reason @6 :Text;
  # Since version 3: the node that runs it (its id) and its address.
  node @7 :Data;
  nodeAddress @8 :Text;
  # Since version 3: its node is down; `state` is the last phase known.
  unavailable @9 :Bool;
}

struct DeployResult {
  # The daemons spawned, in order.
  daemons @0 :List(DaemonInfo);
  # Why spawning stopped before `count`; code 0 when every spawn succeeded.
  failure @1 :Error;
}

struct Delivery {
  enum Status {
    applied @0;
    duplicate @1;
    rejected @2;
  }
  status @0 :Status;
  daemonSeq @1 :UInt64;
  error @2 :Text;
  outputs @3 :List(CausalEvent);
}

struct CausalEvent {
  originHash @0 :UInt64;
  sequence @1 :UInt64;
  parentHash @2 :UInt64;
  horizon @3 :UInt64;
  payload @4 :Data;
  receivedAtNs @5 :UInt64;
}

struct Stats {
  eventsProcessed @0 :UInt64;
  eventsEmitted @1 :UInt64;
  duplicates @2 :UInt64;
  errors @3 :UInt64;
  snapshotsTaken @4 :UInt64;
  restarts @5 :UInt64;
  lastSeq @6 :UInt64;
}

struct SnapshotResult {
  # The signed snapshot encoding (snapshot/snapshot.hpp).
  snapshot @0 :Data;
  # The last input daemon_seq it reflects.
  throughSeq @1 :UInt64;
}
