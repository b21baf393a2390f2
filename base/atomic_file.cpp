#include "base/atomic_file.hpp"

#include <atomic>
#include <cerrno>
#include <cstring>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/errc.hpp"

namespace mesh {

namespace {

errc errno_code(int err) {
  return err == ENOENT ? errc::not_found : errc::io_error;
}

// Enough to skip the few stale temp files crashed runs can leave behind.
constexpr int max_temp_attempts = 64;

// A name no concurrent caller in this process picks, and no other live process
// in this pid namespace: pid plus a per-process counter. It can still clash
// with a stale temp file of a crashed process whose pid was reused (a daemon
// in a container usually gets the same pid on every start) or with a process
// in another pid namespace, so write_temp retries on EEXIST.
std::string unique_temp_name(const std::string& path) {
  static std::atomic<uint64_t> counter{0};
  auto n = counter.fetch_add(1, std::memory_order_relaxed);
  return path + ".tmp." + std::to_string(::getpid()) + "." + std::to_string(n);
}

caf::error write_all(int fd, bytes_view data, const std::string& path) {
  size_t done = 0;
  while (done < data.size) {
    auto n = ::write(fd, data.data + done, data.size - done);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      return make_error(errc::io_error, errno_text("write", path, errno));
    }
    done += static_cast<size_t>(n);
  }
  return {};
}

// Writes `data` to a fresh temp file and fsyncs it. On error the temp file is
// removed. Returns the temp path through `tmp`.
caf::error write_temp(const std::string& path, bytes_view data, unsigned mode,
                      std::string& tmp) {
  int fd = -1;
  for (int i = 0; i < max_temp_attempts; ++i) {
    tmp = unique_temp_name(path);
    fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
    if (fd >= 0 || errno != EEXIST)
      break;
  }
  if (fd < 0)
    return make_error(errno_code(errno), errno_text("create", tmp, errno));
  // The umask may have narrowed `mode`; key files rely on the exact bits.
  caf::error err;
  if (::fchmod(fd, mode) != 0)
    err = make_error(errc::io_error, errno_text("chmod", tmp, errno));
  if (!err)
    err = write_all(fd, data, tmp);
  if (!err && ::fsync(fd) != 0)
    err = make_error(errc::io_error, errno_text("fsync", tmp, errno));
  ::close(fd);
  if (err)
    ::unlink(tmp.c_str());
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

caf::error fsync_directory(const std::string& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0)
    return make_error(errno_code(errno), errno_text("open", dir, errno));
  caf::error err;
  if (::fsync(fd) != 0)
    err = make_error(errc::io_error, errno_text("fsync", dir, errno));
  ::close(fd);
  return err;
}

caf::error write_file_atomic(const std::string& path, bytes_view data,
                             unsigned mode) {
  std::string tmp;
  if (auto err = write_temp(path, data, mode, tmp))
    return err;
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    auto err = make_error(errc::io_error, errno_text("rename", tmp, errno));
    ::unlink(tmp.c_str());
    return err;
  }
  return fsync_directory(parent_dir(path));
}

caf::expected<bool> create_file_atomic(const std::string& path, bytes_view data,
                                       unsigned mode) {
  std::string tmp;
  if (auto err = write_temp(path, data, mode, tmp))
    return err;
  // link() fails with EEXIST when the target exists, which makes "first
  // writer wins" atomic without ever exposing a partially written target.
  bool created = true;
  if (::link(tmp.c_str(), path.c_str()) != 0) {
    if (errno != EEXIST) {
      auto err = make_error(errc::io_error, errno_text("link", path, errno));
      ::unlink(tmp.c_str());
      return err;
    }
    created = false;
  }
  ::unlink(tmp.c_str());
  if (created)
    if (auto err = fsync_directory(parent_dir(path)))
      return err;
  return created;
}

caf::expected<bytes> read_small_file(const std::string& path, size_t max_size) {
  // O_NONBLOCK so a FIFO planted at `path` cannot hang the caller.
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0)
    return make_error(errno_code(errno), errno_text("open", path, errno));
  struct stat st;
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    return make_error(errc::invalid_argument, path + " is not a regular file");
  }
  bytes out;
  uint8_t buf[4096];
  for (;;) {
    auto n = ::read(fd, buf, sizeof(buf));
    if (n < 0) {
      if (errno == EINTR)
        continue;
      auto err = make_error(errc::io_error, errno_text("read", path, errno));
      ::close(fd);
      return err;
    }
    if (n == 0)
      break;
    out.insert(out.end(), buf, buf + n);
    if (out.size() > max_size) {
      ::close(fd);
      return make_error(errc::corrupt_data, path + ": larger than "
                                              + std::to_string(max_size)
                                              + " bytes");
    }
  }
  ::close(fd);
  return out;
}

} // namespace mesh
