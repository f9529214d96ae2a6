// Test helpers for real runc containers, from local files only: an OCI bundle whose rootfs is
// busybox-static (/bin/busybox and a symlink per applet) plus chosen host executables (copied
// with the shared libraries ldd names), its config.json from `runc spec`, edited; a named
// network namespace; a container started detached that is killed and deleted when its owner
// goes.
//
// Containers are started with stdin, stdout and stderr on /dev/null and runc's own messages in
// a --log file: CRIU resolves every open file through a mount of the container's mount
// namespace, and a host file (say, a test's log) is on no such mount: `runc checkpoint` then
// fails with "Can't lookup mount=N for fd=1 path=...". /dev/null works because runc bind-mounts
// the host's /dev/null into every container.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "test_util.h"

namespace relive::ct {

namespace fs = std::filesystem;

// Runs a shell command; returns its exit status and (in *out) its stdout.
inline int sh(const std::string& cmd, std::string* out = nullptr) {
  FILE* p = ::popen(cmd.c_str(), "r");
  if (p == nullptr) return -1;
  std::string text;
  char buf[4096];
  for (size_t n; (n = std::fread(buf, 1, sizeof buf, p)) > 0;) text.append(buf, n);
  int st = ::pclose(p);
  if (out != nullptr) *out = text;
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

inline std::string quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

inline bool have_runc() {
  return ::access("/usr/sbin/runc", X_OK) == 0 || sh("command -v runc >/dev/null") == 0;
}

// An OCI bundle in its own directory, removed with everything in it when this goes.
class OciBundle {
 public:
  struct Options {
    std::vector<std::string> args;      // process.args
    std::vector<std::string> binaries;  // host executables copied to /bin/<basename>
    std::string netns;                  // empty: a new network namespace; else its path
    bool write_config = true;           // false: a bundle with a rootfs only
  };

  // Builds the bundle in `dir` (which must not exist). `error` says why it failed, if it did.
  OciBundle(const std::string& dir, const Options& o) : dir_(dir) { error_ = build(o); }
  ~OciBundle() {
    std::error_code ec;
    if (!dir_.empty()) fs::remove_all(dir_, ec);
  }
  OciBundle(const OciBundle&) = delete;
  OciBundle& operator=(const OciBundle&) = delete;

  const std::string& error() const { return error_; }
  const std::string& path() const { return dir_; }
  std::string rootfs() const { return dir_ + "/rootfs"; }
  std::string file(const std::string& in_rootfs) const {
    return testing::read_all(rootfs() + in_rootfs);
  }

 private:
  std::string build(const Options& o) {
    std::error_code ec;
    std::string root = rootfs();
    for (const char* d : {"bin", "proc", "sys", "dev", "tmp", "state", "etc"}) {
      fs::create_directories(root + "/" + d, ec);
    }
    fs::copy_file("/bin/busybox", root + "/bin/busybox", ec);
    if (ec) return "copy /bin/busybox (is busybox-static installed?): " + ec.message();
    std::string applets;
    if (sh("/bin/busybox --list", &applets) != 0) return "busybox --list failed";
    std::istringstream in(applets);
    for (std::string a; std::getline(in, a);) {
      if (!a.empty() && a != "busybox") fs::create_symlink("busybox", root + "/bin/" + a, ec);
    }
    for (const auto& b : o.binaries) {
      if (std::string e = copy_binary(b, root); !e.empty()) return e;
    }
    if (!o.write_config) return "";
    std::string out;
    if (sh("runc spec --bundle " + quote(dir_) + " 2>&1", &out) != 0) return "runc spec: " + out;
    return edit_config(o);
  }

  // The executable and every library ldd lists, at their host paths inside the rootfs.
  static std::string copy_binary(const std::string& bin, const std::string& root) {
    std::error_code ec;
    fs::copy_file(bin, root + "/bin/" + fs::path(bin).filename().string(),
                  fs::copy_options::overwrite_existing, ec);
    if (ec) return "copy " + bin + ": " + ec.message();
    std::string libs;
    sh("ldd " + quote(bin) + " 2>/dev/null | grep -o '/[^ ]*'", &libs);
    std::istringstream in(libs);
    for (std::string lib; std::getline(in, lib);) {
      fs::create_directories(root + fs::path(lib).parent_path().string(), ec);
      fs::copy_file(lib, root + lib, fs::copy_options::overwrite_existing, ec);
      if (ec) return "copy " + lib + ": " + ec.message();
    }
    return "";
  }

  std::string edit_config(const Options& o) {
    std::string path = dir_ + "/config.json";
    auto j = nlohmann::json::parse(testing::read_all(path), nullptr, false);
    if (!j.is_object()) return "runc spec wrote no JSON";
    j["process"]["terminal"] = false;
    j["process"]["args"] = o.args;
    j["root"]["readonly"] = false;
    j["hostname"] = "relive-test";
    for (auto& ns : j["linux"]["namespaces"]) {
      if (ns["type"] == "network" && !o.netns.empty()) ns["path"] = o.netns;
    }
    FILE* f = std::fopen(path.c_str(), "w");
    if (f == nullptr) return "write " + path;
    std::string text = j.dump(2);
    std::fwrite(text.data(), 1, text.size(), f);
    std::fclose(f);
    return "";
  }

  std::string dir_;
  std::string error_;
};

// A network namespace /var/run/netns/<name> with its loopback up, deleted when this goes.
class NetNs {
 public:
  explicit NetNs(std::string name) : name_(std::move(name)) {
    ok_ = sh("ip netns add " + name_ + " && ip -n " + name_ + " link set lo up") == 0;
  }
  ~NetNs() { sh("ip netns del " + name_ + " 2>/dev/null"); }
  NetNs(const NetNs&) = delete;
  NetNs& operator=(const NetNs&) = delete;
  bool ok() const { return ok_; }
  std::string path() const { return "/var/run/netns/" + name_; }

 private:
  std::string name_;
  bool ok_ = false;
};

// Owns a runc container name: whatever runs under it is killed and deleted when this goes.
class RuncName {
 public:
  explicit RuncName(std::string name) : name_(std::move(name)) { drop(); }
  ~RuncName() { drop(); }
  RuncName(const RuncName&) = delete;
  RuncName& operator=(const RuncName&) = delete;
  const std::string& name() const { return name_; }

  // `runc run --detach` with stdio on /dev/null (see the file comment); runc's own messages
  // are returned on failure.
  std::string start(const OciBundle& b, const std::string& stdout_to = "/dev/null") const {
    std::string log = b.path() + ".runc.log";
    int rc = sh("runc --log " + quote(log) + " run --detach --bundle " + quote(b.path()) + " " +
                name_ + " </dev/null >" + quote(stdout_to) + " 2>/dev/null");
    return rc == 0 ? "" : "runc run failed: " + testing::read_all(log);
  }
  // "running", "paused", ...; empty when runc knows no such container.
  std::string status() const {
    std::string out;
    if (sh("runc state " + name_ + " 2>/dev/null", &out) != 0) return "";
    auto j = nlohmann::json::parse(out, nullptr, false);
    return j.is_object() ? j.value("status", "") : "";
  }
  void drop() const {
    sh("runc kill --all " + name_ + " KILL >/dev/null 2>&1; runc delete --force " + name_ +
       " >/dev/null 2>&1");
  }

 private:
  std::string name_;
};

}  // namespace relive::ct
