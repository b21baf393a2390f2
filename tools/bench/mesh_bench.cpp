// mesh_bench: events/s and request latency from a client process ("node A")
// to a counter in another process ("node B") over TCP on 127.0.0.1, next
// to an Erlang distributed gen_server counter measured in the same run.
//
// Every CAF row starts its own server process: this binary re-executed with
// `--serve KIND`, which publishes one counter actor with CAF's middleman on
// an ephemeral port of 127.0.0.1, prints `PORT <n>` on stdout and runs until
// its stdin closes. The client side builds a fresh actor system per row (so
// nothing from one row runs during the next), connects with remote_actor and
// drives the counter through a "client step" that the common runner times.
//
// Extension points (tools/bench/README.md, "mesh_bench: adding a row"):
//   - a server kind: one entry in server_kinds (what `--serve KIND` runs);
//   - a throughput row: a function that builds a client_step and calls
//     run_rate_row(); a latency row: a function that calls
//     run_latency_row() with a factory of blocking requests (one per
//     caller thread);
//   - the row list in make_rows() and, for a target, one entry in
//     make_targets().
// The meshd rows run real meshd processes (meshd_group: their data
// directories, logs, PSK and client key in a scratch directory removed at
// the end) and talk to them through mesh::client; the detection rows
// SIGKILL / SIGSTOP one node (child_process::signal) and poll the others.

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include <fcntl.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/atom.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/io/middleman.hpp>
#include <caf/scoped_actor.hpp>
#include <caf/stateful_actor.hpp>
// caf/message.hpp before base/errc.hpp: its CAF_ERROR_CODE_ENUM needs
// caf::message to be a complete type.
#include <caf/message.hpp>

#include "actors/runtime.hpp"
#include "base/bytes.hpp"
#include "base/errc.hpp"
#include "bench_util.hpp"
#include "examples/text.hpp"
#include "identity/entity_id.hpp"
#include "identity/key_file.hpp"
#include "identity/keypair.hpp"
#include "mesh/client.hpp"
#include "mesh/control_codec.hpp"
#include "mesh/link_crypto.hpp"
#include "mesh/middleman_defaults.hpp"
#include "mesh/psk.hpp"

#ifndef MESHD_MESH_BENCH_ERLANG_DIR
#  define MESHD_MESH_BENCH_ERLANG_DIR ""
#endif
#ifndef MESHD_MESH_BENCH_MESHD
#  define MESHD_MESH_BENCH_MESHD "meshd"
#endif
#ifndef MESHD_MESH_BENCH_MESHCTL
#  define MESHD_MESH_BENCH_MESHCTL "meshctl"
#endif

namespace {

using namespace mesh::bench;
using mesh::bytes_view;
using wire_bytes = std::vector<char>;

constexpr size_t payload_size = 16; // bytes per event
constexpr size_t pool_size = 64;    // payloads "1".."64", cycled
constexpr uint64_t producer_id = 1;
/// One-way messages between two synchronous counts in the one-message-per-
/// event row (as the Erlang cast row does it).
constexpr uint64_t chunk_events = 10000;
constexpr auto request_timeout = std::chrono::seconds(30);

struct options {
  double seconds = 3;  // time budget per row
  unsigned trials = 3; // the budget is split into this many timed runs
  uint64_t events = 0; // 0: time only; else also stop a row after these
  size_t batch = 1000; // events per batch frame
  size_t window = 8;   // batch frames in flight
  double rate = 10000; // requests/s of the latency rows
  // Threads sending them (max in flight). 4 could not keep 10,000/s even
  // for the raw actor on the 2-core box (a round trip there is 0.4-1 ms),
  // so the rows measured the callers' backlog, not the requests.
  unsigned callers = 16;
  double time_box = 170; // rows not started by then are skipped
  int erlang = -1;       // -1 = if erl is on PATH, 0 = off, 1 = on
  std::string erlang_script;
  std::string filter;       // substring of the row label
  std::string dir = "/tmp"; // where the scratch directory is made
  std::string meshd;        // the meshd binary of the meshd rows
  std::string meshctl;      // the meshctl binary (new-psk)
  std::string serve;        // internal: run as the server of this kind
  std::string psk_file;     // internal: the PSK of the link-counter server
};

[[noreturn]] void die(const std::string& what);

void usage(FILE* out) {
  std::fprintf(
    out,
    "usage: mesh_bench [--seconds S] [--trials N] [--events N] [--batch N]\n"
    "                  [--window N] [--rate R] [--callers N]\n"
    "                  [--filter TEXT]\n"
    "                  [--erlang | --no-erlang] [--erlang-script P]\n"
    "                  [--dir DIR] [--meshd P] [--meshctl P]\n"
    "                  [--time-box S]\n"
    "\n"
    "Events/s from a client process to a counter in another process over\n"
    "TCP on 127.0.0.1: a raw CAF remote actor with one message per event\n"
    "(the floor) and with batch frames in meshd's encoding (the ceiling),\n"
    "an Erlang distributed gen_server:cast counter when Erlang is\n"
    "installed, the same raw counter behind meshd's link layer, meshd end\n"
    "to end (two meshd processes, direct and through a forwarding node),\n"
    "the latency of paced single requests (raw and through meshd), and the\n"
    "time three meshd processes take to see a SIGKILLed or SIGSTOPped\n"
    "node down.\n"
    "\n"
    "  --seconds S        time budget per row (default 3)\n"
    "  --trials N         split each row into N timed runs, report the\n"
    "                     median rate (default 3)\n"
    "  --events N         also stop each row after N events (default: time\n"
    "                     only)\n"
    "  --batch N          events per batch frame (default 1000)\n"
    "  --window N         batch frames in flight (default 8)\n"
    "  --rate R           requests/s of the latency rows (default 10000)\n"
    "  --callers N        threads sending them, so at most N in flight\n"
    "                     (default 16)\n"
    "  --filter TEXT      run only rows whose label contains TEXT\n"
    "  --erlang           run the Erlang row (default when erl is on PATH)\n"
    "  --no-erlang        skip it\n"
    "  --erlang-script P  the runner (default %s/run_dist.sh)\n"
    "  --dir DIR          the meshd rows' scratch directory (data\n"
    "                     directories, PSK, client key, node logs) is made\n"
    "                     inside DIR and removed at the end (default /tmp)\n"
    "  --meshd P          the meshd binary (default %s)\n"
    "  --meshctl P        the meshctl binary (default %s)\n"
    "  --time-box S       stop starting rows after S seconds (default 170);\n"
    "                     the process aborts at S + 5 s whatever it is doing\n"
    "  --help             this text\n"
    "  --serve KIND       internal: run as a row's server process (kinds:\n"
    "                     raw-counter, link-counter with --psk-file F)\n"
    "\n"
    "Progress goes to stderr, the tables to stdout.\n",
    MESHD_MESH_BENCH_ERLANG_DIR, MESHD_MESH_BENCH_MESHD,
    MESHD_MESH_BENCH_MESHCTL);
}

double parse_double(const std::string& name, const std::string& v, double lo,
                    double hi) {
  char* end = nullptr;
  double x = std::strtod(v.c_str(), &end);
  if (end == v.c_str() || *end != '\0' || !(x > lo) || x > hi)
    die(name + " wants a number in (" + fmt_f("%g", lo) + ", " + fmt_f("%g", hi)
        + "], got '" + v + "'");
  return x;
}

uint64_t parse_uint(const std::string& name, const std::string& v, uint64_t lo,
                    uint64_t hi) {
  char* end = nullptr;
  errno = 0;
  auto n = std::strtoull(v.c_str(), &end, 10);
  if (end == v.c_str() || *end != '\0' || errno != 0 || n < lo || n > hi
      || v[0] == '-')
    die(name + " wants an integer in [" + std::to_string(lo) + ", "
        + std::to_string(hi) + "], got '" + v + "'");
  return n;
}

options parse_args(int argc, char** argv) {
  options o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&argc, &argv, &i, &a]() -> std::string {
      if (i + 1 >= argc)
        die(a + " needs a value");
      return argv[++i];
    };
    if (a == "--help" || a == "-h") {
      usage(stdout);
      std::exit(0);
    } else if (a == "--seconds") {
      o.seconds = parse_double(a, value(), 0, 60);
    } else if (a == "--trials") {
      o.trials = static_cast<unsigned>(parse_uint(a, value(), 1, 100));
    } else if (a == "--events") {
      o.events = parse_uint(a, value(), 1, uint64_t{1} << 40);
    } else if (a == "--batch") {
      o.batch = parse_uint(a, value(), 1, 100000);
    } else if (a == "--window") {
      o.window = parse_uint(a, value(), 1, 1024);
    } else if (a == "--rate") {
      o.rate = parse_double(a, value(), 0, 1e6);
    } else if (a == "--callers") {
      o.callers = static_cast<unsigned>(parse_uint(a, value(), 1, 64));
    } else if (a == "--time-box") {
      o.time_box = parse_double(a, value(), 0, 3600);
    } else if (a == "--filter") {
      o.filter = value();
    } else if (a == "--erlang") {
      o.erlang = 1;
    } else if (a == "--no-erlang") {
      o.erlang = 0;
    } else if (a == "--erlang-script") {
      o.erlang_script = value();
    } else if (a == "--dir") {
      o.dir = value();
    } else if (a == "--meshd") {
      o.meshd = value();
    } else if (a == "--meshctl") {
      o.meshctl = value();
    } else if (a == "--serve") {
      o.serve = value();
    } else if (a == "--psk-file") {
      o.psk_file = value();
    } else {
      usage(stderr);
      die("unknown argument '" + a + "'");
    }
  }
  if (o.erlang_script.empty() && *MESHD_MESH_BENCH_ERLANG_DIR)
    o.erlang_script = std::string{MESHD_MESH_BENCH_ERLANG_DIR} + "/run_dist.sh";
  if (o.meshd.empty())
    o.meshd = MESHD_MESH_BENCH_MESHD;
  if (o.meshctl.empty())
    o.meshctl = MESHD_MESH_BENCH_MESHCTL;
  return o;
}

// -- child processes ----------------------------------------------------------
//
// Every process this bench starts is a child_process: its own process group
// (so a runner script and what it starts go together), registered in
// live_groups until reaped. die(), SIGINT/SIGTERM and the time box kill the
// registered groups by id, and nothing else; a server child also gets
// SIGKILL from the kernel if the bench dies (PR_SET_PDEATHSIG).

constexpr size_t max_children = 32;
std::atomic<pid_t> live_groups[max_children];

void register_group(pid_t pid) {
  for (auto& slot : live_groups) {
    pid_t none = 0;
    if (slot.compare_exchange_strong(none, pid))
      return;
  }
}

void unregister_group(pid_t pid) {
  for (auto& slot : live_groups) {
    pid_t p = pid;
    if (slot.compare_exchange_strong(p, 0))
      return;
  }
}

/// Async-signal-safe: SIGKILL to every process group this bench started.
void kill_live_groups() {
  for (auto& slot : live_groups) {
    pid_t p = slot.exchange(0);
    if (p > 0)
      ::kill(-p, SIGKILL);
  }
}

// The scratch directory of the meshd rows (data directories, the PSK, the
// client key, the nodes' logs): made on first use inside --dir, removed at
// the end, on error, on SIGINT/SIGTERM and at the time box. Its path sits in
// a fixed buffer so that a signal handler can remove it (fork + exec of rm,
// both async-signal-safe), after the processes writing in it are killed.
char scratch_path[4096];
std::atomic<bool> scratch_made{false};

/// Async-signal-safe: removes the scratch directory, if made.
void remove_scratch() {
  if (!scratch_made.exchange(false))
    return;
  pid_t pid = ::fork();
  if (pid == 0) {
    const char* argv[] = {"rm", "-rf", "--", scratch_path, nullptr};
    ::execv("/bin/rm", const_cast<char* const*>(argv));
    ::_exit(127);
  }
  int st = 0;
  if (pid > 0)
    while (::waitpid(pid, &st, 0) < 0 && errno == EINTR)
      ;
}

[[noreturn]] void die(const std::string& what) {
  std::fprintf(stderr, "\nmesh_bench: %s\n", what.c_str());
  kill_live_groups();
  remove_scratch();
  std::exit(1);
}

/// A process this bench started, with its stdin and stdout on pipes and its
/// stderr shared with the bench (or appended to a file: meshd's log).
/// Destroying it closes its stdin, waits up to two seconds for it to exit,
/// then kills its process group.
class child_process {
public:
  child_process() = default;
  child_process(const child_process&) = delete;
  child_process& operator=(const child_process&) = delete;
  child_process(child_process&& other) noexcept {
    *this = std::move(other);
  }
  child_process& operator=(child_process&& other) noexcept {
    if (this != &other) {
      stop();
      pid_ = std::exchange(other.pid_, 0);
      in_ = std::exchange(other.in_, -1);
      out_ = std::exchange(other.out_, -1);
      buf_ = std::move(other.buf_);
    }
    return *this;
  }
  ~child_process() {
    stop();
  }

  /// Starts argv[0] (a path, or a name looked up on PATH); its stderr goes
  /// to `stderr_path` (appended) when given.
  static child_process start(const std::vector<std::string>& argv,
                             const std::string& stderr_path = {}) {
    int in[2], out[2];
    if (::pipe2(in, O_CLOEXEC) != 0 || ::pipe2(out, O_CLOEXEC) != 0)
      die(std::string{"pipe: "} + std::strerror(errno));
    int err_fd = -1;
    if (!stderr_path.empty()) {
      err_fd = ::open(stderr_path.c_str(),
                      O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
      if (err_fd < 0)
        die("open " + stderr_path + ": " + std::strerror(errno));
    }
    std::vector<char*> args;
    for (auto& a : argv)
      args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    pid_t parent = ::getpid();
    pid_t pid = ::fork();
    if (pid < 0)
      die(std::string{"fork: "} + std::strerror(errno));
    if (pid == 0) {
      ::setpgid(0, 0);
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (::getppid() != parent)
        ::_exit(127);
      ::dup2(in[0], STDIN_FILENO);
      ::dup2(out[1], STDOUT_FILENO);
      if (err_fd >= 0)
        ::dup2(err_fd, STDERR_FILENO);
      ::execvp(args[0], args.data());
      const char msg[] = "mesh_bench: exec failed\n";
      auto n = ::write(STDERR_FILENO, msg, sizeof msg - 1);
      (void)n;
      ::_exit(127);
    }
    // Both sides set the group, so kill(-pid) works whichever runs first.
    ::setpgid(pid, pid);
    register_group(pid);
    ::close(in[0]);
    ::close(out[1]);
    if (err_fd >= 0)
      ::close(err_fd);
    child_process c;
    c.pid_ = pid;
    c.in_ = in[1];
    c.out_ = out[0];
    return c;
  }

  pid_t pid() const {
    return pid_;
  }

  /// The next line of the child's stdout (without the newline), waiting up
  /// to `timeout` seconds. False on timeout or end of file.
  bool read_line(std::string& line, double timeout) {
    auto t0 = clock_type::now();
    for (;;) {
      auto nl = buf_.find('\n');
      if (nl != std::string::npos) {
        line = buf_.substr(0, nl);
        buf_.erase(0, nl + 1);
        return true;
      }
      double left = timeout - since(t0);
      if (out_ < 0 || left <= 0)
        return false;
      pollfd p{out_, POLLIN, 0};
      int r = ::poll(&p, 1, static_cast<int>(left * 1000) + 1);
      if (r < 0 && errno == EINTR)
        continue;
      if (r <= 0)
        return false;
      char chunk[4096];
      auto n = ::read(out_, chunk, sizeof chunk);
      if (n < 0 && errno == EINTR)
        continue;
      if (n <= 0) {
        ::close(out_);
        out_ = -1;
        // A last line without a newline is still a line.
        if (!buf_.empty() && buf_.back() != '\n')
          buf_.push_back('\n');
        continue;
      }
      buf_.append(chunk, static_cast<size_t>(n));
    }
  }

  /// Closes the child's stdin (the server mode exits on end of file).
  void close_stdin() {
    if (in_ >= 0)
      ::close(in_);
    in_ = -1;
  }

  /// Waits up to `timeout` seconds for the child to exit and reaps it; its
  /// exit status in *status. False if it is still running.
  bool wait(double timeout, int* status = nullptr) {
    if (pid_ <= 0)
      return true;
    auto t0 = clock_type::now();
    for (;;) {
      // WNOWAIT: the exited child stays a zombie, so its pid (the group's
      // id) cannot be reused before the group is killed below.
      siginfo_t info{};
      int r = ::waitid(P_PID, static_cast<id_t>(pid_), &info,
                       WEXITED | WNOHANG | WNOWAIT);
      if ((r == 0 && info.si_pid == pid_) || (r < 0 && errno == ECHILD)) {
        // The group may still hold grandchildren (a runner's VMs): they go
        // with it.
        ::kill(-pid_, SIGKILL);
        int st = 0;
        ::waitpid(pid_, &st, 0);
        unregister_group(pid_);
        pid_ = 0;
        if (status)
          *status = st;
        return true;
      }
      if (since(t0) >= timeout)
        return false;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  }

  /// Sends `sig` to the child (not its group): SIGKILL and SIGSTOP rows
  /// signal exactly the node they measure.
  void signal(int sig) {
    if (pid_ > 0)
      ::kill(pid_, sig);
  }

  /// CPU time the child has used so far (user + system, all threads),
  /// seconds; -1 when unknown. Clock-tick resolution (usually 10 ms).
  double cpu_seconds() const {
    if (pid_ <= 0)
      return -1;
    std::string path = "/proc/" + std::to_string(pid_) + "/stat";
    FILE* f = std::fopen(path.c_str(), "r");
    if (!f)
      return -1;
    char buf[1024] = {0};
    size_t n = std::fread(buf, 1, sizeof buf - 1, f);
    std::fclose(f);
    // Fields after the command name (which may hold spaces) start after
    // the last ')'; utime and stime are fields 14 and 15.
    std::string_view s{buf, n};
    auto rp = s.rfind(')');
    if (rp == std::string_view::npos)
      return -1;
    std::string rest{s.substr(rp + 2)};
    unsigned long long utime = 0, stime = 0;
    if (std::sscanf(rest.c_str(),
                    "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu",
                    &utime, &stime)
        != 2)
      return -1;
    return static_cast<double>(utime + stime)
           / static_cast<double>(::sysconf(_SC_CLK_TCK));
  }

  /// SIGKILL to its process group; reaps it.
  void kill() {
    if (pid_ > 0) {
      ::kill(-pid_, SIGKILL);
      wait(5.0);
    }
  }

  /// Closes stdin, waits up to two seconds, then kills the group.
  void stop() {
    close_stdin();
    if (pid_ > 0 && !wait(2.0)) {
      ::kill(-pid_, SIGKILL);
      wait(5.0);
    }
    if (out_ >= 0)
      ::close(out_);
    out_ = -1;
  }

private:
  pid_t pid_ = 0;
  int in_ = -1;
  int out_ = -1;
  std::string buf_;
};

// -- the counter --------------------------------------------------------------
//
// Every row does the same addition as the examples/counter daemon (and as
// runtime_bench's raw actors): a payload is a signed decimal integer as text,
// ASCII whitespace around it ignored, any other payload counts as 1; it is
// added to the total; overflow rejects the event. Payloads are 16 bytes:
// "1" .. "64" right-aligned in spaces, cycled, so the check at the end of a
// row knows the total to expect.

bytes_view view_of(const wire_bytes& b) {
  return {reinterpret_cast<const uint8_t*>(b.data()), b.size()};
}

/// Sum of the payload values of events 0..n-1 (event i carries i % 64 + 1).
int64_t expected_sum(uint64_t n) {
  uint64_t full = n / pool_size, rest = n % pool_size;
  return static_cast<int64_t>(full * (pool_size * (pool_size + 1) / 2)
                              + rest * (rest + 1) / 2);
}

/// The 64 payloads, as the wire carries them.
std::vector<wire_bytes> make_pool() {
  std::vector<wire_bytes> pool;
  for (size_t i = 1; i <= pool_size; ++i) {
    char buf[payload_size + 1];
    std::snprintf(buf, sizeof buf, "%*zu", static_cast<int>(payload_size), i);
    pool.emplace_back(buf, buf + payload_size);
  }
  return pool;
}

// -- the raw counter (server side) --------------------------------------------

/// One event, one-way (no answer).
using mb_add_atom = caf::atom_constant<caf::atom("mb_add")>;
/// One event as a request; the answer is the new total.
using mb_ping_atom = caf::atom_constant<caf::atom("mb_ping")>;
/// A batch frame (bytes) as a request; the answer is an ack frame.
using mb_batch_atom = caf::atom_constant<caf::atom("mb_batch")>;
/// Asks for (events applied, total).
using mb_count_atom = caf::atom_constant<caf::atom("mb_count")>;

struct raw_counter_state {
  uint64_t events = 0;
  int64_t total = 0;
  static inline const char* name = "bench.raw_counter";
};

/// The ack frame a batch gets: the counter's event count and total after
/// the batch, 8 bytes little-endian each. A vector<char> like the frames
/// both ways of meshd's gateway, so a row that seals frames seals the ack.
wire_bytes make_ack(uint64_t events, int64_t total) {
  wire_bytes out(16);
  mesh::store_le64(reinterpret_cast<uint8_t*>(out.data()), events);
  mesh::store_le64(reinterpret_cast<uint8_t*>(out.data()) + 8,
                   static_cast<uint64_t>(total));
  return out;
}

/// Applies a batch frame: a control protocol `send` request
/// (control::encode of a send_request), decoded with the node's own
/// decoder, exactly the bytes meshd's gateway receives for a batch.
caf::expected<wire_bytes> apply_batch(raw_counter_state& st,
                                      const wire_bytes& frame) {
  auto req = mesh::control::decode_request(frame);
  if (!req)
    return std::move(req.error());
  auto* send = std::get_if<mesh::control::send_request>(&req->body);
  if (!send)
    return mesh::make_error(mesh::errc::invalid_argument, "not a send request");
  for (auto& ev : send->events) {
    if (!add_payload(ev.payload, st.total))
      return mesh::make_error(mesh::errc::invalid_argument, "overflow");
    ++st.events;
  }
  return make_ack(st.events, st.total);
}

caf::behavior raw_counter(caf::stateful_actor<raw_counter_state>* self) {
  return {
    [self](mb_add_atom, const wire_bytes& payload) {
      if (add_payload(view_of(payload), self->state.total))
        ++self->state.events;
    },
    [self](mb_ping_atom, const wire_bytes& payload) -> caf::result<int64_t> {
      if (!add_payload(view_of(payload), self->state.total))
        return mesh::make_error(mesh::errc::invalid_argument, "overflow");
      ++self->state.events;
      return self->state.total;
    },
    [self](mb_batch_atom, const wire_bytes& frame) -> caf::result<wire_bytes> {
      auto ack = apply_batch(self->state, frame);
      if (!ack)
        return std::move(ack.error());
      return std::move(*ack);
    },
    [self](mb_count_atom) -> caf::result<uint64_t, int64_t> {
      return {self->state.events, self->state.total};
    },
  };
}

// -- the link counter (server side) -------------------------------------------
//
// The raw counter behind meshd's link layer (mesh/link_crypto.hpp), as the
// gateway runs it: every message is a link message; the first two are the
// initiator's ClientHello and ClientFinish, answered by a link::responder;
// after them every message is a Frame that the session opens (strict
// counter, MAC) before the same apply_batch(), and the ack goes back
// sealed. One session: the row has one client.

/// A link message (bytes) as a request; the answer is a link message.
using mb_link_atom = caf::atom_constant<caf::atom("mb_link")>;

struct link_counter_state {
  raw_counter_state counter;
  std::shared_ptr<const mesh::link_credentials> creds;
  std::optional<mesh::link::responder> handshake;
  std::optional<mesh::link::session> session;
  static inline const char* name = "bench.link_counter";
};

caf::expected<wire_bytes> serve_link(link_counter_state& st,
                                     const wire_bytes& msg) {
  namespace link = mesh::link;
  auto refuse = [](const char* why) {
    return mesh::make_error(mesh::errc::unauthenticated, why);
  };
  auto kind = link::kind_of(msg);
  if (!kind)
    return refuse("not a link message");
  switch (*kind) {
    case link::kind::client_hello: {
      if (st.session)
        return refuse("one session per server");
      auto accepted = link::responder::accept(*st.creds, msg);
      if (!accepted)
        return std::move(accepted.error());
      st.handshake.emplace(std::move(accepted->first));
      return std::move(accepted->second);
    }
    case link::kind::client_finish: {
      if (!st.handshake)
        return refuse("ClientFinish without a ClientHello");
      auto done = st.handshake->finish(msg);
      if (!done)
        return std::move(done.error());
      st.session.emplace(std::move(done->second));
      st.handshake.reset();
      return std::move(done->first);
    }
    case link::kind::frame: {
      if (!st.session)
        return refuse("frame before the handshake");
      auto plain = st.session->open(msg);
      if (!plain)
        return std::move(plain.error());
      auto ack = apply_batch(st.counter, *plain);
      if (!ack)
        return std::move(ack.error());
      return st.session->seal(*ack);
    }
    default: return refuse("unexpected link message");
  }
}

caf::behavior link_counter(caf::stateful_actor<link_counter_state>* self,
                           std::shared_ptr<const mesh::link_credentials> c) {
  self->state.creds = std::move(c);
  return {
    [self](mb_link_atom, const wire_bytes& msg) -> caf::result<wire_bytes> {
      auto out = serve_link(self->state, msg);
      if (!out)
        return std::move(out.error());
      return std::move(*out);
    },
    [self](mb_count_atom) -> caf::result<uint64_t, int64_t> {
      return {self->state.counter.events, self->state.counter.total};
    },
  };
}

/// What `--serve KIND` runs: spawns the actor to publish.
struct server_kind {
  const char* name;
  const char* what;
  caf::actor (*spawn)(caf::actor_system&, const options&);
};

const server_kind server_kinds[] = {
  {"raw-counter",
   "the raw counter actor (mb_add / mb_ping / mb_batch / mb_count)",
   [](caf::actor_system& sys, const options&) {
     return sys.spawn(raw_counter);
   }},
  {"link-counter", "the raw counter behind the link layer (mb_link / mb_count)",
   [](caf::actor_system& sys, const options& o) {
     if (o.psk_file.empty())
       die("--serve link-counter needs --psk-file");
     auto psk = mesh::load_psk_file(o.psk_file);
     if (!psk)
       die("--psk-file: " + mesh::describe(psk.error()));
     auto creds = std::make_shared<const mesh::link_credentials>(
       mesh::link_credentials{std::move(*psk), mesh::keypair::generate(),
                              std::nullopt});
     return sys.spawn(link_counter, std::move(creds));
   }},
};

/// The CAF configuration of both sides: meshd's own scheduler settings
/// (mesh::apply_scheduler_defaults) and the middleman, so a raw row and a
/// meshd row run on the same CAF.
void configure(caf::actor_system_config& cfg) {
  mesh::apply_scheduler_defaults(cfg);
  cfg.load<caf::io::middleman>();
}

/// `--serve KIND`: publishes the kind's actor on 127.0.0.1 (ephemeral
/// port), prints `PORT <n>`, and serves until stdin closes (the bench
/// closes it, or dies).
int serve_main(const options& o) {
  const server_kind* kind = nullptr;
  for (auto& k : server_kinds)
    if (o.serve == k.name)
      kind = &k;
  if (!kind)
    die("--serve: unknown kind '" + o.serve + "'");
  caf::actor_system_config cfg;
  configure(cfg);
  caf::actor_system sys{cfg};
  auto a = kind->spawn(sys, o);
  auto port = sys.middleman().publish(a, 0, "127.0.0.1");
  if (!port)
    die("--serve: publish: " + sys.render(port.error()));
  std::printf("PORT %u\n", static_cast<unsigned>(*port));
  std::fflush(stdout);
  char buf[256];
  while (::read(STDIN_FILENO, buf, sizeof buf) > 0)
    ;
  // Nothing to keep: no state outlives the row. Skipping the actor
  // system's teardown keeps a peer that has not noticed the disconnect
  // from delaying the exit.
  std::fflush(stderr);
  ::_exit(0);
}

// -- rows ---------------------------------------------------------------------

enum class row_style {
  /// events/s; the throughput table.
  rate,
  /// request latency percentiles; the latency table.
  latency,
  /// time until a signalled node is reported down; the detection table.
  detect,
};

struct row;
struct bench_context;
using row_fn = std::function<void(bench_context&, row&)>;

struct row {
  /// Stable name that targets refer to ("raw.batch", ...).
  std::string id;
  std::string label;
  row_style style = row_style::rate;
  row_fn run;
  /// Seconds the row needs beyond --seconds (process starts, trials that
  /// are not timed by --seconds): it is skipped when the time box leaves
  /// less than --seconds + this.
  double extra_seconds = 2;
  /// Runs on the meshd pair (bench_context::pair), which stays up between
  /// consecutive rows that use it and is stopped before any other row.
  bool uses_pair = false;
  // Results.
  bool ran = false;
  std::string skipped;    // why not run (shown in the table)
  uint64_t events = 0;    // all trials (latency rows: requests measured)
  double seconds = 0;     // all trials
  double median_rate = 0; // events/s (latency rows: achieved requests/s)
  double client_cpu = -1; // seconds, client process, over the trials
  double server_cpu = -1; // seconds, server process(es), over the trials
  // Latency rows: microseconds.
  double p50 = 0, p99 = 0, p999 = 0, max = 0;
  // Detection rows: milliseconds per trial (negative: not seen down within
  // the trial's limit).
  std::vector<double> detect_ms;
  std::string note;
};

struct bench_clock {
  clock_type::time_point start = clock_type::now();
  double time_box = 110;
  double remaining() const {
    return time_box - since(start);
  }
};

struct meshd_group;

struct bench_context {
  options opt;
  bench_clock clock;
  std::string self_exe;
  std::vector<wire_bytes> pool = make_pool();
  /// The meshd rows' two-node mesh, started by the first row that uses it.
  std::shared_ptr<meshd_group> pair;

  /// The scratch directory (made on first use).
  const char* scratch() {
    if (!scratch_made.load()) {
      auto tmpl = opt.dir + "/mesh_bench.XXXXXX";
      if (tmpl.size() >= sizeof scratch_path)
        die("--dir: path too long");
      std::strcpy(scratch_path, tmpl.c_str());
      if (::mkdtemp(scratch_path) == nullptr)
        die("mkdtemp " + tmpl + ": " + std::strerror(errno));
      scratch_made = true;
    }
    return scratch_path;
  }
};

/// A client step: delivers some events, returns once the counter has
/// acknowledged them (or once a window slot is free again), and returns how
/// many events that acknowledgement covers.
using client_step = std::function<uint64_t()>;

double median_of(std::vector<double> v) {
  if (v.empty())
    return 0;
  std::sort(v.begin(), v.end());
  return v.size() % 2 ? v[v.size() / 2]
                      : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
}

/// The common runner of throughput rows: `warmup_events` (untimed), then
/// opt.trials back-to-back timed runs of `step`, each with 1/trials of the
/// time budget (and of --events); the clock is read after every step. Fills
/// events, seconds, the median rate and the CPU time of the client process
/// and of `server` (when given). Returns the events delivered, warm-up
/// included, for the row's final check.
/// CPU seconds of the server side of a row (one process or several),
/// -1 when unknown.
using cpu_probe = std::function<double()>;

cpu_probe cpu_of(const child_process* server) {
  if (!server)
    return {};
  return [server] {
    return server->cpu_seconds();
  };
}

/// Sum of the CPU time of `procs`; -1 when one is unknown.
cpu_probe cpu_of(std::vector<const child_process*> procs) {
  return [procs] {
    double sum = 0;
    for (auto* p : procs) {
      double c = p->cpu_seconds();
      if (c < 0)
        return -1.0;
      sum += c;
    }
    return sum;
  };
}

uint64_t run_rate_row(bench_context& ctx, row& r, uint64_t warmup_events,
                      const client_step& step, const cpu_probe& server) {
  uint64_t total = 0;
  while (total < warmup_events)
    total += step();
  const auto& o = ctx.opt;
  std::vector<double> rates;
  double cpu0 = process_cpu();
  double srv0 = server ? server() : -1;
  for (unsigned t = 0; t < o.trials; ++t) {
    double budget = std::min(o.seconds / o.trials,
                             std::max(0.05, ctx.clock.remaining()));
    uint64_t cap = o.events ? std::max<uint64_t>(1, o.events / o.trials)
                            : UINT64_MAX;
    uint64_t n = 0;
    auto t0 = clock_type::now();
    do
      n += step();
    while (n < cap && since(t0) < budget);
    double secs = since(t0);
    r.events += n;
    r.seconds += secs;
    rates.push_back(secs > 0 ? n / secs : 0);
    total += n;
  }
  r.client_cpu = process_cpu() - cpu0;
  if (server && srv0 >= 0) {
    double srv1 = server();
    r.server_cpu = srv1 >= 0 ? srv1 - srv0 : -1;
  }
  r.median_rate = median_of(rates);
  return total;
}

uint64_t run_rate_row(bench_context& ctx, row& r, uint64_t warmup_events,
                      const client_step& step,
                      const child_process* server = nullptr) {
  return run_rate_row(ctx, r, warmup_events, step, cpu_of(server));
}

/// One request: sends request number `seq` (its payload is pool[seq % 64])
/// and returns when its answer arrived. Called on one caller thread only.
using latency_request = std::function<void(uint64_t seq)>;

/// Builds a caller's latency_request; runs on that caller's own thread (a
/// scoped_actor, or a client connection, belongs to the thread using it).
using latency_caller = std::function<latency_request()>;

/// The common runner of latency rows: an open-loop load of opt.rate
/// requests/s for opt.seconds (or --events requests) after an untimed
/// warm-up of 1,000 requests. Request i is due at t0 + i / rate; opt.callers
/// threads, each with its own latency_request, take the requests in order,
/// sleep until one is due and send it, so up to opt.callers are in flight.
/// A request's latency is measured from when it was due, not from when it
/// was sent: when every caller is busy the next requests go out late and
/// the wait counts (no coordinated omission, as wrk2). Returns the requests
/// sent, warm-up included (numbered 0..n-1), for the row's final check.
uint64_t run_latency_row(bench_context& ctx, row& r,
                         const latency_caller& make_caller,
                         const cpu_probe& server) {
  const auto& o = ctx.opt;
  constexpr uint64_t warmup = 1000;
  uint64_t n = static_cast<uint64_t>(o.rate * o.seconds);
  if (o.events)
    n = std::min(n, o.events);
  n = std::max<uint64_t>(n, 1);
  const uint64_t end = warmup + n;
  std::vector<double> lat(n, -1);
  // Warm-up requests are numbered 0..warmup-1 from warm_next, timed ones
  // warmup..end-1 from next, so no number is skipped.
  std::atomic<uint64_t> warm_next{0};
  std::atomic<uint64_t> next{warmup};
  std::atomic<unsigned> warmed{0};
  std::atomic<bool> go{false};
  std::atomic<bool> out_of_time{false};
  clock_type::time_point t0;
  auto interval = std::chrono::duration<double>(1.0 / o.rate);
  auto caller = [&] {
    // The default 50 us timer slack would add to every paced sleep.
    ::prctl(PR_SET_TIMERSLACK, 1UL);
    auto req = make_caller();
    for (uint64_t i; (i = warm_next.fetch_add(1)) < warmup;)
      req(i);
    ++warmed;
    while (!go.load())
      std::this_thread::sleep_for(std::chrono::microseconds(100));
    for (uint64_t i; (i = next.fetch_add(1)) < end;) {
      auto due = t0
                 + std::chrono::duration_cast<clock_type::duration>(
                   interval * static_cast<double>(i - warmup));
      if (clock_type::now() < due)
        std::this_thread::sleep_until(due);
      req(i);
      lat[i - warmup] = std::chrono::duration<double, std::micro>(
                          clock_type::now() - due)
                          .count();
      if (ctx.clock.remaining() <= 0) {
        out_of_time = true;
        break;
      }
    }
  };
  std::vector<std::thread> threads;
  for (unsigned k = 0; k < o.callers; ++k)
    threads.emplace_back(caller);
  while (warmed.load() < o.callers)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  double cpu0 = process_cpu();
  double srv0 = server ? server() : -1;
  t0 = clock_type::now() + std::chrono::milliseconds(1);
  go = true;
  for (auto& t : threads)
    t.join();
  r.seconds = since(t0);
  r.client_cpu = process_cpu() - cpu0;
  if (server && srv0 >= 0) {
    double srv1 = server();
    r.server_cpu = srv1 >= 0 ? srv1 - srv0 : -1;
  }
  lat.erase(std::remove(lat.begin(), lat.end(), -1.0), lat.end());
  if (lat.empty())
    die(r.label + ": no request answered");
  r.events = lat.size();
  r.median_rate = r.events / r.seconds;
  std::sort(lat.begin(), lat.end());
  auto pct = [&lat](double p) {
    auto i = static_cast<size_t>(p * static_cast<double>(lat.size() - 1));
    return lat[i];
  };
  r.p50 = pct(0.50);
  r.p99 = pct(0.99);
  r.p999 = pct(0.999);
  r.max = lat.back();
  if (out_of_time)
    r.note = "time box reached; ";
  // Callers stop taking numbers at `end`; each took at most one past it.
  return std::min<uint64_t>(next.load(), end);
}

uint64_t run_latency_row(bench_context& ctx, row& r,
                         const latency_caller& make_caller,
                         const child_process* server = nullptr) {
  return run_latency_row(ctx, r, make_caller, cpu_of(server));
}

/// A server process (`--serve KIND`) and the port it published on.
struct server_process {
  child_process proc;
  uint16_t port = 0;
};

server_process start_server(bench_context& ctx, const std::string& kind,
                            const std::vector<std::string>& extra = {}) {
  server_process s;
  std::vector<std::string> argv{ctx.self_exe, "--serve", kind};
  argv.insert(argv.end(), extra.begin(), extra.end());
  s.proc = child_process::start(argv);
  std::string line;
  unsigned port = 0;
  if (!s.proc.read_line(line, 10.0)
      || std::sscanf(line.c_str(), "PORT %u", &port) != 1 || port == 0
      || port > 65535)
    die("server '" + kind + "' did not report its port (got '" + line + "')");
  s.port = static_cast<uint16_t>(port);
  return s;
}

/// The client's side of one row: its own actor system (meshd's settings and
/// the middleman), gone when the row ends.
struct client_system {
  caf::actor_system_config cfg;
  std::unique_ptr<caf::actor_system> sys;
  client_system() {
    configure(cfg);
    sys = std::make_unique<caf::actor_system>(cfg);
  }
  caf::actor connect(uint16_t port) {
    auto a = sys->middleman().remote_actor("127.0.0.1", port);
    if (!a)
      die("connect to 127.0.0.1:" + std::to_string(port) + ": "
          + sys->render(a.error()));
    return *a;
  }
};

/// Asks the raw counter for (events, total) and checks them against what
/// the row sent.
void check_raw_counter(caf::scoped_actor& self, const caf::actor& counter,
                       const row& r, uint64_t sent) {
  uint64_t events = 0;
  int64_t total = 0;
  self->request(counter, request_timeout, mb_count_atom::value)
    .receive(
      [&events, &total](uint64_t e, int64_t t) {
        events = e;
        total = t;
      },
      [&r](caf::error& e) {
        die(r.label + ": count: " + caf::to_string(e));
      });
  if (events != sent || total != expected_sum(sent))
    die(r.label + ": the counter applied " + std::to_string(events)
        + " events, total " + std::to_string(total) + "; sent "
        + std::to_string(sent) + ", expected total "
        + std::to_string(expected_sum(sent)));
}

/// Row: one CAF message per event, one-way, in chunks of chunk_events each
/// followed by one count request that waits until the counter applied the
/// chunk (the round trip that keeps the sender from running ahead of the
/// counter without bound). The floor.
void row_raw_single(bench_context& ctx, row& r) {
  auto srv = start_server(ctx, "raw-counter");
  client_system cs;
  auto counter = cs.connect(srv.port);
  caf::scoped_actor self{*cs.sys};
  uint64_t next = 0;
  client_step step = [&ctx, &self, &counter, &next, &r]() -> uint64_t {
    for (uint64_t i = 0; i < chunk_events; ++i)
      self->send(counter, mb_add_atom::value, ctx.pool[next++ % pool_size]);
    uint64_t applied = 0;
    self->request(counter, request_timeout, mb_count_atom::value)
      .receive(
        [&applied](uint64_t e, int64_t) {
          applied = e;
        },
        [&r](caf::error& e) {
          die(r.label + ": " + caf::to_string(e));
        });
    if (applied != next)
      die(r.label + ": counter at " + std::to_string(applied) + " after "
          + std::to_string(next) + " sends");
    return chunk_events;
  };
  uint64_t sent = run_rate_row(ctx, r, 2 * chunk_events, step, &srv.proc);
  check_raw_counter(self, counter, r, sent);
  r.note = "chunks of " + fmt_num(chunk_events) + " one-way sends + 1 request";
}

/// The batch frames of the batch rows: a control protocol send request of
/// opt.batch events (producer 1, increasing producer_seq, 16-byte
/// payloads), encoded by control::encode as meshctl's client does; the
/// request is built once and refilled in place for every frame.
class batch_encoder {
public:
  explicit batch_encoder(const bench_context& ctx) : pool_(ctx.pool) {
    req_.daemon_id = 1;
    req_.events.resize(ctx.opt.batch);
    for (auto& ev : req_.events) {
      ev.producer_id = producer_id;
      ev.payload.resize(payload_size);
    }
  }

  wire_bytes next() {
    for (auto& ev : req_.events) {
      ev.producer_seq = ++seq_;
      auto& p = pool_[next_++ % pool_size];
      std::memcpy(ev.payload.data(), p.data(), payload_size);
    }
    return mesh::control::encode(mesh::control::request{req_}, ++frame_id_);
  }

  size_t batch() const {
    return req_.events.size();
  }
  /// Events encoded so far.
  uint64_t events() const {
    return next_;
  }

private:
  const std::vector<wire_bytes>& pool_;
  mesh::control::send_request req_;
  uint64_t seq_ = 0;
  uint64_t next_ = 0;
  uint64_t frame_id_ = 0;
};

/// Row: batch frames as requests, opt.window of them in flight; the counter
/// decodes each frame with the control codec, adds every payload and
/// answers an ack frame. Unauthenticated, unencrypted: the ceiling.
void row_raw_batch(bench_context& ctx, row& r) {
  auto srv = start_server(ctx, "raw-counter");
  client_system cs;
  auto counter = cs.connect(srv.port);
  caf::scoped_actor self{*cs.sys};
  batch_encoder enc{ctx};
  using handle_t = decltype(self->request(counter, request_timeout,
                                          mb_batch_atom::value, wire_bytes{}));
  std::deque<handle_t> in_flight;
  uint64_t acked = 0;
  auto send_one = [&self, &counter, &enc, &in_flight] {
    in_flight.push_back(self->request(counter, request_timeout,
                                      mb_batch_atom::value, enc.next()));
  };
  auto receive_one = [&in_flight, &acked, &r, &enc] {
    in_flight.front().receive(
      [&acked, &r, &enc](const wire_bytes& ack) {
        if (ack.size() != 16)
          die(r.label + ": short ack");
        uint64_t events = mesh::load_le64(
          reinterpret_cast<const uint8_t*>(ack.data()));
        if (events != acked + enc.batch())
          die(r.label + ": ack for " + std::to_string(events)
              + " events, expected " + std::to_string(acked + enc.batch()));
        acked = events;
      },
      [&r](caf::error& e) {
        die(r.label + ": " + caf::to_string(e));
      });
    in_flight.pop_front();
  };
  for (size_t i = 0; i < ctx.opt.window; ++i)
    send_one();
  client_step step = [&send_one, &receive_one, &enc]() -> uint64_t {
    receive_one();
    send_one();
    return enc.batch();
  };
  run_rate_row(ctx, r, 4 * ctx.opt.window * enc.batch(), step, &srv.proc);
  while (!in_flight.empty())
    receive_one();
  check_raw_counter(self, counter, r, enc.events());
  r.note = "batches of " + fmt_num(static_cast<double>(enc.batch()))
           + " (control::encode), window " + std::to_string(ctx.opt.window);
}

/// Row: the raw.batch traffic behind meshd's link layer. The client runs a
/// link::initiator handshake with the link-counter server (the PSK from a
/// fresh file in the scratch directory, an ed25519 key each), then seals
/// every batch frame with its session and opens every ack; the server
/// opens every frame before apply_batch() and seals the ack. Same batch,
/// window and checks as raw.batch, so the difference is the link layer.
void row_link_batch(bench_context& ctx, row& r) {
  std::string psk_path = std::string{ctx.scratch()} + "/link.psk";
  auto psk = mesh::write_new_psk_file(psk_path);
  if (!psk)
    die(r.label + ": " + mesh::describe(psk.error()));
  auto srv = start_server(ctx, "link-counter", {"--psk-file", psk_path});
  client_system cs;
  auto counter = cs.connect(srv.port);
  caf::scoped_actor self{*cs.sys};
  mesh::link_credentials creds{std::move(*psk), mesh::keypair::generate(),
                               std::nullopt};
  auto ask = [&self, &counter, &r](wire_bytes msg) {
    wire_bytes answer;
    self->request(counter, request_timeout, mb_link_atom::value, std::move(msg))
      .receive(
        [&answer](wire_bytes& a) {
          answer = std::move(a);
        },
        [&r](caf::error& e) {
          die(r.label + ": handshake: " + caf::to_string(e));
        });
    return answer;
  };
  mesh::link::initiator init;
  auto server_hello = ask(init.hello(creds));
  auto finished = init.finish(creds, server_hello);
  if (!finished)
    die(r.label + ": handshake: " + mesh::describe(finished.error()));
  auto session = std::move(finished->second);
  if (!mesh::link::is_ready(ask(std::move(finished->first)), session.id()))
    die(r.label + ": handshake: no LinkReady");

  batch_encoder enc{ctx};
  using handle_t = decltype(self->request(counter, request_timeout,
                                          mb_link_atom::value, wire_bytes{}));
  std::deque<handle_t> in_flight;
  uint64_t acked = 0;
  auto send_one = [&self, &counter, &enc, &in_flight, &session, &r] {
    auto sealed = session.seal(enc.next());
    if (!sealed)
      die(r.label + ": seal: " + mesh::describe(sealed.error()));
    in_flight.push_back(self->request(counter, request_timeout,
                                      mb_link_atom::value, std::move(*sealed)));
  };
  auto receive_one = [&in_flight, &acked, &r, &enc, &session] {
    in_flight.front().receive(
      [&acked, &r, &enc, &session](const wire_bytes& sealed) {
        auto ack = session.open(sealed);
        if (!ack)
          die(r.label + ": open: " + mesh::describe(ack.error()));
        if (ack->size() != 16)
          die(r.label + ": short ack");
        uint64_t events = mesh::load_le64(
          reinterpret_cast<const uint8_t*>(ack->data()));
        if (events != acked + enc.batch())
          die(r.label + ": ack for " + std::to_string(events)
              + " events, expected " + std::to_string(acked + enc.batch()));
        acked = events;
      },
      [&r](caf::error& e) {
        die(r.label + ": " + caf::to_string(e));
      });
    in_flight.pop_front();
  };
  for (size_t i = 0; i < ctx.opt.window; ++i)
    send_one();
  client_step step = [&send_one, &receive_one, &enc]() -> uint64_t {
    receive_one();
    send_one();
    return enc.batch();
  };
  run_rate_row(ctx, r, 4 * ctx.opt.window * enc.batch(), step, &srv.proc);
  while (!in_flight.empty())
    receive_one();
  check_raw_counter(self, counter, r, enc.events());
  r.note = "raw.batch's frames sealed/opened with mesh::link::session "
           "(ChaCha20-Poly1305-IETF), acks too; after a link::initiator / "
           "link::responder handshake with a fresh PSK";
}

/// Row: one request per event (mb_ping, answered with the new total),
/// opt.rate per second from opt.callers threads, each its own scoped_actor
/// on the row's actor system.
void row_raw_latency(bench_context& ctx, row& r) {
  auto srv = start_server(ctx, "raw-counter");
  client_system cs;
  auto counter = cs.connect(srv.port);
  latency_caller make_caller = [&ctx, &cs, &counter, &r]() -> latency_request {
    auto self = std::make_shared<caf::scoped_actor>(*cs.sys);
    return [&ctx, self, &counter, &r](uint64_t seq) {
      (*self)
        ->request(counter, request_timeout, mb_ping_atom::value,
                  ctx.pool[seq % pool_size])
        .receive([](int64_t) {},
                 [&r](caf::error& e) {
                   die(r.label + ": " + caf::to_string(e));
                 });
    };
  };
  uint64_t sent = run_latency_row(ctx, r, make_caller, &srv.proc);
  caf::scoped_actor self{*cs.sys};
  check_raw_counter(self, counter, r, sent);
  r.note += "request/receive, " + std::to_string(ctx.opt.callers)
            + " callers (a scoped_actor each)";
}

/// Row: the Erlang distributed gen_server:cast counter (erlang/run_dist.sh:
/// two BEAM nodes on 127.0.0.1, a private epmd). Skipped, with the reason,
/// when Erlang is not installed.
void row_erlang_cast(bench_context& ctx, row& r) {
  const auto& o = ctx.opt;
  struct stat st;
  if (o.erlang == 0) {
    r.skipped = "not measured: --no-erlang";
  } else if (which("erl").empty() || which("erlc").empty()
             || which("epmd").empty()) {
    r.skipped = "erlang: not installed (apt-get install erlang-nox)";
  } else if (o.erlang_script.empty()
             || ::stat(o.erlang_script.c_str(), &st) != 0) {
    r.skipped = "not measured: runner not found ('" + o.erlang_script
                + "'; pass --erlang-script)";
  }
  if (!r.skipped.empty())
    return;
  // o.seconds of casts, plus compile, epmd and two VM starts (~3 s).
  double need = o.seconds + 8;
  int limit = static_cast<int>(std::min(ctx.clock.remaining(), need + 20));
  auto proc = child_process::start(
    {"timeout", "-k", "2", std::to_string(limit), o.erlang_script, "--seconds",
     fmt_f("%.3f", o.seconds), "--trials", std::to_string(o.trials), "--events",
     std::to_string(o.events)});
  std::string line, info, errors;
  bool got = false;
  while (proc.read_line(line, limit + 5.0)) {
    char name[32] = {0};
    double rate = 0, secs = 0;
    unsigned long long events = 0;
    if (std::sscanf(line.c_str(), "RESULT %31s %lf %llu %lf", name, &rate,
                    &events, &secs)
          == 4
        && std::string_view{name} == "cast") {
      got = true;
      r.median_rate = rate;
      r.events = events;
      r.seconds = secs;
    } else if (line.rfind("INFO ", 0) == 0) {
      info = line.substr(5);
    }
  }
  int status = 0;
  if (!proc.wait(5.0, &status))
    proc.stop();
  if (!got) {
    r.skipped = "not measured: runner failed (exit status "
                + std::to_string(WIFEXITED(status) ? WEXITSTATUS(status) : -1)
                + ", see stderr)";
    return;
  }
  r.note = "chunks of 10,000 casts + 1 call; " + info;
}

// -- meshd processes ----------------------------------------------------------
//
// The meshd rows run real meshd processes in the default configuration
// (write-ahead log on, default fsync, default membership timers), each with
// a data directory and a log (its stderr) in the scratch directory, all
// with one fresh mesh PSK made by `meshctl new-psk` there, listening on
// 127.0.0.1:0 (the address comes from meshd's `ready HOST:PORT` line). Node
// 0 starts the mesh, the others --join it. The clients (mesh::client)
// authenticate with that PSK and a client key in the scratch directory.

/// The text of the last `lines` lines of `path` (a node's log), for the
/// message of a row that fails.
std::string tail_of(const std::string& path, size_t lines) {
  FILE* f = std::fopen(path.c_str(), "r");
  if (!f)
    return "(no log at " + path + ")";
  std::string all;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0)
    all.append(buf, n);
  std::fclose(f);
  if (all.empty())
    return "(empty log " + path + ")\n";
  // Start after the (lines + 1)-th newline from the end (the last one ends
  // the last line), or at the beginning.
  size_t start = 0, seen = 0;
  for (size_t i = all.size(); i-- > 0;)
    if (all[i] == '\n' && ++seen == lines + 1) {
      start = i + 1;
      break;
    }
  return all.substr(start);
}

/// One meshd process.
struct meshd_node {
  std::string name;               // "A", "B", "C": how the rows name it
  std::string dir;                // its data directory
  std::string log;                // its stderr
  std::vector<std::string> extra; // --join
  std::string address;            // from its ready line
  mesh::entity_id id{};           // from a nodes listing
  child_process proc;
};

/// Starts `n` (again: a restarted node keeps its data directory, so its
/// node key, and gets a new port) and waits for its ready line.
void start_node(const bench_context& ctx, meshd_node& n,
                const std::string& psk) {
  std::vector<std::string> argv{ctx.opt.meshd, "--data-dir", n.dir, "--listen",
                                "127.0.0.1:0", "--psk-file", psk};
  argv.insert(argv.end(), n.extra.begin(), n.extra.end());
  n.proc = child_process::start(argv, n.log);
  std::string line;
  if (!n.proc.read_line(line, 20.0) || line.rfind("ready ", 0) != 0)
    die("meshd " + n.name + " did not start (stdout: '" + line
        + "'); its log:\n" + tail_of(n.log, 20));
  n.address = line.substr(6);
}

/// SIGCONT (a stopped node cannot act on SIGTERM), SIGTERM (meshd's clean
/// shutdown), and SIGKILL to its group when it has not exited in 5 s.
void stop_node(meshd_node& n) {
  if (n.proc.pid() <= 0)
    return;
  n.proc.signal(SIGCONT);
  n.proc.signal(SIGTERM);
  if (!n.proc.wait(5.0))
    n.proc.kill();
}

/// Runs `meshctl new-psk path`.
void make_mesh_psk(const bench_context& ctx, const std::string& path,
                   const std::string& log) {
  auto p = child_process::start({ctx.opt.meshctl, "new-psk", path}, log);
  std::string line;
  while (p.read_line(line, 10.0))
    ;
  int status = 0;
  if (!p.wait(10.0, &status) || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
    die("meshctl new-psk " + path + " failed: " + tail_of(log, 5));
}

/// A mesh of meshd processes under scratch/PREFIX-*: node 0 ("A") starts
/// it, the others join it. Stops every node when destroyed.
struct meshd_group {
  std::string psk;
  std::string key;
  std::vector<std::unique_ptr<meshd_node>> nodes;

  meshd_group(bench_context& ctx, const std::string& prefix, size_t n) {
    for (auto& m : {ctx.opt.meshd, ctx.opt.meshctl})
      if (::access(m.c_str(), X_OK) != 0 && which(m).empty())
        die(m
            + " not found (build meshd and meshctl, or pass --meshd / "
              "--meshctl)");
    std::string base = std::string{ctx.scratch()} + "/" + prefix;
    psk = base + "-mesh.psk";
    make_mesh_psk(ctx, psk, base + "-meshctl.log");
    // The clients' key, made here, before several clients (the latency
    // callers) would race to create it.
    key = base + "-client.key";
    if (auto k = mesh::load_or_create_key_file(key); !k)
      die("client key " + key + ": " + mesh::describe(k.error()));
    for (size_t i = 0; i < n; ++i) {
      auto node = std::make_unique<meshd_node>();
      node->name = std::string(1, static_cast<char>('A' + i));
      node->dir = base + "-" + node->name;
      node->log = node->dir + ".log";
      if (i > 0)
        node->extra = {"--join", nodes[0]->address};
      start_node(ctx, *node, psk);
      nodes.push_back(std::move(node));
    }
  }

  ~meshd_group() {
    for (auto it = nodes.rbegin(); it != nodes.rend(); ++it)
      stop_node(**it);
  }

  meshd_group(const meshd_group&) = delete;
  meshd_group& operator=(const meshd_group&) = delete;

  meshd_node& operator[](size_t i) {
    return *nodes[i];
  }

  /// The CPU time of every node, summed.
  cpu_probe cpu() const {
    std::vector<const child_process*> procs;
    for (auto& n : nodes)
      procs.push_back(&n->proc);
    return cpu_of(procs);
  }

  /// The last lines of every node's log.
  std::string logs() const {
    std::string out;
    for (auto& n : nodes)
      out += "--- meshd " + n->name + " (" + n->log + "):\n"
             + tail_of(n->log, 15);
    return out;
  }

  [[noreturn]] void fail(const std::string& what) const {
    die(what + "\n" + logs());
  }

  /// A mesh::client of node `address`, authenticated with the group's PSK
  /// and the client key, on `sys`.
  mesh::client
  connect(caf::actor_system& sys, const std::string& address,
          bool follow_moved = true,
          std::chrono::milliseconds timeout = std::chrono::seconds(10)) const {
    mesh::client_options o;
    o.nodes = {address};
    o.credentials = {psk, key};
    o.follow_moved = follow_moved;
    o.timeout = timeout;
    auto c = mesh::client::connect(sys, std::move(o));
    if (!c)
      fail("connect to " + address + ": " + mesh::describe(c.error()));
    return std::move(*c);
  }

  /// Waits until `viewer` lists every node of the group up, and learns
  /// their ids.
  void wait_all_up(mesh::client& viewer, double limit = 20) {
    auto t0 = clock_type::now();
    for (;;) {
      auto members = viewer.nodes();
      size_t up = 0;
      if (members)
        for (auto& n : nodes)
          for (auto& m : *members)
            if (m.node.address == n->address
                && m.state == mesh::node_state::up) {
              n->id = m.node.id;
              ++up;
            }
      if (up == nodes.size())
        return;
      if (since(t0) > limit)
        fail("the mesh did not form within " + fmt_f("%.0f", limit) + " s ("
             + viewer.address() + " lists " + std::to_string(up) + " of "
             + std::to_string(nodes.size()) + " nodes up"
             + (members ? std::string{}
                        : "; nodes: " + mesh::describe(members.error()))
             + ")");
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }
};

/// The client side of a meshd row: an actor system with meshd's scheduler
/// and middleman settings (as meshctl's), gone when the row ends.
struct mesh_client_system {
  caf::actor_system_config cfg;
  std::unique_ptr<caf::actor_system> sys;
  mesh_client_system() {
    configure(cfg);
    mesh::apply_middleman_defaults(cfg);
    sys = std::make_unique<caf::actor_system>(cfg);
  }
};

/// The meshd rows' mesh: A and B (B --join A), started by the first row
/// that uses it; main() stops it before a row that does not.
meshd_group& the_pair(bench_context& ctx, caf::actor_system& sys) {
  if (!ctx.pair) {
    ctx.pair = std::make_shared<meshd_group>(ctx, "pair", 2);
    auto c = ctx.pair->connect(sys, (*ctx.pair)[0].address);
    ctx.pair->wait_all_up(c);
    auto d = ctx.pair->connect(sys, (*ctx.pair)[1].address);
    ctx.pair->wait_all_up(d);
  }
  return *ctx.pair;
}

/// Deploys a fresh counter daemon --on `node`; returns its id.
uint64_t deploy_counter(const meshd_group& g, mesh::client& c,
                        const meshd_node& node, const row& r) {
  auto dep = c.deploy("counter", 1, {}, node.id);
  if (!dep)
    g.fail(r.label + ": deploy: " + mesh::describe(dep.error()));
  if (dep->daemons.size() != 1)
    g.fail(r.label + ": deploy: "
           + (dep->failure
                ? mesh::describe(mesh::control::to_error(*dep->failure))
                : std::to_string(dep->daemons.size()) + " daemons"));
  auto& d = dep->daemons.front();
  if (d.node != node.id)
    g.fail(r.label + ": the counter landed on " + d.node_address + ", not on "
           + node.address);
  return d.origin_hash;
}

/// Checks that the counter's total is the sum of the first `sent`
/// payloads: the event "0" (no producer) adds nothing and answers the total.
void check_mesh_counter(const meshd_group& g, mesh::client& c, uint64_t id,
                        uint64_t sent, const row& r) {
  std::vector<mesh::inbound_event> probe(1);
  probe[0].payload = mesh::bytes{'0'};
  auto ds = c.send(id, std::move(probe));
  if (!ds || ds->size() != 1 || ds->front().outputs.empty())
    g.fail(r.label + ": cannot read the counter's total"
           + (ds ? std::string{} : ": " + mesh::describe(ds.error())));
  auto& p = ds->front().outputs.front().payload;
  std::string total(p.begin(), p.end());
  if (total != std::to_string(expected_sum(sent)))
    g.fail(r.label + ": the counter's total is " + total + " after "
           + std::to_string(sent) + " events, expected "
           + std::to_string(expected_sum(sent)));
}

/// Rows meshd.batch and meshd.forward: a send_window of opt.window batches
/// of opt.batch events (producer 1, producer_seq 1, 2, ...; 16-byte
/// payloads) to a fresh counter on B, from a mesh::client on B (direct) or
/// on A with follow_moved = false (A forwards every batch to B).
void run_meshd_batch(bench_context& ctx, row& r, bool through_a) {
  mesh_client_system cs;
  auto& g = the_pair(ctx, *cs.sys);
  auto& entry = g[through_a ? 0 : 1];
  auto c = g.connect(*cs.sys, entry.address, !through_a);
  auto id = deploy_counter(g, c, g[1], r);
  uint64_t applied = 0, other = 0;
  mesh::send_window::options wo;
  wo.window = ctx.opt.window;
  wo.on_batch = [&applied, &other](const mesh::control::send_request&,
                                   const std::vector<mesh::delivery>& ds) {
    for (auto& d : ds)
      (d.state == mesh::delivery::status::applied ? applied : other) += 1;
  };
  mesh::send_window win{c, id, wo};
  const size_t batch = ctx.opt.batch;
  uint64_t seq = 0;
  // The producer's work is timed: a batch is built from the payloads for
  // every push, as a program feeding the mesh would.
  client_step step = [&ctx, &win, &seq, &g, &r, batch]() -> uint64_t {
    std::vector<mesh::inbound_event> events(batch);
    for (auto& ev : events) {
      ev.producer_id = producer_id;
      auto& p = ctx.pool[seq % pool_size];
      ev.producer_seq = ++seq;
      ev.payload.assign(p.begin(), p.end());
    }
    if (auto err = win.push(std::move(events)))
      g.fail(r.label + ": " + mesh::describe(err));
    return batch;
  };
  uint64_t sent = run_rate_row(ctx, r, 4 * ctx.opt.window * batch, step,
                               g.cpu());
  if (auto err = win.finish())
    g.fail(r.label + ": " + mesh::describe(err));
  if (applied != sent || other != 0)
    g.fail(r.label + ": " + std::to_string(applied) + " events applied and "
           + std::to_string(other) + " duplicate or rejected, of "
           + std::to_string(sent) + " sent");
  if (win.address() != entry.address)
    g.fail(r.label + ": the batches went to " + win.address() + ", not to "
           + entry.address);
  check_mesh_counter(g, c, id, sent, r);
  r.note = std::string{"mesh::send_window, batches of "}
           + fmt_num(static_cast<double>(batch)) + ", window "
           + std::to_string(ctx.opt.window)
           + (through_a ? ", client on A (follow_moved=false), A forwards "
                          "to B"
                        : ", client on B")
           + "; PSK + client key; WAL on, fsync every_n:1000 (default); "
             "server CPU = A + B";
}

void row_meshd_batch(bench_context& ctx, row& r) {
  run_meshd_batch(ctx, r, false);
}

void row_meshd_forward(bench_context& ctx, row& r) {
  run_meshd_batch(ctx, r, true);
}

/// Row meshd.latency: one event per request (mesh::client::send) to a fresh
/// counter on B, opt.rate per second from opt.callers threads, each with
/// its own mesh::client (one connection) to B and its own producer id.
void row_meshd_latency(bench_context& ctx, row& r) {
  mesh_client_system cs;
  auto& g = the_pair(ctx, *cs.sys);
  auto& b = g[1];
  auto ctl = g.connect(*cs.sys, b.address);
  auto id = deploy_counter(g, ctl, b, r);
  std::atomic<uint64_t> next_producer{100};
  latency_caller make_caller = [&ctx, &cs, &g, &b, &r, &next_producer,
                                id]() -> latency_request {
    auto c = std::make_shared<mesh::client>(g.connect(*cs.sys, b.address));
    uint64_t producer = next_producer.fetch_add(1);
    auto seq = std::make_shared<uint64_t>(0);
    return [&ctx, &g, &r, c, id, producer, seq](uint64_t i) {
      std::vector<mesh::inbound_event> one(1);
      auto& p = ctx.pool[i % pool_size];
      one[0].producer_id = producer;
      one[0].producer_seq = ++*seq;
      one[0].payload.assign(p.begin(), p.end());
      auto ds = c->send(id, std::move(one));
      if (!ds)
        g.fail(r.label + ": " + mesh::describe(ds.error()));
      if (ds->front().state != mesh::delivery::status::applied)
        g.fail(r.label + ": an event was not applied: " + ds->front().error);
    };
  };
  uint64_t sent = run_latency_row(ctx, r, make_caller, g.cpu());
  check_mesh_counter(g, ctl, id, sent, r);
  r.note += "mesh::client::send of 1 event, " + std::to_string(ctx.opt.callers)
            + " callers (a mesh::client each) on B; WAL on (default); "
              "server CPU = A + B";
}

/// Rows detect.kill and detect.stop: three fresh meshd processes (A, B, C
/// --join A); opt.trials times: wait until A and B list C up, send C the
/// signal, and poll `nodes` on A and on B (mesh::client, every 20 ms)
/// until one of them lists C down; then bring C back (SIGKILL: restart it
/// on its data directory, so with its key, and it rejoins with a higher
/// incarnation; SIGSTOP: SIGCONT) for the next trial.
void run_detect(bench_context& ctx, row& r, int sig) {
  constexpr double give_up = 10; // s: a trial slower than this failed
  constexpr auto poll = std::chrono::milliseconds(20);
  mesh_client_system cs;
  meshd_group g{ctx, sig == SIGKILL ? "kill" : "stop", 3};
  auto& victim = g[2];
  // Short deadlines: an observer's answer is what is timed.
  auto a = g.connect(*cs.sys, g[0].address, true, std::chrono::seconds(2));
  auto b = g.connect(*cs.sys, g[1].address, true, std::chrono::seconds(2));
  g.wait_all_up(a);
  g.wait_all_up(b);
  auto state_of =
    [&victim](mesh::client& viewer) -> std::optional<mesh::node_state> {
    auto members = viewer.nodes();
    if (members)
      for (auto& m : *members)
        if (m.node.id == victim.id)
          return m.state;
    return std::nullopt;
  };
  unsigned by_a = 0, by_b = 0;
  for (unsigned t = 0; t < ctx.opt.trials; ++t) {
    auto t_up = clock_type::now();
    while (state_of(a) != mesh::node_state::up
           || state_of(b) != mesh::node_state::up) {
      if (since(t_up) > 20)
        g.fail(r.label + ": C is not up again on A and B after 20 s");
      std::this_thread::sleep_for(poll);
    }
    auto t0 = clock_type::now();
    victim.proc.signal(sig);
    double ms = -1;
    for (auto next = t0; since(t0) < give_up; next += poll) {
      std::this_thread::sleep_until(next);
      if (state_of(a) == mesh::node_state::down) {
        ++by_a;
      } else if (state_of(b) == mesh::node_state::down) {
        ++by_b;
      } else {
        continue;
      }
      ms = since(t0) * 1000;
      break;
    }
    r.detect_ms.push_back(ms);
    if (sig == SIGKILL) {
      victim.proc.wait(5.0);
      if (t + 1 < ctx.opt.trials)
        start_node(ctx, victim, g.psk);
    } else {
      victim.proc.signal(SIGCONT);
    }
  }
  r.events = r.detect_ms.size();
  r.note = std::string{sig == SIGKILL ? "SIGKILL" : "SIGSTOP"}
           + " to C of A, B, C (fresh processes, default timers: heartbeat "
             "500 ms, suspect 1 s, failure 2 s); time until A or B lists C "
             "down (first seen by A "
           + std::to_string(by_a) + "x, by B " + std::to_string(by_b) + "x); "
           + (sig == SIGKILL ? "C restarted between trials"
                             : "SIGCONT between trials");
}

void row_detect_kill(bench_context& ctx, row& r) {
  run_detect(ctx, r, SIGKILL);
}

void row_detect_stop(bench_context& ctx, row& r) {
  run_detect(ctx, r, SIGSTOP);
}

/// The rows, in table order. A row's function runs only if its label
/// passes --filter and the time box leaves room for it.
std::vector<row> make_rows(const options& o) {
  std::vector<row> rows;
  auto add = [&rows](std::string id, std::string label, row_style style,
                     row_fn fn) -> row& {
    row r;
    r.id = std::move(id);
    r.label = std::move(label);
    r.style = style;
    r.run = std::move(fn);
    rows.push_back(std::move(r));
    return rows.back();
  };
  auto shape = "batch" + std::to_string(o.batch) + " x window "
               + std::to_string(o.window);
  add("raw.single", "raw CAF remote actor, one message per event",
      row_style::rate, row_raw_single);
  add("raw.batch", "raw CAF remote actor, " + shape, row_style::rate,
      row_raw_batch);
  add("link.batch", "raw counter behind the link layer, " + shape,
      row_style::rate, row_link_batch);
  add("erlang.cast", "Erlang distributed gen_server:cast", row_style::rate,
      row_erlang_cast)
    .extra_seconds
    = 10;
  add("raw.latency",
      "raw CAF remote actor, request per event at " + fmt_num(o.rate) + "/s",
      row_style::latency, row_raw_latency);
  // The meshd pair's rows run back to back: the pair stays up between them.
  auto& mb = add("meshd.batch", "meshd end to end (client on B), " + shape,
                 row_style::rate, row_meshd_batch);
  mb.uses_pair = true;
  mb.extra_seconds = 10;
  auto& mf = add("meshd.forward",
                 "meshd through a forwarding node (client on A), " + shape,
                 row_style::rate, row_meshd_forward);
  mf.uses_pair = true;
  mf.extra_seconds = 10;
  auto& ml = add("meshd.latency",
                 "meshd, request per event at " + fmt_num(o.rate) + "/s",
                 row_style::latency, row_meshd_latency);
  ml.uses_pair = true;
  ml.extra_seconds = 10;
  // Trials of about 2 s of detection and 1-2 s of recovery, plus three
  // process starts; --seconds does not apply.
  double detect_need = 8 + 5.0 * o.trials - o.seconds;
  add("detect.kill", "meshd failure detection, SIGKILL", row_style::detect,
      row_detect_kill)
    .extra_seconds
    = detect_need;
  add("detect.stop", "meshd failure detection, SIGSTOP", row_style::detect,
      row_detect_stop)
    .extra_seconds
    = detect_need;
  return rows;
}

// -- targets ------------------------------------------------------------------
//
// The targets, each checked against the row ids it names; a target
// whose rows did not run prints n/a.

struct target {
  std::string what;
  /// PASS/FAIL and the numbers, or nullopt when its rows did not run.
  std::function<std::optional<std::pair<bool, std::string>>(
    const std::vector<row>&)>
    check;
};

const row* find_row(const std::vector<row>& rows, const std::string& id) {
  for (auto& r : rows)
    if (r.id == id && r.ran)
      return &r;
  return nullptr;
}

/// `id`'s events/s >= `min_rate`.
target rate_at_least(std::string what, std::string id, double min_rate) {
  return {std::move(what),
          [id, min_rate](const std::vector<row>& rows)
            -> std::optional<std::pair<bool, std::string>> {
            auto r = find_row(rows, id);
            if (!r)
              return std::nullopt;
            return std::make_pair(r->median_rate >= min_rate,
                                  fmt_num(r->median_rate) + " events/s");
          }};
}

/// `id`'s events/s >= `share` of `base_id`'s.
target share_of(std::string what, std::string id, std::string base_id,
                double share) {
  return {std::move(what),
          [id, base_id, share](const std::vector<row>& rows)
            -> std::optional<std::pair<bool, std::string>> {
            auto r = find_row(rows, id);
            auto b = find_row(rows, base_id);
            if (!r || !b || b->median_rate <= 0)
              return std::nullopt;
            double got = r->median_rate / b->median_rate;
            return std::make_pair(got >= share,
                                  fmt_f("%.0f%%", 100 * got) + " ("
                                    + fmt_num(r->median_rate) + " of "
                                    + fmt_num(b->median_rate) + " events/s)");
          }};
}

/// `id`'s p99 below `max_us`, at the full request rate.
target p99_below(std::string what, std::string id, double max_us) {
  return {std::move(what),
          [id, max_us](const std::vector<row>& rows)
            -> std::optional<std::pair<bool, std::string>> {
            auto r = find_row(rows, id);
            if (!r)
              return std::nullopt;
            return std::make_pair(r->p99 < max_us,
                                  fmt_f("p99 %.0f us", r->p99) + " at "
                                    + fmt_num(r->median_rate) + " req/s");
          }};
}

/// Every trial of `id` saw the node down within `max_ms`.
target detected_within(std::string what, std::string id, double max_ms) {
  return {std::move(what),
          [id, max_ms](const std::vector<row>& rows)
            -> std::optional<std::pair<bool, std::string>> {
            auto r = find_row(rows, id);
            if (!r || r->detect_ms.empty())
              return std::nullopt;
            bool ok = true;
            double worst = 0;
            for (double ms : r->detect_ms) {
              ok = ok && ms >= 0 && ms <= max_ms;
              worst = ms < 0 ? ms : std::max(worst, ms);
            }
            return std::make_pair(ok,
                                  worst < 0
                                    ? std::string{"a trial never saw it down"}
                                    : fmt_f("slowest of %.0f trials",
                                            static_cast<double>(
                                              r->detect_ms.size()))
                                        + fmt_f(": %.0f ms", worst));
          }};
}

/// The targets, by the ids of the rows they judge.
std::vector<target> make_targets() {
  return {
    rate_at_least("meshd end to end (meshd.batch) >= 1,000,000 events/s",
                  "meshd.batch", 1e6),
    share_of("link layer (link.batch) >= 70% of the raw ceiling (raw.batch)",
             "link.batch", "raw.batch", 0.70),
    p99_below("meshd request latency (meshd.latency) p99 < 2 ms",
              "meshd.latency", 2000),
    detected_within("SIGKILLed node down within 3 s (detect.kill)",
                    "detect.kill", 3000),
    detected_within("SIGSTOPped node down within 3 s (detect.stop)",
                    "detect.stop", 3000),
  };
}

// -- output -------------------------------------------------------------------

std::string per_event_us(double cpu, uint64_t events) {
  return cpu >= 0 && events ? fmt_f("%.3f", cpu * 1e6 / events) : "n/a";
}

void print_tables(const bench_context& ctx, const std::vector<row>& rows,
                  const std::string& load_before, double total) {
  const auto& o = ctx.opt;
  std::printf("\nmesh_bench: client and server in two processes over TCP on "
              "127.0.0.1; CAF 0.17 with meshd's scheduler settings "
              "(mesh::apply_scheduler_defaults) on both sides; %.2f s per row "
              "in %u "
              "trials; %ld CPUs; total %.1f s\n"
              "load average before: %s; after: %s\n\n",
              o.seconds, o.trials, ::sysconf(_SC_NPROCESSORS_ONLN), total,
              load_before.c_str(), loadavg().c_str());
  const row* ceiling = find_row(rows, "raw.batch");
  std::printf("| row | events | events/s | us/event | client CPU us/event | "
              "server CPU us/event | vs ceiling | notes |\n");
  std::printf("|---|--:|--:|--:|--:|--:|--:|---|\n");
  for (auto& r : rows) {
    if (r.style != row_style::rate || r.skipped == "filtered out")
      continue;
    if (!r.ran) {
      std::printf("| %s | - | - | - | - | - | - | %s |\n", r.label.c_str(),
                  r.skipped.c_str());
      continue;
    }
    std::string vs = ceiling && ceiling->median_rate > 0
                       ? fmt_f("%.0f%%",
                               100 * r.median_rate / ceiling->median_rate)
                       : "n/a";
    std::printf("| %s | %s | %s | %s | %s | %s | %s | %s |\n", r.label.c_str(),
                fmt_num(static_cast<double>(r.events)).c_str(),
                fmt_num(r.median_rate).c_str(),
                fmt_f("%.3f", 1e6 / r.median_rate).c_str(),
                per_event_us(r.client_cpu, r.events).c_str(),
                per_event_us(r.server_cpu, r.events).c_str(), vs.c_str(),
                r.note.c_str());
  }
  std::printf(
    "\nevents/s = median of the per-trial rates; events = all trials; "
    "us/event = 1e6 / events/s (wall). CPU us/event = CPU time (all "
    "threads, user+sys) of the client process and of the server process "
    "over the timed trials / events (/proc, 10 ms ticks); n/a for Erlang. "
    "vs ceiling = events/s as a percentage of `%s`. Payloads: 16 bytes "
    "(\"1\"..\"64\" right-aligned, cycled), added as examples/counter does; "
    "every row checks the counter's final count and total.\n",
    ceiling ? ceiling->label.c_str() : "raw CAF remote actor, batch");

  bool any_latency = false;
  for (auto& r : rows)
    any_latency = any_latency
                  || (r.style == row_style::latency
                      && r.skipped != "filtered out");
  if (any_latency) {
    std::printf("\n| row | requests | achieved req/s | p50 us | p99 us | "
                "p999 us | max us | client CPU us/req | server CPU us/req | "
                "notes |\n");
    std::printf("|---|--:|--:|--:|--:|--:|--:|--:|--:|---|\n");
    for (auto& r : rows) {
      if (r.style != row_style::latency || r.skipped == "filtered out")
        continue;
      if (!r.ran) {
        std::printf("| %s | - | - | - | - | - | - | - | - | %s |\n",
                    r.label.c_str(), r.skipped.c_str());
        continue;
      }
      std::
        printf("| %s | %s | %s | %.0f | %.0f | %.0f | %.0f | %s | %s | %s |\n",
               r.label.c_str(), fmt_num(static_cast<double>(r.events)).c_str(),
               fmt_num(r.median_rate).c_str(), r.p50, r.p99, r.p999, r.max,
               per_event_us(r.client_cpu, r.events).c_str(),
               per_event_us(r.server_cpu, r.events).c_str(), r.note.c_str());
    }
    std::printf(
      "\nOpen loop: request i is due at t0 + i/rate and goes out from one "
      "of %u caller threads (so at most %u in flight); latency = answer "
      "time - due time, so when every caller is busy the wait for a free "
      "one counts. Achieved req/s below the rate means the callers could "
      "not keep the pace. p999 of N requests is the N/1000-th worst.\n",
      o.callers, o.callers);
  }

  bool any_detect = false;
  for (auto& r : rows)
    any_detect = any_detect
                 || (r.style == row_style::detect
                     && r.skipped != "filtered out");
  if (any_detect) {
    std::printf("\n| row | trials | min ms | median ms | max ms | every "
                "trial ms | notes |\n");
    std::printf("|---|--:|--:|--:|--:|---|---|\n");
    for (auto& r : rows) {
      if (r.style != row_style::detect || r.skipped == "filtered out")
        continue;
      if (!r.ran || r.detect_ms.empty()) {
        std::printf("| %s | - | - | - | - | - | %s |\n", r.label.c_str(),
                    r.skipped.c_str());
        continue;
      }
      // A trial that never saw the node down counts as the slowest.
      std::vector<double> v;
      std::string each;
      for (double ms : r.detect_ms) {
        v.push_back(ms < 0 ? 1e12 : ms);
        each += (each.empty() ? "" : ", ")
                + (ms < 0 ? std::string{"never"} : fmt_f("%.0f", ms));
      }
      std::sort(v.begin(), v.end());
      auto show = [](double ms) {
        return ms >= 1e12 ? std::string{"never"} : fmt_f("%.0f", ms);
      };
      std::printf("| %s | %zu | %s | %s | %s | %s | %s |\n", r.label.c_str(),
                  v.size(), show(v.front()).c_str(), show(median_of(v)).c_str(),
                  show(v.back()).c_str(), each.c_str(), r.note.c_str());
    }
    std::printf("\nms = from the signal to the first `nodes` answer (of A "
                "or B, polled every 20 ms) listing the node down; \"never\" "
                "= not within 10 s.\n");
  }

  auto targets = make_targets();
  if (!targets.empty()) {
    std::printf("\nTargets:\n");
    for (auto& t : targets) {
      auto v = t.check(rows);
      if (!v)
        std::printf("- n/a  %s: row not run\n", t.what.c_str());
      else
        std::printf("- %s %s: %s\n", v->first ? "PASS" : "FAIL", t.what.c_str(),
                    v->second.c_str());
    }
  }
}

std::atomic<bool> finished{false};

extern "C" void on_alarm(int) {
  if (finished.load())
    return;
  const char msg[] = "\nmesh_bench: time box exceeded, aborting\n";
  auto n = ::write(STDERR_FILENO, msg, sizeof msg - 1);
  (void)n;
  kill_live_groups();
  remove_scratch();
  ::_exit(3);
}

extern "C" void on_terminate(int sig) {
  kill_live_groups();
  remove_scratch();
  ::signal(sig, SIG_DFL);
  ::raise(sig);
}

std::string self_path() {
  char buf[4096];
  auto n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n <= 0)
    die(std::string{"readlink /proc/self/exe: "} + std::strerror(errno));
  return std::string(buf, static_cast<size_t>(n));
}

} // namespace

int run_main(int argc, char** argv);

int main(int argc, char** argv) {
  // An exception must not skip the cleanup of die(): the meshd processes
  // and the scratch directory.
  try {
    return run_main(argc, argv);
  } catch (const std::exception& e) {
    die(std::string{"unexpected exception: "} + e.what());
  }
}

int run_main(int argc, char** argv) {
  auto opt = parse_args(argc, argv);
  if (!opt.serve.empty())
    return serve_main(opt);

  bench_context ctx;
  ctx.opt = opt;
  ctx.clock.time_box = opt.time_box;
  ctx.self_exe = self_path();
  std::signal(SIGALRM, on_alarm);
  std::signal(SIGINT, on_terminate);
  std::signal(SIGTERM, on_terminate);
  std::signal(SIGPIPE, SIG_IGN);
  ::alarm(static_cast<unsigned>(opt.time_box + 5.5));

#ifndef NDEBUG
  std::fprintf(stderr,
               "mesh_bench: WARNING: assertions on (not a Release build)\n");
#endif

  auto rows = make_rows(opt);
  auto load_before = loadavg();
  std::fprintf(stderr, "mesh_bench: %.2f s per row in %u trials\n", opt.seconds,
               opt.trials);
  for (auto& r : rows) {
    if (!opt.filter.empty() && r.label.find(opt.filter) == std::string::npos) {
      r.skipped = "filtered out";
      continue;
    }
    // The meshd pair lives across consecutive rows that use it only.
    if (!r.uses_pair)
      ctx.pair.reset();
    if (ctx.clock.remaining() < opt.seconds + r.extra_seconds) {
      r.skipped = "not measured: time box reached";
      continue;
    }
    std::fprintf(stderr, "  running %-60s", r.label.c_str());
    std::fflush(stderr);
    r.run(ctx, r);
    r.ran = r.skipped.empty();
    if (!r.ran)
      std::fprintf(stderr, " %s\n", r.skipped.c_str());
    else if (r.style == row_style::latency)
      std::fprintf(stderr, " p99 %.0f us\n", r.p99);
    else if (r.style == row_style::detect)
      std::fprintf(stderr, " %zu trials\n", r.detect_ms.size());
    else
      std::fprintf(stderr, " %12.0f events/s\n", r.median_rate);
  }
  ctx.pair.reset();
  remove_scratch();
  double total = since(ctx.clock.start);
  finished = true;
  ::alarm(0);
  print_tables(ctx, rows, load_before, total);
  return 0;
}
