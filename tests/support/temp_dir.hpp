#pragma once

// A fresh directory under $TMPDIR (or /tmp) for one test, removed with all its
// contents when the object goes out of scope.

#include <cstdlib>
#include <string>

#include <ftw.h>
#include <unistd.h>

namespace mesh::test {

class temp_dir {
public:
  temp_dir() {
    const char* base = std::getenv("TMPDIR");
    std::string pattern = std::string{base ? base : "/tmp"}
                          + "/meshd-test-XXXXXX";
    if (::mkdtemp(pattern.data()) == nullptr)
      std::abort();
    path_ = pattern;
  }

  ~temp_dir() {
    ::nftw(
      path_.c_str(),
      [](const char* p, const struct stat*, int, struct FTW*) {
        return ::remove(p);
      },
      16, FTW_DEPTH | FTW_PHYS);
  }

  temp_dir(const temp_dir&) = delete;
  temp_dir& operator=(const temp_dir&) = delete;

  const std::string& path() const {
    return path_;
  }

  std::string operator/(const std::string& name) const {
    return path_ + "/" + name;
  }

private:
  std::string path_;
};

} // namespace mesh::test
