#include <catch2/catch.hpp>

#include "base/bytes.hpp"
#include "base/errc.hpp"

using namespace mesh;

TEST_CASE("errc values render their names and context") {
  auto err = make_error(errc::io_error, "open /x: denied");
  CHECK(is(err, errc::io_error));
  CHECK_FALSE(is(err, errc::corrupt_data));
  CHECK(describe(err) == "io_error: open /x: denied");
  CHECK(describe(make_error(errc::poisoned)) == "poisoned");
  CHECK(describe(caf::error{}) == "ok");
}

TEST_CASE("errc converts implicitly through CAF's error factory") {
  caf::error err = errc::timeout;
  CHECK(code_of(err) == errc::timeout);
}

TEST_CASE("hex round trip and rejection of bad input") {
  bytes b{0x00, 0xab, 0xff};
  CHECK(to_hex(b) == "00abff");
  bytes out;
  REQUIRE(from_hex("00ABff", out));
  CHECK(out == b);
  CHECK_FALSE(from_hex("abc", out));
  CHECK_FALSE(from_hex("zz", out));
  CHECK(hex_u64(0x1f) == "0x000000000000001f");
}

TEST_CASE("little-endian codecs round trip") {
  uint8_t buf[8];
  store_le64(buf, 0x0102030405060708ull);
  CHECK(buf[0] == 0x08);
  CHECK(load_le64(buf) == 0x0102030405060708ull);
  store_le32(buf, 0xdeadbeef);
  CHECK(buf[0] == 0xef);
  CHECK(load_le32(buf) == 0xdeadbeefu);
}
