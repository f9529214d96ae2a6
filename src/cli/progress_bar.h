// ProgressBar: shows the progress lines a migration or a container checkpoint/restore reports
// ("phase=precopy round=2 pages=812 bytes=3325952", "vm: pass 3 remaining=1048576 mbps=800.0").
// On a terminal it redraws one line in place: phase, a bar and percentage when the remaining
// bytes are known, bytes so far, rate, ETA (or elapsed time). Anywhere else (a pipe, a file,
// journald) each report is printed as it came, one plain line "relive: <line>", as before.
// Reports without any key=value (notes such as "auto: precopy (...)") are printed as lines of
// their own in both modes.
#pragma once

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace relive::cli {

// What one progress line says, from its key=value tokens.
struct ProgressReport {
  std::string phase;                  // phase=X, or the words before the first key=value
  std::optional<int> round;           // round=N, or "pass N" of a VM
  std::optional<uint64_t> bytes;      // bytes done so far: bytes= or sent=
  std::optional<uint64_t> remaining;  // remaining= (a VM's RAM still to send)
  std::optional<double> rate;         // bytes/s given by the source: mbps= (QEMU), link_rate=
  bool note = false;                  // no key=value at all: a message, not a step
};

ProgressReport parse_progress_line(std::string_view line);

// "0 B", "512 B", "1.5 KiB", "12.0 MiB", "3.20 GiB".
std::string format_bytes(double bytes);
// "0:07", "12:34", "1:02:03".
std::string format_duration(double seconds);

class ProgressBar {
 public:
  using Clock = std::chrono::steady_clock;

  // `out` must outlive the bar. `terminal`: redraw in place; `width`: the terminal's columns.
  ProgressBar(std::FILE* out, bool terminal, int width, std::string program = "relive");
  ~ProgressBar() { finish(); }
  ProgressBar(const ProgressBar&) = delete;
  ProgressBar& operator=(const ProgressBar&) = delete;
  ProgressBar(ProgressBar&&) = delete;

  // One progress line from the source, at `now`.
  void update(const std::string& line, Clock::time_point now = Clock::now());
  // Ends the redrawn line (terminal only); further updates start a new one.
  void finish();

  // The line drawn for the current state, without the "\r" and erase codes; at most width - 1
  // columns (the last column would wrap on some terminals).
  std::string render(Clock::time_point now) const;

 private:
  std::FILE* out_;
  bool terminal_;
  int width_;
  std::string program_;
  bool drawn_ = false;  // a bar line is on the screen, unterminated
  Clock::time_point start_{};
  bool started_ = false;
  ProgressReport last_;
  // The first report with a byte count, for the rate.
  std::optional<std::pair<Clock::time_point, uint64_t>> first_bytes_;
  Clock::time_point last_time_{};
};

// A bar on stderr: redrawn in place when isatty(2), as wide as the terminal says (TIOCGWINSZ,
// else 80); plain lines otherwise.
std::shared_ptr<ProgressBar> make_stderr_bar();

}  // namespace relive::cli
