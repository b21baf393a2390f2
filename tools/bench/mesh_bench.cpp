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
// start_server() and child_process are what rows that run meshd processes
// (or kill and stop them) build on.

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
#include "mesh/control_codec.hpp"

#ifndef MESHD_MESH_BENCH_ERLANG_DIR
#  define MESHD_MESH_BENCH_ERLANG_DIR ""
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
  double seconds = 3;    // time budget per row
  unsigned trials = 3;   // the budget is split into this many timed runs
  uint64_t events = 0;   // 0: time only; else also stop a row after these
  size_t batch = 1000;   // events per batch frame
  size_t window = 8;     // batch frames in flight
  double rate = 10000;   // requests/s of the latency rows
  unsigned callers = 4;  // threads sending them (max in flight)
  double time_box = 110; // rows not started by then are skipped
  int erlang = -1;       // -1 = if erl is on PATH, 0 = off, 1 = on
  std::string erlang_script;
  std::string filter; // substring of the row label
  std::string serve;  // internal: run as the server of this kind
};

[[noreturn]] void die(const std::string& what);

void usage(FILE* out) {
  std::fprintf(
    out,
    "usage: mesh_bench [--seconds S] [--trials N] [--events N] [--batch N]\n"
    "                  [--window N] [--rate R] [--callers N]\n"
    "                  [--filter TEXT]\n"
    "                  [--erlang | --no-erlang] [--erlang-script P]\n"
    "                  [--time-box S]\n"
    "\n"
    "Events/s from a client process to a counter in another process over\n"
    "TCP on 127.0.0.1: a raw CAF remote actor with one message per event\n"
    "(the floor) and with batch frames in meshd's encoding (the ceiling),\n"
    "an Erlang distributed gen_server:cast counter when Erlang is\n"
    "installed, and the latency of paced single requests.\n"
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
    "                     (default 4)\n"
    "  --filter TEXT      run only rows whose label contains TEXT\n"
    "  --erlang           run the Erlang row (default when erl is on PATH)\n"
    "  --no-erlang        skip it\n"
    "  --erlang-script P  the runner (default %s/run_dist.sh)\n"
    "  --time-box S       stop starting rows after S seconds (default 110);\n"
    "                     the process aborts at S + 5 s whatever it is doing\n"
    "  --help             this text\n"
    "  --serve KIND       internal: run as a row's server process (kinds:\n"
    "                     raw-counter)\n"
    "\n"
    "Progress goes to stderr, the tables to stdout.\n",
    MESHD_MESH_BENCH_ERLANG_DIR);
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
    } else if (a == "--serve") {
      o.serve = value();
    } else {
      usage(stderr);
      die("unknown argument '" + a + "'");
    }
  }
  if (o.erlang_script.empty() && *MESHD_MESH_BENCH_ERLANG_DIR)
    o.erlang_script = std::string{MESHD_MESH_BENCH_ERLANG_DIR} + "/run_dist.sh";
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

[[noreturn]] void die(const std::string& what) {
  std::fprintf(stderr, "\nmesh_bench: %s\n", what.c_str());
  kill_live_groups();
  std::exit(1);
}

/// A process this bench started, with its stdin and stdout on pipes and its
/// stderr shared with the bench. Destroying it closes its stdin, waits up
/// to two seconds for it to exit, then kills its process group.
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

  /// Starts argv[0] (a path, or a name looked up on PATH).
  static child_process start(const std::vector<std::string>& argv) {
    int in[2], out[2];
    if (::pipe2(in, O_CLOEXEC) != 0 || ::pipe2(out, O_CLOEXEC) != 0)
      die(std::string{"pipe: "} + std::strerror(errno));
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

/// Full path of `name` on PATH, or empty.
std::string which(const std::string& name) {
  const char* path = std::getenv("PATH");
  if (!path)
    return {};
  std::string_view rest = path;
  while (!rest.empty()) {
    auto colon = rest.find(':');
    auto dir = rest.substr(0, colon);
    rest = colon == std::string_view::npos ? std::string_view{}
                                           : rest.substr(colon + 1);
    std::string cand = std::string{dir.empty() ? "." : dir} + "/" + name;
    if (::access(cand.c_str(), X_OK) == 0)
      return cand;
  }
  return {};
}

// -- the counter --------------------------------------------------------------
//
// Every row does the same addition as the examples/counter daemon (and as
// runtime_bench's raw actors): a payload is a signed decimal integer as text,
// ASCII whitespace around it ignored, any other payload counts as 1; it is
// added to the total; overflow rejects the event. Payloads are 16 bytes:
// "1" .. "64" right-aligned in spaces, cycled, so the check at the end of a
// row knows the total to expect.

/// Adds `payload` to `total`; false (total unchanged) on overflow.
bool add_payload(bytes_view payload, int64_t& total) {
  int64_t delta = 1;
  if (mesh::examples::parse_int64(payload, delta)
      == mesh::examples::parse_status::out_of_range)
    return false;
  return !__builtin_add_overflow(total, delta, &total);
}

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

/// What `--serve KIND` runs: spawns the actor to publish.
struct server_kind {
  const char* name;
  const char* what;
  caf::actor (*spawn)(caf::actor_system&);
};

const server_kind server_kinds[] = {
  {"raw-counter",
   "the raw counter actor (mb_add / mb_ping / mb_batch / mb_count)",
   [](caf::actor_system& sys) {
     return sys.spawn(raw_counter);
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
  auto a = kind->spawn(sys);
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
  std::string note;
};

struct bench_clock {
  clock_type::time_point start = clock_type::now();
  double time_box = 110;
  double remaining() const {
    return time_box - since(start);
  }
};

struct bench_context {
  options opt;
  bench_clock clock;
  std::string self_exe;
  std::vector<wire_bytes> pool = make_pool();
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
uint64_t run_rate_row(bench_context& ctx, row& r, uint64_t warmup_events,
                      const client_step& step,
                      const child_process* server = nullptr) {
  uint64_t total = 0;
  while (total < warmup_events)
    total += step();
  const auto& o = ctx.opt;
  std::vector<double> rates;
  double cpu0 = process_cpu();
  double srv0 = server ? server->cpu_seconds() : -1;
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
    double srv1 = server->cpu_seconds();
    r.server_cpu = srv1 >= 0 ? srv1 - srv0 : -1;
  }
  r.median_rate = median_of(rates);
  return total;
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
                         const child_process* server = nullptr) {
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
  double srv0 = server ? server->cpu_seconds() : -1;
  t0 = clock_type::now() + std::chrono::milliseconds(1);
  go = true;
  for (auto& t : threads)
    t.join();
  r.seconds = since(t0);
  r.client_cpu = process_cpu() - cpu0;
  if (server && srv0 >= 0) {
    double srv1 = server->cpu_seconds();
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

/// A server process (`--serve KIND`) and the port it published on.
struct server_process {
  child_process proc;
  uint16_t port = 0;
};

server_process start_server(bench_context& ctx, const std::string& kind) {
  server_process s;
  s.proc = child_process::start({ctx.self_exe, "--serve", kind});
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

/// The rows, in table order. A row's function runs only if its label
/// passes --filter and the time box leaves room for it.
std::vector<row> make_rows(const options& o) {
  std::vector<row> rows;
  auto add = [&rows](std::string id, std::string label, row_style style,
                     row_fn fn) {
    row r;
    r.id = std::move(id);
    r.label = std::move(label);
    r.style = style;
    r.run = std::move(fn);
    rows.push_back(std::move(r));
  };
  add("raw.single", "raw CAF remote actor, one message per event",
      row_style::rate, row_raw_single);
  add("raw.batch",
      "raw CAF remote actor, batch" + std::to_string(o.batch) + " x window "
        + std::to_string(o.window),
      row_style::rate, row_raw_batch);
  add("erlang.cast", "Erlang distributed gen_server:cast", row_style::rate,
      row_erlang_cast);
  add("raw.latency",
      "raw CAF remote actor, request per event at " + fmt_num(o.rate) + "/s",
      row_style::latency, row_raw_latency);
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

/// The targets, by the ids of the rows they judge (the meshd and
/// link-layer rows use the ids named here).
std::vector<target> make_targets() {
  return {
    rate_at_least("meshd end to end (meshd.batch) >= 1,000,000 events/s",
                  "meshd.batch", 1e6),
    share_of("link layer (link.batch) >= 70% of the raw ceiling (raw.batch)",
             "link.batch", "raw.batch", 0.70),
    p99_below("meshd request latency (meshd.latency) p99 < 2 ms",
              "meshd.latency", 2000),
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
  ::_exit(3);
}

extern "C" void on_terminate(int sig) {
  kill_live_groups();
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

int main(int argc, char** argv) {
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
    if (ctx.clock.remaining() < opt.seconds + 2) {
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
    else
      std::fprintf(stderr, " %12.0f events/s\n", r.median_rate);
  }
  double total = since(ctx.clock.start);
  finished = true;
  ::alarm(0);
  print_tables(ctx, rows, load_before, total);
  return 0;
}
