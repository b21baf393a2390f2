#include <catch2/catch.hpp>

#include <algorithm>
#include <cerrno>
#include <fstream>
#include <future>
#include <iterator>
#include <string>
#include <thread>
#include <vector>

#include <dirent.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/bytes.hpp"
#include "base/errc.hpp"
#include "persistence/nonce_file.hpp"
#include "support/temp_dir.hpp"

using namespace mesh;

namespace {

constexpr int racers = 16;

void write_raw(const std::string& path, const bytes& data) {
  std::ofstream out{path, std::ios::binary | std::ios::trunc};
  out.write(reinterpret_cast<const char*>(data.data()),
            static_cast<std::streamsize>(data.size()));
  REQUIRE(out.good());
}

bytes read_raw(const std::string& path) {
  std::ifstream in{path, std::ios::binary};
  REQUIRE(in.good());
  return bytes{std::istreambuf_iterator<char>{in},
               std::istreambuf_iterator<char>{}};
}

bool exists(const std::string& path) {
  struct stat st;
  return ::lstat(path.c_str(), &st) == 0;
}

std::vector<std::string> list_dir(const std::string& dir) {
  std::vector<std::string> names;
  DIR* d = ::opendir(dir.c_str());
  REQUIRE(d != nullptr);
  while (auto* e = ::readdir(d)) {
    std::string name = e->d_name;
    if (name != "." && name != "..")
      names.push_back(name);
  }
  ::closedir(d);
  std::sort(names.begin(), names.end());
  return names;
}

bytes file_with_nonce(uint8_t version, uint64_t nonce) {
  bytes out(nonce_file_size);
  out[0] = version;
  store_le64(out.data() + 1, nonce);
  return out;
}

// Asserts that loading `path` fails with `code` and a message containing
// `needle`, and that neither loader touched the file.
void require_load_error(const std::string& path, errc code,
                        const std::string& needle) {
  auto before = read_raw(path);
  auto loaded = load_nonce(path);
  REQUIRE_FALSE(loaded);
  CHECK(code_of(loaded.error()) == code);
  CHECK_THAT(describe(loaded.error()), Catch::Contains(needle));
  CHECK_THAT(describe(loaded.error()), Catch::Contains(path));
  auto created = load_or_create_nonce(path);
  REQUIRE_FALSE(created);
  CHECK(code_of(created.error()) == code);
  CHECK_THAT(describe(created.error()), Catch::Contains(needle));
  CHECK(read_raw(path) == before);
}

} // namespace

TEST_CASE("encode_nonce writes the version byte then the nonce little-endian") {
  auto encoded = encode_nonce(0x0102030405060708ull);
  bytes expected{0x01, 0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01};
  CHECK(bytes(encoded.begin(), encoded.end()) == expected);
  auto decoded = decode_nonce(expected, "kat");
  REQUIRE(decoded);
  CHECK(*decoded == 0x0102030405060708ull);
}

TEST_CASE("an existing hand-written version-1 file is loaded as is") {
  test::temp_dir dir;
  auto path = dir / "nonce";
  write_raw(path, file_with_nonce(1, 0xdeadbeefcafef00dull));
  auto loaded = load_or_create_nonce(path);
  REQUIRE(loaded);
  CHECK(*loaded == 0xdeadbeefcafef00dull);
  CHECK(read_raw(path) == file_with_nonce(1, 0xdeadbeefcafef00dull));
}

TEST_CASE("first load creates a 9-byte version-1 file with a nonzero nonce") {
  test::temp_dir dir;
  auto path = dir / "nonce";
  auto nonce = load_or_create_nonce(path);
  REQUIRE(nonce);
  CHECK(*nonce != 0);
  auto on_disk = read_raw(path);
  REQUIRE(on_disk.size() == 9);
  CHECK(on_disk[0] == 1);
  CHECK(load_le64(on_disk.data() + 1) == *nonce);
  struct stat st;
  REQUIRE(::stat(path.c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == nonce_file_mode);
  CHECK(list_dir(dir.path()) == std::vector<std::string>{"nonce"});
}

TEST_CASE("second load returns the same nonce and leaves the file unchanged") {
  test::temp_dir dir;
  auto path = dir / "nonce";
  auto first = load_or_create_nonce(path);
  REQUIRE(first);
  auto on_disk = read_raw(path);
  auto second = load_or_create_nonce(path);
  REQUIRE(second);
  CHECK(*second == *first);
  auto plain = load_nonce(path);
  REQUIRE(plain);
  CHECK(*plain == *first);
  CHECK(read_raw(path) == on_disk);
}

TEST_CASE("loads at distinct paths draw distinct nonces") {
  test::temp_dir dir;
  std::vector<uint64_t> nonces;
  for (int i = 0; i < 32; ++i) {
    auto n = load_or_create_nonce(dir / ("nonce" + std::to_string(i)));
    REQUIRE(n);
    nonces.push_back(*n);
  }
  std::sort(nonces.begin(), nonces.end());
  CHECK(std::adjacent_find(nonces.begin(), nonces.end()) == nonces.end());
}

TEST_CASE("load_nonce never creates the file") {
  test::temp_dir dir;
  auto path = dir / "nonce";
  auto loaded = load_nonce(path);
  REQUIRE_FALSE(loaded);
  CHECK(is(loaded.error(), errc::not_found));
  CHECK(list_dir(dir.path()).empty());
}

TEST_CASE("missing parent directory is an error and is never created") {
  test::temp_dir dir;
  auto parent = dir / "missing";
  auto path = parent + "/nonce";
  auto nonce = load_or_create_nonce(path);
  REQUIRE_FALSE(nonce);
  CHECK(is(nonce.error(), errc::not_found));
  CHECK_THAT(describe(nonce.error()),
             Catch::Contains("parent directory " + parent));
  CHECK_FALSE(exists(parent));
  CHECK(list_dir(dir.path()).empty());
}

TEST_CASE("empty path is rejected") {
  auto nonce = load_or_create_nonce("");
  REQUIRE_FALSE(nonce);
  CHECK(is(nonce.error(), errc::invalid_argument));
}

TEST_CASE("wrong file length is an error naming the length") {
  test::temp_dir dir;
  auto path = dir / "nonce";
  SECTION("empty") {
    write_raw(path, {});
    require_load_error(path, errc::corrupt_data, ": 0 bytes, expected 9");
  }
  SECTION("8 bytes: a bare u64 without version byte") {
    bytes raw(8);
    store_le64(raw.data(), 0xdeadbeefcafef00dull);
    write_raw(path, raw);
    require_load_error(path, errc::corrupt_data, ": 8 bytes, expected 9");
  }
  SECTION("10 bytes") {
    auto raw = file_with_nonce(1, 42);
    raw.push_back(0);
    write_raw(path, raw);
    require_load_error(path, errc::corrupt_data, ": 10 bytes, expected 9");
  }
  SECTION("larger than the read limit") {
    write_raw(path, bytes(5000, 1));
    require_load_error(path, errc::corrupt_data,
                       ": more than 4096 bytes, expected 9");
  }
}

TEST_CASE("unknown version byte is an error naming the byte") {
  test::temp_dir dir;
  auto path = dir / "nonce";
  SECTION("version 2") {
    write_raw(path, file_with_nonce(2, 42));
    require_load_error(path, errc::unsupported_version,
                       "unknown version byte 0x02, expected 0x01");
  }
  SECTION("version 0xff") {
    write_raw(path, file_with_nonce(0xff, 42));
    require_load_error(path, errc::unsupported_version,
                       "unknown version byte 0xff");
  }
  SECTION("version 0") {
    write_raw(path, file_with_nonce(0, 42));
    require_load_error(path, errc::unsupported_version,
                       "unknown version byte 0x00");
  }
}

TEST_CASE("zero nonce in the file is an error") {
  test::temp_dir dir;
  auto path = dir / "nonce";
  write_raw(path, file_with_nonce(1, 0));
  require_load_error(path, errc::corrupt_data, "nonce is 0");
}

TEST_CASE("a path that is a directory is an error") {
  test::temp_dir dir;
  auto path = dir / "nonce";
  REQUIRE(::mkdir(path.c_str(), 0755) == 0);
  auto nonce = load_or_create_nonce(path);
  REQUIRE_FALSE(nonce);
  CHECK(is(nonce.error(), errc::invalid_argument));
  CHECK_THAT(describe(nonce.error()), Catch::Contains(path));
  CHECK_THAT(describe(nonce.error()), Catch::Contains("not a regular file"));
  CHECK(list_dir(dir.path()) == std::vector<std::string>{"nonce"});
  CHECK(list_dir(path).empty());
}

TEST_CASE("concurrent first loaders in threads all return the file's nonce") {
  struct outcome {
    uint64_t nonce = 0;
    std::string error;
  };
  test::temp_dir dir;
  // Several rounds, each on a fresh path, make a real race at the create step
  // likely rather than lucky.
  for (int round = 0; round < 8; ++round) {
    auto path = dir / ("nonce" + std::to_string(round));
    std::promise<void> go;
    auto gate = go.get_future().share();
    std::vector<outcome> outcomes(racers);
    std::vector<std::thread> threads;
    for (int i = 0; i < racers; ++i)
      threads.emplace_back([gate, &path, &out = outcomes[i]] {
        gate.wait();
        auto n = load_or_create_nonce(path);
        if (n)
          out.nonce = *n;
        else
          out.error = describe(n.error());
      });
    go.set_value();
    for (auto& t : threads)
      t.join();
    auto on_disk = read_raw(path);
    REQUIRE(on_disk.size() == nonce_file_size);
    auto final_nonce = decode_nonce(on_disk, path);
    REQUIRE(final_nonce);
    for (const auto& out : outcomes) {
      CHECK(out.error == "");
      CHECK(out.nonce == *final_nonce);
    }
  }
  std::vector<std::string> expected;
  for (int round = 0; round < 8; ++round)
    expected.push_back("nonce" + std::to_string(round));
  CHECK(list_dir(dir.path()) == expected);
}

TEST_CASE("concurrent first loaders in processes all return the file's nonce") {
  test::temp_dir dir;
  auto path = dir / "nonce";
  // Children block on `go` until the parent closes its write end, so all of
  // them start loading at once. Each reports its nonce as one 8-byte write to
  // `results`; writes below PIPE_BUF never interleave.
  int go[2];
  int results[2];
  REQUIRE(::pipe(go) == 0);
  REQUIRE(::pipe(results) == 0);
  std::vector<pid_t> children;
  for (int i = 0; i < racers; ++i) {
    auto pid = ::fork();
    if (pid == 0) {
      ::close(go[1]);
      ::close(results[0]);
      char c;
      while (::read(go[0], &c, 1) < 0 && errno == EINTR)
        ;
      auto n = load_or_create_nonce(path);
      if (!n)
        ::_exit(2);
      uint8_t buf[8];
      store_le64(buf, *n);
      ::_exit(::write(results[1], buf, sizeof(buf)) == sizeof(buf) ? 0 : 3);
    }
    if (pid < 0)
      break;
    children.push_back(pid);
  }
  ::close(go[0]);
  ::close(results[1]);
  ::close(go[1]);
  bytes reported;
  uint8_t buf[256];
  for (;;) {
    auto n = ::read(results[0], buf, sizeof(buf));
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      break;
    reported.insert(reported.end(), buf, buf + n);
  }
  ::close(results[0]);
  for (auto pid : children) {
    int status = 0;
    REQUIRE(::waitpid(pid, &status, 0) == pid);
    CHECK(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);
  }
  REQUIRE(children.size() == racers);
  REQUIRE(reported.size() == racers * 8);
  auto final_nonce = load_nonce(path);
  REQUIRE(final_nonce);
  for (size_t off = 0; off < reported.size(); off += 8)
    CHECK(load_le64(reported.data() + off) == *final_nonce);
  CHECK(list_dir(dir.path()) == std::vector<std::string>{"nonce"});
}
