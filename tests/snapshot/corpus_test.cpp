// Replays the kept fuzz corpus (tools/fuzz/README.md) through the decoder:
// every input must decode or fail with one of the decoder's own error codes,
// and the valid seeds must still decode, so a format change that breaks them
// is noticed here rather than in the field.

#include <catch2/catch.hpp>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "base/errc.hpp"
#include "snapshot/snapshot.hpp"

using namespace mesh;

namespace {

const std::filesystem::path corpus_dir = std::filesystem::path{MESHD_SOURCE_DIR}
                                         / "tests" / "snapshot" / "corpus";

std::vector<std::filesystem::path> corpus_files() {
  std::vector<std::filesystem::path> out;
  for (const auto& entry : std::filesystem::directory_iterator{corpus_dir})
    if (entry.is_regular_file())
      out.push_back(entry.path());
  std::sort(out.begin(), out.end());
  return out;
}

bytes read_file(const std::filesystem::path& path) {
  std::ifstream in{path, std::ios::binary};
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

bool is_valid_seed(const std::filesystem::path& path) {
  return path.filename().string().rfind("valid-", 0) == 0;
}

} // namespace

TEST_CASE("every corpus file decodes or fails with a decoder error") {
  auto files = corpus_files();
  REQUIRE(files.size() >= 20);
  size_t decoded = 0;
  for (const auto& path : files) {
    INFO(path.filename().string());
    auto data = read_file(path);
    auto dec = decode_snapshot(data);
    if (dec) {
      ++decoded;
      CHECK(dec->format_version == snapshot_format_version);
      continue;
    }
    auto code = code_of(dec.error());
    CHECK((code == errc::corrupt_data || code == errc::bad_signature
           || code == errc::unsupported_version));
  }
  CHECK(decoded >= 1);
}

TEST_CASE("every valid corpus seed decodes") {
  size_t seeds = 0;
  for (const auto& path : corpus_files()) {
    if (!is_valid_seed(path))
      continue;
    ++seeds;
    INFO(path.filename().string());
    auto dec = decode_snapshot(read_file(path));
    CHECK(dec);
  }
  CHECK(seeds >= 1);
}
