// meshctl: the operator CLI of a meshd node (DESIGN.md section 9,
// docs/operations.md). Parses the command line, connects to the node's
// gateway and runs one command.

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <iostream>
#include <optional>
#include <string>

#include <sys/stat.h>

#include <CLI/CLI.hpp>
#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/io/middleman.hpp>

#include "base/errc.hpp"
#include "identity/entity_id.hpp"
#include "identity/key_file.hpp"
#include "mesh/client.hpp"
#include "mesh/link_crypto.hpp"
#include "mesh/middleman_defaults.hpp"
#include "mesh/node_address.hpp"
#include "mesh/psk.hpp"
#include "tools/meshctl/commands.hpp"

namespace {

using namespace mesh::meshctl;

constexpr const char* main_footer
  = R"(Global options go before the command. The node can also be given in
MESHCTL_NODE; any node of the mesh will do: 'nodes' and 'daemons' list the
whole mesh, 'deploy' places daemons on any node, and a request for a
daemon on another node is redirected there (meshctl then connects to that
node itself) or, with --forward, passed on by the node asked. Daemon ids
are the hex origin hashes 'meshctl daemons' prints (0x optional).

Exit codes: 0 ok; 1 the node refused (unknown daemon or kind, rejected
event, partial deploy, no node passes placement: no_target_available, the
daemon's node is down: unavailable, no protocol version in common); 2 bad
usage or input (also a bad --psk-file or --client-key); 3 node
unreachable, gone or too slow (--timeout), or the link handshake failed
(another PSK: "unauthenticated").

Every connection proves the mesh PSK (--psk-file, the same file the nodes
use; without it the public open PSK, which only a loopback-only node
accepts) and the client's own ed25519 key (--client-key; created on first
use). Make a PSK with 'meshctl new-psk FILE'.

Examples:
  meshctl --node 127.0.0.1:7400 kinds
  meshctl --node 127.0.0.1:7400 nodes
  meshctl --node 127.0.0.1:7400 deploy counter --count 3
  meshctl --node 127.0.0.1:7400 deploy counter --require tag=ssd \
          --require label:zone=eu
  meshctl --node 127.0.0.1:7400 deploy counter --on NODE_ID
  meshctl --node 127.0.0.1:7400 daemons
  meshctl --node 127.0.0.1:7400 send 0x1a2b3c4d5e6f7081 42
  meshctl --node 127.0.0.1:7400 send 0x1a2b3c4d5e6f7081 --from-file ev.txt \
          --producer-file ev.producer
  meshctl --node 127.0.0.1:7400 --json stats 0x1a2b3c4d5e6f7081
  meshctl --node 127.0.0.1:7400 resume 0x1a2b3c4d5e6f7081
  meshctl new-psk /etc/meshd/mesh.psk
  meshctl --node 10.0.0.5:7400 --psk-file /etc/meshd/mesh.psk --json nodes
Run 'meshctl COMMAND --help' for a command's options.)";

constexpr const char* send_footer
  = R"(With PAYLOAD: one event from an anonymous producer (not deduplicated);
prints the daemon's outputs, one per line: as text when printable ASCII,
otherwise 0x and hex.

With --from-file: one event per line (the newline is not part of the
payload; "-" reads stdin), line N sent as producer_seq N, --batch lines per
message, up to --window messages in flight. Progress goes to stderr; the
summary to stdout:
  sent 1000, applied 1000, duplicates 0, rejected 0
With --producer-file the producer id is stable across runs (the file is
created on first use), so after any failure re-running the same command
applies every line exactly once: lines the node already applied are
skipped (its high-water mark is asked first) or come back as duplicates.
When the node's mark is past the last line of the file (the producer file
was used for another stream), nothing is sent and the exit code is 2.
Without it, each run is a new producer. If the node goes away mid-stream:
  meshctl: node 127.0.0.1:7400 went away after line 1234 (applied through 1200)
and exit code 3.

Examples:
  meshctl --node 127.0.0.1:7400 send 0x1a2b3c4d5e6f7081 hello
  meshctl --node 127.0.0.1:7400 send 0x1a2b3c4d5e6f7081 --hex 00ff
  meshctl --node 127.0.0.1:7400 send 0x1a2b3c4d5e6f7081 --from-file ev.txt \
          --producer-file ev.producer --batch 500
Payloads starting with '-' go after '--': meshctl ... send ID -- -5)";

constexpr const char* resume_footer
  = R"('meshctl daemons' lists failed daemons with PHASE failed and a REASON.
resume rebuilds such a daemon from its snapshot and the event log and makes
it serve again:
  resumed 0x1a2b3c4d5e6f7081 at seq 1200
When the failure lost logged inputs (a gap in the event log found at
recovery), resume refuses and names them; --accept-loss skips them and the
daemon continues after them. A daemon whose snapshot or record is damaged
cannot be rebuilt: resume says so and it stays failed (restore it from a
snapshot copy, or 'meshctl stop' it).

Errors (exit 1): daemon_not_found; wrong_phase when the daemon is not
failed; daemon_failed when it lost inputs (without --accept-loss) or cannot
be rebuilt.

Examples:
  meshctl --node 127.0.0.1:7400 resume 0x1a2b3c4d5e6f7081
  meshctl --node 127.0.0.1:7400 resume 0x1a2b3c4d5e6f7081 --accept-loss)";

struct global_args {
  std::string node;
  std::string psk_file;
  std::string client_key;
  bool json = false;
  bool forward = false;
  uint32_t timeout_ms = 60000;
};

// Accepts exactly the daemon ids parse_daemon_id accepts.
CLI::Validator daemon_id_validator() {
  return CLI::Validator{[](std::string& text) -> std::string {
                          auto id = parse_daemon_id(text);
                          return id ? std::string{}
                                    : mesh::describe(id.error());
                        },
                        "ID"};
}

uint64_t to_id(const std::string& text) {
  // Validated by daemon_id_validator during parsing.
  return *parse_daemon_id(text);
}

// $MESHCTL_CLIENT_KEY, else $HOME/.config/meshd/client.key.
std::string default_client_key() {
  if (const char* env = std::getenv("MESHCTL_CLIENT_KEY"); env && *env)
    return env;
  const char* home = std::getenv("HOME");
  return std::string{home != nullptr && *home ? home : "."}
         + "/.config/meshd/client.key";
}

// Creates the missing directories of `path`'s parent, mode 0700 (the key
// inside is private).
caf::error make_parent_dirs(const std::string& path) {
  for (auto at = path.find('/', 1); at != std::string::npos;
       at = path.find('/', at + 1)) {
    auto dir = path.substr(0, at);
    if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST)
      return mesh::make_error(mesh::errc::io_error,
                              "mkdir " + dir + ": " + std::strerror(errno));
  }
  return {};
}

// The PSK and the client key; prints one line and returns nullopt when
// either is bad.
std::optional<mesh::link_credentials> load_credentials(const global_args& g) {
  auto key_path = g.client_key.empty() ? default_client_key() : g.client_key;
  if (auto err = make_parent_dirs(key_path)) {
    std::cerr << "meshctl: --client-key: " << mesh::describe(err) << std::endl;
    return std::nullopt;
  }
  auto key = mesh::load_or_create_key_file(key_path);
  if (!key) {
    std::cerr << "meshctl: --client-key: " << mesh::describe(key.error())
              << std::endl;
    return std::nullopt;
  }
  auto link_psk = mesh::psk::open();
  if (!g.psk_file.empty()) {
    auto loaded = mesh::load_psk_file(g.psk_file);
    if (!loaded) {
      std::cerr << "meshctl: --psk-file: " << mesh::describe(loaded.error())
                << std::endl;
      return std::nullopt;
    }
    link_psk = std::move(*loaded);
  }
  return mesh::link_credentials{std::move(link_psk), std::move(*key),
                                std::nullopt};
}

int run_new_psk(const std::string& path) {
  auto made = mesh::write_new_psk_file(path);
  if (!made) {
    std::cerr << "meshctl: " << mesh::describe(made.error()) << std::endl;
    return exit_refused;
  }
  std::cout << "wrote a new PSK to " << path
            << " (mode 0600); copy it to every node and client of the mesh"
            << std::endl;
  return exit_ok;
}

int connect_and_run(const global_args& g,
                    const std::function<int(session&)>& command) {
  if (g.node.empty()) {
    std::cerr << "meshctl: --node is required (or MESHCTL_NODE; see meshctl "
                 "--help)"
              << std::endl;
    return exit_usage;
  }
  auto creds = load_credentials(g);
  if (!creds)
    return exit_usage;
  auto addr = mesh::node_address::parse(g.node);
  if (!addr) {
    std::cerr << "meshctl: --node: " << mesh::describe(addr.error())
              << std::endl;
    return exit_usage;
  }
  caf::actor_system_config cfg;
  mesh::apply_middleman_defaults(cfg);
  cfg.load<caf::io::middleman>();
  caf::actor_system sys{cfg};
  mesh::client_options opts;
  opts.nodes.push_back(addr->to_string());
  opts.timeout = std::chrono::milliseconds{g.timeout_ms};
  opts.follow_moved = !g.forward;
  opts.link = std::make_shared<const mesh::link_credentials>(std::move(*creds));
  auto client = mesh::client::connect(sys, std::move(opts));
  if (!client) {
    std::cerr << "meshctl: " << mesh::describe(client.error()) << std::endl;
    return exit_unreachable;
  }
  session s{*client, std::cout, std::cerr, g.json};
  return command(s);
}

} // namespace

int main(int argc, char** argv) {
  std::signal(SIGPIPE, SIG_IGN);
  global_args g;
  CLI::App app{"meshctl: operate a meshd node", "meshctl"};
  app.footer(std::string{main_footer}
             + "\n\nmeshctl speaks control protocol versions "
             + mesh::control::to_string(mesh::control::supported_versions)
             + " (docs/protocol.md) and uses the newest one the node "
               "speaks too.");
  app.require_subcommand(1);
  app.fallthrough();
  app.get_formatter()->column_width(30);
  app.add_option("--node", g.node, "Address of the node's gateway")
    ->type_name("HOST:PORT")
    ->envname("MESHCTL_NODE");
  app
    .add_option("--psk-file", g.psk_file,
                "The mesh's PSK file (default: the public open PSK, "
                "accepted by loopback-only nodes)")
    ->type_name("FILE");
  app
    .add_option("--client-key", g.client_key,
                "This client's ed25519 key file, created (0600) on first use "
                "[default: $MESHCTL_CLIENT_KEY, else "
                "$HOME/.config/meshd/client.key]")
    ->type_name("FILE");
  app.add_flag("--json", g.json, "Machine-readable JSON output");
  app.add_flag("--forward", g.forward,
               "Have --node pass requests for daemons it does not run on to "
               "their node (one hop) instead of answering 'moved' and "
               "meshctl asking that node directly");
  app
    .add_option("--timeout", g.timeout_ms,
                "How long to wait for the node to connect and answer each "
                "request")
    ->type_name("MS")
    ->capture_default_str()
    ->check(CLI::Range(1u, 3600000u));

  std::function<int(session&)> command;
  auto id_check = daemon_id_validator();

  auto* daemons = app.add_subcommand(
    "daemons", "List every daemon in the mesh: id, kind, last applied seq, "
               "phase (and why, for failed ones), epoch, node and its "
               "address; a daemon whose node is down shows 'unavailable'");
  daemons->callback([&] {
    command = run_daemons;
  });

  auto* nodes = app.add_subcommand(
    "nodes", "List the mesh's nodes as this node sees them: id, address, "
             "state (up, suspect, down; drained), tags, daemon count, "
             "cores, load");
  nodes->callback([&] {
    command = run_nodes;
  });

  auto* kinds = app.add_subcommand("kinds", "List the kinds the node spawns");
  kinds->callback([&] {
    command = run_kinds;
  });

  deploy_args dep;
  auto* deploy = app.add_subcommand(
    "deploy", "Spawn daemons of a kind on the nodes placement picks (the "
              "fewest daemons per core among the nodes that have the kind "
              "and meet every --require); prints each new id, one per line");
  deploy->add_option("KIND", dep.kind, "Daemon kind (see 'kinds')")->required();
  deploy->add_option("--count", dep.count, "How many daemons")
    ->capture_default_str()
    ->check(CLI::Range(1u, 10000u));
  deploy
    ->add_option("--require", dep.requires,
                 "Only on nodes that meet this (repeatable; all must hold): "
                 "tag=T, label:K=V, min_cores=N or min_memory_mb=M")
    ->type_name("REQ");
  deploy
    ->add_option("--on", dep.on,
                 "Only on this node (its id as 'meshctl nodes --json' "
                 "prints it), still under the requirements")
    ->type_name("NODE_ID");
  deploy->callback([&] {
    command = [&dep](session& s) {
      return run_deploy(s, dep);
    };
  });

  send_args snd;
  std::string snd_id;
  auto* send = app.add_subcommand("send", "Send one event (PAYLOAD) or one "
                                          "event per line of a file");
  send->footer(send_footer);
  send->add_option("ID", snd_id, "Daemon id")->required()->check(id_check);
  auto* payload_opt = send->add_option("PAYLOAD", snd.payload,
                                       "The event's payload");
  auto* file_opt = send
                     ->add_option("--from-file", snd.from_file,
                                  "One event per line ('-' = stdin)")
                     ->type_name("FILE");
  payload_opt->excludes(file_opt);
  send->add_flag("--hex", snd.hex, "PAYLOAD or every line is hex");
  send
    ->add_option("--producer-file", snd.producer_file,
                 "Nonce file with a stable producer id, for exactly-once "
                 "re-runs (created when missing)")
    ->type_name("P")
    ->needs(file_opt);
  send->add_option("--batch", snd.batch, "Lines per message")
    ->capture_default_str()
    ->check(CLI::Range(1u, 10000u))
    ->needs(file_opt);
  send
    ->add_option("--window", snd.window,
                 "Messages in flight at most (the next is sent before the "
                 "previous ones are answered)")
    ->capture_default_str()
    ->check(CLI::Range(1u, 1024u))
    ->needs(file_opt);
  bool no_skip = false;
  send
    ->add_flag("--no-skip", no_skip,
               "Resend lines the node's high-water mark covers (they come "
               "back as duplicates)")
    ->needs(file_opt);
  send
    ->add_flag("--outputs", snd.print_outputs,
               "Print every output, one per line (with --json: one JSON "
               "object per output, naming its line)")
    ->needs(file_opt);
  send
    ->add_option("--progress-every", snd.progress_every,
                 "Seconds between progress lines when stderr is not a "
                 "terminal (0 = none)")
    ->capture_default_str()
    ->needs(file_opt);
  send->callback([&] {
    snd.daemon_id = to_id(snd_id);
    snd.skip_applied = !no_skip;
    bool from_file = !snd.from_file.empty();
    command = [&snd, from_file](session& s) {
      return from_file ? run_send_file(s, snd) : run_send(s, snd);
    };
  });

  std::string stats_id;
  auto* stats = app.add_subcommand("stats", "A daemon's counters");
  stats->add_option("ID", stats_id, "Daemon id")->required()->check(id_check);
  stats->callback([&] {
    auto id = to_id(stats_id);
    command = [id](session& s) {
      return run_stats(s, id);
    };
  });

  snapshot_args snap;
  std::string snap_id;
  auto* snapshot = app.add_subcommand("snapshot", "Take a snapshot; prints its "
                                                  "size and through_seq");
  snapshot->add_option("ID", snap_id, "Daemon id")->required()->check(id_check);
  snapshot->add_option("--out", snap.out_file, "Also write its bytes to FILE")
    ->type_name("FILE");
  snapshot->callback([&] {
    snap.daemon_id = to_id(snap_id);
    command = [&snap](session& s) {
      return run_snapshot(s, snap);
    };
  });

  std::string stop_id;
  auto* stop = app.add_subcommand("stop",
                                  "Stop a daemon and delete its durable state");
  stop->add_option("ID", stop_id, "Daemon id")->required()->check(id_check);
  stop->callback([&] {
    auto id = to_id(stop_id);
    command = [id](session& s) {
      return run_stop(s, id);
    };
  });

  high_water_args hw;
  std::string hw_id;
  std::string hw_producer;
  auto* high_water = app.add_subcommand(
    "high-water", "Highest producer_seq of a producer the daemon applied");
  high_water->add_option("ID", hw_id, "Daemon id")->required()->check(id_check);
  auto* hw_file = high_water
                    ->add_option("--producer-file", hw.producer_file,
                                 "The producer's nonce file (not created)")
                    ->type_name("P");
  auto* hw_prod = high_water
                    ->add_option("--producer", hw_producer,
                                 "The producer id, hex")
                    ->check(id_check)
                    ->type_name("ID");
  hw_file->excludes(hw_prod);
  high_water->callback([&] {
    hw.daemon_id = to_id(hw_id);
    if (!hw_producer.empty())
      hw.producer_id = to_id(hw_producer);
    command = [&hw](session& s) {
      return run_high_water(s, hw);
    };
  });

  resume_args res;
  std::string res_id;
  auto* resume = app.add_subcommand("resume", "Make a failed daemon serve "
                                              "again from its last good state");
  resume->footer(resume_footer);
  resume->add_option("ID", res_id, "Daemon id")->required()->check(id_check);
  resume->add_flag("--accept-loss", res.accept_loss,
                   "Skip the logged inputs the failure lost (their seqs are "
                   "never reused)");
  std::string psk_out;
  bool new_psk_run = false;
  auto* new_psk = app.add_subcommand("new-psk",
                                     "Write a fresh mesh PSK to FILE (mode "
                                     "0600; never overwrites); "
                                     "needs no node");
  new_psk->add_option("FILE", psk_out, "Where to write it")->required();
  new_psk->callback([&] {
    new_psk_run = true;
  });

  resume->callback([&] {
    res.daemon_id = to_id(res_id);
    command = [&res](session& s) {
      return run_resume(s, res);
    };
  });

  try {
    app.parse(argc, argv);
    if (send->parsed() && snd.payload.empty() && snd.from_file.empty()
        && payload_opt->count() == 0)
      throw CLI::ValidationError("send needs PAYLOAD or --from-file");
    if (high_water->parsed() && hw_file->count() == 0 && hw_prod->count() == 0)
      throw CLI::ValidationError(
        "high-water needs --producer-file or --producer");
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    auto extras = app.remaining();
    if (app.get_subcommands().empty() && !extras.empty())
      std::cerr << "meshctl: unknown command '" << extras.front()
                << "' (see meshctl --help)" << std::endl;
    else
      std::cerr << "meshctl: " << e.what() << " (see meshctl --help)"
                << std::endl;
    return exit_usage;
  }
  if (new_psk_run)
    return run_new_psk(psk_out);
  return connect_and_run(g, command);
}
