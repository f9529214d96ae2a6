// QemuProcess: a QEMU started by relive whose life is tied to its owner until released. It runs
// under a small guard process (a fork of the caller) that holds one end of a pipe: when the
// owner goes away without releasing it (the object is destroyed, or the whole program is killed
// with SIGKILL) the pipe reaches end of file and the guard kills QEMU. After release() the guard
// exits and QEMU lives on by itself (reparented to init or the nearest subreaper).
//
// The guard also deletes the files the launch names once QEMU is dead, unless released.
//
// relived starts a migration's destination QEMU this way, so that a destination that dies before
// the source commits never leaves a half-received VM behind.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <string>
#include <vector>

#include "common/scoped_fd.h"
#include "common/subprocess.h"
#include "relive/result.h"

namespace relive::qemu {

struct QemuLaunch {
  std::vector<std::string> argv;  // argv[0]: the binary, looked up on PATH when it has no '/'
  std::string cwd;                // QEMU's working directory ("" for the caller's)
  std::string log_file;           // QEMU's stdout and stderr (appended); "" for /dev/null
  // Files the guard deletes once QEMU is dead when it was not released (killed, or exited on
  // its own first): a storage migration's partial images, gone even when the owner is SIGKILLed.
  std::vector<std::string> remove_unless_released;
};

class QemuProcess {
 public:
  static Result<QemuProcess> start(const QemuLaunch& launch);

  QemuProcess(QemuProcess&& o) noexcept;
  QemuProcess& operator=(QemuProcess&&) = delete;
  ~QemuProcess() { kill(); }

  pid_t pid() const { return qemu_pid_; }
  // QEMU has not exited. Before release() this is exact; after it, a best effort (the pid is no
  // longer ours and could be reused).
  bool running() const;
  // Lets QEMU outlive this object and the program. Idempotent.
  Status release();
  // SIGKILL to QEMU (through the guard), then reaps the guard. Nothing after release().
  void kill();
  // The last lines of the log file, for error messages.
  std::string log_tail() const;

 private:
  QemuProcess(Subprocess guard, pid_t qemu, ScopedFd control, std::string log)
      : guard_(std::move(guard)),
        qemu_pid_(qemu),
        control_(std::move(control)),
        log_(std::move(log)) {}

  // Reaped by kill() or release() (waited for, never SIGKILLed: the guard must kill QEMU).
  Subprocess guard_;
  pid_t qemu_pid_ = -1;
  ScopedFd control_;  // write end of the guard's pipe: closing it kills QEMU
  std::string log_;
  bool released_ = false;
};

}  // namespace relive::qemu
