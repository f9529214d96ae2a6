#include "drivers/qemu/record_replay_args.h"

#include "drivers/qemu/vm_command_line.h"

namespace relive::qemu {
namespace {

std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> out;
  size_t pos = 0;
  for (;;) {
    size_t end = s.find(',', pos);
    out.push_back(s.substr(pos, end == std::string::npos ? std::string::npos : end - pos));
    if (end == std::string::npos) return out;
    pos = end + 1;
  }
}

bool is_icount(const std::string& word) { return word == "-icount" || word == "--icount"; }

// The value of `key=` among `parts` ("" when absent).
std::string value_of(const std::vector<std::string>& parts, const std::string& key) {
  for (const std::string& p : parts)
    if (p.starts_with(key + "=")) return p.substr(key.size() + 1);
  return "";
}

// `args` with the -icount option's rr/rrfile/rrsnapshot replaced by rr=`mode`,rrfile=`log`.
Result<std::vector<std::string>> with_rr(const std::vector<std::string>& args,
                                         const std::string& mode, const std::string& log) {
  RELIVE_RETURN_IF_ERROR(record_options(args).status());
  RELIVE_ASSIGN_OR_RETURN(std::vector<std::string> out, migratable_args(args));
  for (size_t i = 1; i + 1 < out.size(); ++i) {
    if (!is_icount(out[i])) continue;
    std::string value;
    for (const std::string& p : split(out[i + 1])) {
      if (p.starts_with("rr=") || p.starts_with("rrfile=") || p.starts_with("rrsnapshot="))
        continue;
      value += p + ",";
    }
    out[i + 1] = value + "rr=" + mode + ",rrfile=" + log;
  }
  return out;
}

void append(std::vector<std::string>* out, std::initializer_list<std::string> words) {
  out->insert(out->end(), words);
}

}  // namespace

Result<RecordOptions> record_options(const std::vector<std::string>& args) {
  for (const std::string& a : args)
    if (a == "-loadvm" || a == "--loadvm")
      return Status::Unsupported("QEMU started from a snapshot (-loadvm): a replay would need it");
  for (size_t i = 0; i + 1 < args.size(); ++i) {
    if (!is_icount(args[i])) continue;
    std::vector<std::string> parts = split(args[i + 1]);
    if (value_of(parts, "rr") != "record")
      return Status::InvalidArgument("QEMU's -icount " + args[i + 1] +
                                     " does not record (rr=record)");
    RecordOptions o{value_of(parts, "rrfile"), value_of(parts, "rrsnapshot")};
    if (o.rrfile.empty()) return Status::InvalidArgument("QEMU records without rrfile=");
    if (!o.rrsnapshot.empty())
      return Status::Unsupported("QEMU records from snapshot " + o.rrsnapshot +
                                 " (rrsnapshot=): shipping it is not implemented");
    return o;
  }
  return Status::InvalidArgument(
      "QEMU was not started in record mode (-icount shift=auto,rr=record,rrfile=FILE)");
}

Result<std::vector<std::string>> replay_args(const std::vector<std::string>& args,
                                             const std::string& log,
                                             const std::string& snapshot_image,
                                             const std::string& qmp_socket) {
  RELIVE_ASSIGN_OR_RETURN(std::vector<std::string> out, with_rr(args, "replay", log));
  append(&out, {"-action", "shutdown=pause", "-drive",
                "file=" + snapshot_image + ",if=none,id=relive-handover", "-S", "-qmp",
                "unix:" + qmp_socket + ",server=on,wait=off"});
  return out;
}

Result<std::vector<std::string>> live_args(const std::vector<std::string>& args,
                                           const std::string& log,
                                           const std::string& snapshot_image,
                                           const std::string& tag, const std::string& qmp_socket) {
  RELIVE_ASSIGN_OR_RETURN(std::vector<std::string> out, with_rr(args, "record", log));
  append(&out, {"-drive", "file=" + snapshot_image + ",if=none,id=relive-handover", "-loadvm", tag,
                "-S", "-qmp", "unix:" + qmp_socket + ",server=on,wait=off"});
  return out;
}

}  // namespace relive::qemu
