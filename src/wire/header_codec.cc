#include "wire/header_codec.h"

#include <fmt/format.h>

#include <vector>

#include "common/hash.h"
#include "schemas/trace.capnp.h"
#include "wire/flat_message.h"
#include "wire/le_bytes.h"

namespace relive::wire {
namespace {

void set_list(capnp::List<capnp::Data>::Builder list, const std::vector<std::string>& v) {
  for (size_t i = 0; i < v.size(); ++i) list.set(i, as_data(v[i]));
}

std::vector<std::string> get_list(capnp::List<capnp::Data>::Reader list) {
  std::vector<std::string> out;
  out.reserve(list.size());
  for (auto d : list) out.push_back(to_string(d));
  return out;
}

void build(const trace::TraceHeader& h, TraceHeader::Builder b) {
  b.setStart(static_cast<StartKind>(h.start));
  b.setProgram(as_data(h.program));
  set_list(b.initArgv(h.argv.size()), h.argv);
  set_list(b.initEnv(h.env.size()), h.env);
  b.setCwd(as_data(h.cwd));
  b.setExeCopy(as_text(h.exe_copy));
  b.setInterpPath(as_data(h.interp_path));
  b.setInterpCopy(as_text(h.interp_copy));
  b.setAtRandomAddr(h.at_random_addr);
  b.setAtRandom(as_data(h.at_random));
  b.setCheckpoint(as_text(h.checkpoint));
  b.setInitialTid(h.initial_tid);
  b.setHostname(as_text(h.hostname));
  b.setKernel(as_text(h.kernel));
  b.setStartRealtimeNs(h.start_realtime_ns);
  b.setRdtsc(static_cast<TscTrapping>(h.rdtsc));
  auto others = b.initOtherThreads(static_cast<unsigned>(h.other_threads.size()));
  for (size_t i = 0; i < h.other_threads.size(); ++i) {
    others[i].setRecordedTid(h.other_threads[i].first);
    others[i].setCheckpointTid(h.other_threads[i].second);
  }
}

Result<trace::StartKind> decode_start(StartKind s) {
  switch (s) {
    case StartKind::EXEC:
      return trace::StartKind::kExec;
    case StartKind::CHECKPOINT:
      return trace::StartKind::kCheckpoint;
  }
  return Status::Corruption(fmt::format("unknown start kind {}", static_cast<int>(s)));
}

Result<trace::TraceHeader> decode_root(TraceHeader::Reader r, uint32_t version) {
  trace::TraceHeader h;
  h.version = version;
  RELIVE_ASSIGN_OR_RETURN(h.start, decode_start(r.getStart()));
  h.program = to_string(r.getProgram());
  h.argv = get_list(r.getArgv());
  h.env = get_list(r.getEnv());
  h.cwd = to_string(r.getCwd());
  h.exe_copy = to_string(r.getExeCopy());
  h.interp_path = to_string(r.getInterpPath());
  h.interp_copy = to_string(r.getInterpCopy());
  h.at_random_addr = r.getAtRandomAddr();
  h.at_random = to_string(r.getAtRandom());
  h.checkpoint = to_string(r.getCheckpoint());
  h.initial_tid = r.getInitialTid();
  h.hostname = to_string(r.getHostname());
  h.kernel = to_string(r.getKernel());
  h.start_realtime_ns = r.getStartRealtimeNs();
  switch (r.getRdtsc()) {
    case TscTrapping::TRAPPED:
      h.rdtsc = trace::TscTrapping::kTrapped;
      break;
    case TscTrapping::UNTRAPPED:
      h.rdtsc = trace::TscTrapping::kUntrapped;
      break;
    default:  // unknown, or a value from a later format: nothing is claimed
      h.rdtsc = trace::TscTrapping::kUnknown;
      break;
  }
  for (auto t : r.getOtherThreads())
    h.other_threads.emplace_back(t.getRecordedTid(), t.getCheckpointTid());
  return h;
}

// Checks everything the fixed prefix says about the file; returns the version.
Result<uint32_t> check_prefix(std::string_view file) {
  if (file.size() < kHeaderMagic.size() || file.substr(0, kHeaderMagic.size()) != kHeaderMagic) {
    return Status::Corruption("not a relive trace: bad magic");
  }
  if (file.size() < kHeaderPrefixBytes) {
    return Status::Corruption(fmt::format("header truncated at {} bytes", file.size()));
  }
  uint32_t version = get_u32(file, 8);
  if (version > trace::kFormatVersion) {
    return Status::VersionMismatch(
        fmt::format("trace format version {} is newer than this relive's version {}", version,
                    trace::kFormatVersion));
  }
  if (version == 0) return Status::Corruption("header with format version 0");
  uint32_t length = get_u32(file, 12);
  if (length > kMaxHeaderPayloadBytes) {
    return Status::Corruption(fmt::format("header payload length {} is absurd", length));
  }
  if (length != file.size() - kHeaderPrefixBytes) {
    return Status::Corruption(fmt::format("header payload length {} but file holds {} bytes",
                                          length, file.size() - kHeaderPrefixBytes));
  }
  if (hash32(file.substr(kHeaderPrefixBytes)) != get_u32(file, 16)) {
    return Status::Corruption("header checksum mismatch");
  }
  return version;
}

}  // namespace

std::string encode_header(const trace::TraceHeader& h) {
  capnp::MallocMessageBuilder message;
  build(h, message.initRoot<TraceHeader>());
  std::string payload = to_flat_bytes(message);
  std::string out(kHeaderMagic);
  put_u32(&out, trace::kFormatVersion);
  put_u32(&out, static_cast<uint32_t>(payload.size()));
  put_u32(&out, hash32(payload));
  out += payload;
  return out;
}

Result<trace::TraceHeader> decode_header(std::string_view file_bytes) {
  RELIVE_ASSIGN_OR_RETURN(uint32_t version, check_prefix(file_bytes));
  return decode_flat<TraceHeader>(
      file_bytes.substr(kHeaderPrefixBytes),
      [version](TraceHeader::Reader root) { return decode_root(root, version); });
}

}  // namespace relive::wire
