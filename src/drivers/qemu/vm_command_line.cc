#include "drivers/qemu/vm_command_line.h"

#include <fstream>
#include <iterator>
#include <regex>
#include <set>

namespace relive::qemu {
namespace {

// QEMU options that take no argument (qemu-options.hx, options without HAS_ARG). Every other
// option consumes the next word, which is how the words are told apart.
const std::set<std::string>& flag_options() {
  static const std::set<std::string> kFlags = {"S",           "s",
                                               "daemonize",   "nographic",
                                               "no-reboot",   "no-shutdown",
                                               "snapshot",    "enable-kvm",
                                               "nodefaults",  "no-user-config",
                                               "full-screen", "no-hpet",
                                               "no-acpi",     "only-migratable",
                                               "version",     "h",
                                               "help",        "preconfig",
                                               "win2k-hack",  "no-fd-bootchk",
                                               "old-param",   "xen-attach",
                                               "semihosting", "enable-sync-profile",
                                               "perfmap",     "jitdump",
                                               "alt-grab",    "ctrl-grab",
                                               "no-frame",    "no-quit",
                                               "sdl",         "curses",
                                               "portrait",    "mem-prealloc",
                                               "singlestep",  "nodefconfig",
                                               "no-kvm",      "no-kvm-irqchip",
                                               "no-kvm-pit",  "no-kvm-pit-reinjection",
                                               "usb"};
  return kFlags;
}

// Dropped, with their argument when they take one.
const std::set<std::string>& dropped_options() {
  static const std::set<std::string> kDropped = {"S",          "daemonize", "preconfig", "qmp",
                                                 "qmp-pretty", "monitor",   "mon",       "incoming",
                                                 "pidfile",    "loadvm"};
  return kDropped;
}

// "-name" and "--name" are the same option.
std::string option_name(const std::string& word) {
  if (word.size() < 2 || word[0] != '-') return "";
  return word.substr(word[1] == '-' ? 2 : 1);
}

// The value of `key=` in a QEMU option string "a,key=value,b=c" ("" when absent).
std::string option_value(const std::string& opts, const std::string& key) {
  size_t pos = 0;
  while (pos <= opts.size()) {
    size_t end = opts.find(',', pos);
    if (end == std::string::npos) end = opts.size();
    std::string part = opts.substr(pos, end - pos);
    if (part.starts_with(key + "=")) return part.substr(key.size() + 1);
    pos = end + 1;
  }
  return "";
}

struct Word {
  std::string option;  // "" for a positional word
  std::string value;   // the option's argument, when it takes one
  bool has_value = false;
};

std::vector<Word> parse(const std::vector<std::string>& args) {
  std::vector<Word> words;
  for (size_t i = 0; i < args.size(); ++i) {
    std::string name = option_name(args[i]);
    if (name.empty()) {
      words.push_back({"", args[i], true});
      continue;
    }
    Word w{name, "", false};
    if (!flag_options().count(name) && i + 1 < args.size()) {
      w.value = args[++i];
      w.has_value = true;
    }
    words.push_back(w);
  }
  return words;
}

}  // namespace

Result<std::vector<std::string>> process_argv(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/cmdline", std::ios::binary);
  if (!in) return Status::NotFound("process " + std::to_string(pid) + " is gone");
  std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::vector<std::string> argv;
  size_t pos = 0;
  while (pos < all.size()) {
    size_t end = all.find('\0', pos);
    if (end == std::string::npos) end = all.size();
    argv.push_back(all.substr(pos, end - pos));
    pos = end + 1;
  }
  if (argv.empty()) return Status::NotFound("process " + std::to_string(pid) + " has no argv");
  return argv;
}

Result<std::vector<std::string>> migratable_args(const std::vector<std::string>& argv) {
  if (argv.empty()) return Status::InvalidArgument("empty QEMU command line");
  std::string binary = argv[0].substr(argv[0].rfind('/') + 1);
  static const std::regex kQemu("qemu-system-[a-z0-9_]+");
  if (!std::regex_match(binary, kQemu))
    return Status::InvalidArgument("not a qemu-system binary: " + argv[0]);
  std::vector<Word> words = parse({argv.begin() + 1, argv.end()});
  // Character devices that only serve a dropped monitor go too.
  std::set<std::string> monitor_chardevs;
  for (const Word& w : words) {
    if ((w.option == "mon") && w.has_value) {
      // -mon [chardev=]NAME[,mode=...]
      std::string dev = option_value(w.value, "chardev");
      std::string first = w.value.substr(0, w.value.find(','));
      if (dev.empty() && first.find('=') == std::string::npos) dev = first;
      if (!dev.empty()) monitor_chardevs.insert(dev);
    }
  }
  std::vector<std::string> out = {binary};
  for (const Word& w : words) {
    if (w.option.empty()) {
      out.push_back(w.value);
      continue;
    }
    if (dropped_options().count(w.option)) continue;
    if (w.option == "chardev" && monitor_chardevs.count(option_value(w.value, "id"))) continue;
    out.push_back("-" + w.option);
    if (w.has_value) out.push_back(w.value);
  }
  return out;
}

std::set<std::string> option_names(const std::vector<std::string>& args) {
  std::set<std::string> out;
  if (args.empty()) return out;
  for (const Word& w : parse({args.begin() + 1, args.end()})) {
    if (!w.option.empty()) out.insert(w.option);
  }
  return out;
}

std::vector<std::string> tap_interfaces(const std::vector<std::string>& args) {
  std::vector<std::string> out;
  if (args.empty()) return out;
  for (const Word& w : parse({args.begin() + 1, args.end()})) {
    if ((w.option != "netdev" && w.option != "nic") || !w.has_value) continue;
    if (!w.value.starts_with("tap,") && w.value != "tap") continue;
    std::string name = option_value(w.value, "ifname");
    if (!name.empty()) out.push_back(name);
  }
  return out;
}

Result<std::vector<std::string>> with_drive_file(const std::vector<std::string>& args,
                                                 const std::string& id, const std::string& file) {
  if (file.find(',') != std::string::npos)
    return Status::InvalidArgument("image path " + file + " has a comma");
  // -drive has no implied first key (QEMU parses it without abbreviations): where file= is
  // missing it may go last like any other key.
  return with_drive_suboption(args, id, "file", file);
}

std::vector<std::string> option_arguments(const std::vector<std::string>& args,
                                          const std::string& name) {
  std::vector<std::string> out;
  if (args.empty()) return out;
  for (const Word& w : parse({args.begin() + 1, args.end()})) {
    if (w.option == name && w.has_value) out.push_back(w.value);
  }
  return out;
}

std::string suboption(const std::string& opts, const std::string& key) {
  return option_value(opts, key);
}

Result<std::vector<std::string>> with_drive_suboption(const std::vector<std::string>& args,
                                                      const std::string& id, const std::string& key,
                                                      const std::string& value) {
  if (value.find(',') != std::string::npos)
    return Status::InvalidArgument(key + "=" + value + " has a comma");
  std::vector<std::string> out = args;
  for (size_t i = 1; i + 1 < out.size(); ++i) {
    if (option_name(out[i]) != "drive") continue;
    std::string& v = out[++i];
    if (option_value(v, "id") != id) continue;
    std::string rebuilt;
    bool replaced = false;
    size_t pos = 0;
    while (pos <= v.size()) {
      size_t end = v.find(',', pos);
      if (end == std::string::npos) end = v.size();
      std::string part = v.substr(pos, end - pos);
      if (part.starts_with(key + "=")) {
        part = key + "=" + value;
        replaced = true;
      }
      rebuilt += (rebuilt.empty() ? "" : ",") + part;
      pos = end + 1;
    }
    if (!replaced) rebuilt += "," + key + "=" + value;
    v = rebuilt;
    return out;
  }
  return Status::NotFound("no -drive with id=" + id + " in the VM's command line");
}

Result<uint64_t> memory_bytes(const std::vector<std::string>& args) {
  std::string size;
  if (!args.empty()) {
    for (const Word& w : parse({args.begin() + 1, args.end()})) {
      if (w.option != "m" || !w.has_value) continue;
      size = option_value(w.value, "size");
      if (size.empty() && w.value.find('=') == std::string::npos) {
        size = w.value.substr(0, w.value.find(','));
      }
    }
  }
  if (size.empty()) return uint64_t{128} << 20;
  static const std::regex kSize("([0-9]{1,9})([kKmMgGtT]?)[bB]?");
  std::smatch m;
  if (!std::regex_match(size, m, kSize)) {
    return Status::InvalidArgument("-m " + size + ": not a memory size");
  }
  uint64_t n = std::stoull(m[1].str());
  int shift = 20;
  switch (m[2].str().empty() ? 'm' : std::tolower(m[2].str()[0])) {
    case 'k':
      shift = 10;
      break;
    case 'g':
      shift = 30;
      break;
    case 't':
      shift = 40;
      break;
    default:
      break;
  }
  uint64_t bytes = n << shift;
  if (n == 0 || (bytes >> shift) != n || bytes % 4096 != 0) {
    return Status::InvalidArgument("-m " + size + ": not a usable memory size");
  }
  return bytes;
}

Result<std::vector<std::string>> incoming_args(const std::vector<std::string>& args,
                                               const std::string& qmp_socket) {
  RELIVE_ASSIGN_OR_RETURN(std::vector<std::string> out, migratable_args(args));
  for (const char* a : {"-S", "-incoming", "defer", "-qmp"}) out.push_back(a);
  out.push_back("unix:" + qmp_socket + ",server=on,wait=off");
  return out;
}

}  // namespace relive::qemu
