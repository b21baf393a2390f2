#include "examples/examples.hpp"

#include "examples/counter/counter.hpp"
#include "examples/echo/echo.hpp"
#include "examples/window/window.hpp"

namespace mesh::examples {

std::vector<std::pair<std::string, daemon_factory>> example_kinds() {
  std::vector<std::pair<std::string, daemon_factory>> out;
  out.emplace_back(std::string{counter::kind_name}, [] {
    return std::make_unique<counter>();
  });
  out.emplace_back(std::string{echo::kind_name}, [] {
    return std::make_unique<echo>();
  });
  out.emplace_back(std::string{window::kind_name}, [] {
    return std::make_unique<window>();
  });
  return out;
}

} // namespace mesh::examples
