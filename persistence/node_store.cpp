#include "persistence/node_store.hpp"

#include <algorithm>
#include <cstdio>
#include <cstring>

#include <sodium/utils.h>
#include <sys/stat.h>
#include <xxhash.h>

#include "base/atomic_file.hpp"
#include "base/errc.hpp"
#include "base/file_system.hpp"

namespace mesh {

// -- log entry ----------------------------------------------------------------
//
//   0   u64 origin_hash
//   8   u64 daemon_seq
//   16  u64 producer_id
//   24  u64 producer_seq
//   32  u64 received_at_ns
//   40  u8  status (0 accepted, 1 rejected)
//   41  payload bytes (the rest of the record)

void encode_log_entry(const log_entry& e, bytes& out) {
  encode_log_entry(e, e.payload, out);
}

void encode_log_entry(const log_entry& e, bytes_view payload, bytes& out) {
  auto pos = out.size();
  out.resize(pos + log_entry_header_size + payload.size);
  auto* p = out.data() + pos;
  store_le64(p, e.origin_hash);
  store_le64(p + 8, e.daemon_seq);
  store_le64(p + 16, e.producer_id);
  store_le64(p + 24, e.producer_seq);
  store_le64(p + 32, e.received_at_ns);
  p[40] = static_cast<uint8_t>(e.state);
  if (payload.size > 0)
    std::memcpy(p + log_entry_header_size, payload.data, payload.size);
}

void log_batch::add(const log_entry& head, bytes_view payload) {
  encode_log_entry(head, payload, data);
  ends.push_back(data.size());
  daemon_seqs.push_back(head.daemon_seq);
}

void log_batch::clear() {
  data.clear();
  ends.clear();
  daemon_seqs.clear();
}

caf::expected<log_entry> decode_log_entry(bytes_view in) {
  if (in.size < log_entry_header_size)
    return make_error(errc::corrupt_data,
                      "log entry of " + std::to_string(in.size)
                        + " bytes is shorter than its "
                        + std::to_string(log_entry_header_size)
                        + "-byte header");
  if (in.data[40] > 1)
    return make_error(errc::corrupt_data, "log entry has unknown status byte "
                                            + std::to_string(in.data[40]));
  log_entry e;
  e.origin_hash = load_le64(in.data);
  e.daemon_seq = load_le64(in.data + 8);
  e.producer_id = load_le64(in.data + 16);
  e.producer_seq = load_le64(in.data + 24);
  e.received_at_ns = load_le64(in.data + 32);
  e.state = static_cast<log_entry::status>(in.data[40]);
  e.payload.assign(in.data + log_entry_header_size, in.data + in.size);
  return e;
}

// -- file names ---------------------------------------------------------------

std::string origin_file_name(uint64_t origin) {
  auto h = hex_u64(origin);
  return h.substr(2);
}

bool parse_origin_file_name(const std::string& name, uint64_t& origin) {
  if (name.size() != 16)
    return false;
  bytes raw;
  if (!from_hex(name, raw))
    return false;
  origin = 0;
  for (auto b : raw)
    origin = (origin << 8) | b;
  return origin_file_name(origin) == name;
}

// -- daemon record ------------------------------------------------------------
//
//   0   4   magic "MSHR"
//   4   1   version (1)
//   5   1   kind length K (1..255)
//   6   K   kind (UTF-8)
//   6+K 32  ed25519 seed
//   38+K 8  XXH3-64 of bytes 0..38+K

namespace {

constexpr uint8_t record_magic[4] = {'M', 'S', 'H', 'R'};
constexpr uint8_t record_version = 1;

std::string sub(const std::string& dir, const char* name) {
  return dir + "/" + name;
}

caf::expected<std::vector<uint64_t>> list_origins(file_system& fs,
                                                  const std::string& dir) {
  auto names = fs.list_dir(dir);
  if (!names)
    return names.error();
  std::vector<uint64_t> out;
  for (auto& n : *names) {
    uint64_t o = 0;
    if (parse_origin_file_name(n, o))
      out.push_back(o);
  }
  std::sort(out.begin(), out.end());
  return out;
}

} // namespace

node_store::node_store(std::string data_dir, file_system* fs)
  : dir_(std::move(data_dir)), fs_(fs != nullptr ? fs : real_file_system()) {}

caf::error node_store::open() {
  auto* fs = fs_;
  auto kind = fs->stat_kind(dir_);
  if (!kind)
    return kind.error();
  if (*kind != 2)
    return make_error(errc::not_found,
                      "data directory " + dir_ + " does not exist");
  for (auto name : {"snapshots", "daemons"}) {
    auto dir = sub(dir_, name);
    if (auto err = fs->create_dir(dir))
      return err;
    // Temp files of writes a crash cut short (a shutdown killed while it
    // wrote its snapshots leaves one per daemon). The data directory's lock
    // says no other process writes here.
    auto names = fs->list_dir(dir);
    if (!names)
      return names.error();
    for (auto& n : *names) {
      uint64_t origin = 0;
      auto dot = n.find(".tmp.");
      if (dot != std::string::npos
          && parse_origin_file_name(n.substr(0, dot), origin))
        if (auto err = fs->remove(dir + "/" + n))
          return err;
    }
  }
  return {};
}

std::string node_store::log_dir() const {
  return sub(dir_, "log");
}

caf::error node_store::save_snapshot(uint64_t origin, bytes_view encoded) {
  return write_file_atomic(*fs_,
                           sub(dir_, "snapshots") + "/"
                             + origin_file_name(origin),
                           encoded, 0600);
}

std::vector<caf::error> node_store::save_snapshots(
  const std::vector<std::pair<uint64_t, bytes>>& encoded) {
  std::vector<std::pair<std::string, bytes_view>> files;
  files.reserve(encoded.size());
  auto dir = sub(dir_, "snapshots") + "/";
  for (auto& [origin, data] : encoded)
    files.emplace_back(dir + origin_file_name(origin), data);
  return write_files_atomic(*fs_, files, 0600);
}

caf::expected<bytes> node_store::load_snapshot(uint64_t origin) const {
  return read_small_file(*fs_,
                         sub(dir_, "snapshots") + "/"
                           + origin_file_name(origin),
                         max_file_size);
}

caf::error node_store::save_daemon(uint64_t origin, const std::string& kind,
                                   const keypair& identity) {
  if (kind.empty() || kind.size() > 255)
    return make_error(errc::invalid_argument,
                      "daemon kind must be 1..255 bytes long");
  bytes buf;
  buf.insert(buf.end(), record_magic, record_magic + 4);
  buf.push_back(record_version);
  buf.push_back(static_cast<uint8_t>(kind.size()));
  buf.insert(buf.end(), kind.begin(), kind.end());
  const auto& seed = identity.seed();
  buf.insert(buf.end(), seed.begin(), seed.end());
  uint8_t sum[8];
  store_le64(sum, XXH3_64bits(buf.data(), buf.size()));
  buf.insert(buf.end(), sum, sum + 8);
  auto err = write_file_atomic(*fs_,
                               sub(dir_, "daemons") + "/"
                                 + origin_file_name(origin),
                               buf, 0600);
  sodium_memzero(buf.data(), buf.size());
  return err;
}

caf::expected<daemon_record> node_store::load_daemon(uint64_t origin) const {
  auto path = sub(dir_, "daemons") + "/" + origin_file_name(origin);
  auto st = fs_->stat(path);
  if (!st)
    return st.error();
  if (st->kind == file_info::type::missing)
    return make_error(errc::not_found, "daemon record " + path + " is missing");
  if ((st->mode & 077) != 0) {
    char mode[8];
    std::snprintf(mode, sizeof(mode), "%04o", st->mode);
    return make_error(errc::insecure_permissions,
                      "daemon record " + path + " has mode " + mode
                        + ", group and others must have no access (chmod "
                          "0600 "
                        + path + ")");
  }
  auto raw = read_small_file(*fs_, path, 4096);
  if (!raw)
    return raw.error();
  auto& b = *raw;
  auto bad = [&](const std::string& why) {
    sodium_memzero(b.data(), b.size());
    return make_error(errc::corrupt_data, "daemon record " + path + ": " + why);
  };
  if (b.size() < 6 || std::memcmp(b.data(), record_magic, 4) != 0)
    return bad("bad magic or too short");
  if (b[4] != record_version)
    return make_error(errc::unsupported_version, "daemon record " + path
                                                   + ": unknown version byte "
                                                   + std::to_string(b[4]));
  size_t k = b[5];
  if (k == 0 || b.size() != 6 + k + 32 + 8)
    return bad(std::to_string(b.size()) + " bytes, expected "
               + std::to_string(6 + k + 40));
  if (load_le64(b.data() + 6 + k + 32) != XXH3_64bits(b.data(), 6 + k + 32))
    return bad("checksum mismatch");
  key_seed seed;
  std::memcpy(seed.data(), b.data() + 6 + k, seed.size());
  daemon_record rec{std::string(b.begin() + 6,
                                b.begin() + 6 + static_cast<long>(k)),
                    keypair::from_seed(seed)};
  sodium_memzero(seed.data(), seed.size());
  sodium_memzero(b.data(), b.size());
  if (origin_hash(rec.identity.id()) != origin)
    return make_error(errc::corrupt_data,
                      "daemon record " + path + " holds another daemon's key");
  return rec;
}

caf::expected<std::vector<uint64_t>> node_store::list_daemons() const {
  return list_origins(*fs_, sub(dir_, "daemons"));
}

caf::error node_store::remove_daemon(uint64_t origin) {
  auto* fs = fs_;
  auto rec = sub(dir_, "daemons") + "/" + origin_file_name(origin);
  if (auto err = fs->remove(rec); err && !is(err, errc::not_found))
    return err;
  if (auto err = fs->sync_dir(sub(dir_, "daemons")))
    return err;
  return remove_snapshot(origin);
}

caf::expected<std::vector<uint64_t>> node_store::orphan_snapshots() const {
  auto snaps = list_origins(*fs_, sub(dir_, "snapshots"));
  if (!snaps)
    return snaps.error();
  auto live = list_daemons();
  if (!live)
    return live.error();
  std::vector<uint64_t> out;
  std::set_difference(snaps->begin(), snaps->end(), live->begin(), live->end(),
                      std::back_inserter(out));
  return out;
}

caf::error node_store::remove_snapshot(uint64_t origin) {
  auto* fs = fs_;
  auto path = sub(dir_, "snapshots") + "/" + origin_file_name(origin);
  if (auto err = fs->remove(path); err && !is(err, errc::not_found))
    return err;
  return fs->sync_dir(sub(dir_, "snapshots"));
}

} // namespace mesh
