#include "identity/key_file.hpp"

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdio>
#include <cstring>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <caf/message.hpp>
#include <sodium/utils.h>

#include "base/atomic_file.hpp"
#include "base/errc.hpp"
#include "base/file_system.hpp"
#include "identity/key_file_format.hpp"

namespace mesh {

namespace {

namespace fmt = key_file_format;

// Anything larger is certainly not a key file; reading stops there.
constexpr size_t read_limit = 4096;

// A stack buffer that may hold secret bytes; wiped on scope exit.
template<size_t N>
struct secret_buffer {
  std::array<uint8_t, N> bytes{};

  secret_buffer() = default;
  secret_buffer(const secret_buffer&) = delete;
  secret_buffer& operator=(const secret_buffer&) = delete;

  ~secret_buffer() {
    sodium_memzero(bytes.data(), bytes.size());
  }
};

class fd_guard {
public:
  explicit fd_guard(int fd) : fd_(fd) {}

  fd_guard(const fd_guard&) = delete;
  fd_guard& operator=(const fd_guard&) = delete;

  ~fd_guard() {
    if (fd_ >= 0)
      ::close(fd_);
  }

  int get() const {
    return fd_;
  }

private:
  int fd_;
};

std::string octal_mode(mode_t mode) {
  char buf[8];
  std::snprintf(buf, sizeof(buf), "%04o", static_cast<unsigned>(mode & 07777));
  return buf;
}

std::string hex_byte(uint8_t x) {
  char buf[8];
  std::snprintf(buf, sizeof(buf), "0x%02x", x);
  return buf;
}

std::string context_of(const caf::error& err) {
  const auto& ctx = err.context();
  if (ctx.size() == 1 && ctx.match_element<std::string>(0))
    return ctx.get_as<std::string>(0);
  return describe(err);
}

std::string length_text(const std::string& path, size_t found) {
  return "key file " + path + " is " + std::to_string(found)
         + " bytes long, expected " + std::to_string(fmt::file_size)
         + " (version " + std::to_string(fmt::version) + ")";
}

caf::error check_parent_dir(const std::string& path) {
  auto dir = parent_dir(path);
  struct stat st;
  if (::stat(dir.c_str(), &st) != 0) {
    if (errno == ENOENT || errno == ENOTDIR)
      return make_error(errc::not_found, "save key file " + path
                                           + ": directory " + dir
                                           + " does not exist");
    return make_error(errc::io_error, "save key file " + path + ": "
                                        + errno_text("stat", dir, errno));
  }
  if (!S_ISDIR(st.st_mode))
    return make_error(errc::invalid_argument, "save key file " + path + ": "
                                                + dir + " is not a directory");
  return {};
}

// Refuses anything but a regular file with no group or other permission bit.
// Runs on the open descriptor, so the file checked is the file read.
caf::error check_file(int fd, const std::string& path, struct stat& st) {
  if (::fstat(fd, &st) != 0)
    return make_error(errc::io_error, errno_text("fstat", path, errno));
  if (!S_ISREG(st.st_mode))
    return make_error(errc::invalid_argument,
                      "key file " + path + " is not a regular file");
  if ((st.st_mode & 077) != 0)
    return make_error(errc::insecure_permissions,
                      "key file " + path + " has mode " + octal_mode(st.st_mode)
                        + ", group and others must have no access (chmod "
                        + octal_mode(fmt::file_mode) + " " + path + ")");
  return {};
}

// Reads until end of file or N bytes; returns how many were read.
template<size_t N>
caf::expected<size_t>
read_up_to(int fd, const std::string& path, secret_buffer<N>& buf) {
  size_t done = 0;
  while (done < N) {
    auto n = ::read(fd, buf.bytes.data() + done, N - done);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      return make_error(errc::io_error, errno_text("read", path, errno));
    }
    if (n == 0)
      break;
    done += static_cast<size_t>(n);
  }
  return done;
}

// Decodes a complete key file image. The order of checks matters: the
// version decides the expected length, so magic and version come first.
caf::expected<keypair> decode(const uint8_t* data, size_t size,
                              const std::string& path) {
  if (size < fmt::header_size)
    return make_error(errc::corrupt_data, length_text(path, size));
  if (!std::equal(std::begin(fmt::magic), std::end(fmt::magic),
                  data + fmt::magic_offset))
    return make_error(errc::corrupt_data,
                      "key file " + path + " has bad magic 0x"
                        + to_hex(bytes_view{data + fmt::magic_offset,
                                            sizeof(fmt::magic)})
                        + ", expected \"MSHK\"");
  auto version = data[fmt::version_offset];
  if (version != fmt::version)
    return make_error(errc::unsupported_version,
                      "key file " + path + " has unknown version byte "
                        + hex_byte(version) + ", this build reads version "
                        + std::to_string(fmt::version));
  if (size != fmt::file_size)
    return make_error(errc::corrupt_data, length_text(path, size));
  secret_buffer<sizeof(key_seed)> seed;
  std::copy_n(data + fmt::seed_offset, sizeof(key_seed), seed.bytes.begin());
  auto kp = keypair::from_seed(seed.bytes);
  if (!std::equal(kp.id().begin(), kp.id().end(),
                  data + fmt::public_key_offset))
    return make_error(errc::corrupt_data,
                      "key file " + path
                        + ": stored public key does not match the seed");
  return kp;
}

} // namespace

caf::error save_key_file(const std::string& path, const keypair& kp) {
  if (kp.empty())
    return make_error(errc::invalid_argument,
                      "save key file " + path + ": empty keypair");
  if (auto err = check_parent_dir(path))
    return err;
  secret_buffer<fmt::file_size> image;
  auto* out = image.bytes.data();
  std::copy(std::begin(fmt::magic), std::end(fmt::magic),
            out + fmt::magic_offset);
  out[fmt::version_offset] = fmt::version;
  std::copy(kp.seed().begin(), kp.seed().end(), out + fmt::seed_offset);
  std::copy(kp.id().begin(), kp.id().end(), out + fmt::public_key_offset);
  auto err = write_file_atomic(*real_file_system(), path,
                               bytes_view{out, fmt::file_size}, fmt::file_mode);
  if (err) {
    auto code = code_of(err);
    return make_error(code == errc{} ? errc::io_error : code,
                      "save key file " + path + ": " + context_of(err));
  }
  return {};
}

caf::expected<keypair> load_key_file(const std::string& path) {
  // O_NONBLOCK: opening a FIFO planted at `path` must not hang; the regular
  // file check below then rejects it.
  fd_guard fd{::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK)};
  if (fd.get() < 0) {
    if (errno == ENOENT)
      return make_error(errc::not_found,
                        "key file " + path + " does not exist");
    return make_error(errc::io_error, errno_text("open", path, errno));
  }
  struct stat st;
  if (auto err = check_file(fd.get(), path, st))
    return err;
  secret_buffer<read_limit> buf;
  auto n = read_up_to(fd.get(), path, buf);
  if (!n)
    return std::move(n.error());
  if (*n == read_limit) {
    auto found = std::max(read_limit, static_cast<size_t>(st.st_size));
    return make_error(errc::corrupt_data, length_text(path, found));
  }
  return decode(buf.bytes.data(), *n, path);
}

caf::expected<keypair> load_or_create_key_file(const std::string& path,
                                               bool* created) {
  if (created != nullptr)
    *created = false;
  auto loaded = load_key_file(path);
  if (loaded || !is(loaded.error(), errc::not_found))
    return loaded;
  auto kp = keypair::generate();
  if (auto err = save_key_file(path, kp))
    return err;
  if (created != nullptr)
    *created = true;
  return kp;
}

} // namespace mesh
