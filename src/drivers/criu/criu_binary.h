// Locating a CRIU executable that works on this kernel.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "relive/result.h"

namespace relive::criu {

struct CriuVersion {
  int major = 0;
  int minor = 0;
  int patch = 0;

  bool at_least(int maj, int min) const { return major > maj || (major == maj && minor >= min); }
  std::string to_string() const;
};

// CRIU 4.1 is the oldest that runs on kernels with a split vvar area (see ENVIRONMENT.md).
inline constexpr CriuVersion kMinCriuVersion{4, 1, 0};

// Parses the "Version: X.Y[.Z]" line of `criu --version`.
std::optional<CriuVersion> parse_criu_version(std::string_view version_output);

// Runs `path --version`.
Result<CriuVersion> criu_version(const std::string& path);

// The CRIU to use: $RELIVE_CRIU when set (and then only it: an explicit choice is not second-
// guessed), else /opt/relive/criu/sbin/criu (installed by scripts/bootstrap.sh), else `criu` on
// PATH. NotFound when there is none; Unsupported when the candidates are older than 4.1.
Result<std::string> find_criu();

}  // namespace relive::criu
