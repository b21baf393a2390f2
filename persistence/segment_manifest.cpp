// Generations and the manifest of a disk segment: which v<N>/ directory is
// live and what else lies in the log directory (resolve_layout), the atomic
// manifest flip (write_manifest), writing a complete new generation
// (write_generation, used by compaction and by the recovery rewrite), and the
// check for orphan generations that hold records the live one lacks
// (find_stranded, refuse_stranded).

#include <algorithm>
#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include <unistd.h>

#include "base/errc.hpp"
#include "base/file_system.hpp"
#include "persistence/segment.hpp"
#include "persistence/segment_format.hpp"
#include "persistence/segment_internal.hpp"

namespace mesh::segment_internal {

caf::expected<layout> resolve_layout(file_system* fs, const std::string& dir,
                                     recovery_report& report) {
  layout out;
  auto kind = fs->stat_kind(dir);
  if (!kind)
    return kind.error();
  if (*kind == 0) {
    out.fresh = true;
    return out;
  }
  if (*kind != 2)
    return make_error(errc::invalid_argument, dir + " is not a directory");
  auto names = fs->list_dir(dir);
  if (!names)
    return names.error();
  std::vector<uint32_t> gens;
  std::vector<std::string> unknown;
  bool has_manifest = false;
  for (auto& name : *names) {
    uint32_t g = 0;
    if (name == sf::manifest_name) {
      has_manifest = true;
    } else if (sf::parse_generation_dir_name(name, g)) {
      auto k = fs->stat_kind(path_join(dir, name));
      if (k && *k == 2)
        gens.push_back(g);
      else
        unknown.push_back(name);
    } else if (name.rfind("manifest.tmp.", 0) == 0) {
      out.orphans.push_back(name);
    } else if (name.size() > 4 && name.compare(name.size() - 4, 4, ".tmp") == 0
               && sf::parse_generation_dir_name(name.substr(0, name.size() - 4),
                                                g)) {
      out.orphans.push_back(name);
      out.highest_gen = std::max(out.highest_gen, g);
    } else {
      unknown.push_back(name);
    }
  }
  std::sort(gens.begin(), gens.end());
  if (!gens.empty())
    out.highest_gen = std::max(out.highest_gen, gens.back());
  if (!has_manifest && gens.empty()) {
    if (!unknown.empty())
      return make_error(errc::invalid_argument,
                        dir + " is not a meshd log (it holds '"
                          + unknown.front()
                          + "' but no manifest and no v<N>/ generation)");
    out.fresh = true;
    return out;
  }
  bool decoded = false;
  if (has_manifest) {
    // A manifest is a few dozen bytes; anything larger is not one.
    auto raw = fs->read_file(path_join(dir, sf::manifest_name), 4096);
    if (!raw)
      return raw.error();
    decoded = sf::decode_manifest(*raw, out.man);
  }
  auto has_gen = [&](uint32_t g) {
    return std::binary_search(gens.begin(), gens.end(), g);
  };
  if (decoded && has_gen(out.man.generation)) {
    out.gen = out.man.generation;
    out.manifest_ok = true;
  } else if (!gens.empty()) {
    out.gen = gens.back();
    if (!has_manifest)
      report.generation_note = "manifest missing; using the highest generation "
                               + sf::generation_dir_name(out.gen);
    else if (!decoded)
      report.generation_note = "manifest corrupt; using the highest generation "
                               + sf::generation_dir_name(out.gen);
    else
      report.generation_note = "manifest names "
                               + sf::generation_dir_name(out.man.generation)
                               + ", which is missing; using "
                               + sf::generation_dir_name(out.gen);
  } else if (decoded) {
    // A manifest whose generation directory vanished: the log is empty but
    // keeps counting seqs from base_seq.
    out.gen = out.man.generation;
    report.generation_note = "manifest names "
                             + sf::generation_dir_name(out.gen)
                             + ", which is missing; starting it empty";
  } else {
    return make_error(errc::corrupt_data, dir
                                            + ": manifest is corrupt and no "
                                              "v<N>/ generation exists");
  }
  if (!decoded)
    out.man.base_seq = 1;
  for (auto g : gens)
    if (g != out.gen)
      out.orphans.push_back(sf::generation_dir_name(g));
  std::sort(out.orphans.begin(), out.orphans.end());
  report.generation = out.gen;
  report.orphans = out.orphans;
  return out;
}

// The generation after `gen`, or limit_exceeded: generation numbers never
// wrap (a v0 would make every later open find a corrupt manifest).
caf::expected<uint32_t> next_generation(const std::string& dir, uint32_t gen) {
  if (gen >= sf::max_generation)
    return make_error(errc::limit_exceeded,
                      dir + ": generation " + std::to_string(gen)
                        + " is the last one (max_generation "
                        + std::to_string(sf::max_generation)
                        + "); refusing to write another");
  return gen + 1;
}

// Finds the orphan generations of `lay` holding records the live log
// (`kept`, or empty with `base_seq` next) lacks, into report.stranded.
// Only complete v<N> directories count: v<N>.tmp is a subset by
// construction. With `skip_unreadable` an orphan that cannot be analyzed is
// passed over (it is about to be discarded anyway).
caf::error find_stranded(file_system* fs, const std::string& dir,
                         const layout& lay, const std::vector<entry>& kept,
                         uint64_t base_seq, bool skip_unreadable,
                         recovery_report& report) {
  uint64_t live_first = kept.empty() ? base_seq : kept.front().rec.seq;
  auto live_has = [&kept](uint64_t seq) {
    auto it = std::lower_bound(kept.begin(), kept.end(), seq,
                               [](const entry& e, uint64_t s) {
                                 return e.rec.seq < s;
                               });
    return it != kept.end() && it->rec.seq == seq;
  };
  for (const auto& name : lay.orphans) {
    uint32_t g = 0;
    if (!sf::parse_generation_dir_name(name, g))
      continue;
    recovery_report scratch;
    auto a = analyze(fs, path_join(dir, name), scratch);
    if (!a) {
      if (skip_unreadable)
        continue;
      return make_error(errc::corrupt_data,
                        dir + ": cannot tell whether orphan generation " + name
                          + " holds records the live one lacks: "
                          + describe(a.error()));
    }
    recovery_report::stranded_generation sg;
    sg.name = name;
    for (const auto& e : a->kept) {
      if (e.rec.seq < live_first || live_has(e.rec.seq))
        continue;
      if (sg.records++ == 0)
        sg.first_seq = e.rec.seq;
      sg.last_seq = e.rec.seq;
    }
    if (sg.records > 0)
      report.stranded.push_back(std::move(sg));
  }
  return {};
}

caf::error refuse_stranded(const std::string& dir,
                           const recovery_report& report) {
  std::string what;
  for (const auto& g : report.stranded)
    what += (what.empty() ? "" : "; ") + g.name + " holds "
            + std::to_string(g.records) + " record(s) (seq "
            + std::to_string(g.first_seq) + ".." + std::to_string(g.last_seq)
            + ")";
  return make_error(errc::corrupt_data,
                    dir + ": orphan generation " + what
                      + " that the live generation "
                      + sf::generation_dir_name(report.generation)
                      + " lacks (a stale manifest or swapped directories); "
                        "refusing to delete them. Move them aside, or discard "
                        "them with meshseg verify --repair --force");
}

// Writes (and fsyncs) a manifest temp file for commit_manifest; returns its
// path. On failure nothing is left behind.
caf::expected<std::string>
write_manifest_temp(file_system* fs, const std::string& dir,
                    const sf::manifest& m, const segment_options& opts) {
  static std::atomic<uint64_t> counter{0};
  uint8_t buf[sf::manifest_size];
  sf::encode_manifest(m, buf);
  auto tmp = path_join(dir, "manifest.tmp." + std::to_string(::getpid()) + "."
                              + std::to_string(counter.fetch_add(1)));
  if (auto err = fs->write_file(tmp, bytes_view{buf, sizeof(buf)})) {
    (void)fs->remove(tmp);
    return err;
  }
  step(opts, "manifest_temp_written");
  return tmp;
}

// Renames a temp file of write_manifest_temp over the manifest and fsyncs
// the directory. `renamed` tells whether the rename happened.
caf::error commit_manifest(file_system* fs, const std::string& dir,
                           const std::string& tmp, const segment_options& opts,
                           bool& renamed) {
  renamed = false;
  if (auto err = fs->rename(tmp, path_join(dir, sf::manifest_name))) {
    (void)fs->remove(tmp);
    return err;
  }
  renamed = true;
  step(opts, "manifest_renamed");
  return fs->sync_dir(dir);
}

// Replaces the manifest atomically: temp file (written and fsynced), rename,
// fsync of the directory. `renamed` tells the caller whether the rename
// happened, i.e. whether a failure is before or after the point of no return.
caf::error write_manifest(file_system* fs, const std::string& dir,
                          const sf::manifest& m, const segment_options& opts,
                          bool& renamed) {
  renamed = false;
  auto tmp = write_manifest_temp(fs, dir, m, opts);
  if (!tmp)
    return tmp.error();
  return commit_manifest(fs, dir, *tmp, opts, renamed);
}

// -- generation_writer --------------------------------------------------------

generation_writer::generation_writer(file_system* fs, std::string dir,
                                     uint32_t gen)
  : fs_(fs), dir_(std::move(dir)), gen_(gen) {
  final_dir_ = path_join(dir_, sf::generation_dir_name(gen));
  tmp_dir_ = final_dir_ + ".tmp";
}

generation_writer::~generation_writer() {
  if (!released_)
    discard();
}

caf::expected<std::unique_ptr<generation_writer>>
generation_writer::create(file_system* fs, const std::string& dir, uint32_t gen,
                          const segment_options& opts) {
  std::unique_ptr<generation_writer> w{new generation_writer(fs, dir, gen)};
  if (auto err = fs->remove_all(w->tmp_dir_))
    return err;
  if (auto err = fs->remove_all(w->final_dir_))
    return err;
  if (auto err = fs->create_dir(w->tmp_dir_))
    return err;
  const char* names[3] = {sf::dat_name, sf::idx_name, sf::ts_name};
  for (int i = 0; i < 3; ++i) {
    auto f = fs->open_append(path_join(w->tmp_dir_, names[i]));
    if (!f)
      return f.error(); // the destructor removes the directory
    w->files_[i] = std::move(*f);
  }
  step(opts, "generation_created");
  return w;
}

void generation_writer::discard() {
  if (discarded_)
    return;
  discarded_ = true;
  for (auto& f : files_)
    f.reset();
  (void)fs_->remove_all(published_ ? final_dir_ : tmp_dir_);
}

caf::error generation_writer::flush() {
  for (int i = 0; i < 3; ++i) {
    if (bufs_[i].empty())
      continue;
    if (auto err = files_[i]->append(bufs_[i]))
      return err;
    bufs_[i].clear();
  }
  return {};
}

caf::error generation_writer::add(const std::vector<entry>& entries,
                                  file_handle* src, uint64_t src_len,
                                  entry_table& out) {
  constexpr size_t flush_at = 4 << 20;
  payload_reader reader{src, src_len};
  for (const auto& e : entries) {
    const uint8_t* p = nullptr;
    uint8_t inline_buf[8];
    if (e.rec.is_inline()) {
      sf::inline_payload(e.rec, inline_buf);
      p = inline_buf;
    } else if (auto err = reader.read(e.rec.location, e.rec.length, p)) {
      return err;
    }
    bytes_view payload{p, e.rec.length};
    if (sf::record_checksum(e.rec, payload) != e.rec.checksum)
      return make_error(errc::corrupt_data,
                        "record seq " + std::to_string(e.rec.seq)
                          + " changed on disk since recovery (bad checksum)");
    entry ne{sf::make_record(e.rec.seq, payload, dat_off_), e.ts};
    if (!ne.rec.is_inline()) {
      bufs_[0].insert(bufs_[0].end(), payload.begin(), payload.end());
      dat_off_ += payload.size;
    }
    uint8_t rec[sf::idx_record_size];
    sf::encode_idx(ne.rec, rec);
    bufs_[1].insert(bufs_[1].end(), rec, rec + sizeof(rec));
    uint8_t tsb[8];
    store_le64(tsb, e.ts);
    bufs_[2].insert(bufs_[2].end(), tsb, tsb + 8);
    out.push_back(ne);
    if (bufs_[0].size() + bufs_[1].size() >= flush_at)
      if (auto err = flush())
        return err;
  }
  return {};
}

caf::error generation_writer::sync() {
  if (auto err = flush())
    return err;
  for (auto& f : files_)
    if (auto err = f->sync())
      return err;
  if (dir_synced_)
    return {};
  if (auto err = fs_->sync_dir(tmp_dir_))
    return err;
  dir_synced_ = true;
  return {};
}

caf::error generation_writer::publish() {
  for (auto& f : files_)
    f.reset();
  if (auto err = fs_->rename(tmp_dir_, final_dir_))
    return err;
  published_ = true;
  if (auto err = fs_->sync_dir(dir_)) {
    discard();
    return err;
  }
  return {};
}

// Writes `entries` (payloads read from `src`, checksums verified on the way)
// into a complete new generation directory v<gen>: first as v<gen>.tmp, fully
// fsynced, then renamed. A directory named v<N> is therefore always complete.
// Returns the entries with their new dat offsets.
caf::expected<std::vector<entry>>
write_generation(file_system* fs, const std::string& dir, uint32_t gen,
                 const std::vector<entry>& entries, file_handle* src,
                 uint64_t src_len, const segment_options& opts) {
  auto w = generation_writer::create(fs, dir, gen, opts);
  if (!w)
    return w.error();
  entry_table out;
  if (auto err = (*w)->add(entries, src, src_len, out))
    return err;
  if (auto err = (*w)->flush())
    return err;
  step(opts, "generation_written");
  if (auto err = (*w)->sync())
    return err;
  step(opts, "generation_synced");
  if (auto err = (*w)->publish())
    return err;
  (*w)->release();
  step(opts, "generation_renamed");
  return out.slice(0);
}

} // namespace mesh::segment_internal
