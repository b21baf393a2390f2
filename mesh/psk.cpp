#include "mesh/psk.hpp"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <utility>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium/randombytes.h>
#include <sodium/utils.h>

#include "base/atomic_file.hpp"
#include "base/errc.hpp"
#include "base/file_system.hpp"
#include "identity/sodium_init.hpp"

namespace mesh {

namespace {

constexpr size_t hex_digits = 2 * psk::size;

// One more than the longest valid file (64 digits and "\n"): reading that
// many tells a too-long file from a valid one without reading all of it.
constexpr size_t read_limit = hex_digits + 2;

// A stack buffer that holds secret text and wipes itself.
struct secret_text {
  char chars[read_limit] = {};

  ~secret_text() {
    sodium_memzero(chars, sizeof(chars));
  }
};

struct fd_guard {
  int fd;
  ~fd_guard() {
    if (fd >= 0)
      ::close(fd);
  }
};

std::string octal_mode(unsigned mode) {
  char buf[8];
  std::snprintf(buf, sizeof(buf), "%04o", mode & 07777);
  return buf;
}

} // namespace

psk psk::open() noexcept {
  return psk{};
}

psk psk::from_bytes(const bytes_type& bytes) noexcept {
  psk result;
  result.bytes_ = bytes;
  return result;
}

psk psk::generate() {
  init_sodium();
  psk result;
  randombytes_buf(result.bytes_.data(), result.bytes_.size());
  return result;
}

psk::psk(psk&& other) noexcept : bytes_(other.bytes_) {
  sodium_memzero(other.bytes_.data(), other.bytes_.size());
}

psk& psk::operator=(psk&& other) noexcept {
  if (this != &other) {
    bytes_ = other.bytes_;
    sodium_memzero(other.bytes_.data(), other.bytes_.size());
  }
  return *this;
}

psk::~psk() {
  sodium_memzero(bytes_.data(), bytes_.size());
}

psk psk::clone() const noexcept {
  return from_bytes(bytes_);
}

bool psk::is_open() const noexcept {
  return sodium_is_zero(bytes_.data(), bytes_.size()) == 1;
}

bool operator==(const psk& x, const psk& y) noexcept {
  return sodium_memcmp(x.bytes_.data(), y.bytes_.data(), psk::size) == 0;
}

caf::expected<psk> load_psk_file(const std::string& path) {
  // O_NONBLOCK: a FIFO planted at `path` must not hang the open; the
  // regular-file check rejects it.
  fd_guard fd{::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK)};
  if (fd.fd < 0) {
    if (errno == ENOENT)
      return make_error(errc::not_found, "PSK file " + path
                                           + " does not exist (create one "
                                             "with: meshctl new-psk "
                                           + path + ")");
    return make_error(errc::io_error, errno_text("open", path, errno));
  }
  struct stat st {};
  if (::fstat(fd.fd, &st) != 0)
    return make_error(errc::io_error, errno_text("fstat", path, errno));
  if (!S_ISREG(st.st_mode))
    return make_error(errc::invalid_argument,
                      "PSK file " + path + " is not a regular file");
  if ((st.st_mode & 077) != 0)
    return make_error(errc::insecure_permissions,
                      "PSK file " + path + " has mode " + octal_mode(st.st_mode)
                        + ", group and others must have no access (chmod 0600 "
                        + path + ")");
  secret_text text;
  size_t n = 0;
  while (n < read_limit) {
    auto got = ::read(fd.fd, text.chars + n, read_limit - n);
    if (got < 0) {
      if (errno == EINTR)
        continue;
      return make_error(errc::io_error, errno_text("read", path, errno));
    }
    if (got == 0)
      break;
    n += static_cast<size_t>(got);
  }
  auto malformed = [&path](const std::string& why) {
    return make_error(errc::corrupt_data,
                      "PSK file " + path + " is malformed (" + why
                        + "): it must hold 64 hex digits on one line");
  };
  auto digits = n;
  if (digits == hex_digits + 1 && text.chars[hex_digits] == '\n')
    --digits;
  if (digits != hex_digits)
    return malformed(n >= read_limit ? "too long"
                                     : std::to_string(n) + " bytes");
  psk::bytes_type raw{};
  size_t bin_len = 0;
  const char* end = nullptr;
  if (sodium_hex2bin(raw.data(), raw.size(), text.chars, hex_digits, nullptr,
                     &bin_len, &end)
        != 0
      || bin_len != psk::size || end != text.chars + hex_digits) {
    sodium_memzero(raw.data(), raw.size());
    return malformed("not hex");
  }
  auto result = psk::from_bytes(raw);
  sodium_memzero(raw.data(), raw.size());
  return result;
}

caf::expected<psk> write_new_psk_file(const std::string& path) {
  auto key = psk::generate();
  secret_text text;
  sodium_bin2hex(text.chars, sizeof(text.chars), key.bytes().data(),
                 key.bytes().size());
  text.chars[hex_digits] = '\n';
  auto created = create_file_atomic(*real_file_system(), path,
                                    bytes_view{reinterpret_cast<const uint8_t*>(
                                                 text.chars),
                                               hex_digits + 1},
                                    0600);
  if (!created) {
    auto code = code_of(created.error());
    return make_error(code == errc{} ? errc::io_error : code,
                      "cannot create PSK file " + path + ": "
                        + describe(created.error()));
  }
  if (!*created)
    return make_error(errc::already_exists,
                      "PSK file " + path
                        + " already exists; it is never overwritten (remove "
                          "it first to replace the mesh's key)");
  return key;
}

} // namespace mesh
