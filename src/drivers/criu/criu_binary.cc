#include "drivers/criu/criu_binary.h"

#include <unistd.h>

#include <charconv>
#include <cstdlib>
#include <vector>

#include "common/subprocess.h"

namespace relive::criu {
namespace {

constexpr const char* kBootstrapCriu = "/opt/relive/criu/sbin/criu";
constexpr std::chrono::seconds kVersionTimeout{30};

bool parse_int(std::string_view& s, int* out) {
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), *out);
  if (ec != std::errc()) return false;
  s.remove_prefix(static_cast<size_t>(end - s.data()));
  return true;
}

bool is_executable(const std::string& path) { return ::access(path.c_str(), X_OK) == 0; }

std::optional<std::string> search_path(const std::string& name) {
  const char* path = std::getenv("PATH");
  std::string_view rest = path != nullptr ? path : "";
  while (!rest.empty()) {
    std::string_view dir = rest.substr(0, rest.find(':'));
    rest.remove_prefix(std::min(rest.size(), dir.size() + 1));
    std::string candidate = std::string(dir.empty() ? "." : dir) + "/" + name;
    if (is_executable(candidate)) return candidate;
  }
  return std::nullopt;
}

// Ok when `path` is a CRIU new enough for us.
Status check_candidate(const std::string& path) {
  if (!is_executable(path)) return Status::NotFound(path + " is not an executable file");
  RELIVE_ASSIGN_OR_RETURN(CriuVersion v, criu_version(path));
  if (v.at_least(kMinCriuVersion.major, kMinCriuVersion.minor)) return Status::Ok();
  return Status::Unsupported(path + " is CRIU " + v.to_string() + ", but relive needs CRIU " +
                             kMinCriuVersion.to_string() +
                             " or newer; run scripts/bootstrap.sh to install it under "
                             "/opt/relive/criu");
}

}  // namespace

std::string CriuVersion::to_string() const {
  return std::to_string(major) + "." + std::to_string(minor) + "." + std::to_string(patch);
}

std::optional<CriuVersion> parse_criu_version(std::string_view out) {
  constexpr std::string_view kTag = "Version: ";
  size_t at = out.find(kTag);
  if (at == std::string_view::npos) return std::nullopt;
  std::string_view s = out.substr(at + kTag.size());
  CriuVersion v;
  if (!parse_int(s, &v.major) || s.empty() || s[0] != '.') return std::nullopt;
  s.remove_prefix(1);
  if (!parse_int(s, &v.minor)) return std::nullopt;
  if (!s.empty() && s[0] == '.') {
    s.remove_prefix(1);
    if (!parse_int(s, &v.patch)) return std::nullopt;
  }
  return v;
}

Result<CriuVersion> criu_version(const std::string& path) {
  RELIVE_ASSIGN_OR_RETURN(RunResult r,
                          relive::run({path, "--version"}, {.timeout = kVersionTimeout}));
  if (!r.ok()) return Status::IoError(path + " --version: " + r.describe() + ": " + r.output);
  auto v = parse_criu_version(r.output);
  if (!v) return Status::Unsupported(path + " --version printed no version: " + r.output);
  return *v;
}

Result<std::string> find_criu() {
  if (const char* forced = std::getenv("RELIVE_CRIU"); forced != nullptr && *forced != '\0') {
    RELIVE_RETURN_IF_ERROR(check_candidate(forced).with_context("$RELIVE_CRIU"));
    return std::string(forced);
  }
  std::vector<std::string> candidates = {kBootstrapCriu};
  if (auto on_path = search_path("criu")) candidates.push_back(*on_path);
  Status first_failure;
  for (const auto& c : candidates) {
    Status st = check_candidate(c);
    if (st.ok()) return c;
    // A too-old CRIU explains more than a missing one, so it wins the report.
    if (first_failure.ok() || st.is_unsupported()) first_failure = st;
  }
  if (first_failure.code() != Status::Code::kNotFound) return first_failure;
  return Status::NotFound("no CRIU found (tried $RELIVE_CRIU, " + std::string(kBootstrapCriu) +
                          ", criu on PATH); run scripts/bootstrap.sh to install CRIU " +
                          kMinCriuVersion.to_string());
}

}  // namespace relive::criu
