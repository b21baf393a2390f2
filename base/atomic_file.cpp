#include "base/atomic_file.hpp"

#include <atomic>
#include <cstring>
#include <set>

#include <unistd.h>

#include "base/errc.hpp"
#include "base/file_system.hpp"

namespace mesh {

namespace {

// Enough to skip the few stale temp files crashed runs can leave behind.
constexpr int max_temp_attempts = 64;

// A name no concurrent caller in this process picks, and no other live process
// in this pid namespace: pid plus a per-process counter. It can still clash
// with a stale temp file of a crashed process whose pid was reused (a daemon
// in a container usually gets the same pid on every start) or with a process
// in another pid namespace, so write_temp retries on already_exists.
std::string unique_temp_name(const std::string& path) {
  static std::atomic<uint64_t> counter{0};
  auto n = counter.fetch_add(1, std::memory_order_relaxed);
  return path + ".tmp." + std::to_string(::getpid()) + "." + std::to_string(n);
}

// Writes `data` to a fresh, fsynced temp file beside `path`; returns its name.
caf::expected<std::string> write_temp(file_system& fs, const std::string& path,
                                      bytes_view data, unsigned mode,
                                      file_sync when = file_sync::now) {
  caf::error err;
  for (int i = 0; i < max_temp_attempts; ++i) {
    auto tmp = unique_temp_name(path);
    err = fs.write_new_file(tmp, data, mode, when);
    if (!err)
      return tmp;
    if (!is(err, errc::already_exists)) {
      // A write that failed half-way may have left the temp file behind.
      (void)fs.remove(tmp);
      break;
    }
  }
  return err;
}

} // namespace

std::string errno_text(const char* op, const std::string& path, int err) {
  return std::string{op} + " " + path + ": " + std::strerror(err);
}

std::string parent_dir(const std::string& path) {
  auto pos = path.find_last_of('/');
  if (pos == std::string::npos)
    return ".";
  if (pos == 0)
    return "/";
  return path.substr(0, pos);
}

caf::error write_file_atomic(file_system& fs, const std::string& path,
                             bytes_view data, unsigned mode) {
  auto tmp = write_temp(fs, path, data, mode);
  if (!tmp)
    return tmp.error();
  if (auto err = fs.rename(*tmp, path)) {
    (void)fs.remove(*tmp);
    return err;
  }
  return fs.sync_dir(parent_dir(path));
}

std::vector<caf::error>
write_files_atomic(file_system& fs,
                   const std::vector<std::pair<std::string, bytes_view>>& files,
                   unsigned mode) {
  std::vector<caf::error> errs(files.size());
  std::vector<std::string> temps(files.size());
  // Any temp file names the file system to flush.
  std::string flush_at;
  for (size_t i = 0; i < files.size(); ++i) {
    auto tmp = write_temp(fs, files[i].first, files[i].second, mode,
                          file_sync::later);
    if (!tmp) {
      errs[i] = std::move(tmp.error());
      continue;
    }
    temps[i] = std::move(*tmp);
    if (flush_at.empty())
      flush_at = temps[i];
  }
  if (flush_at.empty())
    return errs;
  // One flush makes every temp file durable before any is renamed, so a
  // crash can never leave a target that names unwritten data.
  if (auto err = fs.sync_all(flush_at)) {
    for (size_t i = 0; i < files.size(); ++i)
      if (!temps[i].empty()) {
        (void)fs.remove(temps[i]);
        errs[i] = err;
      }
    return errs;
  }
  std::set<std::string> dirs;
  for (size_t i = 0; i < files.size(); ++i) {
    if (temps[i].empty())
      continue;
    if (auto err = fs.rename(temps[i], files[i].first)) {
      (void)fs.remove(temps[i]);
      errs[i] = std::move(err);
      continue;
    }
    dirs.insert(parent_dir(files[i].first));
  }
  for (auto& d : dirs) {
    auto err = fs.sync_dir(d);
    if (!err)
      continue;
    for (size_t i = 0; i < files.size(); ++i)
      if (!errs[i] && !temps[i].empty() && parent_dir(files[i].first) == d)
        errs[i] = err;
  }
  return errs;
}

caf::expected<bool> create_file_atomic(file_system& fs, const std::string& path,
                                       bytes_view data, unsigned mode) {
  auto tmp = write_temp(fs, path, data, mode);
  if (!tmp)
    return tmp.error();
  // link() fails with already_exists when the target exists, which makes
  // "first writer wins" atomic without ever exposing a partially written
  // target.
  bool created = true;
  if (auto err = fs.link(*tmp, path)) {
    if (!is(err, errc::already_exists)) {
      (void)fs.remove(*tmp);
      return err;
    }
    created = false;
  }
  (void)fs.remove(*tmp);
  if (created)
    if (auto err = fs.sync_dir(parent_dir(path)))
      return err;
  return created;
}

caf::expected<bytes> read_small_file(file_system& fs, const std::string& path,
                                     size_t max_size) {
  return fs.read_file(path, max_size);
}

} // namespace mesh
