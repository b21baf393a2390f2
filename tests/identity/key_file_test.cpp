#include <catch2/catch.hpp>

#include <fstream>
#include <string>
#include <vector>

#include <dirent.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include "base/errc.hpp"
#include "identity/key_file.hpp"
#include "identity/key_file_format.hpp"
#include "support/temp_dir.hpp"

using namespace mesh;
using mesh::test::temp_dir;

namespace {

namespace fmt = key_file_format;

keypair test_key() {
  key_seed seed;
  for (size_t i = 0; i < seed.size(); ++i)
    seed[i] = static_cast<uint8_t>(i * 7 + 1);
  return keypair::from_seed(seed);
}

bytes valid_image(const keypair& kp) {
  bytes out{'M', 'S', 'H', 'K', fmt::version};
  out.insert(out.end(), kp.seed().begin(), kp.seed().end());
  out.insert(out.end(), kp.id().begin(), kp.id().end());
  return out;
}

void write_raw(const std::string& path, const bytes& data, mode_t mode = 0600) {
  {
    std::ofstream out{path, std::ios::binary | std::ios::trunc};
    out.write(reinterpret_cast<const char*>(data.data()),
              static_cast<std::streamsize>(data.size()));
    REQUIRE(out.good());
  }
  REQUIRE(::chmod(path.c_str(), mode) == 0);
}

bytes read_raw(const std::string& path) {
  std::ifstream in{path, std::ios::binary};
  return bytes{std::istreambuf_iterator<char>{in}, {}};
}

mode_t mode_of(const std::string& path) {
  struct stat st;
  REQUIRE(::stat(path.c_str(), &st) == 0);
  return st.st_mode & 07777;
}

std::vector<std::string> entries(const std::string& dir) {
  std::vector<std::string> out;
  auto* d = ::opendir(dir.c_str());
  REQUIRE(d != nullptr);
  while (auto* e = ::readdir(d)) {
    std::string name = e->d_name;
    if (name != "." && name != "..")
      out.push_back(name);
  }
  ::closedir(d);
  return out;
}

// Sets the process umask for one scope.
class umask_guard {
public:
  explicit umask_guard(mode_t mask) : old_(::umask(mask)) {}
  ~umask_guard() {
    ::umask(old_);
  }

private:
  mode_t old_;
};

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

} // namespace

TEST_CASE("key file round trip preserves the keypair") {
  temp_dir dir;
  auto path = dir / "node.key";
  auto kp = test_key();
  REQUIRE_FALSE(save_key_file(path, kp));
  auto loaded = load_key_file(path);
  REQUIRE(loaded);
  CHECK(*loaded == kp);
  CHECK(loaded->id() == kp.id());
}

TEST_CASE("key file of a generated keypair round trips") {
  temp_dir dir;
  auto path = dir / "daemon.key";
  auto kp = keypair::generate();
  REQUIRE_FALSE(save_key_file(path, kp));
  auto loaded = load_key_file(path);
  REQUIRE(loaded);
  CHECK(*loaded == kp);
}

TEST_CASE("key file bytes follow the documented version 1 layout") {
  temp_dir dir;
  auto path = dir / "node.key";
  auto kp = test_key();
  REQUIRE_FALSE(save_key_file(path, kp));
  auto raw = read_raw(path);
  REQUIRE(raw.size() == 69);
  CHECK(raw == valid_image(kp));
}

TEST_CASE("saved key file has mode 0600 even under a permissive umask") {
  temp_dir dir;
  auto path = dir / "node.key";
  umask_guard guard{0};
  REQUIRE_FALSE(save_key_file(path, test_key()));
  CHECK(mode_of(path) == 0600);
}

TEST_CASE("saving over a world-readable key file leaves mode 0600") {
  temp_dir dir;
  auto path = dir / "node.key";
  write_raw(path, bytes{1, 2, 3}, 0644);
  REQUIRE_FALSE(save_key_file(path, test_key()));
  CHECK(mode_of(path) == 0600);
  CHECK(load_key_file(path));
}

TEST_CASE("replacing a key file leaves no temp files behind") {
  temp_dir dir;
  auto path = dir / "node.key";
  REQUIRE_FALSE(save_key_file(path, keypair::generate()));
  auto second = keypair::generate();
  REQUIRE_FALSE(save_key_file(path, second));
  CHECK(entries(dir.path()) == std::vector<std::string>{"node.key"});
  auto loaded = load_key_file(path);
  REQUIRE(loaded);
  CHECK(*loaded == second);
}

TEST_CASE("saving into a missing directory fails and does not create it") {
  temp_dir dir;
  auto missing = dir / "no-such-dir";
  auto err = save_key_file(missing + "/node.key", test_key());
  CHECK(is(err, errc::not_found));
  CHECK(contains(describe(err), missing));
  CHECK(contains(describe(err), "does not exist"));
  struct stat st;
  CHECK(::stat(missing.c_str(), &st) != 0);
  CHECK(entries(dir.path()).empty());
}

TEST_CASE("saving an empty keypair fails invalid_argument") {
  temp_dir dir;
  auto kp = test_key();
  auto moved = std::move(kp);
  auto err = save_key_file(dir / "node.key", kp);
  CHECK(is(err, errc::invalid_argument));
  CHECK(entries(dir.path()).empty());
}

TEST_CASE("loading a missing key file fails not_found") {
  temp_dir dir;
  auto path = dir / "absent.key";
  auto loaded = load_key_file(path);
  REQUIRE_FALSE(loaded);
  CHECK(is(loaded.error(), errc::not_found));
  CHECK(contains(describe(loaded.error()), path));
}

TEST_CASE("loading a truncated key file names the length found and expected") {
  temp_dir dir;
  auto path = dir / "node.key";
  auto image = valid_image(test_key());
  image.pop_back();
  write_raw(path, image);
  auto loaded = load_key_file(path);
  REQUIRE_FALSE(loaded);
  CHECK(is(loaded.error(), errc::corrupt_data));
  CHECK(contains(describe(loaded.error()), "68 bytes"));
  CHECK(contains(describe(loaded.error()), "expected 69"));
}

TEST_CASE("loading a key file shorter than its header names the length") {
  temp_dir dir;
  auto path = dir / "node.key";
  write_raw(path, bytes{'M', 'S'});
  auto loaded = load_key_file(path);
  REQUIRE_FALSE(loaded);
  CHECK(is(loaded.error(), errc::corrupt_data));
  CHECK(contains(describe(loaded.error()), "2 bytes"));
  CHECK(contains(describe(loaded.error()), "expected 69"));
}

TEST_CASE("loading an empty key file names the length") {
  temp_dir dir;
  auto path = dir / "node.key";
  write_raw(path, bytes{});
  auto loaded = load_key_file(path);
  REQUIRE_FALSE(loaded);
  CHECK(is(loaded.error(), errc::corrupt_data));
  CHECK(contains(describe(loaded.error()), "0 bytes"));
}

TEST_CASE("loading an overlong key file names the length found and expected") {
  temp_dir dir;
  auto path = dir / "node.key";
  auto image = valid_image(test_key());
  image.push_back(0);
  write_raw(path, image);
  auto loaded = load_key_file(path);
  REQUIRE_FALSE(loaded);
  CHECK(is(loaded.error(), errc::corrupt_data));
  CHECK(contains(describe(loaded.error()), "70 bytes"));
  CHECK(contains(describe(loaded.error()), "expected 69"));
}

TEST_CASE("loading a huge file reports its full length") {
  temp_dir dir;
  auto path = dir / "node.key";
  write_raw(path, bytes(100000, 'x'));
  auto loaded = load_key_file(path);
  REQUIRE_FALSE(loaded);
  CHECK(is(loaded.error(), errc::corrupt_data));
  CHECK(contains(describe(loaded.error()), "100000 bytes"));
}

TEST_CASE("loading a key file with bad magic fails corrupt_data") {
  temp_dir dir;
  auto path = dir / "node.key";
  auto image = valid_image(test_key());
  image[0] = 'X';
  write_raw(path, image);
  auto loaded = load_key_file(path);
  REQUIRE_FALSE(loaded);
  CHECK(is(loaded.error(), errc::corrupt_data));
  CHECK(contains(describe(loaded.error()), "bad magic 0x5853484b"));
}

TEST_CASE("loading a key file with an unknown version names the byte") {
  temp_dir dir;
  auto path = dir / "node.key";
  auto image = valid_image(test_key());
  image[4] = 0x07;
  // A future version may have another length: the version is reported, not
  // the length.
  image.push_back(0);
  write_raw(path, image);
  auto loaded = load_key_file(path);
  REQUIRE_FALSE(loaded);
  CHECK(is(loaded.error(), errc::unsupported_version));
  CHECK(contains(describe(loaded.error()), "0x07"));
}

TEST_CASE("loading a key file whose public key mismatches the seed fails "
          "corrupt_data") {
  temp_dir dir;
  auto path = dir / "node.key";
  auto image = valid_image(test_key());
  image[fmt::public_key_offset + 3] ^= 0x01;
  write_raw(path, image);
  auto loaded = load_key_file(path);
  REQUIRE_FALSE(loaded);
  CHECK(is(loaded.error(), errc::corrupt_data));
  CHECK(contains(describe(loaded.error()), "does not match the seed"));
}

TEST_CASE("loading a key file with a damaged seed fails corrupt_data") {
  temp_dir dir;
  auto path = dir / "node.key";
  auto image = valid_image(test_key());
  image[fmt::seed_offset] ^= 0x80;
  write_raw(path, image);
  auto loaded = load_key_file(path);
  REQUIRE_FALSE(loaded);
  CHECK(is(loaded.error(), errc::corrupt_data));
}

TEST_CASE("loading a key file readable by group or others fails "
          "insecure_permissions naming the mode") {
  temp_dir dir;
  auto path = dir / "node.key";
  REQUIRE_FALSE(save_key_file(path, test_key()));
  for (mode_t mode : {0640, 0604, 0620, 0602, 0610, 0601, 0644, 0666}) {
    REQUIRE(::chmod(path.c_str(), mode) == 0);
    auto loaded = load_key_file(path);
    REQUIRE_FALSE(loaded);
    CHECK(is(loaded.error(), errc::insecure_permissions));
    char octal[8];
    std::snprintf(octal, sizeof(octal), "%04o", static_cast<unsigned>(mode));
    INFO(describe(loaded.error()));
    CHECK(contains(describe(loaded.error()), octal));
  }
}

TEST_CASE("permissions are checked before the content") {
  temp_dir dir;
  auto path = dir / "node.key";
  write_raw(path, bytes{'j', 'u', 'n', 'k'}, 0644);
  auto loaded = load_key_file(path);
  REQUIRE_FALSE(loaded);
  CHECK(is(loaded.error(), errc::insecure_permissions));
}

TEST_CASE("owner-only modes other than 0600 load") {
  temp_dir dir;
  auto path = dir / "node.key";
  REQUIRE_FALSE(save_key_file(path, test_key()));
  REQUIRE(::chmod(path.c_str(), 0400) == 0);
  CHECK(load_key_file(path));
}

TEST_CASE("loading a directory fails invalid_argument") {
  temp_dir dir;
  auto loaded = load_key_file(dir.path());
  REQUIRE_FALSE(loaded);
  CHECK(is(loaded.error(), errc::invalid_argument));
}

TEST_CASE("loading a FIFO fails invalid_argument without blocking") {
  temp_dir dir;
  auto path = dir / "node.key";
  REQUIRE(::mkfifo(path.c_str(), 0600) == 0);
  auto loaded = load_key_file(path);
  REQUIRE_FALSE(loaded);
  CHECK(is(loaded.error(), errc::invalid_argument));
}

TEST_CASE("load_or_create_key_file creates a key on first use and then keeps "
          "it") {
  temp_dir dir;
  auto path = dir / "node.key";
  bool created = false;
  auto first = load_or_create_key_file(path, &created);
  REQUIRE(first);
  CHECK(created);
  CHECK(mode_of(path) == 0600);
  auto second = load_or_create_key_file(path, &created);
  REQUIRE(second);
  CHECK_FALSE(created);
  CHECK(*second == *first);
}

TEST_CASE("load_or_create_key_file never replaces a damaged or unreadable "
          "key") {
  temp_dir dir;
  auto path = dir / "node.key";
  auto image = valid_image(test_key());
  image[fmt::seed_offset] ^= 0x80;
  write_raw(path, image);
  auto damaged = load_or_create_key_file(path);
  REQUIRE_FALSE(damaged);
  CHECK(is(damaged.error(), errc::corrupt_data));
  CHECK(read_raw(path) == image);
  REQUIRE_FALSE(save_key_file(path, test_key()));
  REQUIRE(::chmod(path.c_str(), 0644) == 0);
  auto exposed = load_or_create_key_file(path);
  REQUIRE_FALSE(exposed);
  CHECK(is(exposed.error(), errc::insecure_permissions));
  CHECK(read_raw(path) == valid_image(test_key()));
}

TEST_CASE("load_or_create_key_file does not create a missing directory") {
  temp_dir dir;
  auto path = dir / "missing/node.key";
  auto r = load_or_create_key_file(path);
  REQUIRE_FALSE(r);
  CHECK(is(r.error(), errc::not_found));
  struct stat st {};
  CHECK(::stat((dir / "missing").c_str(), &st) != 0);
}
