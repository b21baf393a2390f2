#include "tools/meshctl/commands.hpp"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iomanip>
#include <ostream>
#include <vector>

#include "base/bytes.hpp"
#include "base/errc.hpp"
#include "identity/entity_id.hpp"
#include "mesh/placement.hpp"
#include "persistence/nonce_file.hpp"
#include "tools/meshctl/ask.hpp"
#include "tools/meshseg/render.hpp"

namespace mesh::meshctl {

using namespace mesh::control;

// -- shared helpers -----------------------------------------------------------

int report_transport(session& s, const caf::error& err) {
  s.err << "meshctl: " << describe(err) << std::endl;
  return exit_unreachable;
}

int report_refusal(session& s, const error_response& err) {
  s.err << "meshctl: " << describe(to_error(err)) << std::endl;
  return exit_refused;
}

int report_moved(session& s, const moved_response& moved) {
  s.err << "meshctl: the daemon moved to node " << moved.node << " (epoch "
        << moved.epoch << "); run the command there: --node " << moved.node
        << std::endl;
  return exit_refused;
}

int report_mismatch(session& s, const char* request_name) {
  s.err << "meshctl: " << s.client.address() << " answered a " << request_name
        << " request with another response type (protocol mismatch?)"
        << std::endl;
  return exit_refused;
}

std::string render_payload(bytes_view payload) {
  if (meshseg::printable(payload))
    return std::string{payload.as_chars()};
  return "0x" + to_hex(payload);
}

std::string json_payload_fields(bytes_view payload) {
  if (meshseg::printable(payload))
    return "\"payload\":" + meshseg::json_string(payload.as_chars())
           + ",\"encoding\":\"text\"";
  return "\"payload\":\"" + to_hex(payload) + "\",\"encoding\":\"hex\"";
}

std::string json_id(uint64_t id) {
  return "\"" + hex_u64(id) + "\"";
}

caf::expected<uint64_t> parse_daemon_id(const std::string& text) {
  auto bad = [&] {
    return make_error(errc::invalid_argument,
                      "bad daemon id '" + text
                        + "': expected the hex id 'meshctl daemons' prints, "
                          "e.g. 0x1a2b3c4d5e6f7081");
  };
  std::string_view digits = text;
  if (digits.size() > 2 && digits[0] == '0'
      && (digits[1] == 'x' || digits[1] == 'X'))
    digits.remove_prefix(2);
  if (digits.empty() || digits.size() > 16)
    return bad();
  uint64_t id = 0;
  for (char c : digits) {
    int v = 0;
    if (c >= '0' && c <= '9')
      v = c - '0';
    else if (c >= 'a' && c <= 'f')
      v = c - 'a' + 10;
    else if (c >= 'A' && c <= 'F')
      v = c - 'A' + 10;
    else
      return bad();
    id = (id << 4) | static_cast<uint64_t>(v);
  }
  return id;
}

namespace {

std::string json_daemon(const daemon_entry& d) {
  return "{\"id\":" + json_id(d.origin_hash) + ",\"entity_id\":\""
         + to_hex(bytes_view{d.id.data(), d.id.size()})
         + "\",\"kind\":" + meshseg::json_string(d.kind)
         + ",\"seq\":" + std::to_string(d.last_seq) + ",\"phase\":"
         + meshseg::json_string(to_string(d.phase))
         // "state": the same value under the key older scripts read.
         + ",\"state\":" + meshseg::json_string(to_string(d.phase))
         + ",\"epoch\":" + std::to_string(d.epoch)
         + ",\"reason\":" + meshseg::json_string(d.reason) + ",\"node\":\""
         + to_hex(bytes_view{d.node.data(), d.node.size()})
         + "\",\"address\":" + meshseg::json_string(d.node_address)
         + ",\"available\":" + (d.unavailable ? "false" : "true") + "}";
}

// A node id as tables show it: its first 12 hex digits (enough to tell
// nodes apart; --json has the whole key).
std::string short_node(const entity_id& id) {
  if (id == entity_id{})
    return "-";
  return to_hex(bytes_view{id.data(), id.size()}).substr(0, 12);
}

std::string join(const std::vector<std::string>& xs, const char* sep) {
  std::string out;
  for (const auto& x : xs)
    out += (out.empty() ? "" : sep) + x;
  return out;
}

std::string json_strings(const std::vector<std::string>& xs) {
  std::string out = "[";
  for (size_t i = 0; i < xs.size(); ++i)
    out += (i > 0 ? "," : "") + meshseg::json_string(xs[i]);
  return out + "]";
}

std::string json_node(const member_info& m) {
  const auto& n = m.node;
  std::string labels = "{";
  for (const auto& [k, v] : n.caps.labels)
    labels += (labels.size() > 1 ? "," : "") + meshseg::json_string(k) + ":"
              + meshseg::json_string(v);
  labels += "}";
  char sat[32];
  std::snprintf(sat, sizeof(sat), "%.3f", n.load.saturation);
  return "{\"id\":\"" + to_hex(bytes_view{n.id.data(), n.id.size()})
         + "\",\"address\":" + meshseg::json_string(n.address)
         + ",\"state\":" + meshseg::json_string(to_string(m.state))
         + ",\"incarnation\":" + std::to_string(n.incarnation)
         + ",\"tags\":" + json_strings(n.caps.tags) + ",\"labels\":" + labels
         + ",\"cores\":" + std::to_string(n.caps.cores)
         + ",\"memory_mb\":" + std::to_string(n.caps.memory_mb)
         + ",\"kinds\":" + json_strings(n.caps.kinds)
         + ",\"daemons\":" + std::to_string(n.load.daemons) + ",\"load\":" + sat
         + ",\"drained\":" + (n.drained ? "true" : "false")
         + ",\"silent_ms\":" + std::to_string(m.silent_ms) + "}";
}

std::string json_daemons(const std::vector<daemon_entry>& ds) {
  std::string out = "[";
  for (size_t i = 0; i < ds.size(); ++i)
    out += (i > 0 ? "," : "") + json_daemon(ds[i]);
  return out + "]";
}

// A table with left-aligned columns two spaces apart.
void print_table(std::ostream& out,
                 const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> widths;
  for (const auto& row : rows) {
    widths.resize(std::max(widths.size(), row.size()));
    for (size_t i = 0; i < row.size(); ++i)
      widths[i] = std::max(widths[i], row[i].size());
  }
  for (const auto& row : rows) {
    std::string line;
    for (size_t i = 0; i < row.size(); ++i) {
      line += row[i];
      if (i + 1 < row.size())
        line += std::string(widths[i] - row[i].size() + 2, ' ');
    }
    // An empty last column leaves padding behind.
    line.erase(line.find_last_not_of(' ') + 1);
    out << line << '\n';
  }
  out.flush();
}

std::string json_outputs(const std::vector<causal_event>& outputs) {
  std::string out = "[";
  for (size_t i = 0; i < outputs.size(); ++i) {
    const auto& o = outputs[i];
    out += (i > 0 ? "," : "");
    out += "{\"sequence\":" + std::to_string(o.link.sequence)
           + ",\"parent_hash\":" + json_id(o.link.parent_hash)
           + ",\"horizon\":" + std::to_string(o.link.horizon) + ","
           + json_payload_fields(o.payload) + "}";
  }
  return out + "]";
}

const char* status_name(delivery::status st) {
  switch (st) {
    case delivery::status::applied: return "applied";
    case delivery::status::duplicate: return "duplicate";
    case delivery::status::rejected: return "rejected";
  }
  return "unknown";
}

} // namespace

// -- commands -----------------------------------------------------------------

int run_daemons(session& s) {
  int code = exit_ok;
  auto res = ask<daemons_response>(s, daemons_request{}, code);
  if (!res)
    return code;
  if (s.json) {
    s.out << json_daemons(res->daemons) << std::endl;
    return exit_ok;
  }
  if (res->daemons.empty()) {
    s.out << "no daemons in the mesh of " << s.client.address() << std::endl;
    return exit_ok;
  }
  // The REASON column only when some daemon failed: it is empty otherwise.
  auto any_failed = std::any_of(res->daemons.begin(), res->daemons.end(),
                                [](const daemon_entry& d) {
                                  return !d.reason.empty();
                                });
  std::vector<std::vector<std::string>> rows{
    {"ID", "KIND", "SEQ", "PHASE", "EPOCH", "NODE", "ADDRESS"}};
  if (any_failed)
    rows.front().push_back("REASON");
  for (const auto& d : res->daemons) {
    // A daemon on a down node: what its directory entry says, its phase
    // and seq unknown.
    rows.push_back({hex_u64(d.origin_hash), d.kind,
                    d.unavailable ? "?" : std::to_string(d.last_seq),
                    d.unavailable ? "unavailable" : to_string(d.phase),
                    std::to_string(d.epoch), short_node(d.node),
                    d.node_address.empty() ? "-" : d.node_address});
    if (any_failed)
      rows.back().push_back(d.reason);
  }
  print_table(s.out, rows);
  return exit_ok;
}

int run_nodes(session& s) {
  int code = exit_ok;
  auto res = ask<nodes_response>(s, nodes_request{}, code);
  if (!res)
    return code;
  auto& nodes = res->nodes;
  std::sort(nodes.begin(), nodes.end(),
            [](const member_info& x, const member_info& y) {
              return x.node.address < y.node.address;
            });
  if (s.json) {
    std::string out = "[";
    for (size_t i = 0; i < nodes.size(); ++i)
      out += (i > 0 ? "," : "") + json_node(nodes[i]);
    s.out << out << "]" << std::endl;
    return exit_ok;
  }
  std::vector<std::vector<std::string>> rows{
    {"ID", "ADDRESS", "STATE", "TAGS", "DAEMONS", "CORES", "LOAD"}};
  for (const auto& m : nodes) {
    char load[32];
    std::snprintf(load, sizeof(load), "%.2f", m.node.load.saturation);
    auto state = std::string{to_string(m.state)};
    if (m.node.drained)
      state += ",drained";
    rows.push_back(
      {short_node(m.node.id), m.node.address, state,
       m.node.caps.tags.empty() ? "-" : join(m.node.caps.tags, ","),
       std::to_string(m.node.load.daemons), std::to_string(m.node.caps.cores),
       load});
  }
  print_table(s.out, rows);
  return exit_ok;
}

int run_kinds(session& s) {
  int code = exit_ok;
  auto res = ask<kinds_response>(s, kinds_request{}, code);
  if (!res)
    return code;
  if (s.json) {
    std::string list;
    for (const auto& k : res->kinds)
      list += (list.empty() ? "" : ",") + meshseg::json_string(k);
    s.out << "{\"kinds\":[" << list << "]}" << std::endl;
    return exit_ok;
  }
  for (const auto& k : res->kinds)
    s.out << k << '\n';
  s.out.flush();
  return exit_ok;
}

int run_deploy(session& s, const deploy_args& args) {
  deploy_request req{args.kind, args.count};
  for (const auto& text : args.requires) {
    auto r = parse_requirement(text);
    if (!r) {
      s.err << "meshctl: " << describe(r.error()) << std::endl;
      return exit_usage;
    }
    req.requirements.push_back(std::move(*r));
  }
  if (!args.on.empty()) {
    auto id = parse_entity_id(args.on);
    if (!id) {
      s.err << "meshctl: --on " << args.on
            << " is not a node id (64 hex digits, see 'meshctl nodes "
               "--json')"
            << std::endl;
      return exit_usage;
    }
    req.on_node = *id;
  }
  int code = exit_ok;
  auto res = ask<deploy_response>(s, std::move(req), code);
  if (!res)
    return code;
  if (s.json) {
    s.out << "{\"daemons\":" << json_daemons(res->daemons);
    if (res->failure)
      s.out << ",\"error\":"
            << meshseg::json_string(describe(to_error(*res->failure)));
    s.out << "}" << std::endl;
  } else {
    for (const auto& d : res->daemons)
      s.out << hex_u64(d.origin_hash) << '\n';
    s.out.flush();
  }
  if (res->failure) {
    s.err << "meshctl: deployed " << res->daemons.size() << " of " << args.count
          << " " << args.kind
          << " daemon(s): " << describe(to_error(*res->failure)) << std::endl;
    return exit_refused;
  }
  return exit_ok;
}

int run_send(session& s, const send_args& args) {
  inbound_event ev;
  if (args.hex) {
    if (!from_hex(args.payload, ev.payload)) {
      s.err << "meshctl: payload '" << args.payload << "' is not valid hex"
            << std::endl;
      return exit_usage;
    }
  } else {
    ev.payload.assign(args.payload.begin(), args.payload.end());
  }
  // Anonymous producer (id 0): the node does not deduplicate it. Use
  // --from-file with --producer-file for exactly-once resends.
  send_request req;
  req.daemon_id = args.daemon_id;
  req.events.push_back(std::move(ev));
  int code = exit_ok;
  auto res = ask<send_response>(s, req, code);
  if (!res)
    return code;
  if (res->deliveries.size() != 1) {
    s.err << "meshctl: the node answered " << res->deliveries.size()
          << " deliveries for one event" << std::endl;
    return exit_refused;
  }
  const auto& d = res->deliveries.front();
  if (s.json) {
    s.out << "{\"id\":" << json_id(args.daemon_id) << ",\"status\":\""
          << status_name(d.state) << "\",\"daemon_seq\":" << d.daemon_seq;
    if (d.state == delivery::status::rejected)
      s.out << ",\"error\":" << meshseg::json_string(d.error);
    s.out << ",\"outputs\":" << json_outputs(d.outputs) << "}" << std::endl;
  } else {
    for (const auto& o : d.outputs)
      s.out << render_payload(o.payload) << '\n';
    s.out.flush();
  }
  if (d.state == delivery::status::rejected) {
    s.err << "meshctl: " << hex_u64(args.daemon_id)
          << " rejected the event: " << d.error << std::endl;
    return exit_refused;
  }
  return exit_ok;
}

int run_stats(session& s, uint64_t daemon_id) {
  int code = exit_ok;
  auto res = ask<stats_response>(s, stats_request{daemon_id}, code);
  if (!res)
    return code;
  const auto& st = res->stats;
  std::vector<std::pair<const char*, uint64_t>> fields{
    {"events_processed", st.events_processed},
    {"events_emitted", st.events_emitted},
    {"duplicates", st.duplicates},
    {"errors", st.errors},
    {"snapshots_taken", st.snapshots_taken},
    {"restarts", st.restarts},
    {"last_seq", st.last_seq},
  };
  if (s.json) {
    s.out << "{\"id\":" << json_id(daemon_id);
    for (const auto& [name, value] : fields)
      s.out << ",\"" << name << "\":" << value;
    s.out << "}" << std::endl;
    return exit_ok;
  }
  std::vector<std::vector<std::string>> rows;
  for (const auto& [name, value] : fields)
    rows.push_back({std::string{name}, std::to_string(value)});
  print_table(s.out, rows);
  return exit_ok;
}

int run_snapshot(session& s, const snapshot_args& args) {
  int code = exit_ok;
  auto res = ask<snapshot_response>(s, snapshot_request{args.daemon_id}, code);
  if (!res)
    return code;
  if (!args.out_file.empty()) {
    std::ofstream f{args.out_file, std::ios::binary | std::ios::trunc};
    f.write(reinterpret_cast<const char*>(res->snapshot.data()),
            static_cast<std::streamsize>(res->snapshot.size()));
    f.close();
    if (!f) {
      s.err << "meshctl: cannot write " << args.out_file << ": "
            << std::strerror(errno) << std::endl;
      return exit_usage;
    }
  }
  if (s.json) {
    s.out << "{\"id\":" << json_id(args.daemon_id)
          << ",\"size\":" << res->snapshot.size()
          << ",\"through_seq\":" << res->through_seq;
    if (!args.out_file.empty())
      s.out << ",\"out\":" << meshseg::json_string(args.out_file);
    s.out << "}" << std::endl;
    return exit_ok;
  }
  s.out << "snapshot of " << hex_u64(args.daemon_id) << ": "
        << res->snapshot.size() << " bytes, through_seq " << res->through_seq;
  if (!args.out_file.empty())
    s.out << ", written to " << args.out_file;
  s.out << std::endl;
  return exit_ok;
}

int run_stop(session& s, uint64_t daemon_id) {
  int code = exit_ok;
  auto res = ask<stop_response>(s, stop_request{daemon_id}, code);
  if (!res)
    return code;
  if (s.json)
    s.out << "{\"stopped\":" << json_id(daemon_id) << "}" << std::endl;
  else
    s.out << "stopped " << hex_u64(daemon_id) << std::endl;
  return exit_ok;
}

int run_high_water(session& s, const high_water_args& args) {
  uint64_t producer = 0;
  if (args.producer_id) {
    producer = *args.producer_id;
  } else {
    // load_nonce, not load_or_create: asking must not create a producer.
    auto nonce = load_nonce(args.producer_file);
    if (!nonce) {
      s.err << "meshctl: " << describe(nonce.error()) << std::endl;
      return exit_usage;
    }
    producer = *nonce;
  }
  int code = exit_ok;
  auto res = ask<high_water_response>(s,
                                      high_water_request{args.daemon_id,
                                                         producer},
                                      code);
  if (!res)
    return code;
  if (s.json)
    s.out << "{\"id\":" << json_id(args.daemon_id)
          << ",\"producer_id\":" << json_id(producer)
          << ",\"high_water\":" << res->producer_seq << "}" << std::endl;
  else
    s.out << res->producer_seq << std::endl;
  return exit_ok;
}

} // namespace mesh::meshctl

namespace mesh::meshctl {

int run_resume(session& s, const resume_args& args) {
  int code = exit_ok;
  auto res = s.client.call(resume_request{args.daemon_id, args.accept_loss});
  if (!res)
    return report_transport(s, res.error());
  if (auto* err = std::get_if<error_response>(&*res)) {
    auto text = describe(to_error(*err));
    // The runtime's words for a failure that lost logged inputs.
    if (!args.accept_loss
        && err->message.find("needs the loss to be accepted")
             != std::string::npos)
      text += "; to skip the lost inputs run: meshctl resume "
              + hex_u64(args.daemon_id) + " --accept-loss";
    s.err << "meshctl: " << text << std::endl;
    return exit_refused;
  }
  if (auto* moved = std::get_if<moved_response>(&*res))
    return report_moved(s, *moved);
  auto* ok = std::get_if<resume_response>(&*res);
  if (ok == nullptr)
    return report_mismatch(s, "resume");
  const auto& d = ok->daemon;
  if (s.json)
    s.out << "{\"resumed\":" << json_id(args.daemon_id)
          << ",\"seq\":" << d.last_seq
          << ",\"phase\":" << meshseg::json_string(to_string(d.phase))
          << ",\"state\":" << meshseg::json_string(to_string(d.phase))
          << ",\"accept_loss\":" << (args.accept_loss ? "true" : "false") << "}"
          << std::endl;
  else
    s.out << "resumed " << hex_u64(args.daemon_id) << " at seq " << d.last_seq
          << std::endl;
  return code;
}

} // namespace mesh::meshctl
