#include <catch2/catch.hpp>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/atomic_file.hpp"
#include "base/errc.hpp"
#include "base/file_system.hpp"
#include "support/file_bytes.hpp"
#include "support/temp_dir.hpp"

using namespace mesh;

namespace {

file_system& fs = *real_file_system();

size_t entries_in(const std::string& dir) {
  auto names = fs.list_dir(dir);
  REQUIRE(names);
  return names->size();
}

} // namespace

TEST_CASE("write_file_atomic replaces the target with exact mode bits") {
  test::temp_dir tmp;
  auto path = tmp / "f";
  REQUIRE(!write_file_atomic(fs, path, bytes_view{"one"}, 0600));
  REQUIRE(!write_file_atomic(fs, path, bytes_view{"two"}, 0640));
  auto got = read_small_file(fs, path, 100);
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
  auto created = create_file_atomic(fs, path, bytes_view{"data"}, 0644);
  REQUIRE(created);
  CHECK(*created);
  REQUIRE(!write_file_atomic(fs, path, bytes_view{"more"}, 0644));
}

TEST_CASE("create_file_atomic keeps the first file and reports the loser") {
  test::temp_dir tmp;
  auto path = tmp / "f";
  auto first = create_file_atomic(fs, path, bytes_view{"first"}, 0644);
  auto second = create_file_atomic(fs, path, bytes_view{"second"}, 0644);
  REQUIRE(first);
  REQUIRE(second);
  CHECK(*first);
  CHECK_FALSE(*second);
  CHECK(test::slurp(path) == std::vector<uint8_t>{'f', 'i', 'r', 's', 't'});
}

TEST_CASE("atomic writes into a missing directory fail and create nothing") {
  test::temp_dir tmp;
  auto err = write_file_atomic(fs, tmp / "missing/f", bytes_view{"x"}, 0600);
  CHECK(is(err, errc::not_found));
  CHECK_FALSE(test::exists(tmp / "missing"));
}

TEST_CASE("read_small_file refuses oversized files, directories and FIFOs") {
  test::temp_dir tmp;
  test::spit(tmp / "big", std::vector<uint8_t>(200, 'b'));
  auto big = read_small_file(fs, tmp / "big", 100);
  REQUIRE(!big);
  CHECK(is(big.error(), errc::corrupt_data));
  CHECK(
    is(read_small_file(fs, tmp.path(), 100).error(), errc::invalid_argument));
  REQUIRE(::mkfifo((tmp / "fifo").c_str(), 0600) == 0);
  auto fifo = read_small_file(fs, tmp / "fifo", 100);
  REQUIRE(!fifo);
  CHECK(is(fifo.error(), errc::invalid_argument));
  CHECK(is(read_small_file(fs, tmp / "nope", 100).error(), errc::not_found));
}

TEST_CASE("write_file_atomic does all its I/O through the given file system") {
  test::temp_dir tmp;
  auto path = tmp / "f";
  REQUIRE(!write_file_atomic(fs, path, bytes_view{"old"}, 0600));
  fault_injecting_file_system faulty{&fs};

  SECTION("a failed temp write leaves the old file and no temp file") {
    faulty.fail_nth(fs_op::write, 1, 2);
    auto err = write_file_atomic(faulty, path, bytes_view{"new"}, 0600);
    CHECK(is(err, errc::io_error));
  }
  SECTION("a failed rename leaves the old file and no temp file") {
    faulty.fail_nth(fs_op::rename, 1);
    CHECK(is(write_file_atomic(faulty, path, bytes_view{"new"}, 0600),
             errc::io_error));
  }
  CHECK(faulty.failures() == 1);
  CHECK(entries_in(tmp.path()) == 1);
  auto got = read_small_file(fs, path, 100);
  REQUIRE(got);
  CHECK(std::string(got->begin(), got->end()) == "old");
}

TEST_CASE("write_file_atomic reports a failed directory fsync") {
  test::temp_dir tmp;
  fault_injecting_file_system faulty{&fs};
  faulty.fail_nth(fs_op::sync, 1);
  auto err = write_file_atomic(faulty, tmp / "f", bytes_view{"x"}, 0600);
  CHECK(is(err, errc::io_error));
  CHECK(faulty.calls(fs_op::sync) == 1);
}

TEST_CASE("create_file_atomic reports a failed link and removes its temp") {
  test::temp_dir tmp;
  fault_injecting_file_system faulty{&fs};
  faulty.fail_nth(fs_op::link, 1);
  auto r = create_file_atomic(faulty, tmp / "f", bytes_view{"x"}, 0600);
  REQUIRE(!r);
  CHECK(is(r.error(), errc::io_error));
  CHECK(entries_in(tmp.path()) == 0);
}

TEST_CASE("read_small_file reads /dev/zero as refused, not forever") {
  auto r = read_small_file(fs, "/dev/zero", 100);
  REQUIRE(!r);
  CHECK(is(r.error(), errc::invalid_argument));
}

// -- many files, one flush ----------------------------------------------------

namespace {

/// Records the order of the calls write_files_atomic makes.
class order_fs final : public forwarding_file_system {
public:
  explicit order_fs(file_system* base) : forwarding_file_system(base) {}

  std::vector<std::string> calls;

  caf::error write_new_file(const std::string& path, bytes_view data,
                            unsigned mode, file_sync when) override {
    calls.push_back(when == file_sync::now ? "write+fsync" : "write");
    return forwarding_file_system::write_new_file(path, data, mode, when);
  }
  caf::error rename(const std::string& from, const std::string& to) override {
    calls.push_back("rename");
    return forwarding_file_system::rename(from, to);
  }
  caf::error sync_all(const std::string& path) override {
    calls.push_back("sync_all");
    return forwarding_file_system::sync_all(path);
  }
  caf::error sync_dir(const std::string& path) override {
    calls.push_back("sync_dir");
    return forwarding_file_system::sync_dir(path);
  }
};

std::string text_of(const std::string& path) {
  auto got = read_small_file(fs, path, 100);
  REQUIRE(got);
  return std::string(got->begin(), got->end());
}

std::vector<std::pair<std::string, bytes_view>>
three_files(const test::temp_dir& tmp) {
  return {{tmp / "a", bytes_view{"new a"}},
          {tmp / "b", bytes_view{"new b"}},
          {tmp / "c", bytes_view{"new c"}}};
}

void write_old(const test::temp_dir& tmp) {
  for (auto name : {"a", "b", "c"})
    REQUIRE(!write_file_atomic(fs, tmp / name, bytes_view{"old"}, 0600));
}

} // namespace

TEST_CASE("write_files_atomic replaces every file with one flush, all temp "
          "files written before any rename") {
  test::temp_dir tmp;
  write_old(tmp);
  order_fs ofs{&fs};
  auto errs = write_files_atomic(ofs, three_files(tmp), 0640);
  REQUIRE(errs.size() == 3);
  for (auto& e : errs)
    CHECK(!e);
  CHECK(ofs.calls
        == std::vector<std::string>{"write", "write", "write", "sync_all",
                                    "rename", "rename", "rename", "sync_dir"});
  for (auto name : {"a", "b", "c"}) {
    CHECK(text_of(tmp / name) == std::string{"new "} + name);
    struct stat st;
    REQUIRE(::stat((tmp / name).c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0640);
  }
  CHECK(entries_in(tmp.path()) == 3);
}

TEST_CASE("write_files_atomic fails only the files whose steps failed") {
  test::temp_dir tmp;
  write_old(tmp);
  fault_injecting_file_system faulty{&fs};

  SECTION("a failed flush fails every file and renames none") {
    faulty.fail_nth(fs_op::sync, 1);
    auto errs = write_files_atomic(faulty, three_files(tmp), 0600);
    for (auto& e : errs)
      CHECK(is(e, errc::io_error));
    for (auto name : {"a", "b", "c"})
      CHECK(text_of(tmp / name) == "old");
  }
  SECTION("a failed temp write fails its file only") {
    faulty.fail_nth(fs_op::write, 2, 2);
    auto errs = write_files_atomic(faulty, three_files(tmp), 0600);
    CHECK(!errs[0]);
    CHECK(is(errs[1], errc::io_error));
    CHECK(!errs[2]);
    CHECK(text_of(tmp / "a") == "new a");
    CHECK(text_of(tmp / "b") == "old");
    CHECK(text_of(tmp / "c") == "new c");
  }
  SECTION("a failed rename fails its file only") {
    faulty.fail_nth(fs_op::rename, 3);
    auto errs = write_files_atomic(faulty, three_files(tmp), 0600);
    CHECK(!errs[0]);
    CHECK(!errs[1]);
    CHECK(is(errs[2], errc::io_error));
    CHECK(text_of(tmp / "c") == "old");
  }
  SECTION("a failed directory fsync fails the files renamed into it") {
    faulty.fail_nth(fs_op::sync, 2);
    auto errs = write_files_atomic(faulty, three_files(tmp), 0600);
    for (auto& e : errs)
      CHECK(is(e, errc::io_error));
  }
  // Never a temp file left behind.
  CHECK(entries_in(tmp.path()) == 3);
}
