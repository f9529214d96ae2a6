// The command line of a migration's destination QEMU, derived from the source QEMU's own argv
// (read from /proc/PID/cmdline of the process behind the QMP socket).
//
// Migration needs the same machine, devices and memory at both ends, and QEMU's command line
// is exactly that description. What must differ is how the destination is driven: relived
// attaches its own monitor, starts it paused with `-incoming defer`, and does not daemonize it.
// So the source's monitors (-qmp, -qmp-pretty, -monitor, -mon and the -chardev they name),
// -incoming, -daemonize, -pidfile, -loadvm, -preconfig and -S are removed, and relived appends
// its own. Everything else is kept as given, so paths in it must be valid at the destination
// too (relived starts QEMU in the VM's own directory: relative paths land there).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "relive/result.h"

namespace relive::qemu {

// The argv of process `pid` (/proc/PID/cmdline).
Result<std::vector<std::string>> process_argv(pid_t pid);

// `argv` without what only concerns how the source is driven (see above), argv[0] reduced to
// its base name. InvalidArgument when argv[0] is not a qemu-system-ARCH binary. Idempotent: the
// destination applies it again to what the source sent.
Result<std::vector<std::string>> migratable_args(const std::vector<std::string>& argv);

// The destination's full argv: migratable_args(args) + paused, `-incoming defer`, and a QMP
// monitor on `qmp_socket`.
Result<std::vector<std::string>> incoming_args(const std::vector<std::string>& args,
                                               const std::string& qmp_socket);

// The names (without dashes) of the options in `args` (argv[0] excluded).
std::set<std::string> option_names(const std::vector<std::string>& args);

// The ifname= of every tap network backend in `args` (-netdev tap,...,ifname=X; -nic tap,...).
std::vector<std::string> tap_interfaces(const std::vector<std::string>& args);

// `args` with the image of the drive `-drive ...,id=ID,...` replaced by `file` (its file= part
// rewritten, the rest kept): a storage migration's destination runs on images of its own.
// NotFound when no -drive has that id; InvalidArgument for a path QEMU's option syntax cannot
// carry as is (one with a comma).
Result<std::vector<std::string>> with_drive_file(const std::vector<std::string>& args,
                                                 const std::string& id, const std::string& file);

// The argument of every `-NAME` in `args` (argv[0] excluded), in order.
std::vector<std::string> option_arguments(const std::vector<std::string>& args,
                                          const std::string& name);

// The value of `key=` in an option argument "a,key=value,b=c" ("" when absent).
std::string suboption(const std::string& opts, const std::string& key);

// `args` with `key=value` set in the argument of `-drive ...,id=ID,...` (replaced where the key
// is there, appended where not). NotFound when no -drive has that id; InvalidArgument for a
// value with a comma.
Result<std::vector<std::string>> with_drive_suboption(const std::vector<std::string>& args,
                                                      const std::string& id, const std::string& key,
                                                      const std::string& value);

// The guest's RAM size in bytes from `-m SIZE` / `-m size=SIZE[,...]` (SIZE in MiB unless it
// ends in K, M, G or T), QEMU's default 128 MiB when there is no -m. InvalidArgument on a size
// QEMU would not take either.
Result<uint64_t> memory_bytes(const std::vector<std::string>& args);

}  // namespace relive::qemu
