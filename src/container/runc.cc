#include "container/runc.h"

#include <signal.h>

#include <cstdlib>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <sstream>

#include "common/file_util.h"
#include "common/json_field.h"
#include "common/subprocess.h"

namespace relive::container {
namespace {

// CRIU's hardware breakpoints never fire on these VMs (src/drivers/criu/criu.h): runc passes
// its environment on to the CRIU it starts.
constexpr const char* kCriuEnv = "CRIU_FAULT=130";

bool is_executable(const std::string& p) { return !p.empty() && ::access(p.c_str(), X_OK) == 0; }

std::string trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

std::string criu_args_text(const Runc::CriuArgs& a) {
  return "--image-path " + a.images + " --work-path " + a.work;
}

std::vector<std::string> criu_flags(const Runc::CriuArgs& a) {
  std::vector<std::string> v = {"--image-path", a.images, "--work-path", a.work};
  if (a.tcp_established) v.push_back("--tcp-established");
  return v;
}

// runc's message plus CRIU's error lines, for a failed checkpoint or restore.
Status criu_failure(Status runc_error, const std::string& log) {
  std::string lines = criu_error_lines(log);
  if (lines.empty()) return runc_error;
  return Status::IoError(runc_error.message() + "\nCRIU (" + log + "):\n" + lines);
}

}  // namespace

std::vector<std::string> criu_env(const Runc::CriuArgs& a) {
  std::vector<std::string> env = {kCriuEnv};
  if (!a.config_file.empty()) env.push_back("CRIU_CONFIG_FILE=" + a.config_file);
  return env;
}

Result<Runc> Runc::find(std::chrono::seconds timeout, std::string root) {
  if (const char* forced = std::getenv("RELIVE_RUNC"); forced != nullptr && *forced != '\0') {
    if (is_executable(forced)) return Runc(forced, timeout, std::move(root));
    return Status::NotFound(std::string("RELIVE_RUNC=") + forced + " is not executable");
  }
  for (const char* p :
       {"/usr/sbin/runc", "/usr/bin/runc", "/usr/local/sbin/runc", "/usr/local/bin/runc"}) {
    if (is_executable(p)) return Runc(p, timeout, std::move(root));
  }
  return Status::NotFound("runc is not installed (apt-get install runc)");
}

std::vector<std::string> Runc::argv0() const {
  if (root_.empty()) return {path_};
  return {path_, "--root", root_};
}

Result<std::string> Runc::run(const std::vector<std::string>& args, const std::string& what,
                              std::vector<std::string> env) const {
  std::vector<std::string> argv = argv0();
  argv.insert(argv.end(), args.begin(), args.end());
  RunOptions co;
  co.env = env.empty() ? std::vector<std::string>{kCriuEnv} : std::move(env);
  co.timeout = timeout_;
  RELIVE_ASSIGN_OR_RETURN(RunResult r, relive::run(argv, co));
  if (r.ok()) return r.output;
  std::string msg = what + ": runc " + r.describe() + ": " + trim(r.output);
  if (r.output.find("does not exist") != std::string::npos) return Status::NotFound(msg);
  return Status::IoError(msg);
}

Result<std::string> Runc::version() const {
  RELIVE_ASSIGN_OR_RETURN(std::string out, run({"--version"}, "runc --version"));
  return out.substr(0, out.find('\n'));
}

Result<RuncState> Runc::state(const std::string& name) const {
  RELIVE_ASSIGN_OR_RETURN(std::string out, run({"state", name}, "runc state " + name));
  auto j = nlohmann::json::parse(out, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object() || !j.contains("pid") || !j.contains("bundle")) {
    return Status::Corruption("runc state " + name + " printed no state: " + trim(out));
  }
  RuncState s;
  s.id = json_value_or(j, "id", name);
  s.pid = json_value_or(j, "pid", 0);
  s.status = json_value_or(j, "status", "");
  s.bundle = json_value_or(j, "bundle", "");
  s.rootfs = json_value_or(j, "rootfs", "");
  s.created = json_value_or(j, "created", "");
  return s;
}

Status Runc::pause(const std::string& name) const {
  return run({"pause", name}, "runc pause " + name).status();
}

Status Runc::resume(const std::string& name) const {
  return run({"resume", name}, "runc resume " + name).status();
}

Status Runc::signal_all(const std::string& name, const std::string& signal) const {
  return run({"kill", "--all", name, signal}, "runc kill --all " + name + " " + signal).status();
}

Status Runc::destroy(const std::string& name) const {
  (void)run({"kill", "--all", name, "KILL"}, "runc kill " + name);
  return run({"delete", "--force", name}, "runc delete " + name).status();
}

Status Runc::checkpoint(const std::string& name, const CriuArgs& a, bool leave_running) const {
  std::vector<std::string> args = {"--criu", a.criu, "checkpoint"};
  auto flags = criu_flags(a);
  args.insert(args.end(), flags.begin(), flags.end());
  if (leave_running) args.push_back("--leave-running");
  args.push_back(name);
  Status st = run(args, "runc checkpoint " + name + " " + criu_args_text(a), criu_env(a)).status();
  if (st.ok()) return st;
  return criu_failure(st, a.work + "/dump.log");
}

Status Runc::restore(const std::string& name, const std::string& bundle, const CriuArgs& a) const {
  return run_restore(name, bundle, a, false);
}

Status Runc::restore_lazy(const std::string& name, const std::string& bundle,
                          const CriuArgs& a) const {
  return run_restore(name, bundle, a, true);
}

Result<criu::CriuProcess> Runc::start_lazy_checkpoint(const std::string& name, const CriuArgs& a,
                                                      const std::string& page_server,
                                                      bool leave_running) const {
  std::vector<std::string> argv = argv0();
  argv.insert(argv.end(), {"--criu", a.criu, "checkpoint"});
  auto flags = criu_flags(a);
  argv.insert(argv.end(), flags.begin(), flags.end());
  argv.insert(argv.end(), {"--lazy-pages", "--page-server", page_server, "--status-fd", "3"});
  if (leave_running) argv.push_back("--leave-running");
  argv.push_back(name);
  criu::CriuRunOptions run;
  run.timeout = timeout_;
  return criu::CriuProcess::start(argv, run, a.work + "/runc-checkpoint.out", a.work + "/dump.log",
                                  "runc checkpoint --lazy-pages " + name, criu_env(a),
                                  /*append_status_fd=*/false);
}

Status Runc::run_restore(const std::string& name, const std::string& bundle, const CriuArgs& a,
                         bool lazy) const {
  std::string log = a.work + "/runc.log";
  // runc's stdio on /dev/null (see the header); runc's errors go to --log.
  std::vector<std::string> args = argv0();
  args.insert(args.end(),
              {"--log", log, "--criu", a.criu, "restore", "--detach", "--bundle", bundle});
  if (lazy) args.push_back("--lazy-pages");
  auto flags = criu_flags(a);
  args.insert(args.end(), flags.begin(), flags.end());
  args.push_back(name);
  RunOptions co;
  co.env = criu_env(a);
  co.timeout = timeout_;
  co.discard_output = true;
  RELIVE_ASSIGN_OR_RETURN(RunResult r, relive::run(args, co));
  if (r.ok()) return Status::Ok();
  auto text = read_file(log);
  std::string msg = "runc restore " + name + " --bundle " + bundle + " " + criu_args_text(a) +
                    ": runc " + r.describe() + ": " + trim(text.ok() ? *text : "(no runc log)");
  return criu_failure(Status::IoError(msg), a.work + "/restore.log");
}

std::string criu_error_lines(const std::string& log_path, size_t max) {
  auto text = read_file(log_path);
  if (!text.ok()) return "";
  std::vector<std::string> lines;
  std::istringstream in(*text);
  for (std::string line; std::getline(in, line);) {
    // CRIU 4.1.1 always complains about RLIMIT_NOFILE here; it is harmless.
    if (line.find("Error") != std::string::npos &&
        line.find("RLIMIT_NOFILE") == std::string::npos) {
      lines.push_back(line);
    }
  }
  if (lines.size() > max) lines.erase(lines.begin(), lines.end() - static_cast<long>(max));
  std::string out;
  for (const auto& l : lines) out += (out.empty() ? "" : "\n") + l;
  return out;
}

}  // namespace relive::container
