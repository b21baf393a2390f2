#include "persistence/node_store.hpp"

#include <algorithm>
#include <cstdio>

#include <sodium/utils.h>
#include <sys/stat.h>

#include "base/atomic_file.hpp"
#include "base/errc.hpp"
#include "base/file_system.hpp"
#include "identity/entity_id.hpp"

namespace mesh {

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

namespace {

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

caf::error node_store::save_snapshot(uint64_t origin, uint64_t epoch,
                                     bytes_view encoded) {
  // An unreadable record says nothing about a newer life; recovery reports
  // it, and the snapshot is written as before.
  auto known = known_epoch(origin);
  if (known && *known > epoch)
    return make_error(errc::wrong_phase,
                      "snapshot of daemon " + hex_u64(origin) + " epoch "
                        + std::to_string(epoch) + " not written: epoch "
                        + std::to_string(*known) + " has been spawned since");
  return save_snapshot(origin, encoded);
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
                                   const keypair& identity, uint64_t epoch) {
  auto buf = encode_daemon_record(kind, identity, epoch);
  if (!buf)
    return buf.error();
  auto err = write_file_atomic(*fs_,
                               sub(dir_, "daemons") + "/"
                                 + origin_file_name(origin),
                               *buf, 0600);
  sodium_memzero(buf->data(), buf->size());
  return err;
}

caf::expected<daemon_file> node_store::load_daemon_file(uint64_t origin) const {
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
  auto file = decode_daemon_file(*raw, path);
  if (!file)
    return file.error();
  auto owner = file->live ? origin_hash(file->live->identity.id())
                          : file->tombstone.origin;
  if (owner != origin)
    return make_error(errc::corrupt_data, "daemon record " + path
                                            + " belongs to another daemon ("
                                            + hex_u64(owner) + ")");
  return file;
}

caf::expected<daemon_record> node_store::load_daemon(uint64_t origin) const {
  auto file = load_daemon_file(origin);
  if (!file)
    return file.error();
  if (file->is_tombstone())
    return make_error(errc::not_found, "daemon " + hex_u64(origin)
                                         + " was stopped (tombstone of epoch "
                                         + std::to_string(file->tombstone.epoch)
                                         + ")");
  return std::move(*file->live);
}

caf::expected<uint64_t> node_store::known_epoch(uint64_t origin) const {
  auto file = load_daemon_file(origin);
  if (!file) {
    if (is(file.error(), errc::not_found))
      return uint64_t{0};
    return file.error();
  }
  return file->epoch();
}

caf::expected<std::vector<uint64_t>> node_store::list_daemons() const {
  return list_origins(*fs_, sub(dir_, "daemons"));
}

caf::expected<bool> node_store::retire_daemon(uint64_t origin, uint64_t epoch) {
  // The data directory's lock and the supervisor (the only writer of
  // records) serialize this against a spawn of the same identity, so the
  // record read here is still the one on disk when the tombstone replaces it.
  if (auto file = load_daemon_file(origin); file && file->epoch() > epoch)
    return false;
  auto buf = encode_daemon_tombstone(daemon_tombstone{origin, epoch});
  if (!buf)
    return buf.error();
  if (auto err = write_file_atomic(*fs_,
                                   sub(dir_, "daemons") + "/"
                                     + origin_file_name(origin),
                                   *buf, 0600))
    return err;
  if (auto err = remove_snapshot(origin))
    return err;
  return true;
}

caf::expected<std::vector<uint64_t>> node_store::orphan_snapshots() const {
  auto snaps = list_origins(*fs_, sub(dir_, "snapshots"));
  if (!snaps)
    return snaps.error();
  std::vector<uint64_t> out;
  for (auto origin : *snaps) {
    auto file = load_daemon_file(origin);
    if (!file && is(file.error(), errc::not_found))
      out.push_back(origin);
    else if (file && file->is_tombstone())
      out.push_back(origin);
  }
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
