#pragma once

// A file_system for tests that fails (or holds) appends whose bytes contain a
// marker: a batch of the event log that carries an event with the marker in
// its payload cannot be written, while every other batch can, so a test can
// pick exactly which batch of a group commit fails.

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <mutex>
#include <string>

#include "base/errc.hpp"
#include "base/file_system.hpp"

namespace mesh::test {

class marker_fs final : public forwarding_file_system {
public:
  explicit marker_fs(std::string marker, file_system* base = real_file_system())
    : forwarding_file_system(base), marker_(std::move(marker)) {}

  /// While armed, appends holding the marker fail.
  std::atomic<bool> armed{true};
  /// Appends that failed so far.
  std::atomic<int> failures{0};

  /// Makes an append holding the marker wait until release() first.
  void hold() {
    std::lock_guard<std::mutex> guard{mtx_};
    holding_ = true;
  }

  /// Waits until an append holding the marker is waiting in hold().
  void wait_until_held() {
    std::unique_lock<std::mutex> guard{mtx_};
    cv_.wait(guard, [this] {
      return waiting_;
    });
  }

  void release() {
    std::lock_guard<std::mutex> guard{mtx_};
    holding_ = false;
    cv_.notify_all();
  }

  /// An fsync fails while set.
  std::atomic<bool> fail_sync{false};

  caf::expected<std::unique_ptr<file_handle>>
  open_append(const std::string& path) override {
    auto f = base_->open_append(path);
    if (!f)
      return f.error();
    return std::unique_ptr<file_handle>{new handle(this, std::move(*f))};
  }

private:
  bool marked(bytes_view data) const {
    auto begin = reinterpret_cast<const char*>(data.data);
    return std::search(begin, begin + data.size, marker_.begin(), marker_.end())
           != begin + data.size;
  }

  caf::error check(bytes_view data, const std::string& path) {
    if (!armed || !marked(data))
      return {};
    std::unique_lock<std::mutex> guard{mtx_};
    if (holding_) {
      waiting_ = true;
      cv_.notify_all();
      cv_.wait(guard, [this] {
        return !holding_;
      });
      waiting_ = false;
    }
    ++failures;
    return make_error(errc::io_error,
                      "injected failure of a marked write to " + path);
  }

  class handle final : public forwarding_file_handle {
  public:
    handle(marker_fs* fs, std::unique_ptr<file_handle> inner)
      : forwarding_file_handle(std::move(inner)), fs_(fs) {}
    caf::error append(bytes_view data) override {
      if (auto err = fs_->check(data, inner_->path()))
        return err;
      return inner_->append(data);
    }
    caf::error sync() override {
      if (fs_->fail_sync)
        return make_error(errc::io_error, "injected fsync failure");
      return inner_->sync();
    }

  private:
    marker_fs* fs_;
  };

  std::string marker_;
  std::mutex mtx_;
  std::condition_variable cv_;
  bool holding_ = false;
  bool waiting_ = false;
};

} // namespace mesh::test
