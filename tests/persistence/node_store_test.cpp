// The node's data directory: log entries (one at a time and packed as the
// daemons hand them to the log actor), daemon records and snapshots.

#include <fstream>
#include <string>

#include <catch2/catch.hpp>

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
  CHECK(describe(d.error()).find("40 bytes") != std::string::npos);
}

TEST_CASE("a log entry with an unknown status byte is corrupt_data") {
  bytes buf;
  encode_log_entry(entry(1, "x"), buf);
  buf[40] = 2;
  auto d = decode_log_entry(buf);
  REQUIRE(!d);
  CHECK(is(d.error(), errc::corrupt_data));
  CHECK(describe(d.error()).find("status byte 2") != std::string::npos);
}

TEST_CASE("a log batch holds each entry's encoding and daemon_seq") {
  log_batch b;
  b.origin_hash = 0x1122334455667788;
  std::vector<log_entry> es{entry(1, "a"), entry(2, ""),
                            entry(3, std::string(300, 'z'),
                                  log_entry::status::rejected)};
  for (auto& e : es)
    b.add(e, e.payload);
  REQUIRE(b.size() == 3);
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
  REQUIRE(!store.save_daemon(origin, "counter", key));
  auto rec = store.load_daemon(origin);
  REQUIRE(rec);
  CHECK(rec->kind == "counter");
  CHECK(rec->identity.id() == key.id());
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
  REQUIRE(!store.save_daemon(origin_hash(key.id()) + 1, "counter", key));
  auto rec = store.load_daemon(origin_hash(key.id()) + 1);
  REQUIRE(!rec);
  CHECK(is(rec.error(), errc::corrupt_data));
  CHECK(describe(rec.error()).find("another daemon's key")
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
  REQUIRE(!store.save_daemon(origin, "counter", key));
  auto path = dir.path() + "/daemons/" + origin_file_name(origin);
  {
    std::ofstream f{path, std::ios::binary | std::ios::trunc};
    f << "MSHR";
  }
  auto rec = store.load_daemon(origin);
  REQUIRE(!rec);
  CHECK(is(rec.error(), errc::corrupt_data));
}

TEST_CASE("removing a daemon leaves no record and no snapshot behind") {
  test::temp_dir dir;
  node_store store{dir.path()};
  REQUIRE(!store.open());
  REQUIRE(!store.save_daemon(42, "counter", keypair::generate()));
  REQUIRE(!store.save_snapshot(42, bytes{1}));
  REQUIRE(!store.remove_daemon(42));
  CHECK(store.list_daemons()->empty());
  CHECK(is(store.load_snapshot(42).error(), errc::not_found));
  CHECK(store.orphan_snapshots()->empty());
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
  auto enc = encode_daemon_record("counter", key);
  REQUIRE(enc);
  CHECK(enc->size() == 6 + 7 + 32 + 8);
  auto raw = *enc;
  auto rec = decode_daemon_record(raw, "test");
  REQUIRE(rec);
  CHECK(rec->kind == "counter");
  CHECK(rec->identity.id() == key.id());
  CHECK(raw == bytes(raw.size(), 0));
  CHECK(is(encode_daemon_record("", key).error(), errc::invalid_argument));
  CHECK(is(encode_daemon_record(std::string(256, 'k'), key).error(),
           errc::invalid_argument));
  auto bumped = *enc;
  bumped[4] = 2;
  CHECK(is(decode_daemon_record(bumped, "test").error(),
           errc::unsupported_version));
  CHECK(bumped == bytes(bumped.size(), 0));
}
