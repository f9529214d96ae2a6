#include "cli/progress_bar.h"

#include <fmt/format.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <cctype>
#include <charconv>
#include <cmath>
#include <vector>

namespace relive::cli {
namespace {

template <typename T>
std::optional<T> number(std::string_view v) {
  // Units the sources append ("12ms", "800B/s") end the number.
  T out{};
  auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), out);
  if (ec != std::errc() || p == v.data()) return std::nullopt;
  return out;
}

std::vector<std::string_view> words(std::string_view line) {
  std::vector<std::string_view> out;
  size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && line[i] == ' ') ++i;
    size_t j = line.find(' ', i);
    if (j == std::string_view::npos) j = line.size();
    if (j > i) out.push_back(line.substr(i, j - i));
    i = j;
  }
  return out;
}

void take_token(std::string_view key, std::string_view v, ProgressReport* r) {
  if (key == "phase") r->phase = std::string(v);
  if (key == "round") r->round = number<int>(v);
  if (key == "bytes" || key == "sent") r->bytes = number<uint64_t>(v);
  if (key == "remaining") r->remaining = number<uint64_t>(v);
  if (key == "mbps") {
    if (auto m = number<double>(v)) r->rate = *m * 1e6 / 8;  // QEMU: megabits per second
  }
  if (key == "link_rate") r->rate = number<double>(v);
}

std::string bar(double fraction, int cells) {
  int full = static_cast<int>(std::floor(fraction * cells));
  if (full > cells) full = cells;
  return "[" + std::string(full, '#') + std::string(cells - full, '.') + "]";
}

int terminal_width() {
  winsize ws{};
  if (::ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0) return ws.ws_col;
  return 80;
}

}  // namespace

ProgressReport parse_progress_line(std::string_view line) {
  ProgressReport r;
  std::string lead;  // the words before the first key=value
  bool tokens = false;
  for (std::string_view w : words(line)) {
    size_t eq = w.find('=');
    if (eq != std::string_view::npos && eq > 0) {
      tokens = true;
      take_token(w.substr(0, eq), w.substr(eq + 1), &r);
    } else if (!tokens) {
      lead += (lead.empty() ? "" : " ") + std::string(w);
    }
  }
  r.note = !tokens;
  if (r.phase.empty()) r.phase = r.note ? std::string(line) : lead;
  // A VM's "vm: pass 3 remaining=...": the pass is its round.
  if (!r.round && r.phase.starts_with("vm: pass ")) {
    r.round = number<int>(std::string_view(r.phase).substr(9));
    r.phase = "vm: pass";
  }
  return r;
}

std::string format_bytes(double b) {
  static const char* kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (b >= 1024 && u < 4) b /= 1024, ++u;
  if (u == 0) return fmt::format("{:.0f} B", b);
  int decimals = b < 10 ? 2 : b < 100 ? 1 : 0;
  return fmt::format("{:.{}f} {}", b, decimals, kUnits[u]);
}

std::string format_duration(double seconds) {
  long s = seconds < 0 ? 0 : std::lround(seconds);
  if (s >= 3600) return fmt::format("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60);
  return fmt::format("{}:{:02}", s / 60, s % 60);
}

ProgressBar::ProgressBar(std::FILE* out, bool terminal, int width, std::string program)
    : out_(out),
      terminal_(terminal),
      width_(width < 20 ? 20 : width),
      program_(std::move(program)) {}

std::shared_ptr<ProgressBar> make_stderr_bar() {
  bool tty = ::isatty(STDERR_FILENO) == 1;
  return std::make_shared<ProgressBar>(stderr, tty, tty ? terminal_width() : 80);
}

std::string ProgressBar::render(Clock::time_point now) const {
  const ProgressReport& r = last_;
  std::string line = program_ + ": " + r.phase;
  if (r.round) line += fmt::format(" {}", *r.round);
  std::optional<double> rate = r.rate;
  if (!rate && r.bytes && first_bytes_) {
    double secs = std::chrono::duration<double>(last_time_ - first_bytes_->first).count();
    if (secs > 0 && *r.bytes > first_bytes_->second)
      rate = static_cast<double>(*r.bytes - first_bytes_->second) / secs;
  }
  std::string tail;
  if (r.bytes) tail += "  " + format_bytes(static_cast<double>(*r.bytes));
  if (rate) tail += "  " + format_bytes(*rate) + "/s";
  if (r.remaining && rate && *rate > 0) {
    tail += "  ETA " + format_duration(static_cast<double>(*r.remaining) / *rate);
  } else {
    tail += "  " + format_duration(std::chrono::duration<double>(now - start_).count());
  }
  if (r.remaining) {
    double done = r.bytes ? static_cast<double>(*r.bytes) : 0;
    double total = done + static_cast<double>(*r.remaining);
    double fraction = total > 0 ? done / total : 0;
    if (!r.bytes) tail = "  " + format_bytes(static_cast<double>(*r.remaining)) + " left" + tail;
    // The bar takes what the terminal has left: " [" "]" and " NNN%" around it.
    int cells = width_ - 1 - static_cast<int>(line.size() + tail.size()) - 3 - (r.bytes ? 5 : 0);
    if (cells >= 10) line += " " + bar(fraction, cells > 40 ? 40 : cells);
    if (r.bytes) line += fmt::format(" {:3.0f}%", fraction * 100);
  }
  line += tail;
  if (static_cast<int>(line.size()) > width_ - 1) line.resize(width_ - 1);
  return line;
}

void ProgressBar::update(const std::string& line, Clock::time_point now) {
  if (!started_) start_ = now, started_ = true;
  ProgressReport r = parse_progress_line(line);
  if (!terminal_ || r.note) {
    if (drawn_) std::fputs("\r\x1b[K", out_);
    std::fprintf(out_, "%s: %s\n", program_.c_str(), line.c_str());
    if (drawn_) std::fprintf(out_, "%s", render(now).c_str());
    std::fflush(out_);
    if (r.note) return;
  }
  if (r.bytes && !first_bytes_) first_bytes_ = {now, *r.bytes};
  last_ = std::move(r);
  last_time_ = now;
  if (!terminal_) return;
  std::fprintf(out_, "\r%s\x1b[K", render(now).c_str());
  std::fflush(out_);
  drawn_ = true;
}

void ProgressBar::finish() {
  if (!drawn_) return;
  std::fputs("\n", out_);
  std::fflush(out_);
  drawn_ = false;
}

}  // namespace relive::cli
