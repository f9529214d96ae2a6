#include "ha/output_buffer.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/netfilter.h>
#include <poll.h>
#include <sched.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <future>

extern "C" {
#include <libnetfilter_queue/libnetfilter_queue.h>
}

#include "common/check.h"
#include "common/logging.h"
#include "common/subprocess.h"

namespace relive::ha {
namespace {

using Clock = std::chrono::steady_clock;
constexpr const char* kIptables = "/usr/sbin/iptables";

Result<ScopedFd> open_netns(const std::string& name) {
  if (name.empty()) return ScopedFd();
  ScopedFd fd(::open(("/run/netns/" + name).c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) {
    if (errno == ENOENT) return Status::NotFound("network namespace '" + name + "' does not exist");
    return PosixError("open network namespace " + name, errno);
  }
  return fd;
}

// Runs iptables (with -w: wait for the xtables lock) in `netns`; its output becomes the error.
Status run_iptables(const std::string& netns, const std::vector<std::string>& args) {
  std::vector<std::string> argv = {kIptables, "-w", "5"};
  argv.insert(argv.end(), args.begin(), args.end());
  std::string cmd;
  for (const std::string& a : args) cmd += " " + a;
  std::string where = "iptables" + cmd + (netns.empty() ? "" : " (netns " + netns + ")");
  Result<RunResult> r = relive::run(argv, {.netns = netns, .timeout = std::chrono::seconds(30)});
  if (!r.ok()) return r.status().with_context(where);
  if (r->ok()) return Status::Ok();
  std::string out = r->output;
  while (!out.empty() && out.back() == '\n') out.pop_back();
  return Status::IoError(where + ": " + (out.empty() ? r->describe() : out));
}

}  // namespace

Result<IptablesRule> IptablesRule::insert(std::string netns, std::vector<std::string> spec) {
  std::vector<std::string> args = {"-I"};
  args.insert(args.end(), spec.begin(), spec.end());
  RELIVE_RETURN_IF_ERROR(run_iptables(netns, args));
  return IptablesRule(std::move(netns), std::move(spec));
}

IptablesRule::~IptablesRule() {
  if (spec_.empty()) return;
  std::vector<std::string> args = {"-D"};
  args.insert(args.end(), spec_.begin(), spec_.end());
  Status s = run_iptables(netns_, args);
  if (!s.ok()) RELIVE_LOG_WARN("could not remove iptables rule: {}", s.to_string());
}

Result<std::unique_ptr<OutputBuffer>> OutputBuffer::create(const Options& options) {
  RELIVE_ASSIGN_OR_RETURN(ScopedFd ns, open_netns(options.netns));
  std::unique_ptr<OutputBuffer> b(new OutputBuffer(options));
  // The queue socket must live in the workload's namespace: open it on a thread that enters it.
  Status opened;
  std::thread([&] { opened = b->open_queue(ns.get()); }).join();
  RELIVE_RETURN_IF_ERROR(opened);
  b->stop_event_.reset(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!b->stop_event_.valid()) return PosixError("eventfd", errno);
  b->receiver_ = std::thread([p = b.get()] { p->receive_loop(); });
  // Only now divert packets: a packet queued with no listener would be dropped, not leaked, but
  // there is no reason to lose any.
  std::string source =
      options.source.find('/') == std::string::npos ? options.source + "/32" : options.source;
  std::string comment = std::string(options.input ? "relive-ha-input-q" : "relive-ha-output-q") +
                        std::to_string(options.queue_num);
  std::vector<std::string> spec = {options.input ? "INPUT" : "OUTPUT", options.input ? "-d" : "-s",
                                   source};
  if (!options.forwarded_from.empty())
    spec = {"FORWARD", "-i", options.forwarded_from, "-s", source};
  spec.insert(spec.end(), {"-m", "comment", "--comment", comment, "-j", "NFQUEUE", "--queue-num",
                           std::to_string(options.queue_num)});
  RELIVE_ASSIGN_OR_RETURN(IptablesRule rule, IptablesRule::insert(options.netns, std::move(spec)));
  b->rule_ = std::make_unique<IptablesRule>(std::move(rule));
  return b;
}

Status OutputBuffer::open_queue(int netns_fd) {
  if (netns_fd >= 0 && ::setns(netns_fd, CLONE_NEWNET) != 0)
    return PosixError("setns " + options_.netns, errno);
  handle_ = ::nfq_open();
  if (!handle_) return PosixError("nfq_open", errno);
  queue_ = ::nfq_create_queue(handle_, options_.queue_num, &OutputBuffer::on_packet, this);
  if (!queue_) {
    return PosixError(
        "bind NFQUEUE " + std::to_string(options_.queue_num) + " (in use by another program?)",
        errno);
  }
  // Metadata only: relived needs the packet id, not the payload.
  if (::nfq_set_mode(queue_, NFQNL_COPY_META, 0) < 0) return PosixError("nfq_set_mode", errno);
  if (::nfq_set_queue_maxlen(queue_, options_.max_held) < 0)
    return PosixError("nfq_set_queue_maxlen", errno);
  ::nfnl_rcvbufsiz(::nfq_nfnlh(handle_), 4 << 20);
  return Status::Ok();
}

OutputBuffer::~OutputBuffer() {
  rule_.reset();  // no new packets enter the queue
  if (receiver_.joinable()) {
    uint64_t one = 1;
    (void)!::write(stop_event_.get(), &one, sizeof(one));
    receiver_.join();
  }
  std::lock_guard<std::mutex> lock(mu_);
  if (queue_) ::nfq_destroy_queue(queue_);  // the kernel drops what is still held
  if (handle_) ::nfq_close(handle_);
}

void OutputBuffer::receive_loop() {
  int fd = ::nfq_fd(handle_);
  std::vector<char> buf(256 << 10);
  for (;;) {
    pollfd p[2] = {{fd, POLLIN, 0}, {stop_event_.get(), POLLIN, 0}};
    if (::poll(p, 2, -1) < 0 && errno != EINTR) {
      RELIVE_LOG_WARN("output buffer: poll: {}", strerror(errno));
      return;
    }
    if (p[1].revents) return;
    if (!(p[0].revents & POLLIN)) continue;
    ssize_t n = ::recv(fd, buf.data(), buf.size(), MSG_DONTWAIT);
    std::lock_guard<std::mutex> lock(mu_);
    if (n > 0) {
      ::nfq_handle_packet(handle_, buf.data(), static_cast<int>(n));
    } else if (n < 0 && errno == ENOBUFS) {
      ++stats_.lost;  // the kernel dropped packets it could not tell us about
    } else if (n < 0 && errno != EAGAIN && errno != EINTR) {
      RELIVE_LOG_WARN("output buffer: recv: {}", strerror(errno));
    }
  }
}

int OutputBuffer::on_packet(nfq_q_handle* qh, nfgenmsg*, nfq_data* nfa, void* self) {
  auto* b = static_cast<OutputBuffer*>(self);  // mu_ is held: called from nfq_handle_packet
  nfqnl_msg_packet_hdr* ph = ::nfq_get_msg_packet_hdr(nfa);
  if (!ph) return 0;
  uint32_t id = ntohl(ph->packet_id);
  if (b->pass_through_ && Clock::now() < b->deadline_) {
    ::nfq_set_verdict(qh, id, NF_ACCEPT, 0, nullptr);
    ++b->stats_.released;
  } else {
    b->held_.push_back({id, b->epoch_, Clock::now()});
  }
  return 0;
}

Status OutputBuffer::verdict_prefix(size_t count, uint32_t verdict) {
  if (count == 0) return Status::Ok();
  // One message for the whole prefix: the kernel applies it to every queued id <= the last one,
  // in queue order, which is the order the workload sent them.
  if (::nfq_set_verdict_batch(queue_, held_[count - 1].id, verdict) < 0) {
    return PosixError("NFQUEUE verdict", errno);
  }
  Clock::time_point now = Clock::now();
  for (size_t i = 0; i < count; ++i) {
    if (verdict == NF_ACCEPT) stats_.total_hold += now - held_[i].arrived;
  }
  (verdict == NF_ACCEPT ? stats_.released : stats_.dropped) += count;
  held_.erase(held_.begin(), held_.begin() + static_cast<ptrdiff_t>(count));
  return Status::Ok();
}

void OutputBuffer::set_epoch(uint64_t epoch) {
  std::lock_guard<std::mutex> lock(mu_);
  RELIVE_CHECK(epoch >= epoch_, "epoch went back from {} to {}", epoch_, epoch);
  epoch_ = epoch;
}

Result<size_t> OutputBuffer::release_through(uint64_t epoch) {
  std::lock_guard<std::mutex> lock(mu_);
  if (Clock::now() >= deadline_) return 0;
  size_t n = 0;
  while (n < held_.size() && held_[n].epoch <= epoch) ++n;
  RELIVE_RETURN_IF_ERROR(verdict_prefix(n, NF_ACCEPT));
  return n;
}

Result<size_t> OutputBuffer::drop_all() {
  std::lock_guard<std::mutex> lock(mu_);
  size_t n = held_.size();
  RELIVE_RETURN_IF_ERROR(verdict_prefix(n, NF_DROP));
  return n;
}

void OutputBuffer::set_deadline(Clock::time_point deadline) {
  std::lock_guard<std::mutex> lock(mu_);
  deadline_ = deadline;
}

Status OutputBuffer::set_pass_through(bool on) {
  std::lock_guard<std::mutex> lock(mu_);
  pass_through_ = on;
  if (on && Clock::now() < deadline_) return verdict_prefix(held_.size(), NF_ACCEPT);
  return Status::Ok();
}

OutputBuffer::Stats OutputBuffer::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  Stats s = stats_;
  s.held = held_.size();
  return s;
}

}  // namespace relive::ha
