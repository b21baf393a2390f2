#include "mesh/directory.hpp"

#include <algorithm>
#include <cstdio>
#include <set>
#include <string>

#include <xxhash.h>

#include "base/errc.hpp"
#include "identity/entity_id.hpp"

namespace mesh {

namespace {

void put_u64(std::string& out, uint64_t x) {
  for (int i = 0; i < 8; ++i)
    out.push_back(static_cast<char>((x >> (8 * i)) & 0xff));
}

void put_u32(std::string& out, uint32_t x) {
  for (int i = 0; i < 4; ++i)
    out.push_back(static_cast<char>((x >> (8 * i)) & 0xff));
}

std::string origin_text(uint64_t origin) {
  char buf[32];
  snprintf(buf, sizeof(buf), "0x%016llx",
           static_cast<unsigned long long>(origin));
  return buf;
}

} // namespace

bool supersedes(const directory_entry& a, const directory_entry& b) noexcept {
  if (a.epoch != b.epoch)
    return a.epoch > b.epoch;
  if (a.stopped != b.stopped)
    return a.stopped;
  if (a.node != b.node)
    return a.node < b.node;
  return a.kind < b.kind;
}

uint64_t entry_digest(const directory_entry& e) noexcept {
  // Canonical bytes, so that every node computes the same digest whatever
  // its struct layout: origin, node, epoch, stopped, kind length, kind.
  std::string buf;
  buf.reserve(8 + e.node.size() + 8 + 1 + 4 + e.kind.size());
  put_u64(buf, e.origin);
  buf.append(reinterpret_cast<const char*>(e.node.data()), e.node.size());
  put_u64(buf, e.epoch);
  buf.push_back(e.stopped ? 1 : 0);
  put_u32(buf, static_cast<uint32_t>(e.kind.size()));
  buf.append(e.kind);
  return XXH3_64bits(buf.data(), buf.size());
}

caf::error validate(const directory_entry& e) {
  if (e.kind.size() > max_directory_kind_size)
    return make_error(errc::invalid_argument,
                      "directory entry origin=" + origin_text(e.origin)
                        + ": kind is " + std::to_string(e.kind.size())
                        + " bytes, the limit is "
                        + std::to_string(max_directory_kind_size));
  if (std::all_of(e.node.begin(), e.node.end(), [](uint8_t b) {
        return b == 0;
      }))
    return make_error(errc::invalid_argument,
                      "directory entry origin=" + origin_text(e.origin)
                        + " names no node (all-zero node id)");
  return {};
}

embedded_directory::embedded_directory(size_t max_entries)
  : max_entries_(max_entries), bucket_digest_(bucket_count, 0) {}

caf::expected<std::optional<directory_entry>>
embedded_directory::lookup(uint64_t origin) const {
  auto it = table_.find(origin);
  if (it == table_.end())
    return std::optional<directory_entry>{};
  return std::optional<directory_entry>{it->second};
}

bool embedded_directory::apply(const directory_entry& e) {
  auto& digest = bucket_digest_[bucket_of(e.origin)];
  auto it = table_.find(e.origin);
  if (it == table_.end()) {
    it = table_.emplace(e.origin, e).first;
  } else {
    if (!supersedes(e, it->second))
      return false;
    digest -= entry_digest(it->second);
    it->second = e;
  }
  digest += entry_digest(e);
  if (on_change_) {
    // A copy: the callback may publish a newer entry for this origin,
    // which would overwrite the one it was handed.
    auto now = it->second;
    on_change_(now);
  }
  return true;
}

caf::expected<bool> embedded_directory::publish(const directory_entry& e) {
  if (auto err = validate(e))
    return err;
  if (table_.size() >= max_entries_ && table_.count(e.origin) == 0)
    return make_error(errc::limit_exceeded, "directory is full ("
                                              + std::to_string(max_entries_)
                                              + " entries); refusing origin="
                                              + origin_text(e.origin));
  return apply(e);
}

caf::expected<size_t>
embedded_directory::merge(const std::vector<directory_entry>& batch) {
  if (batch.size() > max_entries_)
    return make_error(errc::limit_exceeded, "directory merge of "
                                              + std::to_string(batch.size())
                                              + " entries exceeds the bound of "
                                              + std::to_string(max_entries_));
  // Validate and size the whole batch before applying any of it, so that a
  // refused merge leaves the table as it was.
  std::set<uint64_t> fresh;
  for (auto& e : batch) {
    if (auto err = validate(e))
      return err;
    if (table_.count(e.origin) == 0)
      fresh.insert(e.origin);
  }
  if (table_.size() + fresh.size() > max_entries_)
    return make_error(errc::limit_exceeded,
                      "directory merge would grow the table to "
                        + std::to_string(table_.size() + fresh.size())
                        + " entries, the bound is "
                        + std::to_string(max_entries_));
  size_t applied = 0;
  for (auto& e : batch)
    if (apply(e))
      ++applied;
  return applied;
}

caf::expected<std::vector<directory_entry>>
embedded_directory::entries() const {
  std::vector<directory_entry> out;
  out.reserve(table_.size());
  for (auto& kv : table_)
    out.push_back(kv.second);
  return out;
}

caf::expected<std::vector<directory_entry>>
embedded_directory::entries_on(const entity_id& node) const {
  // A scan: asked when a node goes down or for a listing, not per request;
  // 100,000 entries take about a millisecond.
  std::vector<directory_entry> out;
  for (auto& kv : table_)
    if (kv.second.node == node && !kv.second.stopped)
      out.push_back(kv.second);
  return out;
}

caf::expected<uint64_t> embedded_directory::digest() const {
  uint64_t sum = 0;
  for (auto d : bucket_digest_)
    sum += d;
  return sum;
}

caf::expected<size_t> embedded_directory::size() const {
  return table_.size();
}

void embedded_directory::on_change(change_callback cb) {
  on_change_ = std::move(cb);
}

std::vector<uint64_t> embedded_directory::bucket_digests() const {
  return bucket_digest_;
}

caf::expected<std::vector<uint32_t>> embedded_directory::differing_buckets(
  const std::vector<uint64_t>& theirs) const {
  if (theirs.size() != bucket_count)
    return make_error(errc::invalid_argument,
                      "bucket digests: got " + std::to_string(theirs.size())
                        + " values, expected " + std::to_string(bucket_count));
  std::vector<uint32_t> out;
  for (size_t i = 0; i < bucket_count; ++i)
    if (theirs[i] != bucket_digest_[i])
      out.push_back(static_cast<uint32_t>(i));
  return out;
}

caf::expected<std::vector<directory_entry>>
embedded_directory::entries_in(const std::vector<uint32_t>& buckets) const {
  std::vector<uint32_t> sorted = buckets;
  std::sort(sorted.begin(), sorted.end());
  sorted.erase(std::unique(sorted.begin(), sorted.end()), sorted.end());
  std::vector<directory_entry> out;
  for (auto b : sorted) {
    if (b >= bucket_count)
      return make_error(errc::invalid_argument,
                        "bucket " + std::to_string(b) + " is out of range (0.."
                          + std::to_string(bucket_count - 1) + ")");
    // A bucket is a contiguous range of origins: [b << shift, (b+1) << shift).
    uint64_t lo = uint64_t{b} << (64 - bucket_bits);
    auto it = table_.lower_bound(lo);
    for (; it != table_.end() && bucket_of(it->first) == b; ++it)
      out.push_back(it->second);
  }
  return out;
}

} // namespace mesh
