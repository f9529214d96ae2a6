// Reads an established TCP connection's repair state from outside its process, as CRIU's
// dump_tcp_conn_state() does (through libsoccr), so that the HA fast path can patch a base
// dump's tcp-stream image (drivers/criu/tcp_stream_image.h) each epoch without running CRIU.
#pragma once

#include <sys/types.h>

#include "drivers/criu/tcp_stream_image.h"
#include "relive/result.h"

namespace relive::ha {

// The repair state of the TCP socket at `fd` in process `pid`, taken through a duplicate
// (pidfd_getfd) that is closed before returning. The socket is put in repair mode, read, and
// taken out of it without a window probe; its SO_REUSEADDR and SO_PEEK_OFF are put back, so it
// is left as it was.
//
// Contract: the process is stopped (ptrace or SIGSTOP) and the connection's input is held for
// the whole call. Otherwise a segment arriving in repair mode changes what is read, and an ACK
// arriving while the send queue is selected makes the kernel advance snd_nxt without sending.
//
// InvalidArgument when the fd is not a TCP socket; Unsupported in a state CRIU's
// --tcp-established does not dump (LISTEN, SYN_RECV, TIME_WAIT, CLOSE); Aborted when the socket
// is already in repair mode (someone else, e.g. CRIU, is working on it); the syscall's error
// otherwise (EPERM without CAP_NET_ADMIN in the socket's network namespace).
Result<criu::TcpStreamState> read_tcp_stream(pid_t pid, int fd);

}  // namespace relive::ha
