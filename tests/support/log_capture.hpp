#pragma once

// Captures what spdlog's default logger writes while in scope, for tests that
// check a log line (its level and its figures). Restores the previous logger
// on destruction.

#include <memory>
#include <mutex>
#include <sstream>
#include <string>

#include <spdlog/sinks/base_sink.h>
#include <spdlog/spdlog.h>

namespace mesh::test {

namespace detail {

/// Keeps formatted lines; read them under the sink's own lock.
class string_sink : public spdlog::sinks::base_sink<std::mutex> {
public:
  std::string text() {
    std::lock_guard<std::mutex> guard{mutex_};
    return out_;
  }

protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    spdlog::memory_buf_t buf;
    formatter_->format(msg, buf);
    out_.append(buf.data(), buf.size());
  }
  void flush_() override {}

private:
  std::string out_;
};

} // namespace detail

class log_capture {
public:
  log_capture() : old_(spdlog::default_logger()) {
    sink_->set_pattern("[%l] %v");
    auto logger = std::make_shared<spdlog::logger>("capture", sink_);
    logger->set_level(spdlog::level::debug);
    spdlog::set_default_logger(std::move(logger));
  }

  ~log_capture() {
    spdlog::set_default_logger(old_);
  }

  log_capture(const log_capture&) = delete;
  log_capture& operator=(const log_capture&) = delete;

  /// Everything logged so far, one "[level] message" per line.
  std::string text() {
    return sink_->text();
  }

  /// Lines, at any level, that contain `needle`.
  size_t count(const std::string& needle) {
    std::istringstream in{text()};
    size_t n = 0;
    for (std::string line; std::getline(in, line);)
      if (line.find(needle) != std::string::npos)
        ++n;
    return n;
  }

  /// Lines at `level` ("error", "warning", ...) that contain `needle`.
  size_t count(const std::string& level, const std::string& needle) {
    std::istringstream in{text()};
    size_t n = 0;
    std::string line;
    auto prefix = "[" + level + "] ";
    while (std::getline(in, line))
      if (line.rfind(prefix, 0) == 0 && line.find(needle) != std::string::npos)
        ++n;
    return n;
  }

private:
  std::shared_ptr<spdlog::logger> old_;
  std::shared_ptr<detail::string_sink>
    sink_ = std::make_shared<detail::string_sink>();
};

} // namespace mesh::test
