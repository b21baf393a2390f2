#pragma once

// Small helpers both benchmarks print their environment and tables with.

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include <sys/vfs.h>
#include <time.h>
#include <unistd.h>

#include "base/bytes.hpp"
#include "examples/text.hpp"

namespace mesh::bench {

using clock_type = std::chrono::steady_clock;

/// CPU time of the whole process (all threads, user + system), seconds.
inline double process_cpu() {
  timespec ts;
  ::clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + ts.tv_nsec / 1e9;
}

/// /proc/loadavg without the trailing newline, or "unknown".
inline std::string loadavg() {
  std::string out;
  if (FILE* f = std::fopen("/proc/loadavg", "r")) {
    char buf[128] = {0};
    if (std::fgets(buf, sizeof buf, f))
      out = buf;
    std::fclose(f);
  }
  while (!out.empty() && (out.back() == '\n' || out.back() == ' '))
    out.pop_back();
  return out.empty() ? "unknown" : out;
}

/// Seconds since `t0`.
inline double since(clock_type::time_point t0) {
  return std::chrono::duration<double>(clock_type::now() - t0).count();
}

/// The file system `dir` lives on, named when known; warns about tmpfs,
/// where fsync measures nothing.
inline std::string fs_name(const std::string& dir) {
  struct statfs st;
  if (::statfs(dir.c_str(), &st) != 0)
    return "unknown";
  char hex[32];
  std::snprintf(hex, sizeof hex, "0x%lx",
                static_cast<unsigned long>(st.f_type));
  switch (static_cast<unsigned long>(st.f_type)) {
    case 0xEF53: return std::string{"ext2/3/4 ("} + hex + ")";
    case 0x58465342: return std::string{"xfs ("} + hex + ")";
    case 0x9123683E: return std::string{"btrfs ("} + hex + ")";
    case 0x01021994:
      return std::string{"tmpfs ("} + hex + ") - fsync is a no-op here!";
    case 0x794c7630: return std::string{"overlayfs ("} + hex + ")";
    default: return hex;
  }
}

/// An integer with thousands separators.
inline std::string fmt_num(double v) {
  char raw[64];
  std::snprintf(raw, sizeof raw, "%.0f", v);
  std::string s = raw, out;
  int c = 0;
  for (auto it = s.rbegin(); it != s.rend(); ++it) {
    if (c && c % 3 == 0 && *it != '-')
      out.push_back(',');
    out.push_back(*it);
    ++c;
  }
  return {out.rbegin(), out.rend()};
}

/// snprintf of one double.
inline std::string fmt_f(const char* f, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

/// Full path of `name` on PATH, or empty.
inline std::string which(const std::string& name) {
  const char* path = std::getenv("PATH");
  if (!path)
    return {};
  std::string_view rest = path;
  while (!rest.empty()) {
    auto colon = rest.find(':');
    auto dir = rest.substr(0, colon);
    rest = colon == std::string_view::npos ? std::string_view{}
                                           : rest.substr(colon + 1);
    std::string cand = std::string{dir.empty() ? "." : dir} + "/" + name;
    if (::access(cand.c_str(), X_OK) == 0)
      return cand;
  }
  return {};
}

/// Adds `payload` to `total` as examples::counter does: a decimal integer,
/// or 1 for any other payload; false (total unchanged) on overflow. Every
/// raw counter of the benchmarks does the same addition with the same
/// parser, so the comparison with meshd is like for like.
inline bool add_payload(bytes_view payload, int64_t& total) {
  int64_t delta = 1;
  if (mesh::examples::parse_int64(payload, delta)
      == mesh::examples::parse_status::out_of_range)
    return false;
  return !__builtin_add_overflow(total, delta, &total);
}

} // namespace mesh::bench
