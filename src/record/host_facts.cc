#include "record/host_facts.h"

#include <sys/utsname.h>

#include <chrono>

#include "tracee/rdtsc.h"

namespace relive::record {

void fill_host_facts(trace::TraceHeader* h) {
  utsname u{};
  if (::uname(&u) == 0) {
    h->hostname = u.nodename;
    h->kernel = std::string(u.sysname) + " " + u.release;
  }
  h->start_realtime_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
                             std::chrono::system_clock::now().time_since_epoch())
                             .count();
  h->rdtsc = tracee::rdtsc_traps() ? trace::TscTrapping::kTrapped : trace::TscTrapping::kUntrapped;
}

}  // namespace relive::record
