// relive container inspect: the manifest plus what the CRIU images inside say, with every
// checksum verified; as text or as one JSON object.
#include <fmt/format.h>

#include <ctime>
#include <nlohmann/json.hpp>

#include "container/archive_file.h"
#include "container/image_summary.h"
#include "container/runc_bundle.h"
#include "relive/container.h"

namespace relive {
namespace {

using container::Manifest;
using nlohmann::json;

constexpr uint64_t kPageBytes = 4096;

constexpr size_t kMaxListedFsChanges = 200;

bool keep_for_summary(const std::string& name) {
  return container::is_summary_image(name) || container::is_runc_entry(name);
}

// The runc container an archive holds, and its rootfs changes (directories left out).
Status add_runc(const std::map<std::string, std::string>& kept, json* j) {
  auto info_it = kept.find(container::kRuncInfoEntry);
  if (info_it == kept.end()) return Status::Ok();
  RELIVE_ASSIGN_OR_RETURN(auto info, container::RuncArchiveInfo::from_json(info_it->second));
  json r = {{"name", info.name},
            {"bundle", info.bundle},
            {"rootfs", info.rootfs},
            {"created", info.created},
            {"runc_version", info.runc_version},
            {"whole_rootfs", info.whole_rootfs}};
  auto tar_it = kept.find(container::kRuncRootfsEntry);
  if (tar_it != kept.end()) {
    RELIVE_ASSIGN_OR_RETURN(auto members, container::list_tar(tar_it->second));
    json files = json::array();
    size_t count = 0;
    for (const auto& m : members) {
      if (m.type == '5') continue;
      if (++count <= kMaxListedFsChanges) files.push_back(m.path);
    }
    r["fs_changes"] = files;
    r["fs_change_count"] = count;
  }
  (*j)["runc"] = r;
  return Status::Ok();
}

std::string runc_text(const json& r) {
  std::string out = fmt::format(
      "runc container: {} (bundle {}, rootfs {}, created {}; {})\nrootfs in the archive: {}\n",
      r["name"].get<std::string>(), r["bundle"].get<std::string>(), r["rootfs"].get<std::string>(),
      r["created"].get<std::string>(), r["runc_version"].get<std::string>(),
      r["whole_rootfs"].get<bool>() ? "all of it" : "files changed since creation");
  if (!r.contains("fs_changes")) return out;
  out += fmt::format("fs changes ({} files, links and devices; directories not listed):\n",
                     r["fs_change_count"].get<size_t>());
  for (const auto& f : r["fs_changes"]) out += "  " + f.get<std::string>() + "\n";
  if (r["fs_change_count"].get<size_t>() > r["fs_changes"].size()) out += "  ...\n";
  return out;
}

std::string utc_time(uint64_t ns) {
  std::time_t t = static_cast<std::time_t>(ns / 1000000000u);
  std::tm tm{};
  ::gmtime_r(&t, &tm);
  char buf[64];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

json manifest_json(const Manifest& m) {
  json procs = json::array();
  for (const auto& p : m.processes) {
    procs.push_back({{"pid", p.pid},
                     {"ppid", p.ppid},
                     {"pgid", p.pgid},
                     {"sid", p.sid},
                     {"threads", p.threads},
                     {"comm", p.comm}});
  }
  json entries = json::array();
  uint64_t images_bytes = 0;
  for (const auto& e : m.entries) {
    entries.push_back(
        {{"name", e.name},
         {"size", e.size},
         {"checksum", e.checksum},
         {"kind", e.kind == container::EntryKind::kFsChange ? "fsChange" : "criuImage"}});
    images_bytes += e.size;
  }
  const auto& s = m.stats;
  return {{"format_version", m.format_version},
          {"source_host", m.source_host},
          {"kernel", m.kernel},
          {"criu_version", m.criu_version},
          {"relive_version", m.relive_version},
          {"created", utc_time(m.created_realtime_ns)},
          {"created_realtime_ns", m.created_realtime_ns},
          {"root_pid", m.root_pid},
          {"tcp_established", m.tcp_established},
          {"processes", procs},
          {"entries", entries},
          {"images_bytes", images_bytes},
          {"fs_note", m.fs_note},
          {"dump_stats",
           {{"freezing_us", s.freezing_us},
            {"frozen_us", s.frozen_us},
            {"memdump_us", s.memdump_us},
            {"memwrite_us", s.memwrite_us},
            {"pages_scanned", s.pages_scanned},
            {"pages_written", s.pages_written}}}};
}

void add_summary(const container::ImageSummary& s, json* j) {
  (*j)["memory"] = {{"pages", s.memory_pages}, {"bytes", s.memory_pages * kPageBytes}};
  (*j)["files"] = s.files;
  (*j)["sockets"] = {{"inet", s.inet_sockets}, {"unix", s.unix_sockets}};
  (*j)["pipes"] = s.pipes;
  (*j)["ghost_files"] = s.ghost_files;
}

std::string text_of(const json& j) {
  std::string out =
      fmt::format("archive format {}, relive {}\nsource: {} ({}), CRIU {}\ncreated: {}\n",
                  j["format_version"].get<uint32_t>(), j["relive_version"].get<std::string>(),
                  j["source_host"].get<std::string>(), j["kernel"].get<std::string>(),
                  j["criu_version"].get<std::string>(), j["created"].get<std::string>());
  const json& st = j["dump_stats"];
  out += fmt::format("dump: frozen {:.2f} ms, {} pages written, tcp-established {}\n",
                     st["frozen_us"].get<int64_t>() / 1000.0, st["pages_written"].get<uint64_t>(),
                     j["tcp_established"].get<bool>() ? "yes" : "no");
  out += fmt::format("processes ({}):\n", j["processes"].size());
  for (const auto& p : j["processes"]) {
    out +=
        fmt::format("  pid {} ppid {} threads {} {}\n", p["pid"].get<int>(), p["ppid"].get<int>(),
                    p["threads"].get<uint32_t>(), p["comm"].get<std::string>());
  }
  if (j.contains("runc")) out += runc_text(j["runc"]);
  if (j.contains("memory")) {
    out += fmt::format("memory: {} pages ({} bytes)\n", j["memory"]["pages"].get<uint64_t>(),
                       j["memory"]["bytes"].get<uint64_t>());
    out += fmt::format("sockets: {} inet, {} unix; pipes: {}; ghost files: {}\n",
                       j["sockets"]["inet"].get<uint32_t>(), j["sockets"]["unix"].get<uint32_t>(),
                       j["pipes"].get<uint32_t>(), j["ghost_files"].get<uint32_t>());
    out += "files:\n";
    for (const auto& f : j["files"]) out += "  " + f.get<std::string>() + "\n";
  }
  out += fmt::format("fs: {}\nentries ({}, {} bytes, {}):\n", j["fs_note"].get<std::string>(),
                     j["entries"].size(), j["images_bytes"].get<uint64_t>(),
                     j["verified"].get<bool>() ? "all checksums verified" : "NOT VERIFIED");
  for (const auto& e : j["entries"]) {
    out += fmt::format("  {} {:>10} {} {}\n", e["checksum"].get<std::string>(),
                       e["size"].get<uint64_t>(), e["kind"].get<std::string>(),
                       e["name"].get<std::string>());
  }
  return out;
}

std::string render(const json& j, bool as_json) { return as_json ? j.dump(2) + "\n" : text_of(j); }

}  // namespace

Result<std::string> inspect_container(const std::string& archive, bool as_json,
                                      std::string* partial) {
  Manifest m;
  bool have_manifest = false;
  std::map<std::string, std::string> kept;
  Status st = container::read_archive(archive, keep_for_summary, &m, &have_manifest, &kept);
  json j = have_manifest ? manifest_json(m) : json::object();
  j["archive"] = archive;
  j["verified"] = st.ok();
  if (!st.ok()) {
    j["error"] = st.to_string();
    if (partial != nullptr && have_manifest) *partial = render(j, as_json);
    if (partial != nullptr && !have_manifest && as_json) *partial = j.dump(2) + "\n";
    return st.with_context(archive);
  }
  for (const auto& e : m.entries) {
    if (e.name.rfind("ghost-file-", 0) == 0) kept[e.name];  // counted by name only
  }
  auto summary = container::summarize_images(kept);
  if (!summary.ok()) return summary.status().with_context(archive);
  add_summary(*summary, &j);
  Status runc = add_runc(kept, &j);
  if (!runc.ok()) return runc.with_context(archive);
  return render(j, as_json);
}

}  // namespace relive
