// The disk segment itself: segment::impl, which holds the open files and the
// in-memory index, runs the append path (write dat -> idx -> ts, roll back on
// failure), the background worker that runs the policy fsyncs, and the
// open-time recovery and repair (recover); and the public segment methods,
// compaction among them (its bulk copy runs without the append lock). The
// pieces it builds on live beside it: see segment_internal.hpp for which file
// holds what.

#include "persistence/segment.hpp"

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <thread>

#include <time.h>
#include <unistd.h>

#include "base/atomic_file.hpp"
#include "base/errc.hpp"
#include "base/file_system.hpp"
#include "persistence/segment_format.hpp"
#include "persistence/segment_internal.hpp"

namespace mesh {

using namespace segment_internal;

uint64_t unix_now_ns() {
  timespec ts;
  ::clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000ull
         + static_cast<uint64_t>(ts.tv_nsec);
}

bool plausible_timestamp(uint64_t ts_ns, uint64_t now_ns) {
  constexpr auto skew = static_cast<uint64_t>(
    std::chrono::nanoseconds{max_timestamp_skew}.count());
  return ts_ns != 0 && (ts_ns <= now_ns || ts_ns - now_ns <= skew);
}

// -- segment::impl ------------------------------------------------------------

struct segment::impl {
  file_system* fs = nullptr;
  std::string dir;
  segment_options opts;
  recovery_report report;

  // Append state, guarded by mtx.
  mutable std::mutex mtx;
  std::shared_ptr<file_handle> dat;
  std::shared_ptr<file_handle> idx;
  std::shared_ptr<file_handle> ts;
  uint64_t dat_len = 0;
  uint64_t idx_len = 0;
  uint64_t ts_len = 0;
  entry_table index;
  uint64_t next_seq = 1;
  uint32_t gen = 1;
  uint64_t records_since_request = 0;
  uint64_t bytes_since_request = 0;

  std::atomic<uint64_t> last_seq{0};
  std::atomic<bool> poisoned{false};
  std::atomic<bool> closed{false};

  // Sync state. Lock order: sync_mtx before mtx.
  std::mutex sync_mtx;
  std::atomic<uint64_t> durable{0};
  std::atomic<uint64_t> syncs{0};
  std::atomic<uint64_t> failed_syncs{0};

  // Serializes compactions; taken before sync_mtx and mtx.
  std::mutex compact_mtx;

  // What segment_readers see; updated with mtx held (lock order: mtx before
  // readers->mtx), read without it.
  std::shared_ptr<segment_reader::shared>
    readers = std::make_shared<segment_reader::shared>();

  // Policy worker.
  std::mutex wmtx;
  std::condition_variable wcv;
  bool sync_requested = false;
  bool stop = false;
  std::thread worker;

  void warn(const std::string& line) {
    if (opts.on_warning)
      opts.on_warning(line);
  }

  caf::error refuse() const {
    if (closed.load())
      return make_error(errc::invalid_argument, dir + ": segment is closed");
    if (poisoned.load())
      return make_error(errc::poisoned,
                        dir
                          + ": a failed write could not be rolled back; "
                            "reopen the log to recover");
    return {};
  }

  // Restores one file to `len` after a failed append. If that fails the
  // on-disk files no longer match what we believe, so refuse everything.
  void rollback(file_handle& f, uint64_t len) {
    if (auto err = f.truncate(len)) {
      poisoned = true;
      warn("segment " + dir + " poisoned: rollback of " + f.path() + " to "
           + std::to_string(len) + " bytes failed: " + describe(err));
    }
  }

  // Writes one append's three parts in order and rolls back on failure.
  caf::error write_parts(bytes_view dat_part, bytes_view idx_part,
                         bytes_view ts_part) {
    if (!dat_part.empty())
      if (auto err = dat->append(dat_part)) {
        rollback(*dat, dat_len);
        return err;
      }
    if (auto err = idx->append(idx_part)) {
      rollback(*idx, idx_len);
      if (!dat_part.empty())
        rollback(*dat, dat_len);
      return err;
    }
    if (auto err = ts->append(ts_part)) {
      rollback(*ts, ts_len);
      rollback(*idx, idx_len);
      if (!dat_part.empty())
        rollback(*dat, dat_len);
      return err;
    }
    dat_len += dat_part.size;
    idx_len += idx_part.size;
    ts_len += ts_part.size;
    return {};
  }

  // Called with mtx held after `records` records of `nbytes` bytes landed.
  void note_appended(uint64_t records, uint64_t nbytes) {
    last_seq.store(next_seq - 1, std::memory_order_release);
    bool request = false;
    switch (opts.policy.type) {
      case fsync_policy::kind::never:
      case fsync_policy::kind::interval: return;
      case fsync_policy::kind::every_n:
        records_since_request += records;
        if (records_since_request >= opts.policy.n) {
          records_since_request = 0;
          request = true;
        }
        break;
      case fsync_policy::kind::interval_or_bytes:
        bytes_since_request += nbytes;
        if (bytes_since_request >= opts.policy.bytes) {
          bytes_since_request = 0;
          request = true;
        }
        break;
    }
    if (request) {
      {
        std::lock_guard<std::mutex> guard{wmtx};
        sync_requested = true;
      }
      wcv.notify_one();
      step(opts, "policy_fsync_requested");
    }
  }

  caf::error sync_now() {
    std::lock_guard<std::mutex> sguard{sync_mtx};
    if (auto err = refuse())
      return err;
    std::shared_ptr<file_handle> files[3];
    uint64_t target;
    {
      std::lock_guard<std::mutex> guard{mtx};
      files[0] = dat;
      files[1] = idx;
      files[2] = ts;
      target = next_seq - 1;
    }
    // dat before idx before ts: a crash part-way leaves idx no further than
    // dat and ts no further than idx, which recovery handles.
    for (auto& f : files)
      if (auto err = f->sync()) {
        ++failed_syncs;
        return err;
      }
    uint64_t prev = durable.load();
    while (prev < target && !durable.compare_exchange_weak(prev, target)) {
    }
    ++syncs;
    return {};
  }

  void run_worker() {
    std::unique_lock<std::mutex> lk{wmtx};
    auto period = opts.policy.period;
    while (!stop) {
      if (period.count() > 0)
        wcv.wait_for(lk, period, [this] {
          return stop || sync_requested;
        });
      else
        wcv.wait(lk, [this] {
          return stop || sync_requested;
        });
      if (stop)
        break;
      bool due = sync_requested
                 || (period.count() > 0 && last_seq.load() > durable.load());
      sync_requested = false;
      if (!due) {
        step(opts, "policy_wakeup_idle");
        continue;
      }
      if (poisoned.load())
        continue;
      lk.unlock();
      auto err = sync_now();
      lk.lock();
      if (err)
        warn("segment " + dir
             + ": policy fsync failed, will retry: " + describe(err));
    }
  }

  void start_worker() {
    if (opts.policy.type == fsync_policy::kind::never)
      return;
    worker = std::thread{[this] {
      run_worker();
    }};
  }

  void stop_worker() {
    {
      std::lock_guard<std::mutex> guard{wmtx};
      stop = true;
    }
    wcv.notify_all();
    if (worker.joinable())
      worker.join();
  }

  // Opens dat, idx and ts of `gen_dir` for appending, or with `read_only`
  // for a segment_reader.
  caf::error open_gen_files(const std::string& gen_dir, bool read_only,
                            std::shared_ptr<file_handle> (&files)[3]) {
    const char* names[3] = {sf::dat_name, sf::idx_name, sf::ts_name};
    for (int i = 0; i < 3; ++i) {
      auto path = path_join(gen_dir, names[i]);
      auto f = read_only ? fs->open_read(path) : fs->open_append(path);
      if (!f)
        return f.error();
      files[i] = std::move(*f);
    }
    return {};
  }

  caf::error open_files(const std::string& gen_dir) {
    std::shared_ptr<file_handle> files[3];
    if (auto err = open_gen_files(gen_dir, false, files))
      return err;
    dat = files[0];
    idx = files[1];
    ts = files[2];
    return {};
  }

  // Called with mtx held after an append: readers may now see it.
  void publish_appended() {
    std::lock_guard<std::mutex> guard{readers->mtx};
    readers->idx_len = idx_len;
    readers->dat_len = dat_len;
    readers->next_seq = next_seq;
  }

  // Called with mtx held when the live generation is (re)opened: readers
  // switch to `files` (read-only handles on generation `gen`).
  void publish_generation(std::shared_ptr<file_handle> (&files)[3]) {
    std::lock_guard<std::mutex> guard{readers->mtx};
    readers->dir = dir;
    readers->gen = gen;
    readers->dat = files[0];
    readers->idx = files[1];
    readers->ts = files[2];
    readers->idx_len = idx_len;
    readers->dat_len = dat_len;
    readers->next_seq = next_seq;
  }

  // Position of the first record a compaction under `r` keeps, over the
  // records there are now. Called with mtx held.
  size_t decide_drop(const retention& r) const {
    size_t n = index.size();
    size_t drop = 0;
    switch (r.type) {
      case retention::kind::keep_last:
        drop = n > r.value ? static_cast<size_t>(n - r.value) : 0;
        break;
      case retention::kind::max_bytes: {
        uint64_t total = 0;
        size_t keep = 0;
        for (size_t i = n; i-- > 0;) {
          total += index[i].rec.length;
          if (total > r.value)
            break;
          ++keep;
        }
        drop = n - keep;
        break;
      }
      case retention::kind::max_age_ns: {
        auto now = unix_now_ns();
        auto cutoff = now > r.value ? now - r.value : 0;
        // A damaged timestamp says nothing about the record's age: stop
        // there rather than drop it, or anything after it, on a guess.
        while (drop < n && index[drop].ts < cutoff
               && plausible_timestamp(index[drop].ts, now))
          ++drop;
        break;
      }
      case retention::kind::before_seq:
        drop = index.lower_bound(r.value);
        break;
    }
    return drop;
  }

  // Copies the entries at positions [pos, end) into `w`, a chunk at a time:
  // each chunk's entries are copied out under mtx (the index may grow
  // meanwhile), its payloads without it (records once written never change
  // until the next compaction, which compact_mtx keeps out).
  // The end of a compaction, with the append lock: copies the records from
  // position `pos` on (appended since the catch-up) into `w`, fsyncs and
  // publishes it, opens its files, flips the manifest and makes it live
  // with `out` as the index. Returns the number of records kept.
  caf::expected<size_t> switch_to(generation_writer& w, size_t pos,
                                  entry_table& out,
                                  const std::string& manifest_tmp);

  caf::error copy_unlocked(generation_writer& w, size_t& pos, size_t end,
                           entry_table& out) {
    constexpr size_t chunk = entry_table::chunk;
    while (pos < end) {
      std::vector<entry> part;
      std::shared_ptr<file_handle> src;
      uint64_t src_len;
      {
        std::lock_guard<std::mutex> guard{mtx};
        if (auto err = refuse())
          return err;
        part = index.slice(pos, std::min(end, pos + chunk));
        src = dat;
        src_len = dat_len;
      }
      if (auto err = w.add(part, src.get(), src_len, out))
        return err;
      pos += part.size();
    }
    return {};
  }

  // fsyncs the live files and their directory. Recovery calls it before it
  // publishes durable_seq: the files may hold writes of a crashed process
  // that are in the page cache but not on the disk, and a truncation or a
  // file created by open_files is not durable either until synced.
  caf::error sync_opened() {
    for (auto* f : {dat.get(), idx.get(), ts.get()})
      if (auto err = f->sync())
        return err;
    return fs->sync_dir(gen_dir(gen));
  }

  std::string gen_dir(uint32_t g) const {
    return path_join(dir, sf::generation_dir_name(g));
  }

  caf::error read_payload(const entry& e, bytes& out) const {
    out.resize(e.rec.length);
    if (e.rec.is_inline()) {
      uint8_t buf[8];
      sf::inline_payload(e.rec, buf);
      std::memcpy(out.data(), buf, e.rec.length);
      return {};
    }
    return dat->read_at(e.rec.location, e.rec.length, out.data());
  }

  size_t find(uint64_t seq) const {
    return index.lower_bound(seq);
  }

  // Opens the log: resolves the generation, runs recovery, repairs.
  caf::error recover() {
    auto lay = resolve_layout(fs, dir, report);
    if (!lay)
      return lay.error();
    if (lay->fresh) {
      if (!opts.create_if_missing)
        return make_error(errc::not_found, dir + " holds no meshd log");
      if (auto err = fs->create_dir(dir))
        return err;
      if (auto err = fs->create_dir(gen_dir(1)))
        return err;
      bool renamed = false;
      if (auto err = write_manifest(fs, dir, sf::manifest{1, 1}, opts, renamed))
        return err;
      gen = 1;
      next_seq = 1;
      report.generation = 1;
      if (auto err = open_files(gen_dir(1)))
        return err;
      if (auto err = sync_opened())
        return err;
      return publish_opened();
    }
    gen = lay->gen;
    uint64_t base_seq = lay->man.base_seq;
    if (auto err = fs->create_dir(gen_dir(gen)))
      return err;
    auto a = analyze(fs, gen_dir(gen), report);
    if (!a)
      return a.error();
    if (auto err = find_stranded(fs, dir, *lay, a->kept, base_seq,
                                 opts.discard_stranded, report))
      return err;
    if (!report.stranded.empty() && !opts.discard_stranded)
      return refuse_stranded(dir, report);
    if (!report.clean())
      for (auto& line : report.findings())
        warn("segment " + dir + " recovery: " + line);
    bool need_manifest = !lay->manifest_ok;
    if (report.rewrite) {
      // Survivors are not a prefix: write them into a new generation and
      // flip the manifest to it, so the repair is atomic.
      std::unique_ptr<file_handle> src;
      if (a->dat_len > 0) {
        auto f = fs->open_read(path_join(gen_dir(gen), sf::dat_name));
        if (!f)
          return f.error();
        src = std::move(*f);
      }
      auto next = next_generation(dir, std::max(gen, lay->highest_gen));
      if (!next)
        return next.error();
      uint32_t new_gen = *next;
      auto rebased = write_generation(fs, dir, new_gen, a->kept, src.get(),
                                      a->dat_len, opts);
      if (!rebased)
        return rebased.error();
      a->kept = std::move(*rebased);
      report.orphans.push_back(sf::generation_dir_name(gen));
      lay->orphans.push_back(sf::generation_dir_name(gen));
      gen = new_gen;
      need_manifest = true;
    } else {
      // Only a tail is bad: cut every file back to what the survivors use.
      // truncate_file fsyncs, so a crash now cannot bring the tail back.
      auto cut = [&](const char* name, uint64_t have,
                     uint64_t want) -> caf::error {
        if (have <= want)
          return {};
        return fs->truncate_file(path_join(gen_dir(gen), name), want);
      };
      // Reverse write order, ts before idx: a crash between the cuts then
      // leaves ts no longer than idx, like a torn append, and never the ts
      // surplus that proves lost idx records (recovery_report::lost_*).
      uint64_t n = a->kept.size();
      if (auto err = cut(sf::ts_name, a->ts_len, n * sf::ts_record_size))
        return err;
      step(opts, "recovery_cut_ts");
      if (auto err = cut(sf::idx_name, a->idx_len, n * sf::idx_record_size))
        return err;
      step(opts, "recovery_cut_idx");
      if (auto err = cut(sf::dat_name, a->dat_len, a->dat_end))
        return err;
      step(opts, "recovery_cut_dat");
    }
    if (!a->kept.empty())
      base_seq = std::max(base_seq, a->kept.back().rec.seq + 1);
    if (need_manifest) {
      bool renamed = false;
      if (auto err = write_manifest(fs, dir, sf::manifest{gen, base_seq}, opts,
                                    renamed))
        return err;
    }
    // Everything but the live generation is a leftover of a compaction or a
    // repair that crashed before or after its manifest flip.
    bool swept = false;
    for (auto& name : lay->orphans) {
      if (auto err = fs->remove_all(path_join(dir, name)))
        warn("segment " + dir + ": could not remove orphan " + name + ": "
             + describe(err));
      else
        swept = true;
    }
    if (swept)
      (void)fs->sync_dir(dir);
    if (auto err = open_files(gen_dir(gen)))
      return err;
    index.assign(a->kept);
    next_seq = base_seq;
    auto sizes = [](file_handle& f) {
      auto s = f.size();
      return s ? *s : 0;
    };
    dat_len = sizes(*dat);
    idx_len = sizes(*idx);
    ts_len = sizes(*ts);
    last_seq = next_seq - 1;
    if (auto err = sync_opened())
      return err;
    durable = next_seq - 1;
    return publish_opened();
  }

  caf::error publish_opened() {
    std::shared_ptr<file_handle> files[3];
    if (auto err = open_gen_files(gen_dir(gen), true, files))
      return err;
    std::lock_guard<std::mutex> guard{mtx};
    publish_generation(files);
    return {};
  }
};

// -- segment ------------------------------------------------------------------

segment::segment(std::unique_ptr<impl> ptr) : impl_(std::move(ptr)) {}

segment::~segment() {
  if (auto err = close())
    impl_->warn("segment " + impl_->dir + ": close failed: " + describe(err));
}

caf::expected<std::unique_ptr<segment>> segment::open(const std::string& dir,
                                                      segment_options opts) {
  auto pimpl = std::make_unique<impl>();
  pimpl->fs = opts.fs ? opts.fs : real_file_system();
  pimpl->dir = dir;
  pimpl->opts = std::move(opts);
  auto parent = pimpl->fs->stat_kind(parent_dir(dir));
  if (!parent)
    return parent.error();
  if (*parent != 2)
    return make_error(errc::not_found, "parent directory " + parent_dir(dir)
                                         + " of " + dir + " does not exist");
  if (auto err = pimpl->recover())
    return err;
  pimpl->start_worker();
  return std::unique_ptr<segment>{new segment(std::move(pimpl))};
}

caf::expected<recovery_report>
segment::inspect(const std::string& dir,
                 const std::function<void(const log_record&)>& each,
                 file_system* fs) {
  if (!fs)
    fs = real_file_system();
  recovery_report report;
  auto lay = resolve_layout(fs, dir, report);
  if (!lay)
    return lay.error();
  if (lay->fresh) {
    auto kind = fs->stat_kind(dir);
    if (kind && *kind == 0)
      return make_error(errc::not_found, dir + ": no such directory");
    return make_error(errc::not_found,
                      dir + " holds no meshd log (empty directory)");
  }
  auto gdir = path_join(dir, sf::generation_dir_name(lay->gen));
  auto a = analyze(fs, gdir, report);
  if (!a)
    return a.error();
  if (auto err = find_stranded(fs, dir, *lay, a->kept, lay->man.base_seq, false,
                               report))
    return err;
  if (each && !a->kept.empty()) {
    std::unique_ptr<file_handle> src;
    if (a->dat_len > 0) {
      auto f = fs->open_read(path_join(gdir, sf::dat_name));
      if (!f)
        return f.error();
      src = std::move(*f);
    }
    payload_reader reader{src.get(), a->dat_len};
    log_record rec;
    for (const auto& e : a->kept) {
      rec.seq = e.rec.seq;
      rec.timestamp_ns = e.ts;
      rec.payload.resize(e.rec.length);
      if (e.rec.is_inline()) {
        uint8_t buf[8];
        sf::inline_payload(e.rec, buf);
        std::memcpy(rec.payload.data(), buf, e.rec.length);
      } else {
        const uint8_t* p = nullptr;
        if (auto err = reader.read(e.rec.location, e.rec.length, p))
          return err;
        std::memcpy(rec.payload.data(), p, e.rec.length);
      }
      each(rec);
    }
  }
  return report;
}

caf::expected<uint64_t> segment::append(bytes_view payload) {
  return append(payload, unix_now_ns());
}

caf::expected<uint64_t> segment::append(bytes_view payload,
                                        uint64_t timestamp_ns) {
  auto& d = *impl_;
  if (payload.size > sf::max_payload)
    return make_error(errc::invalid_argument,
                      "payload of " + std::to_string(payload.size)
                        + " bytes exceeds the limit of "
                        + std::to_string(sf::max_payload));
  std::lock_guard<std::mutex> guard{d.mtx};
  if (auto err = d.refuse())
    return err;
  if (auto err = check_seq_room(d.dir, d.next_seq, 1))
    return err;
  auto seq = d.next_seq;
  uint8_t rec[sf::idx_record_size];
  entry e{sf::make_record(seq, payload, d.dat_len, rec), timestamp_ns};
  uint8_t tsb[sf::ts_record_size];
  store_le64(tsb, timestamp_ns);
  bytes_view dat_part = e.rec.is_inline() ? bytes_view{} : payload;
  if (auto err = d.write_parts(dat_part, bytes_view{rec, sizeof(rec)},
                               bytes_view{tsb, sizeof(tsb)}))
    return err;
  d.index.push_back(e);
  d.next_seq = seq + 1;
  d.publish_appended();
  d.note_appended(1, dat_part.size + sizeof(rec) + sizeof(tsb));
  return seq;
}

caf::expected<uint64_t>
segment::append_batch(const std::vector<bytes_view>& payloads) {
  return append_batch(payloads, unix_now_ns());
}

caf::expected<uint64_t>
segment::append_batch(const std::vector<bytes_view>& payloads,
                      uint64_t timestamp_ns) {
  auto& d = *impl_;
  if (payloads.empty())
    return make_error(errc::invalid_argument, "empty batch");
  size_t heap_bytes = 0;
  for (auto& p : payloads) {
    if (p.size > sf::max_payload)
      return make_error(errc::invalid_argument,
                        "payload of " + std::to_string(p.size)
                          + " bytes exceeds the limit of "
                          + std::to_string(sf::max_payload));
    if (p.size > sf::inline_max)
      heap_bytes += p.size;
  }
  if (heap_bytes > sf::max_append_bytes)
    return make_error(errc::limit_exceeded,
                      "batch of " + std::to_string(heap_bytes)
                        + " payload bytes exceeds the limit of "
                        + std::to_string(sf::max_append_bytes) + " per append");
  // Per-thread scratch buffers: a batch costs three writes and, after the
  // first few batches, no allocation.
  thread_local bytes dat_buf;
  thread_local bytes idx_buf;
  thread_local bytes ts_buf;
  std::lock_guard<std::mutex> guard{d.mtx};
  if (auto err = d.refuse())
    return err;
  if (auto err = check_seq_room(d.dir, d.next_seq, payloads.size()))
    return err;
  dat_buf.resize(heap_bytes);
  idx_buf.resize(payloads.size() * sf::idx_record_size);
  ts_buf.resize(payloads.size() * sf::ts_record_size);
  auto first = d.index.size();
  uint64_t seq = d.next_seq;
  uint64_t dat_off = d.dat_len;
  size_t dat_pos = 0;
  for (size_t i = 0; i < payloads.size(); ++i) {
    auto& p = payloads[i];
    entry e{sf::make_record(seq + i, p, dat_off,
                            idx_buf.data() + i * sf::idx_record_size),
            timestamp_ns};
    if (!e.rec.is_inline()) {
      std::memcpy(dat_buf.data() + dat_pos, p.data, p.size);
      dat_pos += p.size;
      dat_off += p.size;
    }
    store_le64(ts_buf.data() + i * sf::ts_record_size, timestamp_ns);
    d.index.push_back(e);
  }
  if (auto err = d.write_parts(dat_buf, idx_buf, ts_buf)) {
    d.index.truncate(first);
    return err;
  }
  d.next_seq = seq + payloads.size();
  d.publish_appended();
  d.note_appended(payloads.size(),
                  dat_buf.size() + idx_buf.size() + ts_buf.size());
  return d.next_seq - 1;
}

caf::error segment::sync() {
  return impl_->sync_now();
}

caf::error segment::close() {
  auto& d = *impl_;
  if (d.closed.load())
    return {};
  d.stop_worker();
  caf::error err;
  if (!d.poisoned.load())
    err = d.sync_now();
  else
    err = d.refuse();
  std::lock_guard<std::mutex> sguard{d.sync_mtx};
  std::lock_guard<std::mutex> guard{d.mtx};
  d.closed = true;
  d.dat.reset();
  d.idx.reset();
  d.ts.reset();
  {
    std::lock_guard<std::mutex> rguard{d.readers->mtx};
    d.readers->closed = true;
    d.readers->dat.reset();
    d.readers->idx.reset();
    d.readers->ts.reset();
  }
  return err;
}

caf::expected<compaction_result> segment::compact(const retention& r) {
  auto& d = *impl_;
  std::lock_guard<std::mutex> cguard{d.compact_mtx};
  // Freeze: decide the cut over the records there are now. Positions in the
  // index stay valid while compact_mtx is held: only a compaction replaces
  // the index, and a failed append truncates only what it added itself.
  size_t drop = 0;
  size_t frozen = 0;
  uint32_t new_gen = 0;
  {
    std::lock_guard<std::mutex> guard{d.mtx};
    if (auto err = d.refuse())
      return err;
    frozen = d.index.size();
    drop = d.decide_drop(r);
    if (drop == 0)
      return compaction_result{0, frozen, d.gen};
    auto next = next_generation(d.dir, d.gen);
    if (!next)
      return next.error();
    new_gen = *next;
  }
  auto w = generation_writer::create(d.fs, d.dir, new_gen, d.opts);
  if (!w)
    return w.error();
  // Bulk: the retained records of the frozen prefix, copied and fsynced
  // without the append lock while appends continue.
  entry_table out;
  size_t pos = drop;
  if (auto err = d.copy_unlocked(**w, pos, frozen, out))
    return err;
  if (auto err = (*w)->sync())
    return err;
  step(d.opts, "compaction_bulk_synced");
  // Catch up with what was appended meanwhile, still without the lock, so
  // the switch below copies only a short tail.
  constexpr size_t short_tail = 256;
  for (int round = 0; round < 8; ++round) {
    size_t end;
    {
      std::lock_guard<std::mutex> guard{d.mtx};
      end = d.index.size();
    }
    if (end - pos <= short_tail)
      break;
    if (auto err = d.copy_unlocked(**w, pos, end, out))
      return err;
    if (auto err = (*w)->sync())
      return err;
  }
  step(d.opts, "compaction_caught_up");
  // The manifest naming the new generation, ready before the switch. Its
  // base_seq only counts when the new generation is empty, and then no
  // record was appended since it was taken.
  uint64_t base_seq;
  {
    std::lock_guard<std::mutex> guard{d.mtx};
    base_seq = d.next_seq;
  }
  auto man = write_manifest_temp(d.fs, d.dir, sf::manifest{new_gen, base_seq},
                                 d.opts);
  if (!man)
    return man.error();
  auto old_gen = d.gen;
  auto flipped = d.switch_to(**w, pos, out, *man);
  if (!flipped) {
    (void)d.fs->remove(*man); // gone already when the rename happened
    return flipped.error();
  }
  // The old generation goes after the switch, without the append lock.
  // Readers still scanning it keep its files open.
  if (auto rm = d.fs->remove_all(d.gen_dir(old_gen)))
    d.warn("segment " + d.dir
           + ": could not remove old generation: " + describe(rm));
  else
    (void)d.fs->sync_dir(d.dir);
  return compaction_result{drop, *flipped, new_gen};
}

std::unique_ptr<segment_reader> segment::reader() const {
  return std::make_unique<segment_reader>(impl_->readers);
}

caf::expected<size_t>
segment::impl::switch_to(generation_writer& w, size_t pos, entry_table& out,
                         const std::string& manifest_tmp) {
  auto& d = *this;
  auto new_gen = w.gen();
  // Appends wait from here to the manifest flip. sync_mtx keeps a policy
  // fsync from syncing the old files after the flip.
  std::lock_guard<std::mutex> sguard{d.sync_mtx};
  std::lock_guard<std::mutex> guard{d.mtx};
  if (auto err = d.refuse())
    return err;
  if (auto err = w.add(d.index.slice(pos), d.dat.get(), d.dat_len, out))
    return err;
  if (auto err = w.flush())
    return err;
  step(d.opts, "generation_written");
  if (auto err = w.sync())
    return err;
  step(d.opts, "generation_synced");
  if (auto err = w.publish())
    return err;
  step(d.opts, "generation_renamed");
  auto new_dat_len = w.dat_len();
  // Open the new files before the flip: failing here leaves the old
  // generation live and untouched (the writer removes the new one).
  std::shared_ptr<file_handle> appenders[3];
  std::shared_ptr<file_handle> reading[3];
  if (auto err = d.open_gen_files(d.gen_dir(new_gen), false, appenders))
    return err;
  if (auto err = d.open_gen_files(d.gen_dir(new_gen), true, reading))
    return err;
  bool renamed = false;
  auto err = commit_manifest(d.fs, d.dir, manifest_tmp, d.opts, renamed);
  if (err && !renamed)
    return err;
  if (err) {
    // The manifest was renamed but the directory fsync failed: whether the
    // flip is durable is unknown, so appending to either generation could be
    // lost. Refuse writes until a reopen settles it.
    d.poisoned = true;
    d.warn("segment " + d.dir + " poisoned: manifest flip to "
           + sf::generation_dir_name(new_gen)
           + " not durable: " + describe(err));
  }
  // From here on the new generation is live: the writer must not remove it.
  w.release();
  d.gen = new_gen;
  d.dat = appenders[0];
  d.idx = appenders[1];
  d.ts = appenders[2];
  d.index = std::move(out);
  d.dat_len = new_dat_len;
  d.idx_len = d.index.size() * sf::idx_record_size;
  d.ts_len = d.index.size() * sf::ts_record_size;
  d.publish_generation(reading);
  step(d.opts, "manifest_flipped");
  if (err)
    return err;
  // The new generation was fsynced in full before the flip.
  uint64_t prev = d.durable.load();
  uint64_t target = d.next_seq - 1;
  while (prev < target && !d.durable.compare_exchange_weak(prev, target)) {
  }
  return d.index.size();
}

caf::expected<log_record> segment::read(uint64_t seq) const {
  auto& d = *impl_;
  std::lock_guard<std::mutex> guard{d.mtx};
  if (d.closed.load())
    return d.refuse();
  auto pos = d.find(seq);
  if (pos == d.index.size() || d.index[pos].rec.seq != seq)
    return make_error(errc::not_found,
                      "seq " + std::to_string(seq) + " is not in " + d.dir);
  const auto& e = d.index[pos];
  log_record out;
  out.seq = seq;
  out.timestamp_ns = e.ts;
  if (auto err = d.read_payload(e, out.payload))
    return err;
  return out;
}

caf::error
segment::for_each(uint64_t from_seq,
                  const std::function<bool(const log_record&)>& f) const {
  auto& d = *impl_;
  std::lock_guard<std::mutex> guard{d.mtx};
  if (d.closed.load())
    return d.refuse();
  log_record rec;
  for (auto pos = d.find(from_seq); pos < d.index.size(); ++pos) {
    const auto& e = d.index[pos];
    rec.seq = e.rec.seq;
    rec.timestamp_ns = e.ts;
    if (auto err = d.read_payload(e, rec.payload))
      return err;
    if (!f(rec))
      break;
  }
  return {};
}

uint64_t segment::first_seq() const {
  std::lock_guard<std::mutex> guard{impl_->mtx};
  return impl_->index.empty() ? impl_->next_seq : impl_->index.front().rec.seq;
}

uint64_t segment::next_seq() const {
  std::lock_guard<std::mutex> guard{impl_->mtx};
  return impl_->next_seq;
}

uint64_t segment::size() const {
  std::lock_guard<std::mutex> guard{impl_->mtx};
  return impl_->index.size();
}

uint64_t segment::durable_seq() const {
  return impl_->durable.load();
}

uint64_t segment::sync_count() const {
  return impl_->syncs.load();
}

uint64_t segment::failed_sync_count() const {
  return impl_->failed_syncs.load();
}

bool segment::poisoned() const {
  return impl_->poisoned.load();
}

uint32_t segment::generation() const {
  std::lock_guard<std::mutex> guard{impl_->mtx};
  return impl_->gen;
}

const std::string& segment::dir() const {
  return impl_->dir;
}

const fsync_policy& segment::policy() const {
  return impl_->opts.policy;
}

const recovery_report& segment::recovery() const {
  return impl_->report;
}

} // namespace mesh
