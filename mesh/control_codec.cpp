#include "mesh/control_codec.hpp"

#include <algorithm>
#include <cstring>
#include <type_traits>
#include <utility>

#include <caf/message.hpp>
#include <capnp/message.h>
#include <capnp/schema.h>
#include <capnp/serialize.h>
#include <kj/array.h>
#include <kj/exception.h>

#include "mesh/control.capnp.h"

namespace mesh::control {

namespace {

namespace s = schema;

// -- helpers: building --------------------------------------------------------

kj::ArrayPtr<const kj::byte> data_of(const bytes& b) {
  return {b.data(), b.size()};
}

kj::StringPtr text_of(const std::string& str) {
  return {str.c_str(), str.size()};
}

wire_bytes to_wire(capnp::MessageBuilder& msg) {
  auto words = capnp::messageToFlatArray(msg);
  auto chars = words.asChars();
  return wire_bytes(chars.begin(), chars.end());
}

void fill(s::Error::Builder out, const error_response& err) {
  out.setCode(static_cast<uint8_t>(err.code));
  out.setMessage(text_of(err.message));
}

void fill(s::DaemonInfo::Builder out, const daemon_entry& info) {
  out.setOriginHash(info.origin_hash);
  out.setEntityId(kj::arrayPtr(info.id.data(), info.id.size()));
  out.setKind(text_of(info.kind));
  out.setLastSeq(info.last_seq);
  // The schema keeps its text field `state`: it carries the phase's name.
  out.setState(to_string(info.phase));
  out.setEpoch(info.epoch);
  out.setReason(text_of(info.reason));
  out.setNode(kj::arrayPtr(info.node.data(), info.node.size()));
  out.setNodeAddress(text_of(info.node_address));
  out.setUnavailable(info.unavailable);
}

void fill(s::NodeRecord::Builder out, const node_record& n) {
  out.setId(kj::arrayPtr(n.id.data(), n.id.size()));
  out.setAddress(text_of(n.address));
  out.setIncarnation(n.incarnation);
  auto tags = out.initTags(n.caps.tags.size());
  for (size_t i = 0; i < n.caps.tags.size(); ++i)
    tags.set(i, text_of(n.caps.tags[i]));
  auto labels = out.initLabels(n.caps.labels.size());
  size_t i = 0;
  for (const auto& [k, v] : n.caps.labels) {
    labels[i].setKey(text_of(k));
    labels[i].setValue(text_of(v));
    ++i;
  }
  out.setCores(n.caps.cores);
  out.setMemoryMb(n.caps.memory_mb);
  auto kinds = out.initKinds(n.caps.kinds.size());
  for (size_t k = 0; k < n.caps.kinds.size(); ++k)
    kinds.set(k, text_of(n.caps.kinds[k]));
  out.setDaemons(n.load.daemons);
  out.setSaturation(n.load.saturation);
  out.setDrained(n.drained);
}

void fill(s::Heartbeat::Builder out, const heartbeat& hb) {
  fill(out.initFrom(), hb.from);
  auto known = out.initKnown(hb.known.size());
  for (size_t i = 0; i < hb.known.size(); ++i) {
    const auto& k = hb.known[i];
    known[i].setId(kj::arrayPtr(k.id.data(), k.id.size()));
    known[i].setAddress(text_of(k.address));
    known[i].setIncarnation(k.incarnation);
  }
  out.setDirectoryDigest(hb.directory_digest);
  out.setDirectorySize(hb.directory_size);
}

void fill(capnp::List<s::DirEntry>::Builder out,
          const std::vector<directory_entry>& xs) {
  for (size_t i = 0; i < xs.size(); ++i) {
    const auto& x = xs[i];
    out[i].setOrigin(x.origin);
    out[i].setNode(kj::arrayPtr(x.node.data(), x.node.size()));
    out[i].setEpoch(x.epoch);
    out[i].setKind(text_of(x.kind));
    out[i].setStopped(x.stopped);
  }
}

void fill(capnp::List<s::DaemonInfo>::Builder out,
          const std::vector<daemon_entry>& infos) {
  for (size_t i = 0; i < infos.size(); ++i)
    fill(out[i], infos[i]);
}

s::Delivery::Status to_schema(delivery::status st) {
  switch (st) {
    case delivery::status::applied: return s::Delivery::Status::APPLIED;
    case delivery::status::duplicate: return s::Delivery::Status::DUPLICATE;
    case delivery::status::rejected: return s::Delivery::Status::REJECTED;
  }
  return s::Delivery::Status::REJECTED;
}

void fill(s::Delivery::Builder out, const delivery& d) {
  out.setStatus(to_schema(d.state));
  out.setDaemonSeq(d.daemon_seq);
  out.setError(text_of(d.error));
  auto outputs = out.initOutputs(d.outputs.size());
  for (size_t i = 0; i < d.outputs.size(); ++i) {
    const auto& ev = d.outputs[i];
    auto o = outputs[i];
    o.setOriginHash(ev.link.origin_hash);
    o.setSequence(ev.link.sequence);
    o.setParentHash(ev.link.parent_hash);
    o.setHorizon(ev.link.horizon);
    o.setPayload(data_of(ev.payload));
    o.setReceivedAtNs(ev.received_at_ns);
  }
}

void fill(s::Stats::Builder out, const daemon_stats& st) {
  out.setEventsProcessed(st.events_processed);
  out.setEventsEmitted(st.events_emitted);
  out.setDuplicates(st.duplicates);
  out.setErrors(st.errors);
  out.setSnapshotsTaken(st.snapshots_taken);
  out.setRestarts(st.restarts);
  out.setLastSeq(st.last_seq);
}

// -- helpers: reading ---------------------------------------------------------

bytes to_bytes(capnp::Data::Reader data) {
  return bytes(data.begin(), data.end());
}

std::string to_string(capnp::Text::Reader text) {
  return std::string(text.cStr(), text.size());
}

error_response read(s::Error::Reader in) {
  return {static_cast<errc>(in.getCode()), to_string(in.getMessage())};
}

// A 32-byte key field; `what` names it in the error.
caf::expected<entity_id> read_id(capnp::Data::Reader in, const char* what) {
  entity_id id{};
  if (in.size() != id.size())
    return make_error(errc::corrupt_data,
                      std::string{what} + " has " + std::to_string(in.size())
                        + " bytes, expected " + std::to_string(id.size()));
  std::copy(in.begin(), in.end(), id.begin());
  return id;
}

caf::expected<node_record> read(s::NodeRecord::Reader in) {
  node_record n;
  auto id = read_id(in.getId(), "node id");
  if (!id)
    return std::move(id.error());
  n.id = *id;
  n.address = to_string(in.getAddress());
  n.incarnation = in.getIncarnation();
  for (auto t : in.getTags())
    n.caps.tags.emplace_back(to_string(t));
  for (auto l : in.getLabels())
    n.caps.labels[to_string(l.getKey())] = to_string(l.getValue());
  n.caps.cores = in.getCores();
  n.caps.memory_mb = in.getMemoryMb();
  for (auto k : in.getKinds())
    n.caps.kinds.emplace_back(to_string(k));
  n.load.daemons = in.getDaemons();
  n.load.saturation = in.getSaturation();
  n.drained = in.getDrained();
  return n;
}

caf::expected<heartbeat> read(s::Heartbeat::Reader in) {
  heartbeat hb;
  auto from = read(in.getFrom());
  if (!from)
    return std::move(from.error());
  hb.from = std::move(*from);
  auto known = in.getKnown();
  hb.known.reserve(known.size());
  for (auto k : known) {
    auto id = read_id(k.getId(), "gossip node id");
    if (!id)
      return std::move(id.error());
    hb.known.push_back(
      gossip_entry{*id, to_string(k.getAddress()), k.getIncarnation()});
  }
  hb.directory_digest = in.getDirectoryDigest();
  hb.directory_size = in.getDirectorySize();
  return hb;
}

caf::expected<std::vector<directory_entry>>
read(capnp::List<s::DirEntry>::Reader in) {
  std::vector<directory_entry> out;
  out.reserve(in.size());
  for (auto x : in) {
    auto node = read_id(x.getNode(), "directory node id");
    if (!node)
      return std::move(node.error());
    out.push_back(directory_entry{x.getOrigin(), *node, x.getEpoch(),
                                  to_string(x.getKind()), x.getStopped()});
  }
  return out;
}

caf::expected<daemon_entry> read(s::DaemonInfo::Reader in) {
  daemon_entry info;
  info.origin_hash = in.getOriginHash();
  auto id = in.getEntityId();
  if (id.size() != info.id.size())
    return make_error(errc::corrupt_data,
                      "daemon entity id has " + std::to_string(id.size())
                        + " bytes, expected " + std::to_string(info.id.size()));
  std::copy(id.begin(), id.end(), info.id.begin());
  info.kind = to_string(in.getKind());
  info.last_seq = in.getLastSeq();
  auto phase = parse_daemon_phase(to_string(in.getState()));
  if (!phase)
    return make_error(errc::corrupt_data, "daemon " + hex_u64(info.origin_hash)
                                            + " has an unknown phase '"
                                            + to_string(in.getState()) + "'");
  info.phase = *phase;
  info.epoch = in.getEpoch();
  info.reason = to_string(in.getReason());
  // Older nodes send no node id: all zero means "not said".
  if (in.hasNode()) {
    auto node = read_id(in.getNode(), "daemon node id");
    if (!node)
      return std::move(node.error());
    info.node = *node;
  }
  info.node_address = to_string(in.getNodeAddress());
  info.unavailable = in.getUnavailable();
  return info;
}

caf::expected<std::vector<daemon_entry>>
read(capnp::List<s::DaemonInfo>::Reader in) {
  std::vector<daemon_entry> out;
  out.reserve(in.size());
  for (auto x : in) {
    auto info = read(x);
    if (!info)
      return std::move(info.error());
    out.emplace_back(std::move(*info));
  }
  return out;
}

caf::expected<delivery> read(s::Delivery::Reader in) {
  delivery d;
  switch (in.getStatus()) {
    case s::Delivery::Status::APPLIED:
      d.state = delivery::status::applied;
      break;
    case s::Delivery::Status::DUPLICATE:
      d.state = delivery::status::duplicate;
      break;
    case s::Delivery::Status::REJECTED:
      d.state = delivery::status::rejected;
      break;
    default:
      return make_error(errc::corrupt_data,
                        "unknown delivery status "
                          + std::to_string(static_cast<int>(in.getStatus())));
  }
  d.daemon_seq = in.getDaemonSeq();
  d.error = to_string(in.getError());
  auto outputs = in.getOutputs();
  d.outputs.reserve(outputs.size());
  for (auto o : outputs) {
    causal_event ev;
    ev.link.origin_hash = o.getOriginHash();
    ev.link.sequence = o.getSequence();
    ev.link.parent_hash = o.getParentHash();
    ev.link.horizon = o.getHorizon();
    ev.payload = to_bytes(o.getPayload());
    ev.received_at_ns = o.getReceivedAtNs();
    d.outputs.emplace_back(std::move(ev));
  }
  return d;
}

daemon_stats read(s::Stats::Reader in) {
  daemon_stats st;
  st.events_processed = in.getEventsProcessed();
  st.events_emitted = in.getEventsEmitted();
  st.duplicates = in.getDuplicates();
  st.errors = in.getErrors();
  st.snapshots_taken = in.getSnapshotsTaken();
  st.restarts = in.getRestarts();
  st.last_seq = in.getLastSeq();
  return st;
}

// -- bindings: one per request type -------------------------------------------
//
// binding<T> ties request type T to its union member: `request_tag` and
// `response_tag` (the same name in Request and Response), how the request is
// written and read, and how its response is written and read. The generic
// code below (encode, decode, name_of) finds a type's binding through the
// `request` variant; nothing else names the request types.

template<class T>
struct binding;

template<>
struct binding<daemons_request> {
  static constexpr auto request_tag = s::Request::DAEMONS;
  static constexpr auto response_tag = s::Response::DAEMONS;
  static void write(s::Request::Builder out, const daemons_request&) {
    out.setDaemons();
  }
  static caf::expected<daemons_request> read(s::Request::Reader) {
    return daemons_request{};
  }
  static void write(s::Response::Builder out, const daemons_response& x) {
    fill(out.initDaemons(x.daemons.size()), x.daemons);
  }
  static caf::expected<daemons_response> read(s::Response::Reader in) {
    auto infos = control::read(in.getDaemons());
    if (!infos)
      return std::move(infos.error());
    return daemons_response{std::move(*infos)};
  }
};

template<>
struct binding<kinds_request> {
  static constexpr auto request_tag = s::Request::KINDS;
  static constexpr auto response_tag = s::Response::KINDS;
  static void write(s::Request::Builder out, const kinds_request&) {
    out.setKinds();
  }
  static caf::expected<kinds_request> read(s::Request::Reader) {
    return kinds_request{};
  }
  static void write(s::Response::Builder out, const kinds_response& x) {
    auto kinds = out.initKinds(x.kinds.size());
    for (size_t i = 0; i < x.kinds.size(); ++i)
      kinds.set(i, text_of(x.kinds[i]));
  }
  static caf::expected<kinds_response> read(s::Response::Reader in) {
    kinds_response out;
    for (auto k : in.getKinds())
      out.kinds.emplace_back(to_string(k));
    return out;
  }
};

template<>
struct binding<deploy_request> {
  static constexpr auto request_tag = s::Request::DEPLOY;
  static constexpr auto response_tag = s::Response::DEPLOY;
  static void write(s::Request::Builder out, const deploy_request& x) {
    auto d = out.initDeploy();
    d.setKind(text_of(x.kind));
    d.setCount(x.count);
    auto reqs = d.initRequirements(x.requirements.size());
    for (size_t i = 0; i < x.requirements.size(); ++i) {
      const auto& r = x.requirements[i];
      reqs[i].setType(static_cast<uint8_t>(r.what));
      reqs[i].setKey(text_of(r.key));
      reqs[i].setValue(text_of(r.value));
      reqs[i].setNumber(r.number);
    }
    if (x.on_node)
      d.setOnNode(kj::arrayPtr(x.on_node->data(), x.on_node->size()));
    d.setHere(x.here);
  }
  static caf::expected<deploy_request> read(s::Request::Reader in) {
    auto d = in.getDeploy();
    deploy_request out;
    out.kind = to_string(d.getKind());
    out.count = d.getCount();
    for (auto r : d.getRequirements()) {
      if (r.getType() > static_cast<uint8_t>(requirement::type::min_memory_mb))
        return make_error(errc::corrupt_data, "unknown requirement type "
                                                + std::to_string(r.getType()));
      out.requirements.push_back(
        requirement{static_cast<requirement::type>(r.getType()),
                    to_string(r.getKey()), to_string(r.getValue()),
                    r.getNumber()});
    }
    if (d.hasOnNode()) {
      auto id = read_id(d.getOnNode(), "deploy onNode");
      if (!id)
        return std::move(id.error());
      out.on_node = *id;
    }
    out.here = d.getHere();
    return out;
  }
  static void write(s::Response::Builder out, const deploy_response& x) {
    auto d = out.initDeploy();
    fill(d.initDaemons(x.daemons.size()), x.daemons);
    if (x.failure)
      fill(d.initFailure(), *x.failure);
  }
  static caf::expected<deploy_response> read(s::Response::Reader in) {
    auto d = in.getDeploy();
    auto infos = control::read(d.getDaemons());
    if (!infos)
      return std::move(infos.error());
    deploy_response out;
    out.daemons = std::move(*infos);
    if (d.hasFailure())
      out.failure = control::read(d.getFailure());
    return out;
  }
};

template<>
struct binding<send_request> {
  static constexpr auto request_tag = s::Request::SEND;
  static constexpr auto response_tag = s::Response::SEND;
  static void write(s::Request::Builder out, const send_request& x) {
    auto snd = out.initSend();
    snd.setDaemonId(x.daemon_id);
    auto evs = snd.initEvents(x.events.size());
    for (size_t i = 0; i < x.events.size(); ++i) {
      evs[i].setProducerId(x.events[i].producer_id);
      evs[i].setProducerSeq(x.events[i].producer_seq);
      evs[i].setPayload(data_of(x.events[i].payload));
    }
  }
  static caf::expected<send_request> read(s::Request::Reader in) {
    auto snd = in.getSend();
    send_request out;
    out.daemon_id = snd.getDaemonId();
    auto evs = snd.getEvents();
    out.events.reserve(evs.size());
    for (auto ev : evs)
      out.events.push_back(inbound_event{ev.getProducerId(),
                                         ev.getProducerSeq(),
                                         to_bytes(ev.getPayload())});
    return out;
  }
  static void write(s::Response::Builder out, const send_response& x) {
    auto ds = out.initSend(x.deliveries.size());
    for (size_t i = 0; i < x.deliveries.size(); ++i)
      fill(ds[i], x.deliveries[i]);
  }
  static caf::expected<send_response> read(s::Response::Reader in) {
    send_response out;
    auto ds = in.getSend();
    out.deliveries.reserve(ds.size());
    for (auto x : ds) {
      auto d = control::read(x);
      if (!d)
        return std::move(d.error());
      out.deliveries.emplace_back(std::move(*d));
    }
    return out;
  }
};

template<>
struct binding<high_water_request> {
  static constexpr auto request_tag = s::Request::HIGH_WATER;
  static constexpr auto response_tag = s::Response::HIGH_WATER;
  static void write(s::Request::Builder out, const high_water_request& x) {
    auto hw = out.initHighWater();
    hw.setDaemonId(x.daemon_id);
    hw.setProducerId(x.producer_id);
  }
  static caf::expected<high_water_request> read(s::Request::Reader in) {
    auto hw = in.getHighWater();
    return high_water_request{hw.getDaemonId(), hw.getProducerId()};
  }
  static void write(s::Response::Builder out, const high_water_response& x) {
    out.setHighWater(x.producer_seq);
  }
  static caf::expected<high_water_response> read(s::Response::Reader in) {
    return high_water_response{in.getHighWater()};
  }
};

template<>
struct binding<stats_request> {
  static constexpr auto request_tag = s::Request::STATS;
  static constexpr auto response_tag = s::Response::STATS;
  static void write(s::Request::Builder out, const stats_request& x) {
    out.initStats().setDaemonId(x.daemon_id);
  }
  static caf::expected<stats_request> read(s::Request::Reader in) {
    return stats_request{in.getStats().getDaemonId()};
  }
  static void write(s::Response::Builder out, const stats_response& x) {
    fill(out.initStats(), x.stats);
  }
  static caf::expected<stats_response> read(s::Response::Reader in) {
    return stats_response{control::read(in.getStats())};
  }
};

template<>
struct binding<snapshot_request> {
  static constexpr auto request_tag = s::Request::SNAPSHOT;
  static constexpr auto response_tag = s::Response::SNAPSHOT;
  static void write(s::Request::Builder out, const snapshot_request& x) {
    out.initSnapshot().setDaemonId(x.daemon_id);
  }
  static caf::expected<snapshot_request> read(s::Request::Reader in) {
    return snapshot_request{in.getSnapshot().getDaemonId()};
  }
  static void write(s::Response::Builder out, const snapshot_response& x) {
    auto snap = out.initSnapshot();
    snap.setSnapshot(data_of(x.snapshot));
    snap.setThroughSeq(x.through_seq);
  }
  static caf::expected<snapshot_response> read(s::Response::Reader in) {
    auto snap = in.getSnapshot();
    return snapshot_response{to_bytes(snap.getSnapshot()),
                             snap.getThroughSeq()};
  }
};

template<>
struct binding<stop_request> {
  static constexpr auto request_tag = s::Request::STOP;
  static constexpr auto response_tag = s::Response::STOP;
  static void write(s::Request::Builder out, const stop_request& x) {
    out.initStop().setDaemonId(x.daemon_id);
  }
  static caf::expected<stop_request> read(s::Request::Reader in) {
    return stop_request{in.getStop().getDaemonId()};
  }
  static void write(s::Response::Builder out, const stop_response&) {
    out.setStop();
  }
  static caf::expected<stop_response> read(s::Response::Reader) {
    return stop_response{};
  }
};

template<>
struct binding<resume_request> {
  static constexpr auto request_tag = s::Request::RESUME;
  static constexpr auto response_tag = s::Response::RESUME;
  static void write(s::Request::Builder out, const resume_request& x) {
    auto r = out.initResume();
    r.setDaemonId(x.daemon_id);
    r.setAcceptLoss(x.accept_loss);
  }
  static caf::expected<resume_request> read(s::Request::Reader in) {
    auto r = in.getResume();
    return resume_request{r.getDaemonId(), r.getAcceptLoss()};
  }
  static void write(s::Response::Builder out, const resume_response& x) {
    fill(out.initResume(), x.daemon);
  }
  static caf::expected<resume_response> read(s::Response::Reader in) {
    auto info = control::read(in.getResume());
    if (!info)
      return std::move(info.error());
    return resume_response{std::move(*info)};
  }
};

template<>
struct binding<nodes_request> {
  static constexpr auto request_tag = s::Request::NODES;
  static constexpr auto response_tag = s::Response::NODES;
  static void write(s::Request::Builder out, const nodes_request&) {
    out.setNodes();
  }
  static caf::expected<nodes_request> read(s::Request::Reader) {
    return nodes_request{};
  }
  static void write(s::Response::Builder out, const nodes_response& x) {
    auto ns = out.initNodes(x.nodes.size());
    for (size_t i = 0; i < x.nodes.size(); ++i) {
      fill(ns[i].initNode(), x.nodes[i].node);
      ns[i].setState(mesh::to_string(x.nodes[i].state));
      ns[i].setSilentMs(x.nodes[i].silent_ms);
    }
  }
  static caf::expected<nodes_response> read(s::Response::Reader in) {
    nodes_response out;
    for (auto n : in.getNodes()) {
      member_info m;
      auto rec = control::read(n.getNode());
      if (!rec)
        return std::move(rec.error());
      m.node = std::move(*rec);
      auto state = to_string(n.getState());
      if (state == "up")
        m.state = node_state::up;
      else if (state == "suspect")
        m.state = node_state::suspect;
      else if (state == "down")
        m.state = node_state::down;
      else
        return make_error(errc::corrupt_data,
                          "unknown node state '" + state + "'");
      m.silent_ms = n.getSilentMs();
      out.nodes.push_back(std::move(m));
    }
    return out;
  }
};

template<>
struct binding<heartbeat_request> {
  static constexpr auto request_tag = s::Request::HEARTBEAT;
  static constexpr auto response_tag = s::Response::HEARTBEAT;
  static void write(s::Request::Builder out, const heartbeat_request& x) {
    fill(out.initHeartbeat(), x.beat);
  }
  static caf::expected<heartbeat_request> read(s::Request::Reader in) {
    auto hb = control::read(in.getHeartbeat());
    if (!hb)
      return std::move(hb.error());
    return heartbeat_request{std::move(*hb)};
  }
  static void write(s::Response::Builder out, const heartbeat_response& x) {
    fill(out.initHeartbeat(), x.beat);
  }
  static caf::expected<heartbeat_response> read(s::Response::Reader in) {
    auto hb = control::read(in.getHeartbeat());
    if (!hb)
      return std::move(hb.error());
    return heartbeat_response{std::move(*hb)};
  }
};

template<>
struct binding<probe_request> {
  static constexpr auto request_tag = s::Request::PROBE;
  static constexpr auto response_tag = s::Response::PROBE;
  static void write(s::Request::Builder out, const probe_request& x) {
    auto p = out.initProbe();
    p.setTarget(kj::arrayPtr(x.target.data(), x.target.size()));
    p.setAddress(text_of(x.address));
    p.setTimeoutMs(x.timeout_ms);
  }
  static caf::expected<probe_request> read(s::Request::Reader in) {
    auto p = in.getProbe();
    auto id = read_id(p.getTarget(), "probe target");
    if (!id)
      return std::move(id.error());
    return probe_request{*id, to_string(p.getAddress()), p.getTimeoutMs()};
  }
  static void write(s::Response::Builder out, const probe_response& x) {
    out.setProbe(x.reached);
  }
  static caf::expected<probe_response> read(s::Response::Reader in) {
    return probe_response{in.getProbe()};
  }
};

template<>
struct binding<directory_request> {
  static constexpr auto request_tag = s::Request::DIRECTORY;
  static constexpr auto response_tag = s::Response::DIRECTORY;
  static void write(s::Request::Builder out, const directory_request& x) {
    auto d = out.initDirectory();
    fill(d.initEntries(x.entries.size()), x.entries);
    d.setWantTable(x.want_table);
    auto buckets = d.initBucketDigests(x.bucket_digests.size());
    for (size_t i = 0; i < x.bucket_digests.size(); ++i)
      buckets.set(i, x.bucket_digests[i]);
  }
  static caf::expected<directory_request> read(s::Request::Reader in) {
    auto d = in.getDirectory();
    auto entries = control::read(d.getEntries());
    if (!entries)
      return std::move(entries.error());
    directory_request out{std::move(*entries), d.getWantTable(), {}};
    for (auto b : d.getBucketDigests())
      out.bucket_digests.push_back(b);
    return out;
  }
  static void write(s::Response::Builder out, const directory_response& x) {
    fill(out.initDirectory(x.entries.size()), x.entries);
  }
  static caf::expected<directory_response> read(s::Response::Reader in) {
    auto entries = control::read(in.getDirectory());
    if (!entries)
      return std::move(entries.error());
    return directory_response{std::move(*entries)};
  }
};

template<>
struct binding<local_daemons_request> {
  static constexpr auto request_tag = s::Request::LOCAL_DAEMONS;
  static constexpr auto response_tag = s::Response::LOCAL_DAEMONS;
  static void write(s::Request::Builder out, const local_daemons_request&) {
    out.setLocalDaemons();
  }
  static caf::expected<local_daemons_request> read(s::Request::Reader) {
    return local_daemons_request{};
  }
  static void write(s::Response::Builder out, const local_daemons_response& x) {
    fill(out.initLocalDaemons(x.daemons.size()), x.daemons);
  }
  static caf::expected<local_daemons_response> read(s::Response::Reader in) {
    auto infos = control::read(in.getLocalDaemons());
    if (!infos)
      return std::move(infos.error());
    return local_daemons_response{std::move(*infos)};
  }
};

// -- generic code over the request variant ------------------------------------

caf::error unknown_union(const char* what, unsigned tag) {
  return make_error(errc::unsupported_version,
                    std::string{"unknown "} + what + " type (union tag "
                      + std::to_string(tag) + "); this build speaks protocol "
                      + to_string(supported_versions));
}

template<size_t... Is>
caf::expected<request>
read_request(s::Request::Reader in, std::index_sequence<Is...>) {
  caf::expected<request> out = unknown_union("request",
                                             static_cast<unsigned>(in.which()));
  auto try_one = [&](auto tag) {
    using type = std::variant_alternative_t<decltype(tag)::value, request>;
    if (in.which() != binding<type>::request_tag)
      return false;
    auto x = binding<type>::read(in);
    if (x)
      out = request{std::move(*x)};
    else
      out = std::move(x.error());
    return true;
  };
  (try_one(std::integral_constant<size_t, Is>{}) || ...);
  return out;
}

// A response's alternative index I >= 2 belongs to request I - 2.
template<size_t... Is>
caf::expected<response>
read_typed_response(s::Response::Reader in, std::index_sequence<Is...>) {
  caf::expected<response> out = unknown_union("response", static_cast<unsigned>(
                                                            in.which()));
  auto try_one = [&](auto tag) {
    using type = std::variant_alternative_t<decltype(tag)::value, request>;
    if (in.which() != binding<type>::response_tag)
      return false;
    auto x = binding<type>::read(in);
    if (x)
      out = response{std::move(*x)};
    else
      out = std::move(x.error());
    return true;
  };
  (try_one(std::integral_constant<size_t, Is>{}) || ...);
  return out;
}

caf::expected<response> read_response(s::Response::Reader in) {
  switch (in.which()) {
    case s::Response::ERROR: return response{read(in.getError())};
    case s::Response::MOVED: {
      auto m = in.getMoved();
      return response{moved_response{to_string(m.getNode()), m.getEpoch()}};
    }
    default:
      return read_typed_response(in, std::make_index_sequence<
                                       std::variant_size_v<request>>{});
  }
}

// The binding of a response type, found through the request whose answer
// it is.
template<class Response, size_t... Is>
void write_typed_response(s::Response::Builder out, const Response& x,
                          std::index_sequence<Is...>) {
  auto try_one = [&](auto tag) {
    using type = std::variant_alternative_t<decltype(tag)::value, request>;
    if constexpr (std::is_same_v<typename type::response, Response>) {
      binding<type>::write(out, x);
      return true;
    } else {
      return false;
    }
  };
  (try_one(std::integral_constant<size_t, Is>{}) || ...);
}

struct response_writer {
  s::Response::Builder out;
  uint16_t version;

  void operator()(const error_response& x) {
    fill(out.initError(), x);
  }
  void operator()(const moved_response& x) {
    if (version < 2) {
      fill(out.initError(),
           error_response{errc::moved, "the daemon moved to node " + x.node
                                         + " (epoch " + std::to_string(x.epoch)
                                         + "); ask there"});
      return;
    }
    auto m = out.initMoved();
    m.setNode(text_of(x.node));
    m.setEpoch(x.epoch);
  }
  template<class T>
  void operator()(const T& x) {
    write_typed_response(out, x,
                         std::make_index_sequence<
                           std::variant_size_v<request>>{});
  }
};

// The union member's name as the schema spells it.
template<class Which>
const char* member_name(capnp::StructSchema schema, Which tag) {
  for (auto f : schema.getUnionFields())
    if (f.getProto().getDiscriminantValue() == static_cast<uint16_t>(tag))
      return f.getProto().getName().cStr();
  return "unknown";
}

// Copies `data` into word-aligned storage (a std::vector<char> promises no
// alignment) and runs `fn` on a reader with explicit limits. Any
// kj::Exception raised while traversing is malformed input.
template<class Root, class Fn>
auto with_reader(const wire_bytes& data, const char* what, Fn fn)
  -> decltype(fn(std::declval<typename Root::Reader>())) {
  if (data.empty())
    return make_error(errc::corrupt_data, std::string{"empty "} + what);
  if (data.size() > max_message_bytes)
    return make_error(errc::corrupt_data,
                      std::string{what} + " of " + std::to_string(data.size())
                        + " bytes exceeds the limit of "
                        + std::to_string(max_message_bytes));
  if (data.size() % sizeof(capnp::word) != 0)
    return make_error(errc::corrupt_data,
                      std::string{what} + " of " + std::to_string(data.size())
                        + " bytes is not a whole number of 8-byte words");
  auto words = kj::heapArray<capnp::word>(data.size() / sizeof(capnp::word));
  std::memcpy(words.begin(), data.data(), data.size());
  capnp::ReaderOptions opts;
  // Each word is read at most a few times by the converters above; the
  // limit stops pointer-aliasing amplification.
  opts.traversalLimitInWords = 4 * words.size() + 1024;
  opts.nestingLimit = max_nesting_depth;
  try {
    capnp::FlatArrayMessageReader reader{words, opts};
    return fn(reader.getRoot<Root>());
  } catch (const kj::Exception& ex) {
    return make_error(errc::corrupt_data, std::string{"malformed "} + what
                                            + ": "
                                            + ex.getDescription().cStr());
  }
}

// The version a node speaking `node` agrees on with a client speaking
// `client`: the newest both speak.
caf::expected<uint16_t> agree(version_range client, version_range node) {
  if (client.max < node.min)
    return make_error(errc::unsupported_version,
                      "client too old: it speaks control protocol "
                        + to_string(client) + ", this node speaks "
                        + to_string(node) + "; upgrade the client");
  if (client.min > node.max)
    return make_error(errc::unsupported_version,
                      "client too new: it speaks control protocol "
                        + to_string(client) + ", this node speaks "
                        + to_string(node) + "; upgrade the node");
  return std::min(client.max, node.max);
}

} // namespace

std::string to_string(version_range r) {
  if (r.min == r.max)
    return std::to_string(r.min);
  return std::to_string(r.min) + ".." + std::to_string(r.max);
}

daemon_entry to_entry(const daemon_info& info) {
  daemon_entry out;
  out.origin_hash = info.origin_hash;
  out.id = info.id;
  out.kind = info.kind;
  out.last_seq = info.last_seq;
  out.phase = info.phase;
  out.epoch = info.epoch;
  out.reason = info.reason;
  return out;
}

bool is_failed(const daemon_entry& d) {
  return d.phase == daemon_phase::failed;
}

wire_bytes encode(const request& req, uint64_t id, version_range speaks,
                  request_flags flags) {
  capnp::MallocMessageBuilder msg;
  auto root = msg.initRoot<s::Request>();
  root.setVersion(speaks.max);
  if (speaks.max >= 2) {
    root.setMinVersion(speaks.min);
    root.setRequestId(id);
  }
  if (speaks.max >= 3) {
    root.setRoute(flags.route == route_mode::redirect ? s::Route::REDIRECT
                                                      : s::Route::FORWARD);
    root.setForwarded(flags.forwarded);
  }
  std::visit(
    [&root](const auto& x) {
      binding<std::decay_t<decltype(x)>>::write(root, x);
    },
    req);
  return to_wire(msg);
}

wire_bytes encode(const response& res, uint64_t id, uint16_t version) {
  capnp::MallocMessageBuilder msg;
  auto root = msg.initRoot<s::Response>();
  if (version >= 2) {
    root.setRequestId(id);
    root.setVersion(version);
  }
  std::visit(response_writer{root, version}, res);
  return to_wire(msg);
}

caf::expected<request_frame> decode_request(const wire_bytes& data,
                                            version_range node, uint64_t* id) {
  return with_reader<
    s::Request>(data, "request",
                [node,
                 id](s::Request::Reader in) -> caf::expected<request_frame> {
                  request_frame out;
                  out.id = in.getRequestId();
                  if (id != nullptr)
                    *id = out.id;
                  version_range client{in.getMinVersion(), in.getVersion()};
                  // A version 1 client does not send minVersion.
                  if (client.min == 0 || client.min > client.max)
                    client.min = client.max;
                  auto agreed = agree(client, node);
                  if (!agreed)
                    return std::move(agreed.error());
                  out.version = *agreed;
                  out.flags.route = in.getRoute() == s::Route::REDIRECT
                                      ? route_mode::redirect
                                      : route_mode::forward;
                  out.flags.forwarded = in.getForwarded();
                  auto body = read_request(in,
                                           std::make_index_sequence<
                                             std::variant_size_v<request>>{});
                  if (!body)
                    return std::move(body.error());
                  out.body = std::move(*body);
                  return out;
                });
}

caf::expected<response_frame> decode_response(const wire_bytes& data) {
  return with_reader<s::Response>(data, "response",
                                  [](s::Response::Reader in)
                                    -> caf::expected<response_frame> {
                                    response_frame out;
                                    out.id = in.getRequestId();
                                    out.version = in.getVersion();
                                    auto body = read_response(in);
                                    if (!body)
                                      return std::move(body.error());
                                    out.body = std::move(*body);
                                    return out;
                                  });
}

error_response to_error_response(const caf::error& err, errc fallback) {
  auto code = code_of(err);
  if (code == errc{})
    return {fallback, describe(err)};
  std::string message;
  const auto& ctx = err.context();
  if (ctx.size() == 1 && ctx.match_element<std::string>(0))
    message = ctx.get_as<std::string>(0);
  return {code, std::move(message)};
}

caf::error to_error(const error_response& err) {
  if (err.message.empty())
    return make_error(err.code);
  return make_error(err.code, err.message);
}

const char* name_of(const request& req) {
  return std::visit(
    [](const auto& x) {
      using type = std::decay_t<decltype(x)>;
      return member_name(capnp::Schema::from<s::Request>(),
                         binding<type>::request_tag);
    },
    req);
}

std::vector<std::string> schema_request_names() {
  std::vector<std::string> out;
  for (auto f : capnp::Schema::from<s::Request>().getUnionFields())
    out.emplace_back(f.getProto().getName().cStr());
  return out;
}

} // namespace mesh::control
