#include "common/file_time.h"

#include <time.h>

namespace relive {

int64_t realtime_now_ns() {
  timespec ts{};
  ::clock_gettime(CLOCK_REALTIME, &ts);
  return int64_t{ts.tv_sec} * 1000000000 + ts.tv_nsec;
}

int64_t mtime_ns(const struct stat& st) {
  return int64_t{st.st_mtim.tv_sec} * 1000000000 + st.st_mtim.tv_nsec;
}

int64_t ctime_ns(const struct stat& st) {
  return int64_t{st.st_ctim.tv_sec} * 1000000000 + st.st_ctim.tv_nsec;
}

bool whole_second_timestamps(const struct stat& st) {
  return st.st_mtim.tv_nsec == 0 && st.st_ctim.tv_nsec == 0;
}

bool timestamps_settled(const struct stat& st, int64_t read_at_ns) {
  int64_t limit = read_at_ns - kFileTimeMargin.count();
  return mtime_ns(st) < limit && ctime_ns(st) < limit;
}

}  // namespace relive
