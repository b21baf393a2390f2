#include <catch2/catch.hpp>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/atomic_file.hpp"
#include "base/errc.hpp"
#include "support/file_bytes.hpp"
#include "support/temp_dir.hpp"

using namespace mesh;

TEST_CASE("write_file_atomic replaces the target with exact mode bits") {
  test::temp_dir tmp;
  auto path = tmp / "f";
  REQUIRE(!write_file_atomic(path, bytes_view{"one"}, 0600));
  REQUIRE(!write_file_atomic(path, bytes_view{"two"}, 0640));
  auto got = read_small_file(path, 100);
  REQUIRE(got);
  CHECK(std::string(got->begin(), got->end()) == "two");
  struct stat st;
  REQUIRE(::stat(path.c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0640);
}

TEST_CASE("a stale temp file from a crashed process with our pid does not "
          "block creation") {
  test::temp_dir tmp;
  auto path = tmp / "f";
  // What a process with this pid that crashed mid-create leaves behind.
  test::spit(path + ".tmp." + std::to_string(::getpid()) + ".0", {'x'});
  test::spit(path + ".tmp." + std::to_string(::getpid()) + ".1", {'x'});
  auto created = create_file_atomic(path, bytes_view{"data"}, 0644);
  REQUIRE(created);
  CHECK(*created);
  REQUIRE(!write_file_atomic(path, bytes_view{"more"}, 0644));
}

TEST_CASE("create_file_atomic keeps the first file and reports the loser") {
  test::temp_dir tmp;
  auto path = tmp / "f";
  auto first = create_file_atomic(path, bytes_view{"first"}, 0644);
  auto second = create_file_atomic(path, bytes_view{"second"}, 0644);
  REQUIRE(first);
  REQUIRE(second);
  CHECK(*first);
  CHECK_FALSE(*second);
  CHECK(test::slurp(path) == std::vector<uint8_t>{'f', 'i', 'r', 's', 't'});
}

TEST_CASE("atomic writes into a missing directory fail and create nothing") {
  test::temp_dir tmp;
  auto err = write_file_atomic(tmp / "missing/f", bytes_view{"x"}, 0600);
  CHECK(is(err, errc::not_found));
  CHECK_FALSE(test::exists(tmp / "missing"));
}

TEST_CASE("read_small_file refuses oversized files, directories and FIFOs") {
  test::temp_dir tmp;
  test::spit(tmp / "big", std::vector<uint8_t>(200, 'b'));
  auto big = read_small_file(tmp / "big", 100);
  REQUIRE(!big);
  CHECK(is(big.error(), errc::corrupt_data));
  CHECK(is(read_small_file(tmp.path(), 100).error(), errc::invalid_argument));
  REQUIRE(::mkfifo((tmp / "fifo").c_str(), 0600) == 0);
  auto fifo = read_small_file(tmp / "fifo", 100);
  REQUIRE(!fifo);
  CHECK(is(fifo.error(), errc::invalid_argument));
  CHECK(is(read_small_file(tmp / "nope", 100).error(), errc::not_found));
}
