#include <catch2/catch.hpp>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "base/errc.hpp"
#include "mesh/capabilities.hpp"

using namespace mesh;

TEST_CASE("tags of the allowed characters pass", "[capabilities]") {
  for (const char* tag : {"gpu", "zone:eu-west/1", "A_b.9", "x"})
    CHECK(!check_tag(tag));
  CHECK(!check_tag(std::string(max_capability_text, 'a')));
}

TEST_CASE("bad tags are refused with a line that says why", "[capabilities]") {
  auto err = check_tag("");
  CHECK(is(err, errc::invalid_argument));
  CHECK(describe(err).find("empty") != std::string::npos);
  err = check_tag("gp u");
  CHECK(is(err, errc::invalid_argument));
  CHECK(describe(err).find("byte 32") != std::string::npos);
  err = check_tag("a=b");
  CHECK(describe(err).find("'='") != std::string::npos);
  CHECK(is(check_tag("caf\xc3\xa9"), errc::invalid_argument));
  CHECK(is(check_tag(std::string("a\0b", 3)), errc::invalid_argument));
  CHECK(is(check_tag(std::string(max_capability_text + 1, 'a')),
           errc::invalid_argument));
  // Control characters never reach the error line.
  err = check_tag("a\x1b[31mb");
  CHECK(describe(err).find('\x1b') == std::string::npos);
}

TEST_CASE("labels parse as K=V", "[capabilities]") {
  auto kv = parse_label("zone=eu-west-1");
  REQUIRE(kv);
  CHECK(kv->first == "zone");
  CHECK(kv->second == "eu-west-1");
  // The first '=' splits; a second one is a bad character of the value.
  CHECK(is(parse_label("a=b=c").error(), errc::invalid_argument));
  auto err = parse_label("zone");
  REQUIRE(!err);
  CHECK(describe(err.error()).find("no '='") != std::string::npos);
  err = parse_label("=eu");
  CHECK(describe(err.error()).find("key is empty") != std::string::npos);
  err = parse_label("zone=");
  CHECK(describe(err.error()).find("value is empty") != std::string::npos);
  err = parse_label("zo ne=eu");
  CHECK(describe(err.error()).find("key contains") != std::string::npos);
  err = parse_label("zone=e u");
  CHECK(describe(err.error()).find("value contains") != std::string::npos);
}

TEST_CASE("capabilities sort tags and kinds and detect the machine",
          "[capabilities]") {
  auto caps = detect_capabilities({"ssd", "gpu", "ssd"}, {"zone=eu", "rack=r1"},
                                  {"counter", "echo", "counter"});
  REQUIRE(caps);
  CHECK(caps->tags == std::vector<std::string>{"gpu", "ssd"});
  CHECK(caps->kinds == std::vector<std::string>{"counter", "echo"});
  CHECK(caps->labels.at("zone") == "eu");
  CHECK(caps->labels.at("rack") == "r1");
  CHECK(caps->cores >= 1);
  CHECK(caps->cores == detect_cores());
  CHECK(caps->memory_mb > 0);
  CHECK(caps->memory_mb == detect_memory_mb());
}

TEST_CASE("bad tags or labels stop capability detection", "[capabilities]") {
  CHECK(is(detect_capabilities({"ok", "not ok"}, {}, {}).error(),
           errc::invalid_argument));
  CHECK(
    is(detect_capabilities({}, {"zone"}, {}).error(), errc::invalid_argument));
  auto dup = detect_capabilities({}, {"zone=a", "zone=b"}, {});
  REQUIRE(!dup);
  CHECK(describe(dup.error()).find("more than once") != std::string::npos);
}

TEST_CASE("saturation is the load per core, clamped", "[capabilities]") {
  CHECK(saturation_of(2.0, 4) == Approx(0.5));
  CHECK(saturation_of(3.0, 1) == Approx(3.0));
  CHECK(saturation_of(2.0, 0) == Approx(2.0));
  CHECK(saturation_of(-1.0, 4) == 0);
  CHECK(saturation_of(std::nan(""), 4) == 0);
  CHECK(saturation_of(1e9, 1) == 1000);
  CHECK(saturation_of(std::numeric_limits<double>::infinity(), 1) == 1000);
  auto now = current_saturation(detect_cores());
  CHECK(now >= 0);
  CHECK(now <= 1000);
}
