#include "mesh/control_codec.hpp"

#include <algorithm>
#include <cstring>
#include <type_traits>
#include <utility>

#include <caf/message.hpp>
#include <capnp/message.h>
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

void fill(s::DaemonInfo::Builder out, const daemon_info& info) {
  out.setOriginHash(info.origin_hash);
  out.setEntityId(kj::arrayPtr(info.id.data(), info.id.size()));
  out.setKind(text_of(info.kind));
  out.setLastSeq(info.last_seq);
  // The schema keeps its text field `state`: it carries the phase's name.
  out.setState(to_string(info.phase));
  out.setEpoch(info.epoch);
  out.setReason(text_of(info.reason));
}

void fill(capnp::List<s::DaemonInfo>::Builder out,
          const std::vector<daemon_info>& infos) {
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

struct request_filler {
  s::Request::Builder out;

  void operator()(const daemons_request&) {
    out.setDaemons();
  }
  void operator()(const kinds_request&) {
    out.setKinds();
  }
  void operator()(const deploy_request& x) {
    auto d = out.initDeploy();
    d.setKind(text_of(x.kind));
    d.setCount(x.count);
  }
  void operator()(const send_request& x) {
    auto snd = out.initSend();
    snd.setDaemonId(x.daemon_id);
    auto evs = snd.initEvents(x.events.size());
    for (size_t i = 0; i < x.events.size(); ++i) {
      evs[i].setProducerId(x.events[i].producer_id);
      evs[i].setProducerSeq(x.events[i].producer_seq);
      evs[i].setPayload(data_of(x.events[i].payload));
    }
  }
  void operator()(const high_water_request& x) {
    auto hw = out.initHighWater();
    hw.setDaemonId(x.daemon_id);
    hw.setProducerId(x.producer_id);
  }
  void operator()(const stats_request& x) {
    out.initStats().setDaemonId(x.daemon_id);
  }
  void operator()(const snapshot_request& x) {
    out.initSnapshot().setDaemonId(x.daemon_id);
  }
  void operator()(const stop_request& x) {
    out.initStop().setDaemonId(x.daemon_id);
  }
  void operator()(const resume_request& x) {
    auto r = out.initResume();
    r.setDaemonId(x.daemon_id);
    r.setAcceptLoss(x.accept_loss);
  }
};

struct response_filler {
  s::Response::Builder out;

  void operator()(const error_response& x) {
    fill(out.initError(), x);
  }
  void operator()(const daemons_response& x) {
    fill(out.initDaemons(x.daemons.size()), x.daemons);
  }
  void operator()(const kinds_response& x) {
    auto kinds = out.initKinds(x.kinds.size());
    for (size_t i = 0; i < x.kinds.size(); ++i)
      kinds.set(i, text_of(x.kinds[i]));
  }
  void operator()(const deploy_response& x) {
    auto d = out.initDeploy();
    fill(d.initDaemons(x.daemons.size()), x.daemons);
    if (x.failure)
      fill(d.initFailure(), *x.failure);
  }
  void operator()(const send_response& x) {
    auto ds = out.initSend(x.deliveries.size());
    for (size_t i = 0; i < x.deliveries.size(); ++i)
      fill(ds[i], x.deliveries[i]);
  }
  void operator()(const high_water_response& x) {
    out.setHighWater(x.producer_seq);
  }
  void operator()(const stats_response& x) {
    fill(out.initStats(), x.stats);
  }
  void operator()(const snapshot_response& x) {
    auto snap = out.initSnapshot();
    snap.setSnapshot(data_of(x.snapshot));
    snap.setThroughSeq(x.through_seq);
  }
  void operator()(const stop_response&) {
    out.setStop();
  }
  void operator()(const resume_response& x) {
    fill(out.initResume(), x.daemon);
  }
};

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

caf::expected<daemon_info> read(s::DaemonInfo::Reader in) {
  daemon_info info;
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
  return info;
}

caf::expected<std::vector<daemon_info>>
read(capnp::List<s::DaemonInfo>::Reader in) {
  std::vector<daemon_info> out;
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

caf::error unknown_union(const char* what, unsigned tag) {
  return make_error(errc::unsupported_version,
                    std::string{"unknown "} + what + " type (union tag "
                      + std::to_string(tag) + "); this build speaks protocol "
                      + std::to_string(protocol_version));
}

caf::expected<request> read(s::Request::Reader in) {
  if (in.getVersion() != protocol_version)
    return make_error(errc::unsupported_version,
                      "request speaks control protocol "
                        + std::to_string(in.getVersion())
                        + ", this build speaks "
                        + std::to_string(protocol_version));
  switch (in.which()) {
    case s::Request::DAEMONS: return request{daemons_request{}};
    case s::Request::KINDS: return request{kinds_request{}};
    case s::Request::DEPLOY: {
      auto d = in.getDeploy();
      return request{deploy_request{to_string(d.getKind()), d.getCount()}};
    }
    case s::Request::SEND: {
      auto snd = in.getSend();
      send_request out;
      out.daemon_id = snd.getDaemonId();
      auto evs = snd.getEvents();
      out.events.reserve(evs.size());
      for (auto ev : evs)
        out.events.push_back(inbound_event{ev.getProducerId(),
                                           ev.getProducerSeq(),
                                           to_bytes(ev.getPayload())});
      return request{std::move(out)};
    }
    case s::Request::HIGH_WATER: {
      auto hw = in.getHighWater();
      return request{high_water_request{hw.getDaemonId(), hw.getProducerId()}};
    }
    case s::Request::STATS:
      return request{stats_request{in.getStats().getDaemonId()}};
    case s::Request::SNAPSHOT:
      return request{snapshot_request{in.getSnapshot().getDaemonId()}};
    case s::Request::STOP:
      return request{stop_request{in.getStop().getDaemonId()}};
    case s::Request::RESUME: {
      auto r = in.getResume();
      return request{resume_request{r.getDaemonId(), r.getAcceptLoss()}};
    }
  }
  return unknown_union("request", static_cast<unsigned>(in.which()));
}

caf::expected<response> read(s::Response::Reader in) {
  switch (in.which()) {
    case s::Response::ERROR: return response{read(in.getError())};
    case s::Response::DAEMONS: {
      auto infos = read(in.getDaemons());
      if (!infos)
        return std::move(infos.error());
      return response{daemons_response{std::move(*infos)}};
    }
    case s::Response::KINDS: {
      kinds_response out;
      for (auto k : in.getKinds())
        out.kinds.emplace_back(to_string(k));
      return response{std::move(out)};
    }
    case s::Response::DEPLOY: {
      auto d = in.getDeploy();
      auto infos = read(d.getDaemons());
      if (!infos)
        return std::move(infos.error());
      deploy_response out;
      out.daemons = std::move(*infos);
      if (d.hasFailure())
        out.failure = read(d.getFailure());
      return response{std::move(out)};
    }
    case s::Response::SEND: {
      send_response out;
      auto ds = in.getSend();
      out.deliveries.reserve(ds.size());
      for (auto x : ds) {
        auto d = read(x);
        if (!d)
          return std::move(d.error());
        out.deliveries.emplace_back(std::move(*d));
      }
      return response{std::move(out)};
    }
    case s::Response::HIGH_WATER:
      return response{high_water_response{in.getHighWater()}};
    case s::Response::STATS:
      return response{stats_response{read(in.getStats())}};
    case s::Response::SNAPSHOT: {
      auto snap = in.getSnapshot();
      return response{
        snapshot_response{to_bytes(snap.getSnapshot()), snap.getThroughSeq()}};
    }
    case s::Response::STOP: return response{stop_response{}};
    case s::Response::RESUME: {
      auto info = read(in.getResume());
      if (!info)
        return std::move(info.error());
      return response{resume_response{std::move(*info)}};
    }
  }
  return unknown_union("response", static_cast<unsigned>(in.which()));
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

} // namespace

wire_bytes encode(const request& req) {
  capnp::MallocMessageBuilder msg;
  auto root = msg.initRoot<s::Request>();
  root.setVersion(protocol_version);
  std::visit(request_filler{root}, req);
  return to_wire(msg);
}

wire_bytes encode(const response& res) {
  capnp::MallocMessageBuilder msg;
  std::visit(response_filler{msg.initRoot<s::Response>()}, res);
  return to_wire(msg);
}

caf::expected<request> decode_request(const wire_bytes& data) {
  return with_reader<s::Request>(data, "request", [](s::Request::Reader in) {
    return read(in);
  });
}

caf::expected<response> decode_response(const wire_bytes& data) {
  return with_reader<s::Response>(data, "response", [](s::Response::Reader in) {
    return read(in);
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
  struct visitor {
    const char* operator()(const daemons_request&) {
      return "daemons";
    }
    const char* operator()(const kinds_request&) {
      return "kinds";
    }
    const char* operator()(const deploy_request&) {
      return "deploy";
    }
    const char* operator()(const send_request&) {
      return "send";
    }
    const char* operator()(const high_water_request&) {
      return "highWater";
    }
    const char* operator()(const stats_request&) {
      return "stats";
    }
    const char* operator()(const snapshot_request&) {
      return "snapshot";
    }
    const char* operator()(const stop_request&) {
      return "stop";
    }
    const char* operator()(const resume_request&) {
      return "resume";
    }
  };
  return std::visit(visitor{}, req);
}

} // namespace mesh::control
