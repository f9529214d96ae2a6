/* The fast path inside a recorded or replayed process: the calls of patched syscall sites
 * (fast_path_abi.h's rules: read, write, pread64, pwrite64, readv, writev, recvfrom, sendto,
 * sendmsg and recvmsg without control data, the stat calls, lseek, getdents64, getrandom, poll and
 * epoll_wait that do not wait, FIONREAD, F_GETFL, readlink, the xattr reads, openat, close, futex
 * wakes and the id calls) made without a ptrace stop (fast_path_abi.h has the buffer layout,
 * syscall_buffer.h the protocol around it).
 *
 * Freestanding: no libc, no stack protector, no red zone, general registers only (a fast call
 * must leave the program's vector registers as the kernel's `syscall` does: untouched). Its own
 * system calls go out from this code, whose addresses the recorder's seccomp filter lets through
 * without a stop; everything it does is therefore in the buffer for the tracer to log.
 *
 * Record. A call takes the slots its largest possible entry needs before it is made (so a room
 * the tracer lowered meanwhile never wraps), publishes the entry by advancing `next` only once
 * it is whole, and gives back what it did not use, unless the tracer lowered `room` meanwhile
 * (a compare-and-swap: the tracer's hold stays). Nothing here may block for as long as another
 * recorded thread might take to unblock it (one thread runs at a time), so a call that could wait
 * is made so that it cannot (its rule's wait mode): a read or write with RWF_NOWAIT, recvfrom and
 * sendto with MSG_DONTWAIT, poll and epoll_wait with a zero timeout, getrandom with
 * GRND_NONBLOCK. When that would have waited where the program's call would have, the call goes
 * down the traced path, untouched; where the program asked not to wait (its descriptor is
 * O_NONBLOCK, its flags say so, its timeout is zero) the answer is the program's own and logged
 * here. A regular file is read or written blocking when RWF_NOWAIT refuses (its disk answers),
 * and a read from one that came back short (part of the range not cached) reads the rest: a
 * short read from a regular file would be a behaviour the program never sees natively. A write
 * or send that went out only in part (a pipe or socket filled up) sends the rest through the
 * traced path, where it may block.
 *
 * Replay. The replayer prefills the buffer with the logged calls, number and arguments negated.
 * A call equal to the next entry is answered from it: its logged out-bytes are copied into the
 * program's memory; a write's bytes are copied into the entry, for the replayer to check against
 * the log's hash (the log keeps a write's hash, not its bytes) and to reproduce stdout and stderr
 * from. Anything else takes the traced path untouched, where the replayer compares the call
 * with the log and reports the divergence.
 */
#include "tracee/fast_path_abi.h"

#define FP_STR2(x) #x
#define FP_STR(x) FP_STR2(x)

#define NR_close RELIVE_FP_NR_close
#define NR_fcntl RELIVE_FP_NR_fcntl
#define NR_openat RELIVE_FP_NR_openat
#define NR_fstat RELIVE_FP_NR_fstat
#define NR_getpid RELIVE_FP_NR_getpid
#define NR_pread64 RELIVE_FP_NR_pread64
#define NR_writev RELIVE_FP_NR_writev
#define NR_read RELIVE_FP_NR_read
#define NR_process_vm_readv 310
#define NR_preadv2 327
#define NR_pwritev2 328

#define E_NOENT 2
#define E_AGAIN 11
#define E_OPNOTSUPP 95
#define RWF_NOWAIT_FLAG 0x8
#define O_NONBLOCK_FLAG 04000
#define GRND_NONBLOCK_FLAG 0x1
#define S_IFMT_BITS 0170000
#define S_IFREG_BITS 0100000
#define S_IFDIR_BITS 0040000
#define S_IFSOCK_BITS 0140000
#define O_CREAT_FLAG 0100
#define O_NOFOLLOW_FLAG 0400000
#define O_CLOEXEC_FLAG 02000000
#define O_PATH_FLAG 010000000

/* The call would have waited where the program's would have: take the traced path. */
#define WOULD_WAIT (-0x7fffffffffffffffL)

struct fp_iovec {
  uint64_t base;
  uint64_t len;
};

/* struct stat on x86-64: st_mode is the 32-bit word at offset 24 of 144 bytes. */
struct fp_stat {
  uint64_t words[18];
};

static long fp_syscall(long nr, long a, long b, long c, long d, long e, long f) {
  long ret;
  register long r10 __asm__("r10") = d;
  register long r8 __asm__("r8") = e;
  register long r9 __asm__("r9") = f;
  __asm__ volatile("syscall"
                   : "=a"(ret)
                   : "a"(nr), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9)
                   : "rcx", "r11", "memory");
  return ret;
}

static long fp_call(uint64_t nr, const uint64_t* a) {
  return fp_syscall((long)nr, (long)a[0], (long)a[1], (long)a[2], (long)a[3], (long)a[4],
                    (long)a[5]);
}

static void fp_copy(void* dst, const void* src, uint64_t n) {
  __asm__ volatile("rep movsb" : "+D"(dst), "+S"(src), "+c"(n) : : "memory");
}

static uint64_t slots_for(uint64_t data_len) {
  return (RELIVE_FP_DATA_OFFSET + data_len + RELIVE_FP_SLOT - 1) / RELIVE_FP_SLOT;
}

/* The file type bits of `fd` (S_IFMT), 0 when fstat fails; its identity in id[0..1] (st_dev,
 * st_ino) when `id` is given (zeros when fstat fails). */
static uint32_t file_type(long fd, uint64_t* id) {
  struct fp_stat st;
  long s = fp_syscall(NR_fstat, fd, (long)&st, 0, 0, 0, 0);
  if (id != 0) id[0] = s == 0 ? st.words[0] : 0, id[1] = s == 0 ? st.words[1] : 0;
  if (s != 0) return 0;
  return (uint32_t)(st.words[3] & 0xffffffffu) & S_IFMT_BITS;
}

static int is_regular_file(long fd) { return file_type(fd, 0) == S_IFREG_BITS; }

/* openat, where it cannot wait: a FIFO's open waits for its other end, a device's may do
 * anything, so the path is first opened O_PATH (no I/O, no waiting) and opened for real only when
 * that finds a regular file or a directory, or nothing and the program creates it (a regular
 * file). The identity of what was opened goes to id. */
static long open_call(const struct relive_fp_frame* f, uint64_t* id) {
  long flags = (long)f->args[2];
  long probe = fp_syscall(NR_openat, (long)f->args[0], (long)f->args[1],
                          O_PATH_FLAG | O_CLOEXEC_FLAG | (flags & O_NOFOLLOW_FLAG), 0, 0, 0);
  if (probe >= 0) {
    uint32_t type = file_type(probe, 0);
    fp_syscall(NR_close, probe, 0, 0, 0, 0, 0);
    if (type != S_IFREG_BITS && type != S_IFDIR_BITS) return WOULD_WAIT;
  } else if (!(flags & O_CREAT_FLAG)) {
    /* Nothing there to open (or not to be seen): the program's call fails alike, or the path
     * came into being since, which the probe cannot tell from a race: traced. */
    if (probe != -E_NOENT) return WOULD_WAIT;
  }
  long fd = fp_call(f->nr, f->args);
  if (fd >= 0) (void)file_type(fd, id);
  return fd;
}

/* close, where it cannot wait: not a socket, whose close SO_LINGER may hold. The identity of what
 * was closed goes to id (zeros for a descriptor that was not open). */
static long close_call(const struct relive_fp_frame* f, uint64_t* id) {
  if (file_type((long)f->args[0], id) == S_IFSOCK_BITS) return WOULD_WAIT;
  return fp_call(f->nr, f->args);
}

/* Whether the program made `fd` non-blocking: then "it would block" is its own answer. */
static int is_nonblocking(long fd) {
  long fl = fp_syscall(NR_fcntl, fd, RELIVE_FP_F_GETFL, 0, 0, 0, 0);
  return fl >= 0 && (fl & O_NONBLOCK_FLAG) != 0;
}

/* read, write, pread64, pwrite64 as preadv2/pwritev2 with one vector and RWF_NOWAIT. */
static long rwf_call(const struct relive_fp_frame* f, const struct relive_fp_rule* r) {
  long fd = (long)f->args[0];
  uint64_t buf = f->args[1], count = f->args[2];
  long pos = r->positioned ? (long)f->args[3] : -1; /* -1: the file's own position */
  struct fp_iovec iov = {buf, count};
  long vnr = r->takes_bytes ? NR_pwritev2 : NR_preadv2;
  long n = fp_syscall(vnr, fd, (long)&iov, 1, pos, 0, RWF_NOWAIT_FLAG);
  if (n == -E_AGAIN || n == -E_OPNOTSUPP) {
    /* A regular file waits for its disk, never for another thread: made blocking, as the program
     * asked (most file systems take no buffered write, and no uncached read, with RWF_NOWAIT). */
    if (is_regular_file(fd)) {
      n = fp_call(f->nr, f->args);
    } else {
      if (n == -E_AGAIN && is_nonblocking(fd)) return n;
      return WOULD_WAIT;
    }
  }
  if (!r->takes_bytes && n > 0 && (uint64_t)n < count && is_regular_file(fd)) {
    long rest = r->positioned
                    ? fp_syscall(NR_pread64, fd, (long)(buf + n), (long)(count - n), pos + n, 0, 0)
                    : fp_syscall((long)f->nr, fd, (long)(buf + n), (long)(count - n), 0, 0, 0);
    if (rest > 0) n += rest;
  }
  return n;
}

/* `len` bytes of the program's memory at `from` copied to `to` as the kernel reads them: a bad
 * address is a failure here (0), not a fault in the fast path. */
static int copy_in(void* to, uint64_t from, uint64_t len) {
  struct fp_iovec local = {(uint64_t)to, len};
  struct fp_iovec remote = {from, len};
  long pid = fp_syscall(NR_getpid, 0, 0, 0, 0, 0, 0);
  long got = fp_syscall(NR_process_vm_readv, pid, (long)&local, 1, (long)&remote, 1, 0);
  return got == (long)len;
}

/* A vector call's iovecs (writev, readv; sendmsg and recvmsg through their msghdr, copied into
 * f->msg, whose control data sends the call down the traced path), copied into f->rest; their
 * total, or -1. */
static long copy_iovecs(struct relive_fp_frame* f, const struct relive_fp_rule* r) {
  uint64_t at = f->args[1], n = f->args[2];
  if (r->msg) {
    if (!copy_in(&f->msg, f->args[1], sizeof f->msg)) return -1;
    if (f->msg.controllen != 0 || f->msg.iovlen > RELIVE_FP_MAX_IOV) return -1;
    if (f->msg.name != 0 && f->msg.namelen > RELIVE_FP_MAX_NAME) return -1;
    at = f->msg.iov, n = f->msg.iovlen;
  }
  f->iovs = n;
  if (n == 0) return 0;
  if (!copy_in(f->rest, at, n * sizeof f->rest[0])) return -1;
  uint64_t total = 0;
  for (uint64_t i = 0; i < n; ++i) {
    if (f->rest[i].len > RELIVE_FP_MAX_DATA) return -1;
    total += f->rest[i].len;
  }
  return (long)total;
}

/* Copies the first `len` bytes the iovecs in f->rest take from the program to `to`. */
static void gather(const struct relive_fp_frame* f, uint64_t len, unsigned char* to) {
  for (uint64_t i = 0; i < f->iovs && len > 0; ++i) {
    uint64_t n = f->rest[i].len < len ? f->rest[i].len : len;
    fp_copy(to, (const void*)f->rest[i].base, n);
    to += n;
    len -= n;
  }
}

/* A writev or sendmsg of which `done` bytes went out: f->rest becomes the iovecs of the rest (in
 * place) and the frame's arguments point at them (a sendmsg's at its msghdr's copy, which names
 * them), for the traced call. */
static void continue_vector(struct relive_fp_frame* f, const struct relive_fp_rule* r,
                            uint64_t done) {
  uint64_t k = 0;
  for (uint64_t i = 0; i < f->iovs; ++i) {
    if (done >= f->rest[i].len) {
      done -= f->rest[i].len;
      continue;
    }
    f->rest[k].base = f->rest[i].base + done;
    f->rest[k].len = f->rest[i].len - done;
    done = 0;
    ++k;
  }
  f->iovs = k;
  if (r->msg) {
    f->msg.iov = (uint64_t)f->rest;
    f->msg.iovlen = k;
    f->args[1] = (uint64_t)&f->msg;
    return;
  }
  f->args[1] = (uint64_t)f->rest;
  f->args[2] = k;
}

/* A readv from a regular file that came back short after `done` bytes (part of the range not
 * cached): the rest, iovec by iovec, up to the first short read (the end of the file). */
static long read_rest(const struct relive_fp_frame* f, long fd, uint64_t done) {
  long n = (long)done;
  for (uint64_t i = 0; i < f->iovs; ++i) {
    uint64_t len = f->rest[i].len;
    if (done >= len) {
      done -= len;
      continue;
    }
    long got = fp_syscall(NR_read, fd, (long)(f->rest[i].base + done), (long)(len - done), 0, 0, 0);
    if (got <= 0) break;
    n += got;
    if ((uint64_t)got < len - done) break;
    done = 0;
  }
  return n;
}

/* writev and readv as pwritev2/preadv2 RWF_NOWAIT on the copied iovecs (f->rest), as rwf_call;
 * `total`: the iovecs' sum. */
static long rwf_vector_call(const struct relive_fp_frame* f, const struct relive_fp_rule* r,
                            uint64_t total) {
  long fd = (long)f->args[0];
  long vnr = r->takes_bytes ? NR_pwritev2 : NR_preadv2;
  long n = fp_syscall(vnr, fd, (long)f->rest, (long)f->iovs, -1, 0, RWF_NOWAIT_FLAG);
  if (n == -E_AGAIN || n == -E_OPNOTSUPP) {
    if (is_regular_file(fd))
      return fp_syscall((long)f->nr, fd, (long)f->rest, (long)f->iovs, 0, 0, 0);
    if (n == -E_AGAIN && is_nonblocking(fd)) return n;
    return WOULD_WAIT;
  }
  if (!r->takes_bytes && n > 0 && (uint64_t)n < total && is_regular_file(fd))
    return read_rest(f, fd, (uint64_t)n);
  return n;
}

/* The head of a readv's or recvmsg's entry: the part of each iovec in f->rest the first `len`
 * bytes filled. */
static void filled_parts(const struct relive_fp_frame* f, uint64_t len, unsigned char* to) {
  for (uint64_t i = 0; i < f->iovs; ++i) {
    uint64_t n = f->rest[i].len < len ? f->rest[i].len : len;
    struct fp_iovec part = {f->rest[i].base, n};
    fp_copy(to + i * RELIVE_FP_IOV_PAIR_BYTES, &part, sizeof part);
    len -= n;
  }
}

/* A recvmsg that returned `r` (>= 0): the msghdr as the kernel left it, in f->msg; the size of its
 * entry: the pairs, the msghdr, the sender's address (what fits in the program's buffer of
 * `name_room` bytes) and the bytes. */
static uint64_t msg_len(struct relive_fp_frame* f, long r, uint32_t name_room) {
  uint64_t name = 0;
  if (copy_in(&f->msg, f->args[1], sizeof f->msg) && f->msg.name != 0)
    name = f->msg.namelen < name_room ? f->msg.namelen : name_room;
  else
    f->msg.name = 0;
  f->msg.namelen = (uint32_t)name; /* the copy's: the address part's length, below */
  return RELIVE_FP_MSG_PARTS * RELIVE_FP_IOV_PAIR_BYTES + RELIVE_FP_MSGHDR_BYTES + name +
         (uint64_t)r;
}

/* A recvmsg's entry data (after msg_len): its pairs (the msghdr, the address, each iovec's
 * filled part, the rest zero), then the program's msghdr, the address and the bytes. */
static void msg_parts(const struct relive_fp_frame* f, long r, unsigned char* to) {
  struct fp_iovec pairs[2] = {{f->args[1], RELIVE_FP_MSGHDR_BYTES},
                              {f->msg.name, f->msg.name != 0 ? f->msg.namelen : 0}};
  fp_copy(to, pairs, sizeof pairs);
  unsigned char* past = to + (2 + f->iovs) * RELIVE_FP_IOV_PAIR_BYTES;
  uint64_t unused = (RELIVE_FP_MAX_IOV - f->iovs) * RELIVE_FP_IOV_PAIR_BYTES;
  __asm__ volatile("rep stosb" : "+D"(past), "+c"(unused) : "a"(0) : "memory");
  filled_parts(f, (uint64_t)r, to + 2 * RELIVE_FP_IOV_PAIR_BYTES);
  unsigned char* bytes = to + RELIVE_FP_MSG_PARTS * RELIVE_FP_IOV_PAIR_BYTES;
  fp_copy(bytes, (const void*)f->args[1], RELIVE_FP_MSGHDR_BYTES);
  bytes += RELIVE_FP_MSGHDR_BYTES;
  fp_copy(bytes, (const void*)pairs[1].base, pairs[1].len);
  gather(f, (uint64_t)r, bytes + pairs[1].len);
}

/* Replay of a readv: the entry's bytes to the parts its head names. */
static void scatter(const unsigned char* entry_data, uint64_t parts) {
  const unsigned char* from = entry_data + parts * RELIVE_FP_IOV_PAIR_BYTES;
  for (uint64_t i = 0; i < parts; ++i) {
    struct fp_iovec part;
    fp_copy(&part, entry_data + i * RELIVE_FP_IOV_PAIR_BYTES, sizeof part);
    fp_copy((void*)part.base, from, part.len);
    from += part.len;
  }
}

/* The call made so that it cannot wait (see the top); WOULD_WAIT where the program's would have.
 * `total`: a vector call's sum of its iovecs. `id`: where openat and close leave the identity of
 * their file. */
static long nowait_call(const struct relive_fp_frame* f, const struct relive_fp_rule* r,
                        uint64_t total, uint64_t* id) {
  uint64_t a[6];
  for (int i = 0; i < 6; ++i) a[i] = f->args[i];
  long n;
  switch (r->wait) {
    case RELIVE_FP_WAIT_RWF:
      return r->vector ? rwf_vector_call(f, r, total) : rwf_call(f, r);
    case RELIVE_FP_WAIT_MSG:
      a[r->wait_arg] |= RELIVE_FP_MSG_DONTWAIT;
      n = fp_call(f->nr, a);
      if (n == -E_AGAIN && (f->args[r->wait_arg] & RELIVE_FP_MSG_DONTWAIT) == 0 &&
          !is_nonblocking((long)f->args[0]))
        return WOULD_WAIT;
      return n;
    case RELIVE_FP_WAIT_TIMEOUT:
      a[r->wait_arg] = 0;
      n = fp_call(f->nr, a);
      if (n == 0 && (int32_t)f->args[r->wait_arg] != 0) return WOULD_WAIT;
      return n;
    case RELIVE_FP_WAIT_OPEN:
      return open_call(f, id);
    case RELIVE_FP_WAIT_CLOSE:
      return close_call(f, id);
    case RELIVE_FP_WAIT_GRND:
      a[2] |= GRND_NONBLOCK_FLAG;
      n = fp_call(f->nr, a);
      if (n == -E_AGAIN && (f->args[2] & GRND_NONBLOCK_FLAG) == 0) return WOULD_WAIT;
      return n;
    default:
      return fp_call(f->nr, a);
  }
}

/* Gives back room taken with `took` (what this call stored) unless the tracer changed it since:
 * a tracer that lowered `room` to hold the buffer (syscall_buffer.h) must find its hold kept. */
static void give_back(volatile struct relive_fp_header* h, uint64_t took, uint64_t room) {
  uint64_t expected = took;
  __atomic_compare_exchange_n((uint64_t*)&h->room, &expected, room, 0, __ATOMIC_SEQ_CST,
                              __ATOMIC_SEQ_CST);
}

static void publish(volatile struct relive_fp_header* h, uint64_t slots) {
  __asm__ volatile("" ::: "memory"); /* the entry is whole before `next` says so */
  h->next = h->next + slots * RELIVE_FP_SLOT;
}

static int record_call(struct relive_fp_frame* f, const struct relive_fp_rule* rule,
                       volatile struct relive_fp_header* h) {
  if (rule->positioned && (int64_t)f->args[3] < 0)
    return RELIVE_FP_TRACED; /* pread64's EINVAL; -1 would mean "current" to preadv2 */
  uint64_t max = relive_fp_out_max(rule, f->args);
  uint64_t head = relive_fp_head(rule, f->args); /* the pairs of a readv's or recvmsg's parts */
  uint64_t total = 0;
  if (rule->vector) {
    long sum = copy_iovecs(f, rule);
    /* The kernel's EFAULT, control data, too many iovecs or too much: traced. */
    if (sum < 0 || (uint64_t)sum > RELIVE_FP_MAX_DATA) return RELIVE_FP_TRACED;
    total = (uint64_t)sum;
    max = head + total +
          (rule->out == RELIVE_FP_OUT_MSG ? RELIVE_FP_MSGHDR_BYTES + RELIVE_FP_MAX_NAME : 0);
  } else if (max > RELIVE_FP_MAX_DATA) {
    return RELIVE_FP_TRACED;
  }
  uint32_t name_room = rule->msg ? f->msg.namelen : 0; /* a recvmsg's address buffer */
  uint64_t room = h->room;
  uint64_t slots = slots_for(max);
  if (slots > room) return RELIVE_FP_TRACED;
  h->room = room - slots; /* taken before the call: see syscall_buffer.h */

  uint64_t id[2] = {0, 0};
  long r = nowait_call(f, rule, total, id);
  if (r == WOULD_WAIT) {
    give_back(h, room - slots, room); /* nothing was made: the slots go back */
    return RELIVE_FP_TRACED;
  }
  uint64_t len = relive_fp_out_len(rule, f->args, r);
  if (rule->out == RELIVE_FP_OUT_MSG && r >= 0) len = msg_len(f, r, name_room);
  if (len > max) len = max; /* a kernel that wrote more than asked: the entry holds what fits */
  uint64_t count = rule->vector ? max : f->args[rule->count];
  int continued = rule->takes_bytes && r >= 0 && len < count;
  uint64_t len_word = len | (continued ? RELIVE_FP_CONTINUED : 0);

  unsigned char* e = (unsigned char*)h->next;
  struct relive_fp_call call;
  call.nr = f->nr;
  for (int i = 0; i < 6; ++i) call.args[i] = f->args[i];
  call.result = r;
  fp_copy(e, &call, sizeof call);
  fp_copy(e + RELIVE_FP_CALL_BYTES, &len_word, sizeof len_word);
  if (len > 0 && rule->out == RELIVE_FP_OUT_MSG) {
    msg_parts(f, r, e + RELIVE_FP_DATA_OFFSET);
  } else if (len > 0 && rule->out == RELIVE_FP_OUT_IOV) {
    filled_parts(f, len - head, e + RELIVE_FP_DATA_OFFSET);
    gather(f, len - head, e + RELIVE_FP_DATA_OFFSET + head);
  } else if (len > 0 && rule->vector)
    gather(f, len, e + RELIVE_FP_DATA_OFFSET);
  else if (len > 0 && rule->out == RELIVE_FP_OUT_FILE_ID)
    fp_copy(e + RELIVE_FP_DATA_OFFSET, id, len);
  else if (len > 0)
    fp_copy(e + RELIVE_FP_DATA_OFFSET, (const void*)f->args[rule->arg], len);
  publish(h, slots_for(len));
  give_back(h, room - slots, room - slots_for(len)); /* what the entry did not use */
  if (continued && rule->vector) {
    continue_vector(f, rule, len);
    f->partial = len;
    return RELIVE_FP_CONTINUE;
  }
  if (continued) {
    f->args[1] += len;
    f->args[2] = count - len;
    if (rule->positioned) f->args[3] += len;
    f->partial = len;
    return RELIVE_FP_CONTINUE;
  }
  f->result = r;
  return RELIVE_FP_DONE;
}

static int replay_call(struct relive_fp_frame* f, const struct relive_fp_rule* rule,
                       volatile struct relive_fp_header* h) {
  uint64_t room = h->room;
  if (room == 0) return RELIVE_FP_TRACED;
  unsigned char* e = (unsigned char*)h->next;
  struct relive_fp_call call;
  uint64_t len_word;
  fp_copy(&call, e, sizeof call);
  fp_copy(&len_word, e + RELIVE_FP_CALL_BYTES, sizeof len_word);
  if (-call.nr != f->nr) return RELIVE_FP_TRACED;
  for (int i = 0; i < 6; ++i)
    if (-call.args[i] != f->args[i]) return RELIVE_FP_TRACED;
  uint64_t len = len_word & ~RELIVE_FP_CONTINUED;
  uint64_t slots = slots_for(len);
  if (len > RELIVE_FP_MAX_ENTRY_DATA || slots > room) /* not the replayer's */
    return RELIVE_FP_TRACED;
  unsigned char* data = (unsigned char*)e + RELIVE_FP_DATA_OFFSET;
  /* A call that wrote gets its logged bytes; one that takes bytes leaves them in the entry, where
   * the replayer checks them against the logged hash and reproduces the program's output. */
  if (rule->takes_bytes && rule->vector && copy_iovecs(f, rule) < 0)
    return RELIVE_FP_TRACED;                           /* as the record refused */
  if (len > 0 && rule->out != RELIVE_FP_OUT_FILE_ID) { /* a file's identity is the recorder's */
    if (relive_fp_parts(rule))
      scatter(data, relive_fp_head(rule, f->args) / RELIVE_FP_IOV_PAIR_BYTES);
    else if (rule->vector)
      gather(f, len, data);
    else if (rule->takes_bytes)
      fp_copy(data, (const void*)f->args[rule->arg], len);
    else
      fp_copy((void*)f->args[rule->arg], data, len);
  }
  h->room = room - slots;
  publish(h, slots);
  if ((len_word & RELIVE_FP_CONTINUED) && rule->vector) {
    continue_vector(f, rule, len);
    f->partial = len;
    return RELIVE_FP_CONTINUE;
  }
  if (len_word & RELIVE_FP_CONTINUED) {
    f->args[1] += len;
    f->args[2] -= len;
    if (rule->positioned) f->args[3] += len;
    f->partial = len;
    return RELIVE_FP_CONTINUE;
  }
  f->result = call.result;
  return RELIVE_FP_DONE;
}

int relive_fast_path(struct relive_fp_frame* frame, void* buffer) {
  volatile struct relive_fp_header* h = (volatile struct relive_fp_header*)buffer;
  struct relive_fp_rule rule;
  if (!relive_fp_rule_of(frame->nr, frame->args, &rule)) return RELIVE_FP_TRACED;
  int answer = RELIVE_FP_TRACED;
  if (h->mode == RELIVE_FP_REPLAY_MODE)
    answer = replay_call(frame, &rule, h);
  else if (h->mode == 0)
    answer = record_call(frame, &rule, h);
  /* The frame words a TRACED answer may have left (a writev's copied iovecs) are cleared: the
   * thread may stay stopped in its traced call while another is preempted and the memory
   * compared, and a recording and its replay come to TRACED after different work. */
  if (answer == RELIVE_FP_TRACED) {
    uint64_t* words = (uint64_t*)frame->rest;
    uint64_t n = (uint64_t)((unsigned char*)(frame + 1) - (unsigned char*)frame->rest) / 8;
    frame->result = 0;
    __asm__ volatile("rep stosq" : "+D"(words), "+c"(n) : "a"(0) : "memory");
  }
  return answer;
}

/* Syscall user dispatch's safety net (syscall_dispatch.h). A recorder that attached to a running
 * process stops its calls with dispatch, which a SIGSYS delivers when no tracer takes it: if the
 * recorder dies (SIGKILL, a crash) the process would die at its next call. This handler, which
 * the recorder installs where the program had none, lets every call through from then on
 * (selector "allow") and makes the call that raised it again. A tracer never lets it run (it takes
 * the SIGSYS of a dispatched call at its signal stop). Any other SIGSYS (the program's own seccomp
 * filter, a kill) gets the default action, as it would have without the handler. */
struct fp_siginfo_sys {
  int32_t signo, err, code, pad;
  uint64_t call_addr;
  int32_t syscall_nr;
  uint32_t arch;
};
#define FP_SYS_USER_DISPATCH 2
#define FP_UC_GREGS 40 /* ucontext_t: uc_flags, uc_link, uc_stack (24), then the gregs */
#define FP_REG_RAX 13
#define FP_REG_RIP 16

__asm__(".pushsection .relive_sigsys_restorer,\"ax\",@progbits\n"
        "relive_sigsys_restorer:\n"
        "  mov $" FP_STR(RELIVE_FP_NR_rt_sigreturn) ", %eax\n"
        "  syscall\n"
        "  .popsection\n");

__attribute__((section(".relive_sigsys"), used)) void relive_sigsys(int sig,
                                                                    struct fp_siginfo_sys* si,
                                                                    void* ucontext) {
  uint64_t* gregs = (uint64_t*)((char*)ucontext + FP_UC_GREGS);
  (void)sig;
  if (si->code == FP_SYS_USER_DISPATCH) {
    *(volatile uint8_t*)RELIVE_FP_DISPATCH_SELECTOR = 0; /* allow */
    gregs[FP_REG_RIP] -= 2;                              /* the `syscall` not made */
    gregs[FP_REG_RAX] = (uint64_t)(int64_t)si->syscall_nr;
    return;
  }
  uint64_t dfl[4] = {0, 0, 0, 0}; /* SIG_DFL; pending until this handler returns (masked) */
  fp_syscall(RELIVE_FP_NR_rt_sigaction, RELIVE_FP_SIGSYS, (long)dfl, 0, 8, 0, 0);
  long pid = fp_syscall(RELIVE_FP_NR_getpid, 0, 0, 0, 0, 0, 0);
  long tid = fp_syscall(RELIVE_FP_NR_gettid, 0, 0, 0, 0, 0, 0);
  fp_syscall(RELIVE_FP_NR_tgkill, pid, tid, RELIVE_FP_SIGSYS, 0, 0, 0);
}
