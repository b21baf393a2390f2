#pragma once

// Child processes for integration tests: meshd nodes and meshctl runs, each
// started with fork/exec, stdout and stderr captured in files. Every process
// a test starts is stopped when its owner goes out of scope (SIGTERM, then
// SIGKILL after a grace period), so a failing REQUIRE never leaks one.

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

namespace mesh::test {

using namespace std::chrono_literals;

inline std::string read_file(const std::string& path) {
  std::ifstream in{path, std::ios::binary};
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

inline std::string meshd_binary() {
  return std::string{MESHD_BINARY_DIR} + "/tools/meshd/meshd";
}

inline std::string meshctl_binary() {
  return std::string{MESHD_BINARY_DIR} + "/tools/meshctl/meshctl";
}

/// A started child process. Owns it: the destructor stops it.
class child {
public:
  /// Starts `argv` with stdout and stderr redirected to the given files
  /// (truncated).
  child(const std::vector<std::string>& argv, const std::string& out_path,
        const std::string& err_path) {
    // Everything the child needs is prepared before fork: between fork and
    // exec only async-signal-safe calls are allowed.
    std::vector<char*> args;
    for (const auto& a : argv)
      args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    pid_ = ::fork();
    if (pid_ < 0)
      throw std::runtime_error("fork failed");
    if (pid_ == 0) {
      int out = ::open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      int err = ::open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      if (out < 0 || err < 0)
        ::_exit(126);
      ::dup2(out, STDOUT_FILENO);
      ::dup2(err, STDERR_FILENO);
      int null_in = ::open("/dev/null", O_RDONLY);
      if (null_in >= 0)
        ::dup2(null_in, STDIN_FILENO);
      ::execv(args[0], args.data());
      ::_exit(127);
    }
  }

  child(const child&) = delete;
  child& operator=(const child&) = delete;

  ~child() {
    stop(15s);
  }

  pid_t pid() const {
    return pid_;
  }

  /// True while the process has not been reaped.
  bool running() {
    poll();
    return !reaped_;
  }

  /// Waits up to `timeout` for the process to exit. Returns its exit code
  /// (128 + signal when killed by one), or -1 when it still runs.
  int wait_for(std::chrono::milliseconds timeout) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!poll()) {
      if (std::chrono::steady_clock::now() >= deadline)
        return -1;
      std::this_thread::sleep_for(10ms);
    }
    return code_;
  }

  /// SIGTERM, then SIGKILL when it has not exited within `grace`. Returns
  /// the exit code.
  int stop(std::chrono::milliseconds grace) {
    if (!running())
      return code_;
    ::kill(pid_, SIGTERM);
    if (wait_for(grace) >= 0)
      return code_;
    kill9();
    return code_;
  }

  /// SIGKILL and reap.
  void kill9() {
    if (!running())
      return;
    ::kill(pid_, SIGKILL);
    wait_for(60s);
  }

  void signal(int sig) {
    if (running())
      ::kill(pid_, sig);
  }

private:
  // Reaps the child if it exited; true once reaped.
  bool poll() {
    if (reaped_ || pid_ <= 0)
      return true;
    int status = 0;
    auto r = ::waitpid(pid_, &status, WNOHANG);
    if (r == pid_) {
      reaped_ = true;
      code_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    }
    return reaped_;
  }

  pid_t pid_ = -1;
  bool reaped_ = false;
  int code_ = -1;
};

/// What a finished command left behind.
struct run_result {
  int code = -1;
  std::string out;
  std::string err;

  /// Non-empty lines of stderr.
  size_t err_lines() const {
    size_t n = 0;
    std::istringstream in{err};
    for (std::string line; std::getline(in, line);)
      if (!line.empty())
        ++n;
    return n;
  }
};

/// Runs `argv` to completion (killed after `timeout`), capturing output in
/// files under `scratch_dir`.
inline run_result run(const std::vector<std::string>& argv,
                      const std::string& scratch_dir,
                      std::chrono::milliseconds timeout = 120s) {
  static int counter = 0;
  auto base = scratch_dir + "/run-" + std::to_string(++counter);
  run_result res;
  {
    child c{argv, base + ".out", base + ".err"};
    res.code = c.wait_for(timeout);
    if (res.code < 0)
      c.kill9();
  }
  res.out = read_file(base + ".out");
  res.err = read_file(base + ".err");
  return res;
}

} // namespace mesh::test
