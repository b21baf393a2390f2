#include "base/file_system.hpp"

#include <cerrno>
#include <cstring>

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/atomic_file.hpp"
#include "base/errc.hpp"

namespace mesh {

namespace {

caf::error os_error(const char* op, const std::string& path, int err) {
  return make_error(err == ENOENT ? errc::not_found : errc::io_error,
                    errno_text(op, path, err));
}

caf::error write_fd(int fd, bytes_view data, const std::string& path) {
  size_t done = 0;
  while (done < data.size) {
    auto n = ::write(fd, data.data + done, data.size - done);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      return os_error("write", path, errno);
    }
    done += static_cast<size_t>(n);
  }
  return {};
}

class posix_file_handle final : public file_handle {
public:
  posix_file_handle(int fd, std::string path)
    : fd_(fd), path_(std::move(path)) {}

  ~posix_file_handle() override {
    ::close(fd_);
  }

  caf::error append(bytes_view data) override {
    return write_fd(fd_, data, path_);
  }

  caf::error sync() override {
    if (::fdatasync(fd_) != 0)
      return os_error("fdatasync", path_, errno);
    return {};
  }

  caf::error truncate(uint64_t len) override {
    if (::ftruncate(fd_, static_cast<off_t>(len)) != 0)
      return os_error("truncate", path_, errno);
    return {};
  }

  caf::error read_at(uint64_t offset, size_t len, uint8_t* out) override {
    size_t done = 0;
    while (done < len) {
      auto n = ::pread(fd_, out + done, len - done,
                       static_cast<off_t>(offset + done));
      if (n < 0) {
        if (errno == EINTR)
          continue;
        return os_error("read", path_, errno);
      }
      if (n == 0)
        return make_error(errc::corrupt_data,
                          path_ + ": short read at offset "
                            + std::to_string(offset + done));
      done += static_cast<size_t>(n);
    }
    return {};
  }

  caf::expected<uint64_t> size() override {
    struct stat st;
    if (::fstat(fd_, &st) != 0)
      return os_error("stat", path_, errno);
    return static_cast<uint64_t>(st.st_size);
  }

  const std::string& path() const override {
    return path_;
  }

private:
  int fd_;
  std::string path_;
};

// Opens `path` with `flags` plus O_NONBLOCK (so that opening a FIFO with no
// writer cannot block), refuses anything but a regular file, then clears
// O_NONBLOCK again. Returns the descriptor and, through `size`, the length.
caf::expected<int> open_regular(const std::string& path, int flags,
                                uint64_t* size = nullptr) {
  int fd = ::open(path.c_str(), flags | O_CLOEXEC | O_NONBLOCK, 0644);
  if (fd < 0)
    return os_error("open", path, errno);
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    auto err = os_error("stat", path, errno);
    ::close(fd);
    return err;
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    return make_error(errc::invalid_argument, path + " is not a regular file");
  }
  if (::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) & ~O_NONBLOCK) != 0) {
    auto err = os_error("fcntl", path, errno);
    ::close(fd);
    return err;
  }
  if (size != nullptr)
    *size = static_cast<uint64_t>(st.st_size);
  return fd;
}

class posix_file_system final : public file_system {
public:
  caf::expected<std::unique_ptr<file_handle>>
  open_append(const std::string& path) override {
    auto fd = open_regular(path, O_RDWR | O_APPEND | O_CREAT);
    if (!fd)
      return fd.error();
    return std::unique_ptr<file_handle>{new posix_file_handle(*fd, path)};
  }

  caf::expected<std::unique_ptr<file_handle>>
  open_read(const std::string& path) override {
    auto fd = open_regular(path, O_RDONLY);
    if (!fd)
      return fd.error();
    return std::unique_ptr<file_handle>{new posix_file_handle(*fd, path)};
  }

  caf::expected<bytes> read_file(const std::string& path,
                                 uint64_t max_size) override {
    uint64_t size = 0;
    auto fd = open_regular(path, O_RDONLY, &size);
    if (!fd)
      return fd.error();
    if (size > max_size) {
      ::close(*fd);
      return make_error(errc::corrupt_data,
                        path + ": " + std::to_string(size)
                          + " bytes, larger than the limit of "
                          + std::to_string(max_size));
    }
    // Never more than the size at open: a file that grows meanwhile is read
    // as it was.
    bytes out(static_cast<size_t>(size));
    size_t done = 0;
    while (done < out.size()) {
      auto n = ::read(*fd, out.data() + done, out.size() - done);
      if (n < 0) {
        if (errno == EINTR)
          continue;
        auto err = os_error("read", path, errno);
        ::close(*fd);
        return err;
      }
      if (n == 0)
        break;
      done += static_cast<size_t>(n);
    }
    ::close(*fd);
    out.resize(done);
    return out;
  }

  caf::error write_new_file(const std::string& path, bytes_view data,
                            unsigned mode, file_sync when) override {
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC,
                    mode);
    if (fd < 0) {
      if (errno == EEXIST)
        return make_error(errc::already_exists, path + " already exists");
      return os_error("create", path, errno);
    }
    // The umask may have narrowed `mode`; key files rely on the exact bits.
    caf::error err;
    if (::fchmod(fd, mode) != 0)
      err = os_error("chmod", path, errno);
    if (!err)
      err = write_fd(fd, data, path);
    if (!err && when == file_sync::now && ::fsync(fd) != 0)
      err = os_error("fsync", path, errno);
    ::close(fd);
    if (err)
      ::unlink(path.c_str());
    return err;
  }

  caf::error link(const std::string& from, const std::string& to) override {
    if (::link(from.c_str(), to.c_str()) != 0) {
      if (errno == EEXIST)
        return make_error(errc::already_exists, to + " already exists");
      return os_error("link", to, errno);
    }
    return {};
  }

  caf::error write_file(const std::string& path, bytes_view data) override {
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
                    0644);
    if (fd < 0)
      return os_error("open", path, errno);
    auto err = write_fd(fd, data, path);
    if (!err && ::fsync(fd) != 0)
      err = os_error("fsync", path, errno);
    ::close(fd);
    return err;
  }

  caf::expected<uint64_t> file_size(const std::string& path) override {
    struct stat st;
    if (::stat(path.c_str(), &st) != 0)
      return os_error("stat", path, errno);
    return static_cast<uint64_t>(st.st_size);
  }

  caf::error truncate_file(const std::string& path, uint64_t len) override {
    int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
    if (fd < 0)
      return os_error("open", path, errno);
    caf::error err;
    if (::ftruncate(fd, static_cast<off_t>(len)) != 0)
      err = os_error("truncate", path, errno);
    else if (::fsync(fd) != 0)
      err = os_error("fsync", path, errno);
    ::close(fd);
    return err;
  }

  caf::error rename(const std::string& from, const std::string& to) override {
    if (::rename(from.c_str(), to.c_str()) != 0)
      return os_error("rename", from, errno);
    return {};
  }

  caf::error remove(const std::string& path) override {
    if (::remove(path.c_str()) != 0)
      return os_error("remove", path, errno);
    return {};
  }

  caf::error remove_all(const std::string& path) override {
    auto kind = stat_kind(path);
    if (!kind)
      return kind.error();
    if (*kind == 0)
      return {};
    if (*kind == 2) {
      auto names = list_dir(path);
      if (!names)
        return names.error();
      for (auto& name : *names)
        if (auto err = remove_all(path + "/" + name))
          return err;
    }
    return remove(path);
  }

  caf::error create_dir(const std::string& path) override {
    if (::mkdir(path.c_str(), 0755) != 0 && errno != EEXIST)
      return os_error("mkdir", path, errno);
    return {};
  }

  caf::error sync_dir(const std::string& path) override {
    int fd = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
      return os_error("open", path, errno);
    caf::error err;
    if (::fsync(fd) != 0)
      err = os_error("fsync", path, errno);
    ::close(fd);
    return err;
  }

  caf::error sync_all(const std::string& path) override {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0)
      return os_error("open", path, errno);
    caf::error err;
    if (::syncfs(fd) != 0)
      err = os_error("syncfs", path, errno);
    ::close(fd);
    return err;
  }

  caf::expected<std::vector<std::string>>
  list_dir(const std::string& path) override {
    DIR* d = ::opendir(path.c_str());
    if (d == nullptr)
      return os_error("opendir", path, errno);
    std::vector<std::string> out;
    while (auto* ent = ::readdir(d)) {
      std::string name = ent->d_name;
      if (name != "." && name != "..")
        out.push_back(std::move(name));
    }
    ::closedir(d);
    return out;
  }

  caf::expected<file_info> stat(const std::string& path) override {
    struct ::stat st;
    file_info info;
    if (::stat(path.c_str(), &st) != 0) {
      if (errno == ENOENT || errno == ENOTDIR)
        return info;
      return os_error("stat", path, errno);
    }
    info.kind = S_ISREG(st.st_mode)   ? file_info::type::regular
                : S_ISDIR(st.st_mode) ? file_info::type::directory
                                      : file_info::type::other;
    info.size = static_cast<uint64_t>(st.st_size);
    info.mode = static_cast<unsigned>(st.st_mode & 07777);
    return info;
  }
};

// -- fault injection ----------------------------------------------------------

class faulty_file_handle final : public forwarding_file_handle {
public:
  faulty_file_handle(fault_injecting_file_system* fs,
                     std::unique_ptr<file_handle> inner)
    : forwarding_file_handle(std::move(inner)), fs_(fs) {}

  caf::error append(bytes_view data) override {
    size_t partial = 0;
    if (auto err = fs_->check(fs_op::write, inner_->path(), &partial)) {
      if (partial > 0)
        (void)inner_->append(
          bytes_view{data.data, std::min(partial, data.size)});
      return err;
    }
    return inner_->append(data);
  }

  caf::error sync() override {
    if (auto err = fs_->check(fs_op::sync, inner_->path()))
      return err;
    return inner_->sync();
  }

  caf::error truncate(uint64_t len) override {
    if (auto err = fs_->check(fs_op::truncate, inner_->path()))
      return err;
    return inner_->truncate(len);
  }

  caf::error read_at(uint64_t offset, size_t len, uint8_t* out) override {
    if (auto err = fs_->check(fs_op::read, inner_->path()))
      return err;
    return inner_->read_at(offset, len, out);
  }

private:
  fault_injecting_file_system* fs_;
};

} // namespace

file_system* real_file_system() {
  static posix_file_system instance;
  return &instance;
}

fault_injecting_file_system::fault_injecting_file_system(file_system* base)
  : forwarding_file_system(base) {}

void fault_injecting_file_system::fail_nth(fs_op op, uint64_t nth,
                                           size_t partial_bytes) {
  std::lock_guard<std::mutex> guard{mtx_};
  rules_[static_cast<size_t>(op)] = rule{true, false, nth, partial_bytes};
}

void fault_injecting_file_system::fail_from(fs_op op, uint64_t nth,
                                            size_t partial_bytes) {
  std::lock_guard<std::mutex> guard{mtx_};
  rules_[static_cast<size_t>(op)] = rule{true, true, nth, partial_bytes};
}

void fault_injecting_file_system::clear() {
  std::lock_guard<std::mutex> guard{mtx_};
  for (auto& r : rules_)
    r = rule{};
}

uint64_t fault_injecting_file_system::calls(fs_op op) const {
  std::lock_guard<std::mutex> guard{mtx_};
  return calls_[static_cast<size_t>(op)];
}

uint64_t fault_injecting_file_system::failures() const {
  std::lock_guard<std::mutex> guard{mtx_};
  return failures_;
}

caf::error fault_injecting_file_system::check(fs_op op, const std::string& path,
                                              size_t* partial) {
  static constexpr const char* names[] = {"open",     "write",  "sync",
                                          "truncate", "rename", "remove",
                                          "mkdir",    "read",   "link"};
  std::lock_guard<std::mutex> guard{mtx_};
  auto i = static_cast<size_t>(op);
  ++calls_[i];
  auto& r = rules_[i];
  if (!r.armed)
    return {};
  if (r.countdown > 1) {
    --r.countdown;
    return {};
  }
  if (!r.sticky)
    r.armed = false;
  ++failures_;
  if (partial)
    *partial = r.partial;
  return make_error(errc::io_error, std::string{"injected "} + names[i]
                                      + " failure on " + path);
}

caf::expected<std::unique_ptr<file_handle>>
fault_injecting_file_system::open_append(const std::string& path) {
  if (auto err = check(fs_op::open, path))
    return err;
  auto f = base_->open_append(path);
  if (!f)
    return f.error();
  return std::unique_ptr<file_handle>{
    new faulty_file_handle(this, std::move(*f))};
}

caf::expected<std::unique_ptr<file_handle>>
fault_injecting_file_system::open_read(const std::string& path) {
  if (auto err = check(fs_op::open, path))
    return err;
  auto f = base_->open_read(path);
  if (!f)
    return f.error();
  return std::unique_ptr<file_handle>{
    new faulty_file_handle(this, std::move(*f))};
}

caf::expected<bytes>
fault_injecting_file_system::read_file(const std::string& path,
                                       uint64_t max_size) {
  if (auto err = check(fs_op::read, path))
    return err;
  return base_->read_file(path, max_size);
}

caf::error fault_injecting_file_system::write_new_file(const std::string& path,
                                                       bytes_view data,
                                                       unsigned mode,
                                                       file_sync when) {
  size_t partial = 0;
  if (auto err = check(fs_op::write, path, &partial)) {
    if (partial > 0)
      (void)base_->write_new_file(path,
                                  bytes_view{data.data,
                                             std::min(partial, data.size)},
                                  mode, when);
    return err;
  }
  return base_->write_new_file(path, data, mode, when);
}

caf::error fault_injecting_file_system::link(const std::string& from,
                                             const std::string& to) {
  if (auto err = check(fs_op::link, to))
    return err;
  return base_->link(from, to);
}

caf::error fault_injecting_file_system::write_file(const std::string& path,
                                                   bytes_view data) {
  size_t partial = 0;
  if (auto err = check(fs_op::write, path, &partial)) {
    if (partial > 0)
      (void)base_->write_file(path, bytes_view{data.data,
                                               std::min(partial, data.size)});
    return err;
  }
  return base_->write_file(path, data);
}

caf::error fault_injecting_file_system::truncate_file(const std::string& path,
                                                      uint64_t len) {
  if (auto err = check(fs_op::truncate, path))
    return err;
  return base_->truncate_file(path, len);
}

caf::error fault_injecting_file_system::rename(const std::string& from,
                                               const std::string& to) {
  if (auto err = check(fs_op::rename, from))
    return err;
  return base_->rename(from, to);
}

caf::error fault_injecting_file_system::remove(const std::string& path) {
  if (auto err = check(fs_op::remove, path))
    return err;
  return base_->remove(path);
}

caf::error fault_injecting_file_system::remove_all(const std::string& path) {
  if (auto err = check(fs_op::remove, path))
    return err;
  return base_->remove_all(path);
}

caf::error fault_injecting_file_system::create_dir(const std::string& path) {
  if (auto err = check(fs_op::mkdir, path))
    return err;
  return base_->create_dir(path);
}

caf::error fault_injecting_file_system::sync_dir(const std::string& path) {
  if (auto err = check(fs_op::sync, path))
    return err;
  return base_->sync_dir(path);
}

caf::error fault_injecting_file_system::sync_all(const std::string& path) {
  if (auto err = check(fs_op::sync, path))
    return err;
  return base_->sync_all(path);
}

// -- forwarding ---------------------------------------------------------------

caf::expected<int> file_system::stat_kind(const std::string& path) {
  auto info = stat(path);
  if (!info)
    return info.error();
  return static_cast<int>(info->kind);
}

caf::expected<std::unique_ptr<file_handle>>
forwarding_file_system::open_append(const std::string& path) {
  return base_->open_append(path);
}

caf::expected<std::unique_ptr<file_handle>>
forwarding_file_system::open_read(const std::string& path) {
  return base_->open_read(path);
}

caf::expected<bytes> forwarding_file_system::read_file(const std::string& path,
                                                       uint64_t max_size) {
  return base_->read_file(path, max_size);
}

caf::error forwarding_file_system::write_file(const std::string& path,
                                              bytes_view data) {
  return base_->write_file(path, data);
}

caf::error
forwarding_file_system::write_new_file(const std::string& path, bytes_view data,
                                       unsigned mode, file_sync when) {
  return base_->write_new_file(path, data, mode, when);
}

caf::error forwarding_file_system::link(const std::string& from,
                                        const std::string& to) {
  return base_->link(from, to);
}

caf::expected<uint64_t>
forwarding_file_system::file_size(const std::string& path) {
  return base_->file_size(path);
}

caf::error forwarding_file_system::truncate_file(const std::string& path,
                                                 uint64_t len) {
  return base_->truncate_file(path, len);
}

caf::error forwarding_file_system::rename(const std::string& from,
                                          const std::string& to) {
  return base_->rename(from, to);
}

caf::error forwarding_file_system::remove(const std::string& path) {
  return base_->remove(path);
}

caf::error forwarding_file_system::remove_all(const std::string& path) {
  return base_->remove_all(path);
}

caf::error forwarding_file_system::create_dir(const std::string& path) {
  return base_->create_dir(path);
}

caf::error forwarding_file_system::sync_dir(const std::string& path) {
  return base_->sync_dir(path);
}

caf::error forwarding_file_system::sync_all(const std::string& path) {
  return base_->sync_all(path);
}

caf::expected<std::vector<std::string>>
forwarding_file_system::list_dir(const std::string& path) {
  return base_->list_dir(path);
}

caf::expected<file_info> forwarding_file_system::stat(const std::string& path) {
  return base_->stat(path);
}

} // namespace mesh
