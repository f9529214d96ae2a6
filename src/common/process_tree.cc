#include "common/process_tree.h"

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <filesystem>
#include <fstream>
#include <string>

namespace relive {
namespace {

std::vector<pid_t> children_of(pid_t pid) {
  std::vector<pid_t> out;
  std::error_code ec;
  std::string task_dir = "/proc/" + std::to_string(pid) + "/task";
  for (const auto& t : std::filesystem::directory_iterator(task_dir, ec)) {
    std::ifstream in(t.path() / "children");
    for (pid_t c; in >> c;) out.push_back(c);
  }
  return out;
}

std::string ns_of(pid_t pid) {
  std::error_code ec;
  return std::filesystem::read_symlink("/proc/" + std::to_string(pid) + "/ns/pid", ec).string();
}

}  // namespace

char task_state(pid_t tid) {
  std::ifstream in("/proc/" + std::to_string(tid) + "/stat");
  std::string line;
  if (!std::getline(in, line)) return '\0';
  size_t close = line.rfind(')');  // the command name may hold spaces and parentheses
  return close != std::string::npos && close + 2 < line.size() ? line[close + 2] : '\0';
}

Result<std::vector<pid_t>> process_tree(pid_t root) {
  if (::kill(root, 0) != 0) return Status::NotFound("no process " + std::to_string(root));
  std::vector<pid_t> out{root};
  for (size_t i = 0; i < out.size(); ++i) {
    for (pid_t c : children_of(out[i])) out.push_back(c);
  }
  return out;
}

void signal_all(const std::vector<pid_t>& pids, int sig) {
  for (pid_t p : pids) ::kill(p, sig);
}

std::vector<pid_t> namespace_members(pid_t init_pid) {
  std::string ns = ns_of(init_pid);
  std::vector<pid_t> out;
  if (ns.empty()) return out;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator("/proc", ec)) {
    std::string name = e.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    pid_t pid = std::stoi(name);
    if (ns_of(pid) == ns) out.push_back(pid);
  }
  return out;
}

std::vector<pid_t> threads_of(pid_t pid) {
  std::vector<pid_t> out;
  std::error_code ec;
  for (const auto& e :
       std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/task", ec)) {
    std::string name = e.path().filename().string();
    pid_t tid = 0;
    auto [p, err] = std::from_chars(name.data(), name.data() + name.size(), tid);
    if (err != std::errc() || p != name.data() + name.size()) continue;
    out.push_back(tid);
  }
  auto self = std::find(out.begin(), out.end(), pid);
  if (self != out.end()) std::rotate(out.begin(), self, self + 1);
  return out;
}

}  // namespace relive
