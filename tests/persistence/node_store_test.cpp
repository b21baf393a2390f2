// The node's data directory: log entries (one at a time and packed as the
// daemons hand them to the log actor), daemon records and snapshots.

#include <algorithm>
#include <fstream>
#include <string>

#include <catch2/catch.hpp>
#include <xxhash.h>

#include "base/errc.hpp"
#include "base/file_system.hpp"
#include "identity/entity_id.hpp"
#include "identity/keypair.hpp"
#include "persistence/node_store.hpp"
#include "support/temp_dir.hpp"

using namespace mesh;

namespace {

log_entry entry(uint64_t seq, const std::string& payload,
                log_entry::status st = log_entry::status::accepted) {
  log_entry e;
  e.origin_hash = 0x1122334455667788;
  e.epoch = 3;
  e.daemon_seq = seq;
  e.producer_id = 7;
  e.producer_seq = seq + 100;
  e.received_at_ns = 1'700'000'000'000'000'000 + seq;
  e.state = st;
  e.payload.assign(payload.begin(), payload.end());
  return e;
}

void check_same(const log_entry& a, const log_entry& b) {
  CHECK(a.origin_hash == b.origin_hash);
  CHECK(a.epoch == b.epoch);
  CHECK(a.daemon_seq == b.daemon_seq);
  CHECK(a.producer_id == b.producer_id);
  CHECK(a.producer_seq == b.producer_seq);
  CHECK(a.received_at_ns == b.received_at_ns);
  CHECK(a.state == b.state);
  CHECK(a.payload == b.payload);
}

} // namespace

TEST_CASE("a log entry decodes to what was encoded") {
  for (auto st : {log_entry::status::accepted, log_entry::status::rejected}) {
    auto e = entry(3, "payload", st);
    bytes buf;
    encode_log_entry(e, buf);
    CHECK(buf.size() == log_entry_header_size + 7);
    auto d = decode_log_entry(buf);
    REQUIRE(d);
    check_same(*d, e);
  }
}

TEST_CASE("a log entry shorter than its header is corrupt_data") {
  bytes buf;
  encode_log_entry(entry(1, ""), buf);
  buf.pop_back();
  auto d = decode_log_entry(buf);
  REQUIRE(!d);
  CHECK(is(d.error(), errc::corrupt_data));
  CHECK(describe(d.error()).find("48 bytes") != std::string::npos);
  CHECK(describe(d.error()).find("49-byte header") != std::string::npos);
}

TEST_CASE("a version-2 entry cut inside its epoch is corrupt_data") {
  bytes buf;
  encode_log_entry(entry(1, ""), buf);
  for (size_t size : {size_t{41}, size_t{44}}) {
    auto d = decode_log_entry(bytes_view{buf.data(), size});
    REQUIRE(!d);
    CHECK(is(d.error(), errc::corrupt_data));
  }
  auto d = decode_log_entry(bytes_view{buf.data(), 40});
  REQUIRE(!d);
  CHECK(describe(d.error()).find("41-byte header") != std::string::npos);
}

TEST_CASE("a log entry with an unknown status is corrupt_data") {
  bytes buf;
  encode_log_entry(entry(1, "x"), buf);
  buf[40] = 0x12;
  auto d = decode_log_entry(buf);
  REQUIRE(!d);
  CHECK(is(d.error(), errc::corrupt_data));
  CHECK(describe(d.error()).find("status 2") != std::string::npos);
}

TEST_CASE("a log entry of an unknown layout version is unsupported_version") {
  bytes buf;
  encode_log_entry(entry(1, "x"), buf);
  for (uint8_t tag : {uint8_t{0x20}, uint8_t{0x21}, uint8_t{0xf0}}) {
    auto b = buf;
    b[40] = tag;
    auto d = decode_log_entry(b);
    REQUIRE(!d);
    CHECK(is(d.error(), errc::unsupported_version));
    CHECK(describe(d.error()).find("version " + std::to_string((tag >> 4) + 1))
          != std::string::npos);
  }
}

TEST_CASE("a version-2 entry carries its epoch after the tag byte") {
  auto e = entry(9, "pp");
  e.epoch = 0x0102030405060708;
  bytes buf;
  encode_log_entry(e, buf);
  REQUIRE(buf.size() == 49 + 2);
  CHECK(buf[40] == 0x10);
  CHECK(load_le64(buf.data() + 41) == 0x0102030405060708);
  CHECK(load_le64(buf.data() + 8) == 9);
  auto d = decode_log_entry(buf);
  REQUIRE(d);
  check_same(*d, e);
}

namespace {

// The bytes an entry had before epochs existed (format version 1): the
// status alone in byte 40, the payload from byte 41.
bytes v1_entry(const log_entry& e) {
  bytes b(41 + e.payload.size());
  store_le64(b.data(), e.origin_hash);
  store_le64(b.data() + 8, e.daemon_seq);
  store_le64(b.data() + 16, e.producer_id);
  store_le64(b.data() + 24, e.producer_seq);
  store_le64(b.data() + 32, e.received_at_ns);
  b[40] = static_cast<uint8_t>(e.state);
  std::copy(e.payload.begin(), e.payload.end(), b.begin() + 41);
  return b;
}

} // namespace

TEST_CASE("a version-1 entry decodes as an entry of epoch 1") {
  for (auto st : {log_entry::status::accepted, log_entry::status::rejected}) {
    auto e = entry(4, "old", st);
    auto d = decode_log_entry(v1_entry(e));
    REQUIRE(d);
    e.epoch = 1;
    check_same(*d, e);
  }
}

TEST_CASE("a log batch holds each entry's encoding and daemon_seq") {
  log_batch b;
  b.origin_hash = 0x1122334455667788;
  b.epoch = 3;
  std::vector<log_entry> es{entry(1, "a"), entry(2, ""),
                            entry(3, std::string(300, 'z'),
                                  log_entry::status::rejected)};
  for (auto& e : es)
    b.add(e, e.payload);
  REQUIRE(b.size() == 3);
  CHECK(b.epoch == 3);
  for (size_t i = 0; i < es.size(); ++i) {
    bytes single;
    encode_log_entry(es[i], single);
    CHECK(b.entry(i).to_bytes() == single);
    CHECK(b.daemon_seqs[i] == es[i].daemon_seq);
    auto d = decode_log_entry(b.entry(i));
    REQUIRE(d);
    check_same(*d, es[i]);
  }
  b.clear();
  CHECK(b.empty());
  CHECK(b.data.empty());
}

TEST_CASE("encoding with a separate payload ignores the entry's own") {
  auto e = entry(5, "ignored");
  bytes buf;
  std::string other = "used";
  encode_log_entry(e, bytes_view{other}, buf);
  auto d = decode_log_entry(buf);
  REQUIRE(d);
  CHECK(std::string(d->payload.begin(), d->payload.end()) == "used");
}

TEST_CASE("daemon records and snapshots round-trip through the store") {
  test::temp_dir dir;
  node_store store{dir.path()};
  REQUIRE(!store.open());
  auto key = keypair::generate();
  auto origin = origin_hash(key.id());
  REQUIRE(!store.save_daemon(origin, "counter", key, 5));
  auto rec = store.load_daemon(origin);
  REQUIRE(rec);
  CHECK(rec->kind == "counter");
  CHECK(rec->identity.id() == key.id());
  CHECK(rec->epoch == 5);
  CHECK(*store.known_epoch(origin) == 5);
  CHECK(*store.known_epoch(origin + 1) == 0);
  bytes snap{1, 2, 3};
  REQUIRE(!store.save_snapshot(origin, snap));
  auto loaded = store.load_snapshot(origin);
  REQUIRE(loaded);
  CHECK(*loaded == snap);
  auto list = store.list_daemons();
  REQUIRE(list);
  CHECK(*list == std::vector<uint64_t>{origin});
}

TEST_CASE("a daemon record filed under another origin is corrupt_data") {
  test::temp_dir dir;
  node_store store{dir.path()};
  REQUIRE(!store.open());
  auto key = keypair::generate();
  REQUIRE(!store.save_daemon(origin_hash(key.id()) + 1, "counter", key, 1));
  auto rec = store.load_daemon(origin_hash(key.id()) + 1);
  REQUIRE(!rec);
  CHECK(is(rec.error(), errc::corrupt_data));
  CHECK(describe(rec.error()).find("belongs to another daemon")
        != std::string::npos);
}

TEST_CASE("a missing snapshot is not_found and a missing record an error") {
  test::temp_dir dir;
  node_store store{dir.path()};
  REQUIRE(!store.open());
  auto s = store.load_snapshot(9);
  REQUIRE(!s);
  CHECK(is(s.error(), errc::not_found));
  CHECK(!store.load_daemon(9));
}

TEST_CASE("a damaged daemon record is reported, not loaded") {
  test::temp_dir dir;
  node_store store{dir.path()};
  REQUIRE(!store.open());
  auto key = keypair::generate();
  auto origin = origin_hash(key.id());
  REQUIRE(!store.save_daemon(origin, "counter", key, 1));
  auto path = dir.path() + "/daemons/" + origin_file_name(origin);
  {
    std::ofstream f{path, std::ios::binary | std::ios::trunc};
    f << "MSHR";
  }
  auto rec = store.load_daemon(origin);
  REQUIRE(!rec);
  CHECK(is(rec.error(), errc::corrupt_data));
}

TEST_CASE("retiring a daemon leaves a tombstone of its epoch, no snapshot") {
  test::temp_dir dir;
  node_store store{dir.path()};
  REQUIRE(!store.open());
  auto key = keypair::generate();
  auto origin = origin_hash(key.id());
  REQUIRE(!store.save_daemon(origin, "counter", key, 2));
  REQUIRE(!store.save_snapshot(origin, bytes{1}));
  auto retired = store.retire_daemon(origin, 2);
  REQUIRE(retired);
  CHECK(*retired);
  CHECK(*store.list_daemons() == std::vector<uint64_t>{origin});
  auto file = store.load_daemon_file(origin);
  REQUIRE(file);
  CHECK(file->is_tombstone());
  CHECK(file->tombstone.origin == origin);
  CHECK(file->epoch() == 2);
  CHECK(*store.known_epoch(origin) == 2);
  auto rec = store.load_daemon(origin);
  REQUIRE(!rec);
  CHECK(is(rec.error(), errc::not_found));
  CHECK(is(store.load_snapshot(origin).error(), errc::not_found));
  CHECK(store.orphan_snapshots()->empty());
}

TEST_CASE("retiring an epoch never touches a newer life's record") {
  test::temp_dir dir;
  node_store store{dir.path()};
  REQUIRE(!store.open());
  auto key = keypair::generate();
  auto origin = origin_hash(key.id());
  REQUIRE(!store.save_daemon(origin, "counter", key, 3));
  REQUIRE(!store.save_snapshot(origin, bytes{7}));
  auto retired = store.retire_daemon(origin, 2);
  REQUIRE(retired);
  CHECK(!*retired);
  auto rec = store.load_daemon(origin);
  REQUIRE(rec);
  CHECK(rec->epoch == 3);
  CHECK(*store.load_snapshot(origin) == bytes{7});
}

TEST_CASE("a stopping life's snapshot never replaces a newer life's") {
  test::temp_dir dir;
  node_store store{dir.path()};
  REQUIRE(!store.open());
  auto key = keypair::generate();
  auto origin = origin_hash(key.id());
  REQUIRE(!store.save_snapshot(origin, 1, bytes{1}));
  REQUIRE(!store.save_daemon(origin, "counter", key, 3));
  REQUIRE(!store.save_snapshot(origin, 3, bytes{3}));
  auto err = store.save_snapshot(origin, 2, bytes{2});
  CHECK(is(err, errc::wrong_phase));
  CHECK(*store.load_snapshot(origin) == bytes{3});
}

TEST_CASE("a snapshot beside a tombstone is an orphan") {
  test::temp_dir dir;
  node_store store{dir.path()};
  REQUIRE(!store.open());
  auto key = keypair::generate();
  auto origin = origin_hash(key.id());
  REQUIRE(!store.save_daemon(origin, "counter", key, 1));
  REQUIRE(*store.retire_daemon(origin, 1));
  // A spawn that crashed after writing its initial snapshot.
  REQUIRE(!store.save_snapshot(origin, bytes{1}));
  REQUIRE(!store.save_snapshot(0x99, bytes{1}));
  auto orphans = store.orphan_snapshots();
  REQUIRE(orphans);
  auto want = std::vector<uint64_t>{origin, 0x99};
  std::sort(want.begin(), want.end());
  CHECK(*orphans == want);
}

TEST_CASE("origin file names are 16 hex digits and nothing else parses") {
  CHECK(origin_file_name(0xab) == "00000000000000ab");
  uint64_t o = 0;
  CHECK(parse_origin_file_name("00000000000000ab", o));
  CHECK(o == 0xab);
  CHECK(!parse_origin_file_name("ab", o));
  CHECK(!parse_origin_file_name("00000000000000ab.tmp", o));
  CHECK(!parse_origin_file_name("zzzzzzzzzzzzzzzz", o));
}

TEST_CASE("save_snapshots writes many snapshots, one error per entry") {
  test::temp_dir dir;
  node_store store{dir.path()};
  REQUIRE(!store.open());
  std::vector<std::pair<uint64_t, bytes>> snaps{{0x11, bytes{1}},
                                                {0x22, bytes{2, 2}}};
  auto errs = store.save_snapshots(snaps);
  REQUIRE(errs.size() == 2);
  CHECK(!errs[0]);
  CHECK(!errs[1]);
  CHECK(*store.load_snapshot(0x11) == bytes{1});
  CHECK(*store.load_snapshot(0x22) == bytes{2, 2});
}

TEST_CASE("open removes temp files a crash left, and nothing else") {
  test::temp_dir dir;
  {
    node_store store{dir.path()};
    REQUIRE(!store.open());
  }
  auto& fs = *real_file_system();
  auto stale = dir / "snapshots/00000000000000aa.tmp.4242.7";
  auto stale_rec = dir / "daemons/00000000000000bb.tmp.1.0";
  auto foreign = dir / "snapshots/notes.tmp.txt";
  for (auto& p : {stale, stale_rec, foreign})
    REQUIRE(!fs.write_new_file(p, bytes_view{"x"}, 0600, file_sync::now));
  node_store store{dir.path()};
  REQUIRE(!store.open());
  CHECK(*fs.stat_kind(stale) == 0);
  CHECK(*fs.stat_kind(stale_rec) == 0);
  CHECK(*fs.stat_kind(foreign) == 1);
}

TEST_CASE("the daemon record codec round-trips and wipes what it read") {
  auto key = keypair::generate();
  auto enc = encode_daemon_record("counter", key, 7);
  REQUIRE(enc);
  CHECK(enc->size() == 15 + 7 + 32 + 8);
  CHECK((*enc)[4] == 2);
  auto raw = *enc;
  auto file = decode_daemon_file(raw, "test");
  REQUIRE(file);
  REQUIRE(file->live);
  CHECK(file->live->kind == "counter");
  CHECK(file->live->identity.id() == key.id());
  CHECK(file->epoch() == 7);
  CHECK(raw == bytes(raw.size(), 0));
  CHECK(is(encode_daemon_record("", key, 1).error(), errc::invalid_argument));
  CHECK(is(encode_daemon_record(std::string(256, 'k'), key, 1).error(),
           errc::invalid_argument));
  CHECK(is(encode_daemon_record("counter", key, 0).error(),
           errc::invalid_argument));
}

TEST_CASE("the tombstone codec round-trips and holds no secret") {
  auto enc = encode_daemon_tombstone(daemon_tombstone{0xabcdef, 4});
  REQUIRE(enc);
  CHECK(enc->size() == 30);
  CHECK((*enc)[5] == 1);
  auto raw = *enc;
  auto file = decode_daemon_file(raw, "test");
  REQUIRE(file);
  CHECK(file->is_tombstone());
  CHECK(file->tombstone.origin == 0xabcdef);
  CHECK(file->epoch() == 4);
  CHECK(is(encode_daemon_tombstone(daemon_tombstone{1, 0}).error(),
           errc::invalid_argument));
}

namespace {

// A record as written before epochs existed (version 1): magic, version 1,
// kind, seed, checksum.
bytes v1_record(const std::string& kind, const keypair& key) {
  bytes b{'M', 'S', 'H', 'R', 1, static_cast<uint8_t>(kind.size())};
  b.insert(b.end(), kind.begin(), kind.end());
  b.insert(b.end(), key.seed().begin(), key.seed().end());
  uint8_t sum[8];
  store_le64(sum, XXH3_64bits(b.data(), b.size()));
  b.insert(b.end(), sum, sum + 8);
  return b;
}

} // namespace

TEST_CASE("a version-1 daemon record is a live record of epoch 1") {
  auto key = keypair::generate();
  auto raw = v1_record("counter", key);
  auto file = decode_daemon_file(raw, "test");
  REQUIRE(file);
  REQUIRE(file->live);
  CHECK(file->live->kind == "counter");
  CHECK(file->live->identity.id() == key.id());
  CHECK(file->epoch() == 1);
  CHECK(raw == bytes(raw.size(), 0));
}

TEST_CASE("damaged daemon records of either version are corrupt_data") {
  auto key = keypair::generate();
  auto live = *encode_daemon_record("counter", key, 2);
  auto tomb = *encode_daemon_tombstone(daemon_tombstone{5, 2});
  auto v1 = v1_record("counter", key);
  struct damage {
    const char* what;
    bytes raw;
  };
  std::vector<damage> cases;
  for (auto* src : {&live, &tomb, &v1}) {
    cases.push_back({"truncated by one", bytes(src->begin(), src->end() - 1)});
    cases.push_back({"one byte longer", *src});
    cases.back().raw.push_back(0);
    cases.push_back({"flipped checksum", *src});
    cases.back().raw.back() ^= 1;
  }
  cases.push_back({"header only", bytes(live.begin(), live.begin() + 14)});
  cases.push_back({"unknown type", live});
  cases.back().raw[5] = 2;
  cases.push_back({"epoch 0", tomb});
  std::fill(cases.back().raw.begin() + 6, cases.back().raw.begin() + 14, 0);
  for (auto& c : cases) {
    INFO(c.what);
    auto file = decode_daemon_file(c.raw, "test");
    REQUIRE(!file);
    CHECK(is(file.error(), errc::corrupt_data));
    CHECK(c.raw == bytes(c.raw.size(), 0));
  }
}

TEST_CASE("a daemon record of an unknown version is unsupported_version") {
  auto key = keypair::generate();
  for (uint8_t v : {uint8_t{0}, uint8_t{3}, uint8_t{255}}) {
    auto bumped = *encode_daemon_record("counter", key, 1);
    bumped[4] = v;
    auto file = decode_daemon_file(bumped, "test");
    REQUIRE(!file);
    CHECK(is(file.error(), errc::unsupported_version));
    CHECK(describe(file.error()).find("version byte " + std::to_string(v))
          != std::string::npos);
    CHECK(bumped == bytes(bumped.size(), 0));
  }
}
