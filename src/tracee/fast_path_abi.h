/* The ABI between relive (the recorder and replayer, C++) and the fast path that runs inside the
 * traced process (fast_path.c, freestanding C, mapped into every recorded and replayed process as
 * the fast-path blob): the syscall buffer's layout (syscall_buffer.h says how its words are used)
 * and the frame a patched syscall site's stub hands to the fast path. Plain C on purpose: both
 * sides include it.
 *
 * Entries. The buffer after its 64-byte header is a sequence of 80-byte slots; an entry takes one
 * or more whole slots, and `room` counts slots. Every entry starts with the call: number, all six
 * argument registers and the result (64 bytes). What follows depends on the number:
 *  - the vDSO clock calls (one slot): the 16 bytes the call wrote, when it succeeded;
 *  - the calls of patched syscall sites (relive_fp_rule_of below): a length word and that many
 *    bytes, padded to a whole slot: what the call wrote into the program's memory (a read's data,
 *    a stat buffer, poll's revents), or for a call that takes bytes from it (write, pwrite64,
 *    sendto) the bytes that went out; the length word's top bit (RELIVE_FP_CONTINUED) marks such
 *    a call of which only these bytes went out here and whose rest the program sent through the
 *    traced path, right after.
 *
 * The rules (relive_fp_rule_of) say, for each call the fast path takes, where its out-bytes are
 * and how it is kept from blocking. They are the syscall table's out-buffer rules for these calls
 * (tracee/syscall_table.h: the same kinds, numbered alike; a unit test holds the two together)
 * plus what only the fast path needs; the blob and the recorder and replayer read this one copy.
 */
#ifndef RELIVE_TRACEE_FAST_PATH_ABI_H_
#define RELIVE_TRACEE_FAST_PATH_ABI_H_

#include <stdint.h>

#define RELIVE_FP_SLOT 80u
#define RELIVE_FP_CALL_BYTES 64u  /* nr, args[6], result */
#define RELIVE_FP_DATA_OFFSET 72u /* site calls: the length word at 64, the bytes from 72 */
#define RELIVE_FP_CONTINUED (1ull << 63)
#define RELIVE_FP_REPLAY_MODE 1u

/* The header, as syscall_buffer.h's SyscallBufferHeader. */
struct relive_fp_header {
  uint64_t next;   /* address of the next free (record) or next prefilled (replay) entry */
  uint64_t room;   /* slots the fast path may still take */
  uint64_t logged; /* entries before it are in the log */
  uint64_t mode;   /* 0 record, RELIVE_FP_REPLAY_MODE replay */
  uint64_t reserved[4];
};

struct relive_fp_call {
  uint64_t nr;
  uint64_t args[6];
  int64_t result;
};

/* What a stub hands over: the registers of the call (rax, then rdi, rsi, rdx, r10, r8, r9), and
 * what the fast path hands back besides its action; the frame lives on the program's stack, past
 * its red zone, for the length of one call. */
/* The most iovecs a readv, writev, sendmsg or recvmsg the fast path takes may have. */
#define RELIVE_FP_MAX_IOV 16u

struct relive_fp_iovec {
  uint64_t base;
  uint64_t len;
};

/* struct msghdr on x86-64. */
struct relive_fp_msghdr {
  uint64_t name;
  uint32_t namelen;
  uint32_t pad;
  uint64_t iov;
  uint64_t iovlen;
  uint64_t control;
  uint64_t controllen;
  int32_t flags;
  uint32_t pad2;
};
#define RELIVE_FP_MSGHDR_BYTES 56u
/* The most of a recvmsg's sender address the fast path logs (sizeof struct sockaddr_storage). */
#define RELIVE_FP_MAX_NAME 128u

struct relive_fp_frame {
  uint64_t nr;
  uint64_t args[6];
  int64_t result;   /* RELIVE_FP_DONE: the call's result */
  uint64_t partial; /* RELIVE_FP_CONTINUE: bytes already written, added to the traced rest */
  uint64_t program_args[6]; /* the stub's: the argument registers as the program passed them */
  /* A vector call's iovecs as the fast path copied them (`iovs` of them); after a
   * RELIVE_FP_CONTINUE of a writev or sendmsg, the iovecs of the rest, which args[1] (writev) or
   * `msg` (sendmsg, whose copy args[1] then points at) name */
  struct relive_fp_iovec rest[RELIVE_FP_MAX_IOV];
  uint64_t iovs;
  struct relive_fp_msghdr msg; /* sendmsg and recvmsg: the program's msghdr, copied */
};

/* The fast path's answer to a stub. */
enum {
  RELIVE_FP_DONE = 0,     /* the call was made (record) or answered (replay): return result */
  RELIVE_FP_TRACED = 1,   /* make the call through the traced path, untouched */
  RELIVE_FP_CONTINUE = 2, /* `partial` bytes went out; make the traced call for the rest (args
                             adjusted in the frame), then return partial + its result, or
                             partial if it failed */
};

/* The largest data one entry may hold. Larger calls take the traced path. */
#define RELIVE_FP_MAX_DATA (256u * 1024u)

/* The most stack the fast path uses below its caller's stack pointer (its return address
 * included), with room to spare: the stub clears this much after every call, since recording
 * and replay run different code there and a preemption compares the thread's memory, dead stack
 * too (thread_state.h). gcc -fstack-usage gives about 560 bytes for the deepest path; the blob is
 * built without a red zone, so nothing lies below its stack pointer. A unit test measures it. */
#define RELIVE_FP_STACK_BYTES 1024u

/* Where a call's out-bytes are: OutRule's kinds (tracee/syscall_table.h), same numbers. */
enum {
  RELIVE_FP_OUT_NONE = 0,
  RELIVE_FP_OUT_RESULT = 1,       /* args[arg] gets `result` bytes, at most args[count] */
  RELIVE_FP_OUT_FIXED = 2,        /* args[arg] gets `size` bytes */
  RELIVE_FP_OUT_RESULT_TIMES = 3, /* args[arg] gets result * size bytes, at most args[count] */
  RELIVE_FP_OUT_ARG_TIMES = 4,    /* args[arg] gets args[count] * size bytes */
  /* The first `result` bytes of the iovec array args[arg] of args[count] entries (readv). The
   * entry holds, before those bytes, the part of each iovec they filled (its head, of
   * (address, length) pairs): the log records a scattered read at the addresses it went to,
   * which the program may reuse for its next call before the tracer reads the buffer. */
  RELIVE_FP_OUT_IOV = 5,
  /* recvmsg: the msghdr at args[arg] (its lengths and flags are outputs), the sender's address
   * and the first `result` bytes of its iovecs; the entry's head has a pair for each, in that
   * order (RELIVE_FP_MSG_PARTS in all, unused ones zero). */
  RELIVE_FP_OUT_MSG = 7,
  /* Not an out-buffer: the entry holds the identity (st_dev, st_ino) of the file the call opened
   * or closed, for the recorder to tell which descriptors are its own stdout and stderr. */
  RELIVE_FP_OUT_FILE_ID = 64,
};
#define RELIVE_FP_FILE_ID_BYTES 16u

/* How a call that may wait is made so that it does not (one recorded thread runs at a time). */
enum {
  RELIVE_FP_WAIT_NEVER = 0, /* never waits */
  RELIVE_FP_WAIT_RWF = 1,   /* read, write, pread64, pwrite64: as preadv2/pwritev2 RWF_NOWAIT */
  RELIVE_FP_WAIT_MSG = 2,   /* recvfrom, sendto, recvmsg, sendmsg: MSG_DONTWAIT added to the flags,
                               args[wait_arg] */
  RELIVE_FP_WAIT_TIMEOUT = 3, /* poll, epoll_wait, epoll_pwait: timeout args[wait_arg] made 0 */
  RELIVE_FP_WAIT_GRND = 4,    /* getrandom: GRND_NONBLOCK added to args[2] */
  RELIVE_FP_WAIT_OPEN = 5,    /* openat: only what an O_PATH probe finds a file or directory */
  RELIVE_FP_WAIT_CLOSE = 6,   /* close: not a socket (SO_LINGER may hold its close) */
};

struct relive_fp_rule {
  uint8_t out;         /* RELIVE_FP_OUT_* */
  uint8_t arg;         /* the out-buffer's (or the taken bytes') argument */
  uint8_t count;       /* the argument bounding it */
  uint8_t wait;        /* RELIVE_FP_WAIT_* */
  uint8_t wait_arg;    /* RELIVE_FP_WAIT_TIMEOUT: the timeout's argument; _MSG: the flags' */
  uint8_t takes_bytes; /* sends args[arg]'s first `result` bytes (write, pwrite64, sendto) */
  uint8_t positioned;  /* args[3] is a file position (pread64, pwrite64) */
  uint8_t vector;      /* args[arg] is an iovec array of args[count] entries (writev, readv), or
                          a msghdr with one (`msg`) */
  uint8_t msg;         /* args[arg] is a msghdr (sendmsg, recvmsg) */
  uint32_t size;       /* RELIVE_FP_OUT_FIXED, _TIMES: bytes (of one element) */
};

/* x86-64 numbers and constants (the blob includes no system header). */
#define RELIVE_FP_NR_read 0
#define RELIVE_FP_NR_write 1
#define RELIVE_FP_NR_close 3
#define RELIVE_FP_NR_fstat 5
#define RELIVE_FP_NR_poll 7
#define RELIVE_FP_NR_lseek 8
#define RELIVE_FP_NR_ioctl 16
#define RELIVE_FP_NR_pread64 17
#define RELIVE_FP_NR_pwrite64 18
#define RELIVE_FP_NR_readv 19
#define RELIVE_FP_NR_sendmsg 46
#define RELIVE_FP_NR_recvmsg 47
#define RELIVE_FP_NR_writev 20
#define RELIVE_FP_NR_getpid 39
#define RELIVE_FP_NR_readlink 89
#define RELIVE_FP_NR_sendto 44
#define RELIVE_FP_NR_recvfrom 45
#define RELIVE_FP_NR_fcntl 72
#define RELIVE_FP_NR_getuid 102
#define RELIVE_FP_NR_getgid 104
#define RELIVE_FP_NR_geteuid 107
#define RELIVE_FP_NR_getegid 108
#define RELIVE_FP_NR_getppid 110
#define RELIVE_FP_NR_gettid 186
#define RELIVE_FP_NR_getxattr 191
#define RELIVE_FP_NR_lgetxattr 192
#define RELIVE_FP_NR_fgetxattr 193
#define RELIVE_FP_NR_futex 202
#define RELIVE_FP_NR_getdents64 217
#define RELIVE_FP_NR_epoll_wait 232
#define RELIVE_FP_NR_newfstatat 262
#define RELIVE_FP_NR_epoll_pwait 281
#define RELIVE_FP_NR_getrandom 318
#define RELIVE_FP_NR_openat 257
#define RELIVE_FP_NR_statx 332
#define RELIVE_FP_NR_rt_sigaction 13
#define RELIVE_FP_NR_rt_sigreturn 15
#define RELIVE_FP_NR_tgkill 234
#define RELIVE_FP_SIGSYS 31
#define RELIVE_FP_FIONREAD 0x541b
#define RELIVE_FP_FUTEX_WAKE 1
#define RELIVE_FP_FUTEX_WAKE_BITSET 10
#define RELIVE_FP_FUTEX_CMD_MASK (~(128 | 256)) /* without PRIVATE_FLAG and CLOCK_REALTIME */
#define RELIVE_FP_F_GETFD 1
#define RELIVE_FP_F_GETFL 3
#define RELIVE_FP_MSG_PEEK 0x2
#define RELIVE_FP_MSG_TRUNC 0x20
#define RELIVE_FP_MSG_DONTWAIT 0x40
#define RELIVE_FP_MSG_WAITALL 0x100
#define RELIVE_FP_MSG_ERRQUEUE 0x2000
#define RELIVE_FP_STAT_SIZE 144u
#define RELIVE_FP_STATX_SIZE 256u
#define RELIVE_FP_EPOLL_EVENT_SIZE 12u
#define RELIVE_FP_POLLFD_SIZE 8u

/* Whether the fast path takes `nr` with `args`, and how (*rule). A form it leaves to the traced
 * path says no: recvfrom that wants the sender's address or waits for all its bytes, an ioctl
 * other than FIONREAD, fcntl other than F_GETFL and F_GETFD, epoll_pwait with a signal mask, a
 * futex operation other than a wake (a wait waits; the others write memory or requeue). */
static inline int relive_fp_rule_of(uint64_t nr, const uint64_t* args, struct relive_fp_rule* r) {
  struct relive_fp_rule z = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
  *r = z;
  switch (nr) {
    case RELIVE_FP_NR_pread64:
      r->positioned = 1;
      /* fall through */
    case RELIVE_FP_NR_read:
      r->out = RELIVE_FP_OUT_RESULT, r->arg = 1, r->count = 2, r->wait = RELIVE_FP_WAIT_RWF;
      return 1;
    case RELIVE_FP_NR_pwrite64:
      r->positioned = 1;
      /* fall through */
    case RELIVE_FP_NR_write:
      r->takes_bytes = 1, r->arg = 1, r->count = 2, r->wait = RELIVE_FP_WAIT_RWF;
      return 1;
    case RELIVE_FP_NR_readv:
      if (args[2] > RELIVE_FP_MAX_IOV) return 0;
      r->out = RELIVE_FP_OUT_IOV, r->vector = 1, r->arg = 1, r->count = 2;
      r->wait = RELIVE_FP_WAIT_RWF;
      return 1;
    case RELIVE_FP_NR_writev:
      if (args[2] > RELIVE_FP_MAX_IOV) return 0;
      r->takes_bytes = 1, r->vector = 1, r->arg = 1, r->count = 2, r->wait = RELIVE_FP_WAIT_RWF;
      return 1;
    case RELIVE_FP_NR_recvfrom:
      if (args[4] != 0 || (args[3] & (RELIVE_FP_MSG_WAITALL | RELIVE_FP_MSG_TRUNC)) != 0) return 0;
      r->out = RELIVE_FP_OUT_RESULT, r->arg = 1, r->count = 2, r->wait = RELIVE_FP_WAIT_MSG;
      r->wait_arg = 3;
      return 1;
    case RELIVE_FP_NR_sendto:
      r->takes_bytes = 1, r->arg = 1, r->count = 2, r->wait = RELIVE_FP_WAIT_MSG, r->wait_arg = 3;
      return 1;
    /* The msghdr's control data (descriptors, credentials) and iovec count are checked by the
     * fast path itself, in the program's memory: a call with either takes the traced path. */
    case RELIVE_FP_NR_sendmsg:
      r->takes_bytes = 1, r->vector = 1, r->msg = 1, r->arg = 1;
      r->wait = RELIVE_FP_WAIT_MSG, r->wait_arg = 2;
      return 1;
    case RELIVE_FP_NR_recvmsg:
      if ((args[2] & (RELIVE_FP_MSG_WAITALL | RELIVE_FP_MSG_TRUNC | RELIVE_FP_MSG_ERRQUEUE)) != 0)
        return 0;
      r->out = RELIVE_FP_OUT_MSG, r->vector = 1, r->msg = 1, r->arg = 1;
      r->wait = RELIVE_FP_WAIT_MSG, r->wait_arg = 2;
      return 1;
    case RELIVE_FP_NR_fstat:
      r->out = RELIVE_FP_OUT_FIXED, r->arg = 1, r->size = RELIVE_FP_STAT_SIZE;
      return 1;
    case RELIVE_FP_NR_newfstatat:
      r->out = RELIVE_FP_OUT_FIXED, r->arg = 2, r->size = RELIVE_FP_STAT_SIZE;
      return 1;
    case RELIVE_FP_NR_statx:
      r->out = RELIVE_FP_OUT_FIXED, r->arg = 4, r->size = RELIVE_FP_STATX_SIZE;
      return 1;
    case RELIVE_FP_NR_getdents64:
      r->out = RELIVE_FP_OUT_RESULT, r->arg = 1, r->count = 2;
      return 1;
    case RELIVE_FP_NR_readlink:
      r->out = RELIVE_FP_OUT_RESULT, r->arg = 1, r->count = 2;
      return 1;
    case RELIVE_FP_NR_getxattr:
    case RELIVE_FP_NR_lgetxattr:
    case RELIVE_FP_NR_fgetxattr:
      /* With no buffer (size 0) the call says how large the value is and writes nothing. */
      if (args[3] != 0) r->out = RELIVE_FP_OUT_RESULT, r->arg = 2, r->count = 3;
      return 1;
    case RELIVE_FP_NR_getrandom:
      r->out = RELIVE_FP_OUT_RESULT, r->arg = 0, r->count = 1, r->wait = RELIVE_FP_WAIT_GRND;
      return 1;
    case RELIVE_FP_NR_poll:
      r->out = RELIVE_FP_OUT_ARG_TIMES, r->arg = 0, r->count = 1, r->size = RELIVE_FP_POLLFD_SIZE;
      r->wait = RELIVE_FP_WAIT_TIMEOUT, r->wait_arg = 2;
      return 1;
    case RELIVE_FP_NR_epoll_pwait:
      if (args[4] != 0) return 0;
      /* fall through */
    case RELIVE_FP_NR_epoll_wait:
      r->out = RELIVE_FP_OUT_RESULT_TIMES, r->arg = 1, r->count = 2;
      r->size = RELIVE_FP_EPOLL_EVENT_SIZE;
      r->wait = RELIVE_FP_WAIT_TIMEOUT, r->wait_arg = 3;
      return 1;
    case RELIVE_FP_NR_ioctl:
      if ((uint32_t)args[1] != RELIVE_FP_FIONREAD) return 0;
      r->out = RELIVE_FP_OUT_FIXED, r->arg = 2, r->size = 4;
      return 1;
    case RELIVE_FP_NR_fcntl:
      return (uint32_t)args[1] == RELIVE_FP_F_GETFL || (uint32_t)args[1] == RELIVE_FP_F_GETFD;
    case RELIVE_FP_NR_openat:
      r->out = RELIVE_FP_OUT_FILE_ID, r->size = RELIVE_FP_FILE_ID_BYTES;
      r->wait = RELIVE_FP_WAIT_OPEN;
      return 1;
    case RELIVE_FP_NR_close:
      r->out = RELIVE_FP_OUT_FILE_ID, r->size = RELIVE_FP_FILE_ID_BYTES;
      r->wait = RELIVE_FP_WAIT_CLOSE;
      return 1;
    case RELIVE_FP_NR_futex: {
      int32_t op = (int32_t)args[1] & RELIVE_FP_FUTEX_CMD_MASK;
      return op == RELIVE_FP_FUTEX_WAKE || op == RELIVE_FP_FUTEX_WAKE_BITSET;
    }
    case RELIVE_FP_NR_lseek:
    case RELIVE_FP_NR_getpid:
    case RELIVE_FP_NR_gettid:
    case RELIVE_FP_NR_getppid:
    case RELIVE_FP_NR_getuid:
    case RELIVE_FP_NR_getgid:
    case RELIVE_FP_NR_geteuid:
    case RELIVE_FP_NR_getegid:
      return 1;
    default:
      return 0;
  }
}

/* A readv's entry: before its bytes, one (address, length) pair per iovec, the part of it the
 * bytes filled (a zero length past the end of the bytes). */
#define RELIVE_FP_IOV_PAIR_BYTES 16u

/* A recvmsg's entry: pairs for its msghdr, its sender's address and each of its iovecs. */
#define RELIVE_FP_MSG_PARTS (2u + RELIVE_FP_MAX_IOV)

/* The most bytes any entry holds after its length word. */
#define RELIVE_FP_MAX_ENTRY_DATA                                                                  \
  (RELIVE_FP_MAX_DATA + RELIVE_FP_MSG_PARTS * RELIVE_FP_IOV_PAIR_BYTES + RELIVE_FP_MSGHDR_BYTES + \
   RELIVE_FP_MAX_NAME)

/* Whether a call's entry is parts: a head of (address, length) pairs, then their bytes. */
static inline int relive_fp_parts(const struct relive_fp_rule* r) {
  return r->out == RELIVE_FP_OUT_IOV || r->out == RELIVE_FP_OUT_MSG;
}

/* The bytes of an entry before the call's own (its parts' pairs), 0 for other calls. */
static inline uint64_t relive_fp_head(const struct relive_fp_rule* r, const uint64_t* args) {
  if (r->out == RELIVE_FP_OUT_IOV) return args[r->count] * RELIVE_FP_IOV_PAIR_BYTES;
  if (r->out == RELIVE_FP_OUT_MSG) return RELIVE_FP_MSG_PARTS * RELIVE_FP_IOV_PAIR_BYTES;
  return 0;
}

/* The most bytes an entry of the call may hold (what it may write, or take), before it is made;
 * more than RELIVE_FP_MAX_DATA (and the head) when the arguments ask for more (the caller refuses
 * those). */
static inline uint64_t relive_fp_out_max(const struct relive_fp_rule* r, const uint64_t* args) {
  uint64_t n = args[r->count];
  /* The iovecs say: the fast path checks their sum. */
  if (r->out == RELIVE_FP_OUT_MSG)
    return RELIVE_FP_MAX_DATA + relive_fp_head(r, args) + RELIVE_FP_MSGHDR_BYTES +
           RELIVE_FP_MAX_NAME;
  if (r->vector) return RELIVE_FP_MAX_DATA + relive_fp_head(r, args);
  if (r->takes_bytes || r->out == RELIVE_FP_OUT_RESULT) return n;
  if (r->out == RELIVE_FP_OUT_FIXED || r->out == RELIVE_FP_OUT_FILE_ID) return r->size;
  if (r->out == RELIVE_FP_OUT_RESULT_TIMES || r->out == RELIVE_FP_OUT_ARG_TIMES)
    return n > RELIVE_FP_MAX_DATA ? (uint64_t)RELIVE_FP_MAX_DATA + 1 : n * r->size;
  return 0;
}

/* The bytes the entry of a call that returned `result` holds. A failed call wrote nothing the
 * program may rely on (poll writes revents even then, but only a signal fails a poll that does
 * not wait, and none is delivered inside the fast path). */
static inline uint64_t relive_fp_out_len(const struct relive_fp_rule* r, const uint64_t* args,
                                         int64_t result) {
  if (result < 0) return 0;
  if (r->takes_bytes || r->out == RELIVE_FP_OUT_RESULT) return (uint64_t)result;
  if (r->out == RELIVE_FP_OUT_IOV) return relive_fp_head(r, args) + (uint64_t)result;
  /* A recvmsg's parts depend on the address the kernel gave: its entry says (the head). */
  if (r->out == RELIVE_FP_OUT_FIXED || r->out == RELIVE_FP_OUT_FILE_ID) return r->size;
  if (r->out == RELIVE_FP_OUT_RESULT_TIMES) return (uint64_t)result * r->size;
  if (r->out == RELIVE_FP_OUT_ARG_TIMES) return args[r->count] * r->size;
  return 0;
}

/* Syscall user dispatch (syscall_dispatch.h): the process's selector byte, and where the blob
 * keeps its SIGSYS handler and that handler's sa_restorer (offsets from the blob's start; fixed by
 * fast_path_blob.ld). */
#define RELIVE_FP_DISPATCH_SELECTOR 0x70000101ff8ull
#define RELIVE_FP_SIGSYS_RESTORER_OFFSET 0xc000
#define RELIVE_FP_SIGSYS_HANDLER_OFFSET 0xc040

#ifdef __cplusplus
extern "C" {
#endif
/* The entry point the stubs call (fast_path.c). `buffer` is the syscall buffer's address. */
int relive_fast_path(struct relive_fp_frame* frame, void* buffer);
#ifdef __cplusplus
}
#endif

#endif /* RELIVE_TRACEE_FAST_PATH_ABI_H_ */
