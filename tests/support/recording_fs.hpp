#pragma once

// A file_system wrapper for tests that records the order of writes and
// fsyncs ("write:idx", "sync:dat", ...) and can slow fsyncs down.

#include <chrono>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "base/file_system.hpp"

namespace mesh::test {

class recording_fs final : public forwarding_file_system {
public:
  explicit recording_fs(file_system* base) : forwarding_file_system(base) {}

  std::chrono::milliseconds sync_delay{0};

  std::vector<std::string> events() const {
    std::lock_guard<std::mutex> guard{mtx_};
    return events_;
  }

  void clear() {
    std::lock_guard<std::mutex> guard{mtx_};
    events_.clear();
  }

  size_t count(const std::string& prefix) const {
    std::lock_guard<std::mutex> guard{mtx_};
    size_t n = 0;
    for (auto& e : events_)
      if (e.rfind(prefix, 0) == 0)
        ++n;
    return n;
  }

  void record(const std::string& what, const std::string& path) {
    auto pos = path.find_last_of('/');
    std::lock_guard<std::mutex> guard{mtx_};
    events_.push_back(
      what + ":" + (pos == std::string::npos ? path : path.substr(pos + 1)));
  }

  caf::expected<std::unique_ptr<file_handle>>
  open_append(const std::string& path) override {
    auto f = base_->open_append(path);
    if (!f)
      return f.error();
    return std::unique_ptr<file_handle>{new handle(this, std::move(*f))};
  }
  caf::error write_file(const std::string& path, bytes_view data) override {
    record("write_file", path);
    return base_->write_file(path, data);
  }
  caf::error truncate_file(const std::string& path, uint64_t len) override {
    record("truncate", path);
    return base_->truncate_file(path, len);
  }
  caf::error rename(const std::string& from, const std::string& to) override {
    record("rename", to);
    return base_->rename(from, to);
  }
  caf::error sync_dir(const std::string& path) override {
    record("sync_dir", path);
    return base_->sync_dir(path);
  }
  caf::error sync_all(const std::string& path) override {
    record("sync_all", path);
    return base_->sync_all(path);
  }
  caf::error write_new_file(const std::string& path, bytes_view data,
                            unsigned mode, file_sync when) override {
    record(when == file_sync::now ? "write_new_file+fsync" : "write_new_file",
           path);
    return base_->write_new_file(path, data, mode, when);
  }

private:
  class handle final : public forwarding_file_handle {
  public:
    handle(recording_fs* fs, std::unique_ptr<file_handle> inner)
      : forwarding_file_handle(std::move(inner)), fs_(fs) {}
    caf::error append(bytes_view data) override {
      fs_->record("write", inner_->path());
      return inner_->append(data);
    }
    caf::error sync() override {
      if (fs_->sync_delay.count() > 0)
        std::this_thread::sleep_for(fs_->sync_delay);
      fs_->record("sync", inner_->path());
      return inner_->sync();
    }
    caf::error truncate(uint64_t len) override {
      fs_->record("truncate", inner_->path());
      return inner_->truncate(len);
    }

  private:
    recording_fs* fs_;
  };

  mutable std::mutex mtx_;
  std::vector<std::string> events_;
};

} // namespace mesh::test
