/* The fast path inside a recorded or replayed process: byte calls (read, write, pread64, pwrite64)
 * made at a patched syscall site without a ptrace stop (fast_path_abi.h has the buffer layout,
 * syscall_buffer.h the protocol around it).
 *
 * Freestanding: no libc, no stack protector, general registers only (a fast call must leave the
 * program's vector registers as the kernel's `syscall` does: untouched). Its own system calls
 * go out from this code, whose addresses the recorder's seccomp filter lets through without a
 * stop; everything it does is therefore in the buffer for the tracer to log.
 *
 * Record. A call takes the slots its largest possible entry needs before it is made (so a room
 * the tracer lowered meanwhile never wraps) and publishes the entry by advancing `next` only once
 * it is whole. Nothing here may block for as long as another recorded thread might take to
 * unblock it (one thread runs at a time): a read or write is tried with RWF_NOWAIT and goes
 * down the traced path, untouched, when it would block or the file cannot say, unless the file is
 * a regular file, which is then read or written blocking (its disk answers). A read from a
 * regular file that came back short (part of the range not cached) reads the rest blocking:
 * the disk always answers, and a short read from a regular file would be a behaviour the
 * program never sees natively. A write that went out only in part (a pipe or socket filled up)
 * sends the rest through the traced path, where it may block.
 *
 * Replay. The replayer prefills the buffer with the logged calls, number and arguments negated.
 * A call equal to the next entry is answered from it: a read's logged bytes are copied into the
 * program's buffer; a write's bytes are copied into the entry, for the replayer to check against
 * the log's hash (the log keeps a write's hash, not its bytes) and to reproduce stdout and stderr
 * from. Anything else takes the traced path untouched, where the replayer compares the call
 * with the log and reports the divergence.
 */
#include "tracee/fast_path_abi.h"

#define NR_read 0
#define NR_write 1
#define NR_fstat 5
#define NR_pread64 17
#define NR_pwrite64 18
#define NR_preadv2 327
#define NR_pwritev2 328

#define E_AGAIN 11
#define E_OPNOTSUPP 95
#define RWF_NOWAIT_FLAG 0x8
#define S_IFMT_BITS 0170000
#define S_IFREG_BITS 0100000

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

static void fp_copy(void* dst, const void* src, uint64_t n) {
  __asm__ volatile("rep movsb" : "+D"(dst), "+S"(src), "+c"(n) : : "memory");
}

static uint64_t slots_for(uint64_t data_len) {
  return (RELIVE_FP_DATA_OFFSET + data_len + RELIVE_FP_SLOT - 1) / RELIVE_FP_SLOT;
}

static int is_read_call(uint64_t nr) { return nr == NR_read || nr == NR_pread64; }
static int is_write_call(uint64_t nr) { return nr == NR_write || nr == NR_pwrite64; }
static int is_positioned(uint64_t nr) { return nr == NR_pread64 || nr == NR_pwrite64; }

static int is_regular_file(long fd) {
  struct fp_stat st;
  if (fp_syscall(NR_fstat, fd, (long)&st, 0, 0, 0, 0) != 0) return 0;
  uint32_t mode = (uint32_t)(st.words[3] & 0xffffffffu);
  return (mode & S_IFMT_BITS) == S_IFREG_BITS;
}

/* preadv2/pwritev2 with one vector and RWF_NOWAIT; -1 as the position: the file's own. */
static long nowait_io(uint64_t nr, long fd, uint64_t buf, uint64_t count, long pos) {
  struct fp_iovec iov = {buf, count};
  long vnr = is_read_call(nr) ? NR_preadv2 : NR_pwritev2;
  return fp_syscall(vnr, fd, (long)&iov, 1, pos, 0, RWF_NOWAIT_FLAG);
}

static void publish(volatile struct relive_fp_header* h, uint64_t slots) {
  __asm__ volatile("" ::: "memory"); /* the entry is whole before `next` says so */
  h->next = h->next + slots * RELIVE_FP_SLOT;
}

static int record_call(struct relive_fp_frame* f, volatile struct relive_fp_header* h) {
  long fd = (long)f->args[0];
  uint64_t buf = f->args[1];
  uint64_t count = f->args[2];
  long pos = -1;
  if (is_positioned(f->nr)) {
    pos = (long)f->args[3];
    if (pos < 0) return RELIVE_FP_TRACED; /* pread64's EINVAL; -1 would mean "current" here */
  }
  if (count > RELIVE_FP_MAX_DATA) return RELIVE_FP_TRACED;
  uint64_t room = h->room;
  uint64_t slots = slots_for(count);
  if (slots > room) return RELIVE_FP_TRACED;
  h->room = room - slots; /* taken before the call: see syscall_buffer.h */

  long r = nowait_io(f->nr, fd, buf, count, pos);
  if (r == -E_AGAIN || r == -E_OPNOTSUPP) {
    /* A regular file waits for its disk, never for another thread: made blocking, as the program
     * asked (most file systems take no buffered write, and no uncached read, with RWF_NOWAIT).
     * Anything else goes traced; its slots come back at the drain. */
    if (!is_regular_file(fd)) return RELIVE_FP_TRACED;
    r = fp_syscall((long)f->nr, fd, (long)buf, (long)count, pos, 0, 0);
  }
  if (is_read_call(f->nr) && r > 0 && (uint64_t)r < count && is_regular_file(fd)) {
    long rest = is_positioned(f->nr)
                    ? fp_syscall(NR_pread64, fd, (long)(buf + r), (long)(count - r), pos + r, 0, 0)
                    : fp_syscall(NR_read, fd, (long)(buf + r), (long)(count - r), 0, 0, 0);
    if (rest > 0) r += rest;
  }

  unsigned char* e = (unsigned char*)h->next;
  struct relive_fp_call call;
  call.nr = f->nr;
  for (int i = 0; i < 6; ++i) call.args[i] = f->args[i];
  call.result = r;
  uint64_t len = r > 0 ? (uint64_t)r : 0;
  int continued = is_write_call(f->nr) && r >= 0 && len < count;
  uint64_t len_word = len | (continued ? RELIVE_FP_CONTINUED : 0);
  fp_copy(e, &call, sizeof call);
  fp_copy(e + RELIVE_FP_CALL_BYTES, &len_word, sizeof len_word);
  if (len > 0) fp_copy(e + RELIVE_FP_DATA_OFFSET, (const void*)buf, len);
  publish(h, slots_for(len));
  if (continued) {
    f->args[1] = buf + len;
    f->args[2] = count - len;
    if (is_positioned(f->nr)) f->args[3] = (uint64_t)(pos + (long)len);
    f->partial = len;
    return RELIVE_FP_CONTINUE;
  }
  f->result = r;
  return RELIVE_FP_DONE;
}

static int replay_call(struct relive_fp_frame* f, volatile struct relive_fp_header* h) {
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
  if (len > RELIVE_FP_MAX_DATA || slots > room) return RELIVE_FP_TRACED; /* not the replayer's */
  unsigned char* data = (unsigned char*)e + RELIVE_FP_DATA_OFFSET;
  /* A read gets its logged bytes; a write leaves the bytes it wrote in the entry, where the
   * replayer checks them against the logged hash and reproduces the program's output. */
  if (is_read_call(f->nr) && len > 0) fp_copy((void*)f->args[1], data, len);
  if (is_write_call(f->nr) && len > 0) fp_copy(data, (const void*)f->args[1], len);
  h->room = room - slots;
  publish(h, slots);
  if (len_word & RELIVE_FP_CONTINUED) {
    f->args[1] += len;
    f->args[2] -= len;
    if (is_positioned(f->nr)) f->args[3] += len;
    f->partial = len;
    return RELIVE_FP_CONTINUE;
  }
  f->result = call.result;
  return RELIVE_FP_DONE;
}

int relive_fast_path(struct relive_fp_frame* frame, void* buffer) {
  volatile struct relive_fp_header* h = (volatile struct relive_fp_header*)buffer;
  if (!is_read_call(frame->nr) && !is_write_call(frame->nr)) return RELIVE_FP_TRACED;
  if (h->mode == RELIVE_FP_REPLAY_MODE) return replay_call(frame, h);
  if (h->mode != 0) return RELIVE_FP_TRACED;
  return record_call(frame, h);
}
