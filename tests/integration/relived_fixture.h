// What the migration tests share: the destination's relived in host b of a NetnsHosts test bed,
// and the faults they inject while a migration runs (relived killed, the link cut).
#pragma once

#include <glob.h>
#include <gtest/gtest.h>

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "netns_hosts.h"
#include "test_util.h"

namespace relive::testing {

inline std::string relived_bin() { return relive_bin() + "d"; }

// The port relived listens on in these tests.
inline constexpr int kRelivedPort = 7070;

inline std::string relived_address(const NetnsHosts& hosts) {
  return hosts.address('b') + ":" + std::to_string(kRelivedPort);
}

// The test bed up and keys for hosta and hostb in `dir`/keys: what every test that migrates
// from host a to relived in host b needs first (after its own root check).
inline void make_two_hosts(const NetnsHosts& hosts, const TempDir& dir) {
  ASSERT_TRUE(hosts.ok()) << "could not create the test hosts";
  ASSERT_EQ(run({relive_bin(), "keys", "init", dir / "keys", "--hosts", "hosta,hostb"}).exit_code,
            0);
}

// Kills relived and everything started with the test's directory on its command line.
inline void kill_test_processes(std::unique_ptr<Background>* relived, const TempDir& dir) {
  relived->reset();
  sh("pkill -9 -f '" + dir.path() + "/' 2>/dev/null; true");
}

// Starts relived in host b, listening on relived_address(), state under `dir`/stateb, output in
// `dir`/relived.out and relived.err, serving `once` migrations (0: until stopped); `args` are
// the rest of its command line (keys and name, or --insecure; work and VM dirs). Fails the test
// unless it listens within 10 s.
inline void start_relived(const NetnsHosts& hosts, const TempDir& dir,
                          const std::vector<std::string>& args,
                          std::unique_ptr<Background>* relived, int once = 1) {
  std::vector<std::string> argv = {relived_bin(), "--listen", relived_address(hosts), "--state-dir",
                                   dir / "stateb"};
  if (once > 0) argv.insert(argv.end(), {"--once", std::to_string(once)});
  argv.insert(argv.end(), args.begin(), args.end());
  *relived =
      std::make_unique<Background>(hosts.in('b', argv), dir / "relived.out", dir / "relived.err");
  ASSERT_TRUE(eventually(
      [&] { return read_all(dir / "relived.err").find("listening") != std::string::npos; },
      std::chrono::seconds(10)))
      << read_all(dir / "relived.err");
}

// True when some path matches the glob(3) `pattern`.
inline bool path_exists(const std::string& pattern) {
  glob_t g{};
  bool found = ::glob(pattern.c_str(), GLOB_NOSORT, nullptr, &g) == 0 && g.gl_pathc > 0;
  ::globfree(&g);
  return found;
}

// Cuts host `host`'s side of relived's link: every TCP packet to or from kRelivedPort dropped
// (no reset: the peers see silence). Returns the exit code of iptables.
inline int cut_relived_link(const NetnsHosts& hosts, char host) {
  std::string port = std::to_string(kRelivedPort);
  return hosts.sh_in(host, "iptables -I INPUT -p tcp --dport " + port +
                               " -j DROP && iptables -I OUTPUT -p tcp --sport " + port +
                               " -j DROP");
}

// A fault injected from a second thread while the test's thread runs a migration: `fault` runs
// once `when` holds, or after `limit` if it never does. join() (or the destructor) waits for it;
// join() says whether `when` held, which a test should expect so that a fault that came too late
// or too early does not pass unnoticed.
class FaultWhen {
 public:
  FaultWhen(std::function<bool()> when, std::function<void()> fault,
            std::chrono::milliseconds limit = std::chrono::seconds(30))
      : thread_([this, when = std::move(when), fault = std::move(fault), limit] {
          held_ = eventually(when, limit);
          fault();
        }) {}
  ~FaultWhen() { join(); }
  FaultWhen(const FaultWhen&) = delete;
  FaultWhen& operator=(const FaultWhen&) = delete;

  bool join() {
    if (thread_.joinable()) thread_.join();
    return held_;
  }

 private:
  bool held_ = false;  // written by thread_ before it ends; read after join()
  std::thread thread_;
};

}  // namespace relive::testing
