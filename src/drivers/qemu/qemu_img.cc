#include "drivers/qemu/qemu_img.h"

#include <sys/stat.h>

#include <chrono>
#include <vector>

#include "common/subprocess.h"

namespace relive::qemu {

Status create_image(const std::string& path, const ImageSpec& spec) {
  if (spec.format != "raw" && spec.format != "qcow2")
    return Status::InvalidArgument("image format " + spec.format +
                                   " cannot be created (raw or qcow2 only)");
  if (spec.virtual_size == 0) return Status::InvalidArgument("image size 0 for " + path);
  struct stat st;
  if (::lstat(path.c_str(), &st) == 0) return Status::InvalidArgument(path + " already exists");
  std::vector<std::string> argv = {"qemu-img", "create", "-q", "-f", spec.format};
  if (!spec.backing_file.empty()) {
    if (spec.format != "qcow2")
      return Status::InvalidArgument("only a qcow2 image can have a backing file");
    if (spec.backing_format != "raw" && spec.backing_format != "qcow2")
      return Status::InvalidArgument("backing format " + spec.backing_format +
                                     " is not raw or qcow2");
    argv.insert(argv.end(), {"-b", spec.backing_file, "-F", spec.backing_format});
  }
  argv.insert(argv.end(), {path, std::to_string(spec.virtual_size)});
  RunOptions o;
  o.timeout = std::chrono::seconds(60);
  RELIVE_ASSIGN_OR_RETURN(RunResult r, run(argv, o));
  if (!r.ok())
    return Status::IoError("qemu-img create " + path + ": " + r.describe() + ": " + r.output);
  return Status::Ok();
}

}  // namespace relive::qemu
