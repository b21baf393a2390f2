#pragma once

// Captures what spdlog's default logger writes while the object lives, so a
// test can count log lines. Restores the previous default logger.

#include <memory>
#include <sstream>
#include <string>

#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

namespace mesh::test {

class log_capture {
public:
  log_capture() : previous_(spdlog::default_logger()) {
    auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(out_, true);
    auto logger = std::make_shared<spdlog::logger>("capture", sink);
    logger->set_pattern("%l %v");
    logger->set_level(spdlog::level::trace);
    spdlog::set_default_logger(logger);
  }

  ~log_capture() {
    spdlog::set_default_logger(previous_);
  }

  log_capture(const log_capture&) = delete;
  log_capture& operator=(const log_capture&) = delete;

  /// Everything logged so far.
  std::string text() {
    spdlog::default_logger()->flush();
    return out_.str();
  }

  /// Lines containing `what`.
  size_t count(const std::string& what) {
    std::istringstream in{text()};
    size_t n = 0;
    for (std::string line; std::getline(in, line);)
      if (line.find(what) != std::string::npos)
        ++n;
    return n;
  }

private:
  std::ostringstream out_;
  std::shared_ptr<spdlog::logger> previous_;
};

} // namespace mesh::test
