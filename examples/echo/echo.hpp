#pragma once

// `echo`: answers every event with its payload, unchanged. Stateless.

#include "actors/daemon.hpp"

namespace mesh::examples {

class echo : public daemon {
public:
  /// The factory name.
  static constexpr std::string_view kind_name = "echo";

  std::string_view kind() const override {
    return kind_name;
  }

  /// One output: the input payload. Never fails.
  caf::expected<std::vector<bytes>> process(const causal_event& ev) override;
};

} // namespace mesh::examples
