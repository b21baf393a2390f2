#pragma once

// One meshd process on 127.0.0.1 for integration tests, driven with meshctl.
// The node is stopped when the object goes out of scope.
//
// Every node started in one scratch directory shares the mesh PSK
// scratch/mesh.psk (created on first use), and meshctl runs with it and
// with the client key scratch/client.key: the tests exercise the PSK path
// of the link layer, not the open PSK.

#include <catch2/catch.hpp>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "integration/process.hpp"

namespace mesh::test {

class meshd_node {
public:
  /// `scratch` holds logs and the ready file; `data_dir` the node's data.
  meshd_node(std::string scratch, std::string data_dir)
    : scratch_(std::move(scratch)), data_dir_(std::move(data_dir)) {
    ensure_psk_file(psk_file());
  }

  /// The mesh PSK every node and meshctl run of this scratch directory use.
  std::string psk_file() const {
    return scratch_ + "/mesh.psk";
  }

  /// meshctl's client key (created by meshctl on first use).
  std::string client_key() const {
    return scratch_ + "/client.key";
  }

  /// Starts meshd and waits until it listens. `listen` defaults to an
  /// ephemeral port; pass address() of an earlier run to reuse its port.
  void start(const std::string& listen = "127.0.0.1:0",
             const std::vector<std::string>& extra = {}) {
    ++starts_;
    auto ready = scratch_ + "/ready-" + std::to_string(starts_);
    log_ = scratch_ + "/meshd-" + std::to_string(starts_) + ".log";
    std::vector<std::string> argv{meshd_binary(), "--data-dir", data_dir_,
                                  "--listen",     listen,       "--ready-file",
                                  ready,          "--psk-file", psk_file()};
    argv.insert(argv.end(), extra.begin(), extra.end());
    proc_ = std::make_unique<child>(argv,
                                    scratch_ + "/meshd-"
                                      + std::to_string(starts_) + ".out",
                                    log_);
    auto deadline = std::chrono::steady_clock::now() + 60s;
    struct stat st {};
    while (::stat(ready.c_str(), &st) != 0) {
      if (!proc_->running())
        FAIL("meshd exited before it was ready:\n" << log());
      if (std::chrono::steady_clock::now() > deadline)
        FAIL("meshd not ready after 60 s:\n" << log());
      std::this_thread::sleep_for(10ms);
    }
    address_ = read_file(ready);
    while (!address_.empty() && address_.back() == '\n')
      address_.pop_back();
    REQUIRE(!address_.empty());
  }

  const std::string& address() const {
    return address_;
  }

  const std::string& data_dir() const {
    return data_dir_;
  }

  /// meshctl --node <address> args...
  run_result ctl(const std::vector<std::string>& args) const {
    std::vector<std::string> argv{meshctl_binary(), "--node",   address_,
                                  "--psk-file",     psk_file(), "--client-key",
                                  client_key()};
    argv.insert(argv.end(), args.begin(), args.end());
    return run(argv, scratch_);
  }

  /// ctl() that must succeed; returns stdout.
  std::string ok(const std::vector<std::string>& args) const {
    auto r = ctl(args);
    INFO("meshctl stderr: " << r.err);
    REQUIRE(r.code == 0);
    return r.out;
  }

  /// SIGTERM; returns the exit code (SIGKILL after `grace`).
  int terminate(std::chrono::milliseconds grace) {
    return proc_ ? proc_->stop(grace) : -1;
  }

  void kill9() {
    if (proc_)
      proc_->kill9();
  }

  /// Sends `sig` (SIGSTOP, SIGCONT, ...) to the running meshd. For SIGSTOP
  /// it returns once the process is stopped: kill() only queues the signal,
  /// and a thread running on another core may still answer a request.
  void signal(int sig) {
    if (!proc_)
      return;
    proc_->signal(sig);
    if (sig != SIGSTOP)
      return;
    auto stat = "/proc/" + std::to_string(proc_->pid()) + "/stat";
    auto deadline = std::chrono::steady_clock::now() + 5s;
    while (std::chrono::steady_clock::now() < deadline) {
      auto text = read_file(stat);
      auto close = text.rfind(')');
      if (close != std::string::npos && close + 2 < text.size()
          && text[close + 2] == 'T')
        return;
      std::this_thread::sleep_for(1ms);
    }
  }

  bool running() const {
    return proc_ && proc_->running();
  }

  /// What the current (or last) run logged.
  std::string log() const {
    return read_file(log_);
  }

private:
  // 64 random hex digits, mode 0600, unless the file exists.
  static void ensure_psk_file(const std::string& path) {
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL, 0600);
    if (fd < 0)
      return; // exists (or the node's start will say why not)
    std::random_device rd;
    std::string hex;
    for (int i = 0; i < 32; ++i) {
      char b[3];
      std::snprintf(b, sizeof(b), "%02x", rd() & 0xff);
      hex += b;
    }
    hex += "\n";
    auto n = ::write(fd, hex.data(), hex.size());
    ::close(fd);
    REQUIRE(n == static_cast<ssize_t>(hex.size()));
  }

  std::string scratch_;
  std::string data_dir_;
  std::string address_;
  std::string log_;
  int starts_ = 0;
  std::unique_ptr<child> proc_;
};

/// The first line of `text` (without the newline).
inline std::string first_line(const std::string& text) {
  return text.substr(0, text.find('\n'));
}

} // namespace mesh::test
