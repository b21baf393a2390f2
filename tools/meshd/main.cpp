// meshd: runs one node (DESIGN.md section 9, docs/operations.md).
//
// main wires the parts together: the actor system with the middleman, the
// runtime (recovery from the data directory), the daemon kinds (the examples
// plus plugins) and the gateway published on the listen address. SIGTERM or
// SIGINT stops the gateway, shuts the runtime down (every daemon snapshots,
// the log is closed) and exits 0.

#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <iostream>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include <arpa/inet.h>
#include <fcntl.h>
#include <pthread.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/exit_reason.hpp>
#include <caf/io/middleman.hpp>
#include <caf/send.hpp>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include "actors/plugin_loader.hpp"
#include "actors/runtime.hpp"
#include "base/errc.hpp"
#include "base/file_system.hpp"
#include "examples/examples.hpp"
#include "identity/entity_id.hpp"
#include "identity/key_file.hpp"
#include "mesh/capabilities.hpp"
#include "mesh/gateway.hpp"
#include "mesh/link_actor.hpp"
#include "mesh/link_crypto.hpp"
#include "mesh/membership.hpp"
#include "mesh/mesh_service.hpp"
#include "mesh/middleman_defaults.hpp"
#include "mesh/node_address.hpp"
#include "mesh/psk.hpp"
#include "persistence/segment.hpp"

namespace {

constexpr int exit_ok = 0;
constexpr int exit_failure = 1;
constexpr int exit_usage = 2;

constexpr const char* footer
  = R"(On start meshd recovers every daemon in DIR (snapshot, then replay of the
event log), publishes its gateway on the listen address, joins the mesh
through the --join seeds, prints
  ready 127.0.0.1:7400
on stdout (and writes "127.0.0.1:7400" to --ready-file) once it accepts
requests, and logs to stderr. SIGTERM or SIGINT snapshots every daemon,
closes the log and exits 0.

Nodes started with the same PSK file form a mesh: one --join seed that
answers is enough, the others are learned from it. Every node heartbeats
every other one; a node silent for --suspect-after is suspect (other nodes
are asked to probe it), and for --failure-timeout with no probe reaching it
is down: its daemons are reported unavailable until it is back. A
restarted node rejoins with a new incarnation. Any node serves requests for
any daemon (forwarding them, or answering where the daemon runs), and
'meshctl deploy' places daemons by --tag, --label, cores and memory.

Every connection runs the link handshake (docs/protocol.md section 5): it
proves the mesh PSK (--psk-file) and the peer's own key both ways, and every
request after it is encrypted and authenticated. Create the PSK once with
'meshctl new-psk FILE' and give the same file to every node and client.
Without --psk-file meshd uses the fixed, public "open" PSK and listens on
loopback only (127.0.0.0/8, ::1, localhost).

Exit codes: 0 clean shutdown, 1 could not start (data directory in use,
address in use, ...) or could not shut down cleanly (a final snapshot
failed), or the gateway terminated unexpectedly (run meshd under a service
manager that restarts it), 2 bad usage (an empty --data-dir too; a bad
--join, --advertise, --tag or --label; timers not in the order
heartbeat < suspect < failure; a missing, unreadable, malformed or
group/world-readable --psk-file; no --psk-file with a non-loopback
--listen).

Examples:
  meshd --data-dir /var/lib/meshd --listen 127.0.0.1:7400
  meshd --data-dir ./node-a --listen 127.0.0.1:0 --ready-file ./node-a.addr
  meshd --data-dir ./node-a --plugin ./libmy_kinds.so --fsync every_n:1
  meshd --data-dir /var/lib/meshd --listen 10.0.0.5:7400 \
        --psk-file /etc/meshd/mesh.psk --tag ssd
  meshd --data-dir /var/lib/meshd --listen 10.0.0.6:7400 \
        --psk-file /etc/meshd/mesh.psk --join 10.0.0.5:7400 --label zone=eu
  meshd --data-dir /var/lib/meshd --listen 0.0.0.0:7400 \
        --advertise 10.0.0.7:7400 --psk-file /etc/meshd/mesh.psk \
        --join 10.0.0.5:7400 --join 10.0.0.6:7400
Operations guide: docs/operations.md ("Running a mesh" for the mesh))";

struct options {
  std::string data_dir;
  std::string listen = "127.0.0.1:7400";
  std::vector<std::string> plugins;
  std::string fsync = "every_n:1000";
  std::string log_level = "info";
  std::string ready_file;
  std::string psk_file;
  uint64_t snapshot_every = 10000;
  std::vector<std::string> joins;
  std::vector<std::string> tags;
  std::vector<std::string> labels;
  std::string advertise;
  uint32_t heartbeat_ms = 500;
  uint32_t suspect_ms = 1000;
  uint32_t failure_ms = 2000;
};

int fail(int code, const std::string& what) {
  std::cerr << "meshd: " << what << std::endl;
  return code;
}

void setup_logging(spdlog::level::level_enum level) {
  auto logger = spdlog::stderr_color_mt("meshd");
  logger->set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ %v");
  logger->set_level(level);
  logger->flush_on(spdlog::level::info);
  spdlog::set_default_logger(logger);
}

// Creates DIR (not its parents) when missing.
caf::error ensure_data_dir(const std::string& dir) {
  struct stat st {};
  if (::stat(dir.c_str(), &st) == 0) {
    if (!S_ISDIR(st.st_mode))
      return mesh::make_error(mesh::errc::invalid_argument,
                              dir + " exists and is not a directory");
    return {};
  }
  if (errno != ENOENT)
    return mesh::make_error(mesh::errc::io_error,
                            "stat " + dir + ": " + std::strerror(errno));
  if (::mkdir(dir.c_str(), 0700) != 0)
    return mesh::make_error(mesh::errc::io_error,
                            "mkdir " + dir + ": " + std::strerror(errno));
  return {};
}

// Holds an exclusive flock on the data directory itself for the life of the
// process, so a second meshd on the same directory refuses to start instead
// of corrupting the log. The lock sits on a descriptor of the directory
// (O_RDONLY | O_DIRECTORY), not on a file in it: nothing an operator deletes
// inside the directory releases it. The kernel drops it when the process
// dies, also on SIGKILL. DIR/meshd.lock only names the holder's pid for the
// refusal message; deleting it changes nothing.
class data_dir_lock {
public:
  static caf::expected<std::unique_ptr<data_dir_lock>>
  acquire(const std::string& dir) {
    int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
      return mesh::make_error(mesh::errc::io_error,
                              "open " + dir + ": " + std::strerror(errno));
    auto pid_path = dir + "/meshd.lock";
    if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
      auto err = errno;
      ::close(fd);
      if (err == EWOULDBLOCK)
        return mesh::make_error(mesh::errc::already_registered,
                                "data directory " + dir
                                  + " is in use by another meshd (pid "
                                  + holder_pid(pid_path) + ")");
      return mesh::make_error(mesh::errc::io_error,
                              "flock " + dir + ": " + std::strerror(err));
    }
    write_pid(pid_path);
    return std::unique_ptr<data_dir_lock>{new data_dir_lock{fd}};
  }

  ~data_dir_lock() {
    ::close(fd_);
  }

  data_dir_lock(const data_dir_lock&) = delete;
  data_dir_lock& operator=(const data_dir_lock&) = delete;

private:
  explicit data_dir_lock(int fd) : fd_(fd) {}

  // "?" when the file is gone or empty.
  static std::string holder_pid(const std::string& path) {
    char buf[32] = {};
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    auto n = fd >= 0 ? ::read(fd, buf, sizeof(buf) - 1) : -1;
    if (fd >= 0)
      ::close(fd);
    std::string pid = n > 0 ? std::string(buf, static_cast<size_t>(n)) : "";
    while (!pid.empty() && pid.back() == '\n')
      pid.pop_back();
    return pid.empty() ? "?" : pid;
  }

  // The pid is only informational; the lock is what matters.
  static void write_pid(const std::string& path) {
    auto pid = std::to_string(::getpid()) + "\n";
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
                    0600);
    if (fd < 0
        || ::write(fd, pid.data(), pid.size())
             != static_cast<ssize_t>(pid.size()))
      spdlog::warn("cannot write pid to {}: {}", path, std::strerror(errno));
    if (fd >= 0)
      ::close(fd);
  }

  int fd_;
};

// Written to a temp file and renamed, so a reader polling for the file
// never sees it half-written.
caf::error write_ready_file(const std::string& path, const std::string& text) {
  auto tmp = path + ".tmp." + std::to_string(::getpid());
  FILE* f = std::fopen(tmp.c_str(), "w");
  if (f == nullptr)
    return mesh::make_error(mesh::errc::io_error,
                            "open " + tmp + ": " + std::strerror(errno));
  auto ok = std::fputs((text + "\n").c_str(), f) >= 0;
  ok = (std::fclose(f) == 0) && ok;
  if (!ok || std::rename(tmp.c_str(), path.c_str()) != 0) {
    auto err = errno;
    std::remove(tmp.c_str());
    return mesh::make_error(mesh::errc::io_error,
                            "write " + path + ": " + std::strerror(err));
  }
  return {};
}

// Signals the gateway watch to the main thread (see gateway_watch).
constexpr int gateway_died_signal = SIGUSR2;

// Blocks the stop signals (and the gateway watch's) in this thread before
// any other thread exists, so every thread CAF starts inherits the mask and
// only sigwait() sees them.
sigset_t block_stop_signals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigaddset(&set, gateway_died_signal);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  std::signal(SIGPIPE, SIG_IGN);
  return set;
}

// Notes the gateway's death (from a CAF thread) and wakes the main thread,
// which then exits non-zero: a node whose gateway is gone serves nobody, and
// its service manager restarts it. A stray SIGUSR2 from outside finds
// `died` unset and is ignored.
struct gateway_watch {
  std::atomic<bool> died{false};
  std::mutex mtx;
  std::string reason;

  void notify(const caf::error& why) {
    {
      std::lock_guard<std::mutex> guard{mtx};
      reason = mesh::describe(why);
    }
    died = true;
    ::kill(::getpid(), gateway_died_signal);
  }

  std::string why() {
    std::lock_guard<std::mutex> guard{mtx};
    return reason;
  }
};

// MESHD_FAULT_INJECTION=gateway-throw: the gateway throws on its first
// request, inside the gateway actor, as a bug would. Lets tests check that
// meshd exits when its gateway dies (docs/operations.md, "Test hooks"); it
// has no other use.
std::function<void()> fault_injection() {
  const char* fault = std::getenv("MESHD_FAULT_INJECTION");
  if (fault == nullptr || std::string{fault} != "gateway-throw")
    return {};
  return [] {
    throw std::runtime_error("injected fault (MESHD_FAULT_INJECTION="
                             "gateway-throw)");
  };
}

// Whether `host` can only be reached from this machine: the open PSK is
// public, so without a PSK file nothing else may be listened on.
bool is_loopback(const std::string& host) {
  if (host == "localhost")
    return true;
  in_addr v4{};
  if (::inet_pton(AF_INET, host.c_str(), &v4) == 1)
    return (ntohl(v4.s_addr) >> 24) == 127;
  in6_addr v6{};
  if (::inet_pton(AF_INET6, host.c_str(), &v6) == 1)
    return IN6_IS_ADDR_LOOPBACK(&v6);
  return false;
}

int run(const options& opts, const mesh::fsync_policy& policy,
        const mesh::node_address& listen, mesh::psk link_psk) {
  auto signals = block_stop_signals();
  if (auto err = ensure_data_dir(opts.data_dir))
    return fail(exit_failure, mesh::describe(err));
  auto lock = data_dir_lock::acquire(opts.data_dir);
  if (!lock)
    return fail(exit_failure, mesh::describe(lock.error()));
  // The node's own identity: its id in the mesh is this key's public half.
  // Created on first start (under the lock, so one creator); a damaged or
  // exposed key file stops the node rather than being replaced.
  bool key_created = false;
  auto node_key = mesh::load_or_create_key_file(opts.data_dir + "/node.key",
                                                &key_created);
  if (!node_key)
    return fail(exit_failure, "node key: " + mesh::describe(node_key.error()));
  auto node_id = mesh::to_hex(node_key->id());
  if (key_created)
    spdlog::info("created node key {}/node.key", opts.data_dir);

  caf::actor_system_config cfg;
  mesh::apply_scheduler_defaults(cfg);
  mesh::apply_middleman_defaults(cfg);
  cfg.load<caf::io::middleman>();
  caf::actor_system sys{cfg};

  mesh::runtime_options ropts;
  ropts.data_dir = opts.data_dir;
  ropts.fsync = policy;
  ropts.snapshot_every_events = opts.snapshot_every;
  mesh::runtime rt{sys, ropts};

  for (auto& [kind, factory] : mesh::examples::example_kinds())
    if (auto err = rt.register_factory(kind, factory))
      return fail(exit_failure,
                  "cannot register kind " + kind + ": " + mesh::describe(err));
  for (const auto& path : opts.plugins) {
    auto kinds = mesh::load_plugin(path, [&rt](const std::string& kind,
                                               mesh::daemon_factory f) {
      return rt.register_factory(kind, std::move(f));
    });
    if (!kinds)
      return fail(exit_failure, "cannot load plugin " + path + ": "
                                  + mesh::describe(kinds.error()));
    std::string names;
    for (const auto& k : *kinds)
      names += (names.empty() ? "" : ",") + k;
    spdlog::info("loaded plugin {} kinds={}", path, names);
  }

  if (auto err = rt.start())
    return fail(exit_failure, "cannot start the runtime on " + opts.data_dir
                                + ": " + mesh::describe(err));

  mesh::gateway_options gopts;
  auto link_mode = link_psk.is_open() ? std::string{"open PSK, loopback only"}
                                      : "psk file " + opts.psk_file;
  gopts.link = std::make_shared<const mesh::link_credentials>(
    mesh::link_credentials{std::move(link_psk), node_key->clone(),
                           std::nullopt});
  gopts.before_serve = fault_injection();
  auto watch = std::make_shared<gateway_watch>();
  gopts.on_unexpected_exit = [watch](const caf::error& why) {
    watch->notify(why);
  };
  mesh::gateway gw{sys, rt, gopts};
  auto port = gw.publish(listen.host, listen.port);
  if (!port) {
    gw.stop();
    (void)rt.shutdown();
    return fail(exit_failure, mesh::describe(port.error()));
  }
  auto bound = listen.with_port(*port).to_string();
  auto advertised = opts.advertise.empty() ? bound : opts.advertise;

  // The mesh: membership, directory and routing behind the gateway.
  auto caps = mesh::detect_capabilities(opts.tags, opts.labels, rt.kinds());
  if (!caps)
    return fail(exit_usage, mesh::describe(caps.error()));
  auto* fs = mesh::real_file_system();
  auto previous = mesh::load_incarnation(*fs, opts.data_dir);
  if (!previous)
    return fail(exit_failure,
                "incarnation: " + mesh::describe(previous.error()));
  auto incarnation = mesh::next_incarnation(*previous);
  if (auto err = mesh::store_incarnation(*fs, opts.data_dir, incarnation))
    return fail(exit_failure, "incarnation: " + mesh::describe(err));
  mesh::mesh_service_options mopts;
  mopts.self.id = node_key->id();
  mopts.self.address = advertised;
  mopts.self.incarnation = incarnation;
  mopts.self.caps = std::move(*caps);
  mopts.seeds = opts.joins;
  mopts.membership.heartbeat_interval = std::chrono::milliseconds{
    opts.heartbeat_ms};
  mopts.membership.suspect_after = std::chrono::milliseconds{opts.suspect_ms};
  mopts.membership.failure_timeout = std::chrono::milliseconds{opts.failure_ms};
  // A peer is dialed on a thread of its own (mesh_service.hpp); a dial that
  // does not complete within the failure timeout is a failed one.
  auto dial_creds = std::make_shared<const mesh::link_credentials>(
    gopts.link->clone());
  auto dial_timeout = std::chrono::milliseconds{opts.failure_ms};
  mopts.dial =
    [&sys, dial_creds, dial_timeout](
      const std::string& address) -> caf::expected<mesh::dialed_link> {
    auto a = mesh::node_address::parse(address);
    if (!a)
      return std::move(a.error());
    auto c = mesh::connect_link(sys, a->host, a->port, *dial_creds,
                                dial_timeout);
    if (!c)
      return std::move(c.error());
    return mesh::dialed_link{c->actor, c->peer};
  };
  auto mesh_actor = mesh::spawn_mesh_service(sys, rt, std::move(mopts));
  if (!mesh_actor) {
    gw.stop();
    (void)rt.shutdown();
    return fail(exit_failure, mesh::describe(mesh_actor.error()));
  }
  gw.attach_mesh(*mesh_actor, node_key->id(), advertised);
  auto stop_mesh = [&] {
    caf::anon_send_exit(*mesh_actor, caf::exit_reason::user_shutdown);
  };
  auto count = rt.daemon_count();
  spdlog::info("meshd listening on {} node={} data={} daemons={} fsync={} "
               "incarnation={} advertise={} join={}",
               bound, node_id, opts.data_dir,
               count ? std::to_string(*count) : "?", policy.to_string(),
               incarnation, advertised,
               opts.joins.empty() ? "-" : opts.joins.front());
  spdlog::info("link security: {}", link_mode);
  std::cout << "ready " << bound << std::endl;
  if (!opts.ready_file.empty())
    if (auto err = write_ready_file(opts.ready_file, bound))
      spdlog::error("cannot write ready file: {}", mesh::describe(err));

  int sig = 0;
  while (sigwait(&signals, &sig) != 0
         || (sig == gateway_died_signal && !watch->died))
    ; // EINTR or a stray SIGUSR2: wait again
  if (watch->died) {
    spdlog::error("gateway terminated unexpectedly ({}): the node is "
                  "unreachable; shutting down and exiting 1 so that the "
                  "service manager restarts meshd",
                  watch->why());
    stop_mesh();
    gw.stop();
    if (auto err = rt.shutdown())
      spdlog::error("shutdown failed: {}", mesh::describe(err));
    return exit_failure;
  }
  spdlog::info("received {}, shutting down",
               sig == SIGTERM ? "SIGTERM" : "SIGINT");
  stop_mesh();
  gw.stop();
  auto daemons = rt.daemon_count();
  if (auto err = rt.shutdown()) {
    spdlog::error("shutdown failed: {}", mesh::describe(err));
    return exit_failure;
  }
  spdlog::info("meshd stopped: {} daemon(s) stopped, snapshots written, log "
               "closed",
               daemons ? std::to_string(*daemons) : "?");
  if (!opts.ready_file.empty())
    std::remove(opts.ready_file.c_str());
  return exit_ok;
}

} // namespace

int main(int argc, char** argv) {
  options opts;
  CLI::App app{"meshd: runs one meshd node (daemons, event log, gateway) and "
               "joins it to a mesh",
               "meshd"};
  app.footer(footer);
  app.get_formatter()->column_width(32);
  app
    .add_option("--data-dir", opts.data_dir,
                "Node data directory (event log, snapshots, daemon "
                "records); created when missing, its parent must exist; "
                "locked while meshd runs (one meshd per directory)")
    ->required()
    ->type_name("DIR");
  app
    .add_option("--listen", opts.listen,
                "Address of the gateway; port 0 picks a free port (printed "
                "on the ready line)")
    ->type_name("HOST:PORT")
    ->capture_default_str();
  app
    .add_option("--plugin", opts.plugins,
                "Shared object adding daemon kinds (repeatable); the example "
                "kinds counter, echo and window are always available")
    ->type_name("LIB.so");
  app
    .add_option("--fsync", opts.fsync,
                "Event log fsync policy: never, every_n:N, interval:MS or "
                "interval_or_bytes:MS:BYTES (MS at most 86400000, one day)")
    ->type_name("POLICY")
    ->capture_default_str();
  app
    .add_option("--log-level", opts.log_level,
                "trace, debug, info, warn, error, critical or off")
    ->type_name("LEVEL")
    ->capture_default_str()
    ->check(CLI::IsMember(
      {"trace", "debug", "info", "warn", "error", "critical", "off"}));
  app
    .add_option("--ready-file", opts.ready_file,
                "Write the bound HOST:PORT to FILE once listening (removed "
                "on clean shutdown)")
    ->type_name("FILE");
  app
    .add_option("--psk-file", opts.psk_file,
                "The mesh's pre-shared key (64 hex digits, mode 0600; make "
                "one with 'meshctl new-psk FILE'). Without it: the public "
                "open PSK, and --listen must be a loopback address")
    ->type_name("FILE");
  app
    .add_option("--snapshot-every", opts.snapshot_every,
                "Snapshot a daemon after this many applied events. 0 = not "
                "by count; a daemon still snapshots at shutdown (when it "
                "changed), on request, when the event log asks (its old "
                "entries hold compaction back) and after 100,000 inputs "
                "since its last snapshot (the bound of its rebuild journal)")
    ->type_name("N")
    ->capture_default_str();
  app
    .add_option("--join", opts.joins,
                "Join the mesh through the node at HOST:PORT (repeatable: "
                "any one that answers is enough; the others are learned "
                "from it). Without --join the node starts a mesh of its own "
                "that others join")
    ->type_name("HOST:PORT");
  app
    .add_option("--tag", opts.tags,
                "Capability tag placement can require (repeatable), e.g. "
                "--tag ssd")
    ->type_name("TAG");
  app
    .add_option("--label", opts.labels,
                "Capability label placement can require (repeatable), e.g. "
                "--label zone=eu-1")
    ->type_name("KEY=VALUE");
  app
    .add_option("--advertise", opts.advertise,
                "Address other nodes and clients dial to reach this node "
                "(default: the listen address with its bound port; give it "
                "when listening on a wildcard address, which peers cannot "
                "dial)")
    ->type_name("HOST:PORT");
  app
    .add_option("--heartbeat-interval", opts.heartbeat_ms,
                "Milliseconds between heartbeats to every other node")
    ->type_name("MS")
    ->capture_default_str()
    ->check(CLI::Range(10u, 60000u));
  app
    .add_option("--suspect-after", opts.suspect_ms,
                "A node silent this long (ms) is suspect: other nodes are "
                "asked to probe it")
    ->type_name("MS")
    ->capture_default_str()
    ->check(CLI::Range(20u, 600000u));
  app
    .add_option("--failure-timeout", opts.failure_ms,
                "A node silent this long (ms) that no indirect probe "
                "reached is down. With the defaults a SIGKILLed or "
                "SIGSTOPped node is down within 2.2 s")
    ->type_name("MS")
    ->capture_default_str()
    ->check(CLI::Range(30u, 3600000u));
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    return fail(exit_usage, std::string{e.what()} + " (see meshd --help)");
  }
  if (opts.data_dir.empty())
    return fail(exit_usage, "--data-dir must not be empty (see meshd --help)");
  auto listen = mesh::node_address::parse(opts.listen);
  if (!listen)
    return fail(exit_usage, mesh::describe(listen.error()));
  for (const auto& j : opts.joins)
    if (auto a = mesh::node_address::parse(j); !a)
      return fail(exit_usage,
                  "invalid --join " + j + ": " + mesh::describe(a.error()));
  if (!opts.advertise.empty())
    if (auto a = mesh::node_address::parse(opts.advertise); !a)
      return fail(exit_usage, "invalid --advertise " + opts.advertise + ": "
                                + mesh::describe(a.error()));
  if (auto caps = mesh::detect_capabilities(opts.tags, opts.labels, {}); !caps)
    return fail(exit_usage, mesh::describe(caps.error()));
  {
    mesh::membership_options m;
    m.heartbeat_interval = std::chrono::milliseconds{opts.heartbeat_ms};
    m.suspect_after = std::chrono::milliseconds{opts.suspect_ms};
    m.failure_timeout = std::chrono::milliseconds{opts.failure_ms};
    if (auto err = mesh::validate(m))
      return fail(exit_usage, mesh::describe(err));
  }
  auto policy = mesh::fsync_policy::parse(opts.fsync);
  if (!policy)
    return fail(exit_usage,
                "invalid --fsync: " + mesh::describe(policy.error()));
  auto link_psk = mesh::psk::open();
  if (!opts.psk_file.empty()) {
    auto loaded = mesh::load_psk_file(opts.psk_file);
    if (!loaded)
      return fail(exit_usage, "--psk-file: " + mesh::describe(loaded.error()));
    link_psk = std::move(*loaded);
  } else if (!is_loopback(listen->host)) {
    return fail(exit_usage,
                "refusing to listen on " + listen->to_string()
                  + " without --psk-file: the open PSK is public, so anyone "
                    "who reaches the port could run the node (give "
                    "--psk-file, or listen on 127.0.0.1)");
  }
  setup_logging(spdlog::level::from_str(opts.log_level));
  return run(opts, *policy, *listen, std::move(link_psk));
}
