#pragma once

// The narrow file-system interface every persistence component does its I/O
// through, in the spirit of LevelDB's Env. Implementations:
//   - real_file_system(): POSIX calls, nothing else.
//   - forwarding_file_system: passes every call to another file_system; the
//     base of wrappers that intercept a few calls.
//   - fault_injecting_file_system: fails the Nth call of a chosen operation,
//     so tests can prove rollback, poisoning and crash recovery without a
//     real failing disk.
//
// Only regular files are opened or read: a FIFO, device or socket planted
// where a file is expected is refused (invalid_argument) without blocking,
// and every read is bounded by the file's size when it was opened, so
// neither a FIFO nor /dev/zero can hang a reader or grow its memory.
//
// Ownership: file_system objects are owned by whoever wires the program
// together (main, a test); components hold a non-owning pointer and must not
// outlive it. Files returned by open_* are owned by the caller.

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <caf/expected.hpp>

#include "base/bytes.hpp"

namespace mesh {

/// What stat() reports about a path.
struct file_info {
  enum class type : uint8_t { missing, regular, directory, other };
  type kind = type::missing;
  uint64_t size = 0;
  /// Permission bits (st_mode & 07777).
  unsigned mode = 0;
};

/// An open file: opened for appending (O_APPEND) and positional reads by
/// open_append, or for reads only by open_read (then append, sync and
/// truncate fail). Appends and sync may run concurrently from two threads;
/// truncate must not race an append.
class file_handle {
public:
  virtual ~file_handle() = default;

  /// Appends all of `data` at the end of the file. On error, a prefix of
  /// `data` may have reached the file: the caller rolls back with truncate().
  virtual caf::error append(bytes_view data) = 0;

  /// fdatasync.
  virtual caf::error sync() = 0;

  /// Shrinks (or extends with zeros) the file to `len` bytes.
  virtual caf::error truncate(uint64_t len) = 0;

  /// Reads exactly `len` bytes at `offset` into `out`; a short file is an
  /// error (corrupt_data).
  virtual caf::error read_at(uint64_t offset, size_t len, uint8_t* out) = 0;

  /// Current length in bytes.
  virtual caf::expected<uint64_t> size() = 0;

  /// The path this file was opened with, for messages.
  virtual const std::string& path() const = 0;
};

/// Operations a fault_injecting_file_system can fail.
enum class fs_op : uint8_t {
  open,
  write,
  sync,
  truncate,
  rename,
  remove,
  mkdir,
  read,
  link,
};

/// When write_new_file makes a file's data durable.
enum class file_sync : uint8_t {
  /// fsync before returning.
  now,
  /// Not here: the caller flushes many files at once with sync_all.
  later,
};

class file_system {
public:
  virtual ~file_system() = default;

  /// Opens `path` for append, creating it (mode 0644) when missing.
  /// invalid_argument when `path` is not a regular file.
  virtual caf::expected<std::unique_ptr<file_handle>>
  open_append(const std::string& path) = 0;

  /// Opens an existing regular file read-only; not_found when missing,
  /// invalid_argument when not a regular file.
  virtual caf::expected<std::unique_ptr<file_handle>>
  open_read(const std::string& path) = 0;

  /// Reads a whole regular file. not_found when missing, invalid_argument
  /// when not a regular file, corrupt_data when larger than `max_size`.
  virtual caf::expected<bytes>
  read_file(const std::string& path, uint64_t max_size) = 0;

  /// Creates or replaces `path` with `data` (not atomic: callers that need
  /// atomicity write a temp file and rename it), then fsyncs it.
  virtual caf::error write_file(const std::string& path, bytes_view data) = 0;

  /// Creates `path`, which must not exist (already_exists otherwise), with
  /// exactly the permission bits `mode` (the umask does not apply), writes
  /// `data` and, when `when` is now, fsyncs it. On error the file is removed
  /// again.
  virtual caf::error write_new_file(const std::string& path, bytes_view data,
                                    unsigned mode, file_sync when)
    = 0;

  /// link(2): a second name `to` for the file `from`; already_exists when
  /// `to` exists (which makes "first writer wins" atomic).
  virtual caf::error link(const std::string& from, const std::string& to) = 0;

  /// Length of `path`; not_found when missing.
  virtual caf::expected<uint64_t> file_size(const std::string& path) = 0;

  /// Truncates `path` to `len` and fsyncs it.
  virtual caf::error truncate_file(const std::string& path, uint64_t len) = 0;

  /// rename(2): atomically replaces `to`.
  virtual caf::error rename(const std::string& from, const std::string& to) = 0;

  /// Removes a file or an empty directory.
  virtual caf::error remove(const std::string& path) = 0;

  /// Removes a directory and everything in it.
  virtual caf::error remove_all(const std::string& path) = 0;

  /// Creates one directory; succeeds when it already exists.
  virtual caf::error create_dir(const std::string& path) = 0;

  /// fsync of a directory, making renames and creations in it durable.
  virtual caf::error sync_dir(const std::string& path) = 0;

  /// syncfs(2) of the file system holding `path`: every file written on it
  /// so far becomes durable, in one flush (one journal commit) however many
  /// files there are.
  virtual caf::error sync_all(const std::string& path) = 0;

  /// Names of the entries of a directory (no "." or "..").
  virtual caf::expected<std::vector<std::string>>
  list_dir(const std::string& path) = 0;

  /// Kind, size and mode of `path` (kind missing when it does not exist).
  virtual caf::expected<file_info> stat(const std::string& path) = 0;

  /// 0 = missing, 1 = regular file, 2 = directory, 3 = other.
  caf::expected<int> stat_kind(const std::string& path);
};

/// The process-wide POSIX implementation. Stateless; never null.
file_system* real_file_system();

/// Passes every call to the wrapped handle. Wrappers of a file_system's
/// handles derive from it and override only the calls they intercept.
class forwarding_file_handle : public file_handle {
public:
  explicit forwarding_file_handle(std::unique_ptr<file_handle> inner)
    : inner_(std::move(inner)) {}

  caf::error append(bytes_view data) override {
    return inner_->append(data);
  }
  caf::error sync() override {
    return inner_->sync();
  }
  caf::error truncate(uint64_t len) override {
    return inner_->truncate(len);
  }
  caf::error read_at(uint64_t offset, size_t len, uint8_t* out) override {
    return inner_->read_at(offset, len, out);
  }
  caf::expected<uint64_t> size() override {
    return inner_->size();
  }
  const std::string& path() const override {
    return inner_->path();
  }

protected:
  std::unique_ptr<file_handle> inner_;
};

/// Passes every call to `base` (non-owning). Wrappers derive from it and
/// override only the calls they intercept.
class forwarding_file_system : public file_system {
public:
  explicit forwarding_file_system(file_system* base) : base_(base) {}

  caf::expected<std::unique_ptr<file_handle>>
  open_append(const std::string& path) override;
  caf::expected<std::unique_ptr<file_handle>>
  open_read(const std::string& path) override;
  caf::expected<bytes> read_file(const std::string& path,
                                 uint64_t max_size) override;
  caf::error write_file(const std::string& path, bytes_view data) override;
  caf::error write_new_file(const std::string& path, bytes_view data,
                            unsigned mode, file_sync when) override;
  caf::error link(const std::string& from, const std::string& to) override;
  caf::expected<uint64_t> file_size(const std::string& path) override;
  caf::error truncate_file(const std::string& path, uint64_t len) override;
  caf::error rename(const std::string& from, const std::string& to) override;
  caf::error remove(const std::string& path) override;
  caf::error remove_all(const std::string& path) override;
  caf::error create_dir(const std::string& path) override;
  caf::error sync_dir(const std::string& path) override;
  caf::error sync_all(const std::string& path) override;
  caf::expected<std::vector<std::string>>
  list_dir(const std::string& path) override;
  caf::expected<file_info> stat(const std::string& path) override;

protected:
  file_system* base_;
};

/// Wraps `base` and fails selected calls. Not thread-safe to arm while other
/// threads do I/O; arm first, then run the code under test.
class fault_injecting_file_system final : public forwarding_file_system {
public:
  explicit fault_injecting_file_system(file_system* base);

  /// Fails the `nth` (1-based) call of `op` from now on, counting from the
  /// moment of arming. A failed write first writes `partial_bytes` of its
  /// data (capped at its size) to model a torn write.
  void fail_nth(fs_op op, uint64_t nth, size_t partial_bytes = 0);

  /// Fails every call of `op` from the `nth` on, until clear().
  void fail_from(fs_op op, uint64_t nth, size_t partial_bytes = 0);

  /// Disarms everything.
  void clear();

  /// How many calls of `op` happened since construction.
  uint64_t calls(fs_op op) const;

  /// How many injected failures fired.
  uint64_t failures() const;

  /// Returns an injected error when the call of `op` about to happen must
  /// fail. `partial` receives how many bytes a failing write lets through.
  caf::error check(fs_op op, const std::string& path,
                   size_t* partial = nullptr);

  // -- file_system -----------------------------------------------------------
  caf::expected<std::unique_ptr<file_handle>>
  open_append(const std::string& path) override;
  caf::expected<std::unique_ptr<file_handle>>
  open_read(const std::string& path) override;
  caf::expected<bytes> read_file(const std::string& path,
                                 uint64_t max_size) override;
  caf::error write_file(const std::string& path, bytes_view data) override;
  caf::error write_new_file(const std::string& path, bytes_view data,
                            unsigned mode, file_sync when) override;
  caf::error link(const std::string& from, const std::string& to) override;
  caf::error truncate_file(const std::string& path, uint64_t len) override;
  caf::error rename(const std::string& from, const std::string& to) override;
  caf::error remove(const std::string& path) override;
  caf::error remove_all(const std::string& path) override;
  caf::error create_dir(const std::string& path) override;
  caf::error sync_dir(const std::string& path) override;
  caf::error sync_all(const std::string& path) override;

private:
  struct rule {
    bool armed = false;
    bool sticky = false;
    uint64_t countdown = 0;
    size_t partial = 0;
  };
  static constexpr size_t op_count = 9;
  mutable std::mutex mtx_;
  rule rules_[op_count];
  uint64_t calls_[op_count] = {};
  uint64_t failures_ = 0;
};

} // namespace mesh
