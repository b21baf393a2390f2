#include <catch2/catch.hpp>

#include <fstream>

#include <sys/stat.h>

#include "base/errc.hpp"
#include "mesh/psk.hpp"
#include "support/temp_dir.hpp"

using namespace mesh;
using mesh::test::temp_dir;

namespace {

void write(const std::string& path, const std::string& text,
           unsigned mode = 0600) {
  std::ofstream{path, std::ios::binary} << text;
  ::chmod(path.c_str(), mode);
}

const std::string digits(64, 'a');

} // namespace

TEST_CASE("a new PSK file loads back, mode 0600, and is never overwritten") {
  temp_dir dir;
  auto path = dir / "mesh.psk";
  auto made = write_new_psk_file(path);
  REQUIRE(made);
  CHECK(!made->is_open());
  struct stat st {};
  REQUIRE(::stat(path.c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);
  CHECK(st.st_size == 65);
  auto loaded = load_psk_file(path);
  REQUIRE(loaded);
  CHECK(*loaded == *made);
  auto again = write_new_psk_file(path);
  REQUIRE(!again);
  CHECK(is(again.error(), errc::already_exists));
  CHECK(*load_psk_file(path) == *made);
  // Two fresh keys differ.
  auto other = write_new_psk_file(dir / "other.psk");
  REQUIRE(other);
  CHECK(*other != *made);
}

TEST_CASE("a PSK file without a trailing newline, or in upper case, loads") {
  temp_dir dir;
  write(dir / "a", digits);
  write(dir / "b", std::string(64, 'A') + "\n");
  auto a = load_psk_file(dir / "a");
  auto b = load_psk_file(dir / "b");
  REQUIRE(a);
  REQUIRE(b);
  CHECK(*a == *b);
  CHECK(a->bytes()[0] == 0xaa);
}

TEST_CASE("a bad PSK file is one clear error") {
  temp_dir dir;
  auto check = [&](const std::string& name, errc code, const char* says) {
    auto got = load_psk_file(dir / name);
    REQUIRE(!got);
    auto text = describe(got.error());
    INFO(text);
    CHECK(is(got.error(), code));
    CHECK(text.find(dir / name) != std::string::npos);
    CHECK(text.find(says) != std::string::npos);
    CHECK(text.find('\n') == std::string::npos);
  };
  check("missing", errc::not_found, "does not exist");
  write(dir / "short", std::string(63, 'a'));
  check("short", errc::corrupt_data, "64 hex digits");
  write(dir / "long", digits + "a");
  check("long", errc::corrupt_data, "64 hex digits");
  write(dir / "two-lines", digits + "\n\n");
  check("two-lines", errc::corrupt_data, "too long");
  write(dir / "not-hex", std::string(63, 'a') + "g");
  check("not-hex", errc::corrupt_data, "not hex");
  write(dir / "empty", "");
  check("empty", errc::corrupt_data, "0 bytes");
  write(dir / "group", digits, 0640);
  check("group", errc::insecure_permissions, "0640");
  write(dir / "world", digits, 0604);
  check("world", errc::insecure_permissions, "chmod 0600");
  ::mkdir((dir / "dir").c_str(), 0700);
  check("dir", errc::invalid_argument, "not a regular file");
}

TEST_CASE("the open PSK is all zero and compares by value") {
  CHECK(psk::open().is_open());
  CHECK(psk::open() == psk::open());
  auto g = psk::generate();
  CHECK(g != psk::open());
  CHECK(g.clone() == g);
  auto moved = std::move(g);
  CHECK(g.is_open()); // moved-from is wiped
  CHECK(!moved.is_open());
}
