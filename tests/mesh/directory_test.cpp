// The directory contract run against the embedded backend, plus what only
// the embedded backend has: its size bound and bucket anti-entropy.

#include <memory>

#include "mesh/directory.hpp"

namespace {

struct embedded_backend {
  static std::unique_ptr<mesh::directory> make() {
    return std::make_unique<mesh::embedded_directory>();
  }
};

} // namespace

#define MESHD_DIRECTORY_BACKENDS embedded_backend
#include "mesh/directory_contract.hpp"

namespace {

/// Origins spread over the whole 64-bit range, as XXH3 hashes are.
uint64_t spread(uint64_t i) {
  uint64_t z = (i + 1) * 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

} // namespace

using namespace mesh;
using contract::entry;

TEST_CASE("embedded directory: a full table refuses new origins but takes "
          "updates of known ones") {
  embedded_directory d{3};
  REQUIRE(d.merge({entry(1, 1, 1), entry(2, 1, 1), entry(3, 1, 1)}));
  auto r = d.publish(entry(4, 1, 1));
  REQUIRE(!r);
  CHECK(is(r.error(), errc::limit_exceeded));
  CHECK(describe(r.error()).find("0x0000000000000004") != std::string::npos);
  auto update = d.publish(entry(2, 1, 2));
  REQUIRE(update);
  CHECK(*update);
  CHECK(*d.size() == 3);
}

TEST_CASE("embedded directory: a merge over the bound applies nothing") {
  embedded_directory d{4};
  REQUIRE(d.merge({entry(1, 1, 1), entry(2, 1, 1)}));
  auto before = *d.digest();
  SECTION("a batch larger than the bound") {
    std::vector<directory_entry> big(5, entry(1, 1, 9));
    auto m = d.merge(big);
    REQUIRE(!m);
    CHECK(is(m.error(), errc::limit_exceeded));
  }
  SECTION("a batch whose new origins overflow the table") {
    // Two updates of known origins (which would apply) and three new ones:
    // 2 + 3 > 4, so none of it lands.
    auto m = d.merge({entry(1, 1, 5), entry(2, 1, 5), entry(3, 1, 1),
                      entry(4, 1, 1), entry(5, 1, 1)});
    REQUIRE(!m);
    CHECK(is(m.error(), errc::limit_exceeded));
  }
  CHECK(*d.digest() == before);
  CHECK(*d.size() == 2);
  // Exactly filling it is fine, duplicates of one new origin count once.
  auto fill = d.merge({entry(3, 1, 1), entry(3, 1, 2), entry(4, 1, 1)});
  REQUIRE(fill);
  CHECK(*fill == 3);
  CHECK(*d.size() == 4);
}

TEST_CASE("embedded directory: the default bound is ten million entries") {
  CHECK(embedded_directory::default_max_entries == 10'000'000);
}

TEST_CASE("embedded directory: bucket digests sum to the digest and cover "
          "contiguous origin ranges") {
  embedded_directory d;
  std::vector<directory_entry> batch;
  for (uint64_t i = 0; i < 2000; ++i)
    batch.push_back(entry(spread(i), 1 + i % 3, 1 + i % 7));
  REQUIRE(d.merge(batch));
  auto buckets = d.bucket_digests();
  REQUIRE(buckets.size() == embedded_directory::bucket_count);
  uint64_t sum = 0;
  for (auto b : buckets)
    sum += b;
  CHECK(sum == *d.digest());
  // Every entry comes back from exactly its own bucket.
  std::vector<uint32_t> all;
  for (uint32_t b = 0; b < embedded_directory::bucket_count; ++b)
    all.push_back(b);
  auto back = d.entries_in(all);
  REQUIRE(back);
  CHECK(contract::same(*back, *d.entries()));
  auto first = d.entries_in({0});
  REQUIRE(first);
  for (auto& e : *first)
    CHECK(embedded_directory::bucket_of(e.origin) == 0);
  auto last = d.entries_in({embedded_directory::bucket_count - 1});
  REQUIRE(last);
  CHECK(!last->empty());
  for (auto& e : *last)
    CHECK(embedded_directory::bucket_of(e.origin)
          == embedded_directory::bucket_count - 1);
}

TEST_CASE("embedded directory: anti-entropy repairs a replica that missed "
          "updates by exchanging only the differing buckets") {
  // 100,000 daemons on two replicas; one misses three updates (as a
  // stopped node would) and a fourth it missed is a brand-new origin.
  embedded_directory healthy;
  embedded_directory lagging;
  std::vector<directory_entry> table;
  for (uint64_t i = 0; i < 100'000; ++i)
    table.push_back(entry(spread(i), 1 + i % 3, 1));
  REQUIRE(healthy.merge(table));
  REQUIRE(lagging.merge(table));
  REQUIRE(*healthy.digest() == *lagging.digest());
  std::vector<directory_entry> missed{entry(spread(10), 2, 2),
                                      entry(spread(20'000), 1, 1, true),
                                      entry(spread(99'999), 3, 5),
                                      entry(spread(200'000), 1, 1)};
  REQUIRE(healthy.merge(missed));
  REQUIRE(*healthy.digest() != *lagging.digest());

  auto diff = lagging.differing_buckets(healthy.bucket_digests());
  REQUIRE(diff);
  std::vector<uint32_t> expected;
  for (auto& e : missed)
    expected.push_back(
      static_cast<uint32_t>(embedded_directory::bucket_of(e.origin)));
  std::sort(expected.begin(), expected.end());
  expected.erase(std::unique(expected.begin(), expected.end()), expected.end());
  CHECK(*diff == expected);
  auto repair = healthy.entries_in(*diff);
  REQUIRE(repair);
  // A few buckets' worth, not the table.
  CHECK(repair->size() < 4 * 100'000 / embedded_directory::bucket_count * 2);
  auto applied = lagging.merge(*repair);
  REQUIRE(applied);
  CHECK(*applied == missed.size());
  CHECK(*lagging.digest() == *healthy.digest());
  CHECK(contract::same(*lagging.entries(), *healthy.entries()));
  auto none = lagging.differing_buckets(healthy.bucket_digests());
  REQUIRE(none);
  CHECK(none->empty());
}

TEST_CASE("embedded directory: anti-entropy refuses malformed requests") {
  embedded_directory d;
  auto short_list = d.differing_buckets(std::vector<uint64_t>(3, 0));
  REQUIRE(!short_list);
  CHECK(is(short_list.error(), errc::invalid_argument));
  auto out_of_range = d.entries_in(
    {1, static_cast<uint32_t>(embedded_directory::bucket_count)});
  REQUIRE(!out_of_range);
  CHECK(is(out_of_range.error(), errc::invalid_argument));
}
