#pragma once

// Internals of the disk segment shared by its translation units
// (persistence/segment*.cpp) and its tests; not installed, not included
// outside persistence/ and tests/persistence/. Which file holds what:
//
// - segment.cpp: segment::impl (append path, policy fsync worker, open-time
//   recovery and repair) and the public segment methods;
// - segment_recovery.cpp: the recovery walk over one generation (analyze)
//   and the recovery_report methods;
// - segment_manifest.cpp: the manifest, the generation directories
//   (resolve_layout, write_generation, write_manifest) and the stranded
//   generations check;
// - fsync_policy.cpp: fsync_policy and retention;
// - this header: the in-memory entry table and the payload reader, kept
//   inline because the append path and the recovery walk call them per
//   record, and the declarations the files above share.

#include <algorithm>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include <caf/error.hpp>
#include <caf/expected.hpp>

#include "base/bytes.hpp"
#include "base/errc.hpp"
#include "base/file_system.hpp"
#include "persistence/segment.hpp"
#include "persistence/segment_format.hpp"

namespace mesh {

// -- what readers see (segment_reader.cpp)
// -------------------------------------

// The state the appender publishes to segment_readers: read-only handles on
// the live generation's files and how far those hold whole records. Guarded
// by its own mutex, never by the append lock: the appender holds `mtx` only
// to store three numbers after a write, and a reader only to copy the
// fields, so neither ever waits for the other's I/O.
struct segment_reader::shared {
  std::mutex mtx;
  std::string dir;
  uint32_t gen = 0;
  // Opened with open_read on v<gen>/. A compaction publishes the new
  // generation's handles; a reader keeps the ones it copied until its scan
  // ends, and POSIX keeps an unlinked file readable while it is open.
  std::shared_ptr<file_handle> dat;
  std::shared_ptr<file_handle> idx;
  std::shared_ptr<file_handle> ts;
  // idx bytes that are whole records whose dat and ts parts are written
  // (the appender publishes after all three writes of an append).
  uint64_t idx_len = 0;
  uint64_t dat_len = 0;
  // The seq the next append gets: a scan that reaches the end continues
  // from here.
  uint64_t next_seq = 1;
  bool closed = false;
};

} // namespace mesh

namespace mesh::segment_internal {

namespace sf = segment_format;

// -- entry table and payload reader -------------------------------------------

struct entry {
  sf::idx_record rec;
  uint64_t ts = 0;
};

// The in-memory index: one entry per record, in seq order. Fixed-size chunks
// instead of one vector, so appends never copy the whole index to grow it.
class entry_table {
public:
  static constexpr size_t chunk = 16384;

  size_t size() const {
    return size_;
  }
  bool empty() const {
    return size_ == 0;
  }
  entry& operator[](size_t i) {
    return chunks_[i / chunk][i % chunk];
  }
  const entry& operator[](size_t i) const {
    return chunks_[i / chunk][i % chunk];
  }
  const entry& front() const {
    return (*this)[0];
  }
  const entry& back() const {
    return (*this)[size_ - 1];
  }
  void push_back(const entry& e) {
    if (size_ == chunks_.size() * chunk)
      chunks_.emplace_back(new entry[chunk]);
    (*this)[size_++] = e;
  }
  /// Drops entries from position n on.
  void truncate(size_t n) {
    size_ = std::min(size_, n);
  }
  void assign(const std::vector<entry>& xs) {
    chunks_.clear();
    size_ = 0;
    for (auto& e : xs)
      push_back(e);
  }
  std::vector<entry> slice(size_t from) const {
    return slice(from, size_);
  }
  /// Copies of the entries at positions [from, to).
  std::vector<entry> slice(size_t from, size_t to) const {
    to = std::min(to, size_);
    std::vector<entry> out;
    out.reserve(to - std::min(from, to));
    for (size_t i = from; i < to; ++i)
      out.push_back((*this)[i]);
    return out;
  }
  /// Position of the first entry with seq >= `seq`.
  size_t lower_bound(uint64_t seq) const {
    size_t lo = 0;
    size_t hi = size_;
    while (lo < hi) {
      auto mid = lo + (hi - lo) / 2;
      if ((*this)[mid].rec.seq < seq)
        lo = mid + 1;
      else
        hi = mid;
    }
    return lo;
  }

private:
  std::vector<std::unique_ptr<entry[]>> chunks_;
  size_t size_ = 0;
};

inline std::string path_join(const std::string& a, const std::string& b) {
  return a + "/" + b;
}

// Sequential reads of payloads from dat through a 1 MiB window: records are
// laid out in dat in seq order, so recovery and compaction read each byte once
// with few syscalls.
class payload_reader {
public:
  payload_reader(file_handle* f, uint64_t file_len)
    : f_(f), file_len_(file_len) {}

  caf::error read(uint64_t off, uint32_t len, const uint8_t*& out) {
    if (off > file_len_ || len > file_len_ - off)
      return make_error(errc::corrupt_data,
                        f_->path() + ": payload of " + std::to_string(len)
                          + " bytes at offset " + std::to_string(off)
                          + " runs past the end of the file");
    if (off < buf_off_ || off + len > buf_off_ + buf_.size()) {
      size_t want = std::max<size_t>(len, window);
      want = static_cast<size_t>(std::min<uint64_t>(want, file_len_ - off));
      buf_.resize(want);
      if (auto err = f_->read_at(off, want, buf_.data()))
        return err;
      buf_off_ = off;
    }
    out = buf_.data() + (off - buf_off_);
    return {};
  }

private:
  static constexpr size_t window = 1 << 20;
  file_handle* f_;
  uint64_t file_len_;
  uint64_t buf_off_ = 0;
  bytes buf_;
};

// -- generations and manifest (segment_manifest.cpp)
// ---------------------------

// Where a log directory's live generation is, and what else is in it.
struct layout {
  bool fresh = false;       // no log here yet
  bool manifest_ok = false; // manifest exists, decodes and names `gen`
  sf::manifest man;         // base_seq valid when manifest decoded
  uint32_t gen = 0;
  uint32_t highest_gen = 0; // highest generation-like name seen
  std::vector<std::string> orphans;
};

caf::expected<layout> resolve_layout(file_system* fs, const std::string& dir,
                                     recovery_report& report);

// The generation after `gen`, or limit_exceeded: generation numbers never
// wrap (a v0 would make every later open find a corrupt manifest).
caf::expected<uint32_t> next_generation(const std::string& dir, uint32_t gen);

// Finds the orphan generations of `lay` holding records the live log
// (`kept`, or empty with `base_seq` next) lacks, into report.stranded.
// Only complete v<N> directories count: v<N>.tmp is a subset by
// construction. With `skip_unreadable` an orphan that cannot be analyzed is
// passed over (it is about to be discarded anyway).
caf::error find_stranded(file_system* fs, const std::string& dir,
                         const layout& lay, const std::vector<entry>& kept,
                         uint64_t base_seq, bool skip_unreadable,
                         recovery_report& report);

caf::error refuse_stranded(const std::string& dir,
                           const recovery_report& report);

// Replaces the manifest atomically: temp file (written and fsynced), rename,
// fsync of the directory. `renamed` tells the caller whether the rename
// happened, i.e. whether a failure is before or after the point of no return.
caf::error write_manifest(file_system* fs, const std::string& dir,
                          const sf::manifest& m, const segment_options& opts,
                          bool& renamed);

// The two halves of write_manifest, for a compaction that prepares the temp
// file before its switch: write_manifest_temp writes and fsyncs a temp file
// (removed again on failure) and returns its path; commit_manifest renames
// it over the manifest (removing it when the rename fails) and fsyncs the
// directory.
caf::expected<std::string>
write_manifest_temp(file_system* fs, const std::string& dir,
                    const sf::manifest& m, const segment_options& opts);
caf::error commit_manifest(file_system* fs, const std::string& dir,
                           const std::string& tmp, const segment_options& opts,
                           bool& renamed);

// Builds a new generation directory v<gen> in steps, so a compaction can copy
// the bulk of the log while appends continue and add the records appended
// meanwhile at the end. The files live in v<gen>.tmp until publish() renames
// the directory, after sync() made every byte durable: a directory named v<N>
// is therefore always complete. Dropping a writer removes its directory
// (v<gen>.tmp, or v<gen> once published) unless release() was called.
class generation_writer {
public:
  // Creates v<gen>.tmp (clearing leftovers of v<gen>.tmp and v<gen>) and its
  // three files.
  static caf::expected<std::unique_ptr<generation_writer>>
  create(file_system* fs, const std::string& dir, uint32_t gen,
         const segment_options& opts);

  ~generation_writer();

  generation_writer(const generation_writer&) = delete;
  generation_writer& operator=(const generation_writer&) = delete;

  // Appends copies of `entries` (payloads read from `src`, `src_len` bytes
  // long, checksums verified on the way); pushes each with its new dat
  // offset to `out`.
  caf::error add(const std::vector<entry>& entries, file_handle* src,
                 uint64_t src_len, entry_table& out);

  // Writes what add() buffered to the files.
  caf::error flush();

  // Writes what is buffered and fsyncs the three files, and v<gen>.tmp the
  // first time.
  caf::error sync();

  // Renames v<gen>.tmp to v<gen> and fsyncs the log directory. Call after
  // sync(). On failure the directory is removed again.
  caf::error publish();

  // Removes the directory, published or not.
  void discard();

  // The published generation is live now: the writer never removes it.
  void release() {
    released_ = true;
  }

  uint32_t gen() const {
    return gen_;
  }
  // dat bytes written so far.
  uint64_t dat_len() const {
    return dat_off_;
  }

private:
  generation_writer(file_system* fs, std::string dir, uint32_t gen);

  file_system* fs_;
  std::string dir_;
  uint32_t gen_;
  std::string tmp_dir_;
  std::string final_dir_;
  std::unique_ptr<file_handle> files_[3];
  bytes bufs_[3];
  uint64_t dat_off_ = 0;
  bool published_ = false;
  bool discarded_ = false;
  bool released_ = false;
  // The directory entries of the three files are durable.
  bool dir_synced_ = false;
};

// Writes `entries` (payloads read from `src`, checksums verified on the way)
// into a complete new generation directory v<gen> with a generation_writer:
// steps generation_created, generation_written, generation_synced,
// generation_renamed. Returns the entries with their new dat offsets.
caf::expected<std::vector<entry>>
write_generation(file_system* fs, const std::string& dir, uint32_t gen,
                 const std::vector<entry>& entries, file_handle* src,
                 uint64_t src_len, const segment_options& opts);

// -- recovery walk (segment_recovery.cpp) -------------------------------------

// The outcome of the recovery walk over one generation directory.
struct analysis {
  std::vector<entry> kept;
  uint64_t idx_len = 0; // on-disk lengths as found
  uint64_t dat_len = 0;
  uint64_t ts_len = 0;
  uint64_t dat_end = 0; // bytes of dat the kept records reference
  bool ts_exists = true;
};

// Decides which records survive. Reads only; `report` gets the findings.
caf::expected<analysis> analyze(file_system* fs, const std::string& gen_dir,
                                recovery_report& report);

// -- shared helpers -----------------------------------------------------------

// limit_exceeded when `count` records starting at `first` would pass max_seq.
// Internal linkage, as in the one-file segment: GCC then inlines it into
// segment::append, which calls it on every append.
static inline caf::error check_seq_room(const std::string& dir, uint64_t first,
                                        uint64_t count) {
  if (first > sf::max_seq || count - 1 > sf::max_seq - first)
    return make_error(errc::limit_exceeded,
                      dir + ": appending " + std::to_string(count)
                        + " record(s) from seq " + std::to_string(first)
                        + " would pass the largest seq "
                        + std::to_string(sf::max_seq));
  return {};
}

inline void step(const segment_options& opts, std::string_view name) {
  if (opts.on_step)
    opts.on_step(name);
}

} // namespace mesh::segment_internal
