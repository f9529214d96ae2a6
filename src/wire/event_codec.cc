#include "wire/event_codec.h"

#include <fmt/format.h>

#include <type_traits>

#include "common/check.h"
#include "schemas/trace.capnp.h"
#include "wire/flat_message.h"

namespace relive::wire {
namespace {

// sizeof(siginfo_t) on Linux, for every architecture.
constexpr size_t kMaxSiginfoBytes = 128;

// ---- encoding ----

void build(const trace::SyscallEvent& s, SyscallEvent::Builder b) {
  b.setTid(s.tid);
  b.setNr(s.nr);
  auto args = b.initArgs(s.args.size());
  for (size_t i = 0; i < s.args.size(); ++i) args.set(i, s.args[i]);
  b.setResult(s.result);
  b.setMode(static_cast<SyscallMode>(s.mode));
  auto writes = b.initWrites(s.writes.size());
  for (size_t i = 0; i < s.writes.size(); ++i) {
    writes[i].setAddr(s.writes[i].addr);
    writes[i].setData(as_data(s.writes[i].data));
  }
  b.setStream(static_cast<OutputStream>(s.stream));
  b.setDataHash(s.data_hash);
  if (!s.file.empty()) b.setFile(as_text(s.file));
  if (!s.shared_key.empty()) b.setSharedKey(as_text(s.shared_key));
  if (s.continued) b.setContinued(true);
}

void build(const trace::RdtscEvent& r, RdtscEvent::Builder b) {
  b.setTid(r.tid);
  b.setTsc(r.tsc);
  b.setAux(r.aux);
  b.setRdtscp(r.rdtscp);
}

void build(const trace::SignalEvent& s, SignalEvent::Builder b) {
  b.setTid(s.tid);
  b.setSigno(s.signo);
  b.setSiginfo(as_data(s.siginfo));
}

void build_event(const trace::Event& e, Event::Builder b) {
  std::visit(
      [&](const auto& v) {
        using T = std::decay_t<decltype(v)>;
        if constexpr (std::is_same_v<T, trace::SyscallEvent>) {
          build(v, b.initSyscall());
        } else if constexpr (std::is_same_v<T, trace::RdtscEvent>) {
          build(v, b.initRdtsc());
        } else if constexpr (std::is_same_v<T, trace::SignalEvent>) {
          build(v, b.initSignal());
        } else if constexpr (std::is_same_v<T, trace::ThreadExitEvent>) {
          b.initThreadExit().setTid(v.tid);
        } else if constexpr (std::is_same_v<T, trace::DetachEvent>) {
          b.initDetach().setParkedTid(v.parked_tid);
        } else if constexpr (std::is_same_v<T, trace::PreemptEvent>) {
          auto p = b.initPreempt();
          p.setTid(v.tid);
          p.setRegs(as_data(v.regs));
          p.setStateHash(v.state_hash);
        } else if constexpr (std::is_same_v<T, trace::SitePatchEvent>) {
          auto p = b.initSitePatch();
          p.setTid(v.tid);
          p.setSite(v.site);
          p.setStub(v.stub);
          p.setStubPage(v.stub_page);
          p.setNewPage(v.new_page);
        } else if constexpr (std::is_same_v<T, trace::SyscallEntryEvent>) {
          auto entry = b.initSyscallEntry();
          entry.setTid(v.tid);
          entry.setNr(v.nr);
        } else {
          static_assert(std::is_same_v<T, trace::ProcessExitEvent>);
          b.initProcessExit().setStatus(v.status);
        }
      },
      e);
}

// ---- decoding ----

Result<trace::SyscallMode> decode_mode(SyscallMode m) {
  switch (m) {
    case SyscallMode::EMULATED:
      return trace::SyscallMode::kEmulated;
    case SyscallMode::NATIVE:
      return trace::SyscallMode::kNative;
    case SyscallMode::MAP_FILE:
      return trace::SyscallMode::kMapFile;
  }
  return Status::Corruption(fmt::format("unknown syscall mode {}", static_cast<int>(m)));
}

Result<trace::Stream> decode_stream(OutputStream s) {
  switch (s) {
    case OutputStream::NO_STREAM:
      return trace::Stream::kNone;
    case OutputStream::TO_STDOUT:
      return trace::Stream::kStdout;
    case OutputStream::TO_STDERR:
      return trace::Stream::kStderr;
  }
  return Status::Corruption(fmt::format("unknown output stream {}", static_cast<int>(s)));
}

Result<trace::Event> decode(SyscallEvent::Reader r) {
  trace::SyscallEvent s;
  s.tid = r.getTid();
  s.nr = r.getNr();
  auto args = r.getArgs();
  if (args.size() != s.args.size()) {
    return Status::Corruption(fmt::format("syscall with {} arguments, expected 6", args.size()));
  }
  for (unsigned i = 0; i < args.size(); ++i) s.args[i] = args[i];
  s.result = r.getResult();
  RELIVE_ASSIGN_OR_RETURN(s.mode, decode_mode(r.getMode()));
  auto writes = r.getWrites();
  s.writes.reserve(writes.size());
  for (auto w : writes) s.writes.push_back({w.getAddr(), to_string(w.getData())});
  RELIVE_ASSIGN_OR_RETURN(s.stream, decode_stream(r.getStream()));
  s.data_hash = r.getDataHash();
  s.file = to_string(r.getFile());
  s.shared_key = to_string(r.getSharedKey());
  s.continued = r.getContinued();
  return trace::Event(std::move(s));
}

Result<trace::Event> decode(RdtscEvent::Reader r) {
  return trace::Event(trace::RdtscEvent{r.getTid(), r.getTsc(), r.getAux(), r.getRdtscp()});
}

Result<trace::Event> decode(SignalEvent::Reader r) {
  auto info = r.getSiginfo();
  if (info.size() > kMaxSiginfoBytes) {
    return Status::Corruption(fmt::format("siginfo of {} bytes, at most 128", info.size()));
  }
  return trace::Event(trace::SignalEvent{r.getTid(), r.getSigno(), to_string(info)});
}

Result<trace::Event> decode_root(Event::Reader e) {
  switch (e.which()) {
    case Event::SYSCALL:
      return decode(e.getSyscall());
    case Event::RDTSC:
      return decode(e.getRdtsc());
    case Event::SIGNAL:
      return decode(e.getSignal());
    case Event::THREAD_EXIT:
      return trace::Event(trace::ThreadExitEvent{e.getThreadExit().getTid()});
    case Event::PROCESS_EXIT:
      return trace::Event(trace::ProcessExitEvent{e.getProcessExit().getStatus()});
    case Event::SYSCALL_ENTRY: {
      auto entry = e.getSyscallEntry();
      return trace::Event(trace::SyscallEntryEvent{entry.getTid(), entry.getNr()});
    }
    case Event::DETACH:
      return trace::Event(trace::DetachEvent{e.getDetach().getParkedTid()});
    case Event::PREEMPT: {
      auto p = e.getPreempt();
      if (p.getRegs().size() != trace::kPreemptRegsBytes) {
        return Status::Corruption(fmt::format("preemption with {} bytes of registers, expected {}",
                                              p.getRegs().size(), trace::kPreemptRegsBytes));
      }
      return trace::Event(
          trace::PreemptEvent{p.getTid(), to_string(p.getRegs()), p.getStateHash()});
    }
    case Event::SITE_PATCH: {
      auto p = e.getSitePatch();
      return trace::Event(trace::SitePatchEvent{p.getTid(), p.getSite(), p.getStub(),
                                                p.getStubPage(), p.getNewPage()});
    }
  }
  return Status::Corruption(fmt::format("unknown event kind {}", static_cast<int>(e.which())));
}

}  // namespace

std::string encode_event(const trace::Event& e) {
  capnp::MallocMessageBuilder message;
  try {
    build_event(e, message.initRoot<Event>());
  } catch (const kj::Exception& ex) {
    // Only a Data field over Cap'n Proto's 512 MiB list limit gets here.
    RELIVE_CHECK(false, "cannot encode event: {}", ex.getDescription().cStr());
  }
  return to_flat_bytes(message);
}

Result<trace::Event> decode_event(std::string_view bytes) {
  return decode_flat<Event>(bytes, [](Event::Reader root) { return decode_root(root); });
}

}  // namespace relive::wire
