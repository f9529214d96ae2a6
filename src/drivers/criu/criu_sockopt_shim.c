/* LD_PRELOAD shim for CRIU 4.1.1 on Linux 6.16 and newer, which restrict SO_PASSCRED and
 * SO_PASSSEC to unix, netlink and bluetooth sockets: getsockopt() of them on an inet socket
 * fails with EOPNOTSUPP, and CRIU 4.1.1 then refuses to dump any process holding a TCP or UDP
 * socket ("Can't get 1:16 opt: Operation not supported"; CRIU issues #2705 and #2718, fixed
 * upstream by skipping the options for those families). This shim answers "off" instead, which
 * is what those kernels mean and what the upstream fix records; restore sets the options only
 * when they were on. Every other call goes to the real getsockopt unchanged. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <string.h>
#include <sys/socket.h>

typedef int (*getsockopt_fn)(int, int, int, void*, socklen_t*);

int getsockopt(int fd, int level, int name, void* val, socklen_t* len) {
  static getsockopt_fn real;
  if (real == NULL) real = (getsockopt_fn)dlsym(RTLD_NEXT, "getsockopt");
  if (real == NULL) {
    errno = ENOSYS;
    return -1;
  }
  int ret = real(fd, level, name, val, len);
  if (ret < 0 && errno == EOPNOTSUPP && level == SOL_SOCKET &&
      (name == SO_PASSCRED || name == SO_PASSSEC) && val != NULL && len != NULL &&
      *len >= sizeof(int)) {
    memset(val, 0, sizeof(int));
    *len = sizeof(int);
    return 0;
  }
  return ret;
}
