#include "drivers/criu/criu.h"

#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <filesystem>

#include "common/file_util.h"
#include "common/logging.h"
#include "common/subprocess.h"
#include "drivers/criu/criu_binary.h"
#include "drivers/criu/image_check.h"

namespace relive::criu {
namespace {

// CRIU's FI_NO_BREAKPOINTS fault-injection code; see the comment at the top of criu.h.
constexpr const char* kNoBreakpointsEnv = "CRIU_FAULT=130";
// Logged as an "Error" by every CRIU run as root without CAP_SYS_RESOURCE, then ignored by CRIU
// itself; quoting it would point operators at the wrong problem.
constexpr std::string_view kBenignErrors[] = {"Can't setup RLIMIT_NOFILE"};

std::string absolute_path(const std::string& path) {
  std::error_code ec;
  auto abs = std::filesystem::absolute(path, ec);
  return ec ? path : abs.lexically_normal().string();
}

// CRIU resolves relative log and pid files inside its work dir, which is the images dir.
std::string inside(const std::string& dir, const std::string& file) {
  return !file.empty() && file[0] == '/' ? file : dir + "/" + file;
}

void add_if(std::vector<std::string>& argv, bool on, const char* flag) {
  if (on) argv.emplace_back(flag);
}

std::vector<std::string_view> split_lines(std::string_view text) {
  std::vector<std::string_view> lines;
  while (!text.empty()) {
    size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    if (!line.empty()) lines.push_back(line);
    text.remove_prefix(nl == std::string_view::npos ? text.size() : nl + 1);
  }
  return lines;
}

// "(00.045583) Error (x.c:1): msg" -> "Error (x.c:1): msg"
std::string_view strip_timestamp(std::string_view line) {
  if (line.empty() || line[0] != '(') return line;
  size_t end = line.find(") ");
  if (end == std::string_view::npos) return line;
  line.remove_prefix(end + 2);
  while (!line.empty() && line[0] == ' ') line.remove_prefix(1);
  return line;
}

bool is_benign(std::string_view line) {
  return std::any_of(std::begin(kBenignErrors), std::end(kBenignErrors),
                     [&](std::string_view b) { return line.find(b) != std::string_view::npos; });
}

std::vector<std::string_view> error_lines(std::string_view log) {
  std::vector<std::string_view> errors, benign;
  for (std::string_view line : split_lines(log)) {
    if (line.find("Error (") == std::string_view::npos) continue;
    (is_benign(line) ? benign : errors).push_back(strip_timestamp(line));
  }
  return errors.empty() ? benign : errors;
}

Result<std::string> resolve_criu(const CriuRunOptions& run) {
  if (!run.criu.empty()) return run.criu;
  return find_criu();
}

// Runs CRIU to completion; any failure becomes an IoError that quotes CRIU.
Status run_criu(const std::vector<std::string>& argv, const CriuRunOptions& run,
                const std::string& what, const std::string& log,
                const std::vector<int>& keep_fds = {}) {
  RunOptions co{.env = {}, .timeout = run.timeout, .keep_fds = keep_fds};
  if (!run.hw_breakpoints) co.env.emplace_back(kNoBreakpointsEnv);
  RELIVE_LOG_DEBUG("running {}", fmt::join(argv, " "));
  RELIVE_ASSIGN_OR_RETURN(RunResult r, relive::run(argv, co));
  if (r.ok()) return Status::Ok();
  auto log_text = read_file(log);
  std::string errors = summarize_criu_errors(log_text.ok() ? *log_text : "", r.output);
  return Status::IoError(what + " failed (" + r.describe() + "): " + errors + " [log: " + log +
                         "]");
}

Result<pid_t> read_pidfile(const std::string& path) {
  auto text = read_file(path);
  if (!text.ok())
    return text.status().with_context("criu restore reported success, but its pidfile");
  pid_t pid = 0;
  const char* begin = text->data();
  auto [end, ec] = std::from_chars(begin, begin + text->size(), pid);
  if (ec != std::errc() || pid <= 0) {
    return Status::Corruption("pidfile " + path + " holds no PID: '" + *text + "'");
  }
  return pid;
}

// The caller's fds named by --inherit-fd ("fd[N]:KEY"), which CRIU must get.
std::vector<int> inherited_fds(const RestoreOptions& o) {
  std::vector<int> out;
  for (const auto& spec : o.inherit_fds) {
    int fd = -1;
    if (std::sscanf(spec.c_str(), "fd[%d]", &fd) == 1 && fd > 2) out.push_back(fd);
  }
  return out;
}

}  // namespace

std::string summarize_criu_errors(std::string_view log, std::string_view output, size_t max_lines) {
  std::vector<std::string_view> lines = error_lines(log);
  if (lines.empty()) lines = split_lines(output);
  if (lines.size() > max_lines) lines.erase(lines.begin(), lines.end() - max_lines);
  if (lines.empty()) return "CRIU printed no error message";
  return fmt::format("{}", fmt::join(lines, "; "));
}

std::vector<std::string> dump_argv(const std::string& criu, const DumpOptions& o) {
  std::vector<std::string> argv = {
      criu, "dump", "-t", std::to_string(o.pid), "-D", o.images_dir, "-o", o.log_file, "-v4"};
  add_if(argv, o.leave_running, "--leave-running");
  add_if(argv, o.leave_stopped, "--leave-stopped");
  add_if(argv, o.tcp_established, "--tcp-established");
  add_if(argv, o.shell_job, "--shell-job");
  add_if(argv, o.ext_unix_sk, "--ext-unix-sk");
  add_if(argv, o.file_locks, "--file-locks");
  if (!o.parent_images.empty()) argv.insert(argv.end(), {"--prev-images-dir", o.parent_images});
  argv.insert(argv.end(), o.extra_args.begin(), o.extra_args.end());
  return argv;
}

std::vector<std::string> restore_argv(const std::string& criu, const RestoreOptions& o,
                                      const std::string& pidfile) {
  std::vector<std::string> argv = {criu, "restore",  "-D",  o.images_dir,
                                   "-o", o.log_file, "-v4", "--restore-detached"};
  add_if(argv, o.as_child, "--restore-sibling");
  add_if(argv, o.leave_stopped, "--leave-stopped");
  add_if(argv, o.tcp_established, "--tcp-established");
  add_if(argv, o.shell_job, "--shell-job");
  argv.insert(argv.end(), {"--pidfile", pidfile});
  for (const auto& fd : o.inherit_fds) argv.insert(argv.end(), {"--inherit-fd", fd});
  argv.insert(argv.end(), o.extra_args.begin(), o.extra_args.end());
  return argv;
}

Result<CriuStats> dump(const DumpOptions& options) {
  if (options.pid <= 0) return Status::InvalidArgument("criu dump: no pid given");
  if (options.images_dir.empty()) return Status::InvalidArgument("criu dump: no images dir");
  DumpOptions o = options;
  o.images_dir = absolute_path(options.images_dir);
  RELIVE_RETURN_IF_ERROR(make_dirs(o.images_dir));
  RELIVE_ASSIGN_OR_RETURN(std::string criu, resolve_criu(o.run));
  std::string what = "criu dump of pid " + std::to_string(o.pid);
  RELIVE_RETURN_IF_ERROR(
      run_criu(dump_argv(criu, o), o.run, what, inside(o.images_dir, o.log_file)));
  return read_stats(o.images_dir);
}

Result<pid_t> restore(const RestoreOptions& options) {
  if (!options.detached) {
    return Status::Unsupported(
        "criu restore without --restore-detached keeps CRIU as the tree's parent until the tree "
        "exits; use detached=true (with as_child=true to get the tree as a child)");
  }
  if (options.images_dir.empty()) return Status::InvalidArgument("criu restore: no images dir");
  RestoreOptions o = options;
  o.images_dir = absolute_path(options.images_dir);
  std::error_code ec;
  if (!std::filesystem::is_directory(o.images_dir, ec)) {
    return Status::NotFound("criu restore: images dir " + o.images_dir + " does not exist");
  }
  RELIVE_RETURN_IF_ERROR(check_pages_complete(o.images_dir));
  std::string pidfile = inside(o.images_dir, o.pidfile.empty() ? "restore.pid" : o.pidfile);
  // CRIU creates the pidfile with O_EXCL, so one left by an earlier restore would fail this one.
  if (::unlink(pidfile.c_str()) != 0 && errno != ENOENT)
    return PosixError("unlink " + pidfile, errno);
  RELIVE_ASSIGN_OR_RETURN(std::string criu, resolve_criu(o.run));
  RELIVE_RETURN_IF_ERROR(run_criu(restore_argv(criu, o, pidfile), o.run,
                                  "criu restore from " + o.images_dir,
                                  inside(o.images_dir, o.log_file), inherited_fds(o)));
  return read_pidfile(pidfile);
}

Status check(const CriuRunOptions& run) {
  RELIVE_ASSIGN_OR_RETURN(std::string criu, resolve_criu(run));
  RunOptions co{.env = {}, .timeout = run.timeout};
  if (!run.hw_breakpoints) co.env.emplace_back(kNoBreakpointsEnv);
  RELIVE_ASSIGN_OR_RETURN(RunResult r, relive::run({criu, "check"}, co));
  if (r.output.find("Looks good") != std::string::npos) return Status::Ok();
  return Status::Unsupported("criu check (" + r.describe() +
                             "): " + summarize_criu_errors("", r.output));
}

}  // namespace relive::criu
