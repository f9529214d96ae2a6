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
 *  - the byte calls (read, write, pread64, pwrite64): a length word and that many bytes, the data
 *    the call read into the program's memory or wrote from it, padded to a whole slot; the
 *    length word's top bit (RELIVE_FP_CONTINUED) marks a write of which only these bytes went out
 *    here and whose rest the program wrote through the traced path, right after.
 */
#ifndef RELIVE_TRACEE_FAST_PATH_ABI_H_
#define RELIVE_TRACEE_FAST_PATH_ABI_H_

#include <stdint.h>

#define RELIVE_FP_SLOT 80u
#define RELIVE_FP_CALL_BYTES 64u  /* nr, args[6], result */
#define RELIVE_FP_DATA_OFFSET 72u /* byte calls: the length word at 64, the bytes from 72 */
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
 * what the fast path hands back besides its action. */
struct relive_fp_frame {
  uint64_t nr;
  uint64_t args[6];
  int64_t result;   /* RELIVE_FP_DONE: the call's result */
  uint64_t partial; /* RELIVE_FP_CONTINUE: bytes already written, added to the traced rest */
};

/* The fast path's answer to a stub. */
enum {
  RELIVE_FP_DONE = 0,     /* the call was made (record) or answered (replay): return result */
  RELIVE_FP_TRACED = 1,   /* make the call through the traced path, untouched */
  RELIVE_FP_CONTINUE = 2, /* `partial` bytes went out; make the traced call for the rest (args
                             adjusted in the frame), then return partial + its result, or
                             partial if it failed */
};

/* The largest data a byte call may put in one entry. Larger calls take the traced path. */
#define RELIVE_FP_MAX_DATA (256u * 1024u)

#ifdef __cplusplus
extern "C" {
#endif
/* The entry point the stubs call (fast_path.c). `buffer` is the syscall buffer's address. */
int relive_fast_path(struct relive_fp_frame* frame, void* buffer);
#ifdef __cplusplus
}
#endif

#endif /* RELIVE_TRACEE_FAST_PATH_ABI_H_ */
