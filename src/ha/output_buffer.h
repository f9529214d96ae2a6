// OutputBuffer: Remus output commit in user space. Every IPv4 packet the protected workload sends
// (iptables OUTPUT rule "-s SOURCE -j NFQUEUE --queue-num N" inside the workload's network
// namespace) is held in the kernel's NFQUEUE, tagged with the epoch that was current when relived
// received it, until release_through(epoch) lets it go (NF_ACCEPT, in the order it was sent) or
// drop_all() discards it (NF_DROP). Output of an epoch the backup does not have never escapes:
// with no one listening, or the queue full, or this object gone, the kernel drops rather than
// passes (no --queue-bypass, no fail-open).
//
// Threading: one receive thread per OutputBuffer reads queue notifications as they arrive; every
// public method may be called from any thread and is synchronous (when release_through returns,
// the verdicts are in the kernel). Epoch tags are conservative: a packet sent just before
// set_epoch(e) but read by the thread after it is tagged e, i.e. held longer, never shorter.
//
// Ownership: the iptables rule and the queue binding live exactly as long as the object. The
// destructor removes the rule first, then unbinds the queue, which drops whatever is still held
// (release_through first to let it go).
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/scoped_fd.h"
#include "relive/result.h"

struct nfq_handle;
struct nfq_q_handle;
struct nfq_data;
struct nfgenmsg;

namespace relive::ha {

// An iptables rule that exists while this object does (inserted at construction, deleted by the
// destructor), in a named network namespace ("" = the caller's).
class IptablesRule {
 public:
  // `spec`: chain and match, e.g. {"OUTPUT", "-s", "198.18.0.1/32", "-j", "NFQUEUE", ...}.
  static Result<IptablesRule> insert(std::string netns, std::vector<std::string> spec);
  IptablesRule(IptablesRule&& o) noexcept : netns_(std::move(o.netns_)), spec_(std::move(o.spec_)) {
    o.spec_.clear();
  }
  IptablesRule& operator=(IptablesRule&&) = delete;
  ~IptablesRule();

 private:
  IptablesRule(std::string netns, std::vector<std::string> spec)
      : netns_(std::move(netns)), spec_(std::move(spec)) {}
  std::string netns_;
  std::vector<std::string> spec_;  // empty once moved from
};

class OutputBuffer {
 public:
  struct Options {
    std::string netns;          // ip netns name of the workload ("" = this process's namespace)
    std::string source;         // held packets' source, "A.B.C.D" or "A.B.C.D/N"
    uint16_t queue_num = 0;     // NFQUEUE number, unique within the namespace
    uint32_t max_held = 65536;  // kernel queue length: beyond it new packets are dropped
    // Hold the packets the workload *receives* (INPUT, "-d source") instead: the HA primary
    // holds input while CRIU reads the workload's TCP sockets, so that their queues and
    // sequence numbers are read as one consistent state (CRIU's own lock drops packets, which
    // costs the clients a retransmission timeout; holding costs them the dump's duration).
    bool input = false;
    // Hold the packets routed in from this interface instead (FORWARD "-i IFACE -s source"): a
    // VM's output arrives on the host through its tap.
    std::string forwarded_from;
  };
  struct Stats {
    uint64_t held = 0;      // now
    uint64_t released = 0;  // since creation
    uint64_t dropped = 0;   // by drop_all()
    uint64_t lost = 0;      // notifications the kernel could not deliver (dropped by it)
    std::chrono::nanoseconds total_hold{0};  // sum over released packets of arrival -> verdict
  };

  // Binds the queue in `netns`, then inserts the rule. Errors: NotFound (no such netns), IoError
  // (queue in use, iptables refused: its stderr is in the message).
  static Result<std::unique_ptr<OutputBuffer>> create(const Options& options);
  ~OutputBuffer();
  OutputBuffer(const OutputBuffer&) = delete;
  OutputBuffer& operator=(const OutputBuffer&) = delete;

  // Packets received from now on belong to `epoch` (non-decreasing; a smaller one is a bug).
  void set_epoch(uint64_t epoch);
  // Accepts, in order, every held packet of an epoch <= `epoch`; returns how many.
  Result<size_t> release_through(uint64_t epoch);
  // Drops every held packet (failover: the backup never had those epochs); returns how many.
  Result<size_t> drop_all();
  // Unprotected mode (no backup): when on, everything held is accepted now and new packets are
  // accepted as they arrive. Turning it off holds packets again from the next one on.
  Status set_pass_through(bool on);
  // Nothing is let out at or after `deadline` (release_through releases nothing, pass-through
  // holds): the HA primary sets it to the end of its fencing lease, so that output stops by the
  // lease's end even if relived itself is slow to notice. Default: no deadline.
  void set_deadline(std::chrono::steady_clock::time_point deadline);
  Stats stats() const;

 private:
  struct Held {
    uint32_t id;
    uint64_t epoch;
    std::chrono::steady_clock::time_point arrived;
  };
  explicit OutputBuffer(const Options& options) : options_(options) {}
  Status open_queue(int netns_fd);
  void receive_loop();
  static int on_packet(nfq_q_handle* qh, nfgenmsg* msg, nfq_data* nfa, void* self);
  // Verdict for every held packet up to and including held_[count - 1]. Caller holds mu_.
  Status verdict_prefix(size_t count, uint32_t verdict);

  Options options_;
  mutable std::mutex mu_;  // guards everything below and every call into libnetfilter_queue
  nfq_handle* handle_ = nullptr;
  nfq_q_handle* queue_ = nullptr;
  std::deque<Held> held_;
  uint64_t epoch_ = 0;
  bool pass_through_ = false;
  std::chrono::steady_clock::time_point deadline_ = std::chrono::steady_clock::time_point::max();
  Stats stats_;
  ScopedFd stop_event_;  // eventfd that ends receive_loop
  std::thread receiver_;
  std::unique_ptr<IptablesRule> rule_;
};

}  // namespace relive::ha
