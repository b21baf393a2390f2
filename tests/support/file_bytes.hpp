#pragma once

// Helpers that damage files on purpose, LevelDB-style.

#include <cstdint>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include <sys/stat.h>
#include <unistd.h>

namespace mesh::test {

inline std::vector<uint8_t> slurp(const std::string& path) {
  std::ifstream in{path, std::ios::binary};
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

inline void spit(const std::string& path, const std::vector<uint8_t>& data) {
  std::ofstream out{path, std::ios::binary | std::ios::trunc};
  out.write(reinterpret_cast<const char*>(data.data()),
            static_cast<std::streamsize>(data.size()));
}

inline uint64_t file_size(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0)
    return 0;
  return static_cast<uint64_t>(st.st_size);
}

inline bool exists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0;
}

inline void flip_byte(const std::string& path, uint64_t offset) {
  auto data = slurp(path);
  data.at(offset) ^= 0x5a;
  spit(path, data);
}

inline void append_bytes(const std::string& path,
                         const std::vector<uint8_t>& extra) {
  auto data = slurp(path);
  data.insert(data.end(), extra.begin(), extra.end());
  spit(path, data);
}

inline void truncate_to(const std::string& path, uint64_t len) {
  if (::truncate(path.c_str(), static_cast<off_t>(len)) != 0)
    throw std::runtime_error("truncate failed: " + path);
}

} // namespace mesh::test
