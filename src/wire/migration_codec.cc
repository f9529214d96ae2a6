#include "wire/migration_codec.h"

#include <fmt/format.h>

#include <cmath>

#include "schemas/migration.capnp.h"
#include "wire/flat_message.h"

namespace {
template <class... F>
struct Overload : F... {
  using F::operator()...;
};
template <class... F>
Overload(F...) -> Overload<F...>;
}  // namespace

namespace relive::migration {

const char* command_name(const Command& command) {
  static constexpr const char* kNames[] = {
      "migrate.begin",  "migrate.files", "migrate.pages",  "migrate.log",   "migrate.restore",
      "migrate.commit", "migrate.abort", "migrate.verify", "ha.epoch",      "ha.dir",
      "ha.commit",      "ha.heartbeat",  "ha.status",      "ha.switchover", "migrate.vm_progress"};
  static_assert(std::size(kNames) == std::variant_size_v<Command>);
  return kNames[command.index()];
}

const char* reply_kind_name(const Reply& reply) {
  // The members of MigrationReply's union (schemas/migration.capnp).
  static constexpr const char* kNames[] = {"none", "outcome", "verify", "vmBegin", "logRound"};
  static_assert(std::size(kNames) == std::variant_size_v<Reply>);
  return kNames[reply.index()];
}

const char* strategy_name(Strategy s) {
  switch (s) {
    case Strategy::kStopCopy:
      return "stop-copy";
    case Strategy::kPrecopy:
      return "precopy";
    case Strategy::kPostcopy:
      return "postcopy";
    case Strategy::kCrtr:
      return "crtr";
    case Strategy::kLogShipping:
      return "log-shipping";
  }
  return "?";
}

const char* workload_kind_name(WorkloadKind k) {
  switch (k) {
    case WorkloadKind::kProcess:
      return "process";
    case WorkloadKind::kProcessTree:
      return "process-tree";
    case WorkloadKind::kRunc:
      return "runc";
    case WorkloadKind::kVm:
      return "vm";
  }
  return "?";
}

}  // namespace relive::migration

namespace relive::wire {
namespace {

namespace m = relive::migration;

// Both enums list their members in the schema's order.
template <typename To, typename From>
To cast_enum(From f) {
  return static_cast<To>(static_cast<uint16_t>(f));
}

void build_begin(const m::Begin& b, Begin::Builder o) {
  o.setKind(cast_enum<WorkloadKind>(b.kind));
  o.setStrategy(cast_enum<Strategy>(b.strategy));
  o.setName(as_text(b.name));
  o.setServiceAddress(as_text(b.service_address));
  o.setTcpEstablished(b.tcp_established);
  o.setSourceNode(as_text(b.source_node));
  o.setRootPid(b.root_pid);
  auto args = o.initVmArgs(static_cast<unsigned>(b.vm_args.size()));
  for (unsigned i = 0; i < b.vm_args.size(); ++i) args.set(i, as_text(b.vm_args[i]));
  auto caps = o.initVmCapabilities(static_cast<unsigned>(b.vm_capabilities.size()));
  for (unsigned i = 0; i < b.vm_capabilities.size(); ++i)
    caps.set(i, as_text(b.vm_capabilities[i]));
  o.setVmMultifdChannels(b.vm_multifd_channels);
  o.setVmTapMac(as_text(b.vm_tap_mac));
  auto disks = o.initVmDisks(static_cast<unsigned>(b.vm_disks.size()));
  for (unsigned i = 0; i < b.vm_disks.size(); ++i) {
    const m::VmDisk& d = b.vm_disks[i];
    auto w = disks[i];
    w.setDevice(as_text(d.device));
    w.setPath(as_text(d.path));
    w.setFormat(as_text(d.format));
    w.setVirtualSize(d.virtual_size);
    w.setBackingFile(as_text(d.backing_file));
    w.setBackingFormat(as_text(d.backing_format));
    w.setBackingHash(as_text(d.backing_hash));
  }
  o.setVmSharedStorage(b.vm_shared_storage);
}

void build_files(const m::FileBatch& f, FileBatch::Builder o) {
  o.setDir(as_text(f.dir));
  auto list = o.initFiles(static_cast<unsigned>(f.files.size()));
  for (unsigned i = 0; i < f.files.size(); ++i) {
    list[i].setName(as_text(f.files[i].name));
    list[i].setSize(f.files[i].size);
    list[i].setChecksum(as_text(f.files[i].checksum));
  }
}

void build(const m::Command& c, MigrationCommand::Builder o) {
  std::visit(Overload{
                 [&](const m::Begin& b) { build_begin(b, o.initBegin()); },
                 [&](const m::FileBatch& f) { build_files(f, o.initFiles()); },
                 [&](const m::PageRound& p) {
                   auto r = o.initPages();
                   r.setRound(p.round);
                   r.setPages(p.pages);
                 },
                 [&](const m::LogRound& l) {
                   auto r = o.initLog();
                   r.setRound(l.round);
                   r.setBytes(l.bytes);
                   r.setFinal(l.final);
                   r.setIcount(l.icount);
                 },
                 [&](const m::Restore& r) {
                   auto b = o.initRestore();
                   b.setLazyPagesAddress(as_text(r.lazy_pages_address));
                   b.setLazyPagesPort(r.lazy_pages_port);
                   b.setPagesFromCache(r.pages_from_cache);
                   b.setPagesFromReplay(r.pages_from_replay);
                   b.setFrozenMs(r.frozen_ms);
                 },
                 [&](const m::Commit&) { o.setCommit(); },
                 [&](const m::Abort& a) { o.setAbort(as_text(a.reason)); },
                 [&](const m::Verify&) { o.setVerify(); },
                 [&](const m::HaEpoch& e) {
                   auto b = o.initHaEpoch();
                   b.setEpoch(e.epoch);
                   b.setFull(e.full);
                   b.setPrimary(as_text(e.primary));
                   b.setPatch(e.patch);
                 },
                 [&](const m::HaDir& d) {
                   auto b = o.initHaDir();
                   b.setChanges(d.changes);
                   b.setBytes(d.bytes);
                 },
                 [&](const m::HaCommit& c) { o.setHaCommit(c.epoch); },
                 [&](const m::HaHeartbeat& h) { o.setHaHeartbeat(h.committed); },
                 [&](const m::HaStatus&) { o.setHaStatus(); },
                 [&](const m::HaSwitchover&) { o.setHaSwitchover(); },
                 [&](const m::VmProgress& p) { o.setVmProgress(as_text(p.json)); },
             },
             c);
}

Result<m::Command> read_begin(Begin::Reader r) {
  if (static_cast<uint16_t>(r.getKind()) > static_cast<uint16_t>(WorkloadKind::VM) ||
      static_cast<uint16_t>(r.getStrategy()) > static_cast<uint16_t>(Strategy::LOG_SHIPPING)) {
    return Status::Corruption("migrate.begin names an unknown workload kind or strategy");
  }
  m::Begin b;
  b.kind = cast_enum<m::WorkloadKind>(r.getKind());
  b.strategy = cast_enum<m::Strategy>(r.getStrategy());
  b.name = to_string(r.getName());
  b.service_address = to_string(r.getServiceAddress());
  b.tcp_established = r.getTcpEstablished();
  b.source_node = to_string(r.getSourceNode());
  b.root_pid = r.getRootPid();
  for (auto a : r.getVmArgs()) b.vm_args.push_back(to_string(a));
  for (auto c : r.getVmCapabilities()) b.vm_capabilities.push_back(to_string(c));
  b.vm_multifd_channels = r.getVmMultifdChannels();
  b.vm_tap_mac = to_string(r.getVmTapMac());
  for (auto d : r.getVmDisks()) {
    b.vm_disks.push_back({to_string(d.getDevice()), to_string(d.getPath()),
                          to_string(d.getFormat()), d.getVirtualSize(),
                          to_string(d.getBackingFile()), to_string(d.getBackingFormat()),
                          to_string(d.getBackingHash())});
  }
  b.vm_shared_storage = r.getVmSharedStorage();
  return m::Command(std::move(b));
}

Result<m::Command> read_files(FileBatch::Reader r) {
  m::FileBatch f;
  f.dir = to_string(r.getDir());
  for (auto e : r.getFiles()) {
    f.files.push_back({to_string(e.getName()), e.getSize(), to_string(e.getChecksum())});
  }
  return m::Command(std::move(f));
}

Result<m::Command> read(MigrationCommand::Reader r) {
  switch (r.which()) {
    case MigrationCommand::BEGIN:
      return read_begin(r.getBegin());
    case MigrationCommand::FILES:
      return read_files(r.getFiles());
    case MigrationCommand::PAGES:
      return m::Command(m::PageRound{r.getPages().getRound(), r.getPages().getPages()});
    case MigrationCommand::LOG: {
      auto l = r.getLog();
      return m::Command(m::LogRound{l.getRound(), l.getBytes(), l.getFinal(), l.getIcount()});
    }
    case MigrationCommand::RESTORE: {
      auto x = r.getRestore();
      double frozen = x.getFrozenMs();
      if (!std::isfinite(frozen) || frozen < 0 || frozen > 86'400'000.0) {
        return Status::Corruption(
            fmt::format("migrate.restore: frozenMs {} is not a duration in [0, 1 day]", frozen));
      }
      return m::Command(m::Restore{to_string(x.getLazyPagesAddress()), x.getLazyPagesPort(),
                                   x.getPagesFromCache(), x.getPagesFromReplay(), x.getFrozenMs()});
    }
    case MigrationCommand::COMMIT:
      return m::Command(m::Commit{});
    case MigrationCommand::ABORT:
      return m::Command(m::Abort{to_string(r.getAbort())});
    case MigrationCommand::VERIFY:
      return m::Command(m::Verify{});
    case MigrationCommand::HA_EPOCH: {
      auto e = r.getHaEpoch();
      return m::Command(
          m::HaEpoch{e.getEpoch(), e.getFull(), to_string(e.getPrimary()), e.getPatch()});
    }
    case MigrationCommand::HA_DIR:
      return m::Command(m::HaDir{r.getHaDir().getChanges(), r.getHaDir().getBytes()});
    case MigrationCommand::HA_COMMIT:
      return m::Command(m::HaCommit{r.getHaCommit()});
    case MigrationCommand::HA_HEARTBEAT:
      return m::Command(m::HaHeartbeat{r.getHaHeartbeat()});
    case MigrationCommand::HA_STATUS:
      return m::Command(m::HaStatus{});
    case MigrationCommand::HA_SWITCHOVER:
      return m::Command(m::HaSwitchover{});
    case MigrationCommand::VM_PROGRESS:
      return m::Command(m::VmProgress{to_string(r.getVmProgress())});
  }
  return Status::Corruption("migration command of an unknown kind");
}

}  // namespace

std::string encode_migration_command(const m::Command& command) {
  capnp::MallocMessageBuilder builder;
  build(command, builder.initRoot<MigrationCommand>());
  return to_flat_bytes(builder);
}

namespace {

void build_reply(const m::Reply& reply, MigrationReply::Builder o) {
  std::visit(Overload{
                 [&](const std::monostate&) { o.setNone(); },
                 [&](const m::OutcomeReply& r) {
                   auto b = o.initOutcome();
                   b.setRootPid(r.root_pid);
                   b.setRestoreMs(r.restore_ms);
                   b.setConfirmMs(r.confirm_ms);
                 },
                 [&](const m::VerifyReply& r) {
                   auto b = o.initVerify();
                   auto list = b.initDiffering(static_cast<unsigned>(r.differing.size()));
                   for (unsigned i = 0; i < r.differing.size(); ++i) {
                     list[i].setStart(r.differing[i].start);
                     list[i].setPages(r.differing[i].pages);
                   }
                   b.setReplayedEvents(r.replayed_events);
                 },
                 [&](const m::VmBeginReply& r) {
                   auto b = o.initVmBegin();
                   b.setPort(r.port);
                   b.setPid(r.pid);
                   b.setDir(as_text(r.dir));
                   b.setNbdPort(r.nbd_port);
                 },
                 [&](const m::LogRoundReply& r) {
                   auto b = o.initLogRound();
                   b.setIcount(r.icount);
                   b.setReplayMs(r.replay_ms);
                   b.setSavevmMs(r.savevm_ms);
                   b.setLoadMs(r.load_ms);
                   b.setLogBytesBehind(r.log_bytes_behind);
                   b.setHashingBehind(r.hashing_behind);
                 },
             },
             reply);
}

Result<m::Reply> read_reply(MigrationReply::Reader r) {
  switch (r.which()) {
    case MigrationReply::NONE:
      return m::Reply{};
    case MigrationReply::OUTCOME: {
      auto o = r.getOutcome();
      return m::Reply{m::OutcomeReply{o.getRootPid(), o.getRestoreMs(), o.getConfirmMs()}};
    }
    case MigrationReply::VERIFY: {
      auto v = r.getVerify();
      m::VerifyReply out;
      for (auto range : v.getDiffering())
        out.differing.push_back({range.getStart(), range.getPages()});
      out.replayed_events = v.getReplayedEvents();
      return m::Reply{std::move(out)};
    }
    case MigrationReply::VM_BEGIN: {
      auto v = r.getVmBegin();
      return m::Reply{
          m::VmBeginReply{v.getPort(), v.getPid(), to_string(v.getDir()), v.getNbdPort()}};
    }
    case MigrationReply::LOG_ROUND: {
      auto l = r.getLogRound();
      return m::Reply{m::LogRoundReply{l.getIcount(), l.getReplayMs(), l.getSavevmMs(),
                                       l.getLoadMs(), l.getLogBytesBehind(), l.getHashingBehind()}};
    }
  }
  return Status::Corruption(
      fmt::format("migration reply of unknown kind {}", static_cast<unsigned>(r.which())));
}

}  // namespace

std::string encode_migration_reply(const m::Reply& reply) {
  if (std::holds_alternative<std::monostate>(reply)) return {};
  capnp::MallocMessageBuilder builder;
  build_reply(reply, builder.initRoot<MigrationReply>());
  return to_flat_bytes(builder);
}

Result<m::Reply> decode_migration_reply(std::string_view bytes) {
  if (bytes.empty()) return m::Reply{};
  Result<m::Reply> r = decode_flat<MigrationReply>(bytes, read_reply);
  if (!r.ok()) return r.status().with_context("migration reply");
  return r;
}

Result<m::Command> decode_migration_command(std::string_view command_name, std::string_view body) {
  Result<m::Command> c = decode_flat<MigrationCommand>(body, read);
  if (!c.ok()) return c.status().with_context(std::string(command_name));
  if (command_name != m::command_name(*c)) {
    return Status::Corruption(
        fmt::format("request named {} carries a {} body", command_name, m::command_name(*c)));
  }
  return c;
}

}  // namespace relive::wire
