#include "drivers/qemu/qmp_client.h"

#include <errno.h>
#include <fmt/format.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <thread>

#include "common/json_field.h"

namespace relive::qemu {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

Result<ScopedFd> connect_once(const std::string& path) {
  sockaddr_un addr{};
  if (path.size() >= sizeof(addr.sun_path))
    return Status::InvalidArgument("QMP socket path too long: " + path);
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  ScopedFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (fd.get() < 0) return PosixError("socket", errno);
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0)
    return PosixError("connect " + path, errno);
  return fd;
}

milliseconds remaining(Clock::time_point deadline) {
  auto left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now());
  return left.count() > 0 ? left : milliseconds(0);
}

QmpEvent to_event(const nlohmann::json& j) {
  QmpEvent e;
  e.name = json_value_or(j, "event", "");
  e.data = json_value_or(j, "data", nlohmann::json::object());
  nlohmann::json ts = json_value_or(j, "timestamp", nlohmann::json());
  Result<double> s = json_field<double>(ts, "seconds", "QMP event");
  Result<double> us = json_field<double>(ts, "microseconds", "QMP event");
  if (s.ok() && us.ok()) e.timestamp = *s + *us / 1e6;
  return e;
}

std::string error_text(const std::string& command, const nlohmann::json& error) {
  std::string cls = "GenericError", desc = error.dump();
  if (error.is_object()) {
    if (error.contains("class") && error["class"].is_string()) cls = error["class"];
    if (error.contains("desc") && error["desc"].is_string()) desc = error["desc"];
  }
  return fmt::format("{}: {}: {}", command, cls, desc);
}

}  // namespace

Result<QmpClient> QmpClient::connect(const std::string& socket_path, milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  Result<ScopedFd> fd = connect_once(socket_path);
  while (!fd.ok() && Clock::now() < deadline) {
    std::this_thread::sleep_for(milliseconds(20));
    fd = connect_once(socket_path);
  }
  if (!fd.ok()) return fd.status().with_context("QMP");
  QmpClient c(std::move(*fd), timeout);
  ucred cred{};
  socklen_t len = sizeof(cred);
  if (::getsockopt(c.fd_.get(), SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0) c.peer_pid_ = cred.pid;
  RELIVE_RETURN_IF_ERROR(c.negotiate().with_context("QMP " + socket_path));
  return c;
}

Status QmpClient::negotiate() {
  RELIVE_ASSIGN_OR_RETURN(std::optional<nlohmann::json> greeting, read_message(timeout_));
  if (!greeting) return Status::IoError("no greeting within the timeout");
  if (!greeting->contains("QMP") || !(*greeting)["QMP"].is_object())
    return Status::Corruption("not a QMP greeting: " + greeting->dump().substr(0, 200));
  const nlohmann::json& v = (*greeting)["QMP"]["version"];
  if (v.is_object() && v.contains("qemu") && v["qemu"].is_object()) {
    const nlohmann::json& q = v["qemu"];
    version_ = fmt::format("{}.{}.{}", json_value_or(q, "major", 0), json_value_or(q, "minor", 0),
                           json_value_or(q, "micro", 0));
  }
  return execute("qmp_capabilities").status();
}

Status QmpClient::send_line(const std::string& line) {
  std::string data = line + "\n";
  size_t off = 0;
  while (off < data.size()) {
    ssize_t n = ::send(fd_.get(), data.data() + off, data.size() - off, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return PosixError("QMP send", errno);
    off += static_cast<size_t>(n);
  }
  return Status::Ok();
}

Result<std::optional<nlohmann::json>> QmpClient::read_message(milliseconds timeout) {
  if (fd_.get() < 0) return Status::IoError("QMP connection closed");
  auto deadline = Clock::now() + timeout;
  for (;;) {
    size_t nl = buffer_.find('\n');
    if (nl != std::string::npos) {
      std::string line = buffer_.substr(0, nl);
      buffer_.erase(0, nl + 1);
      if (line.find_first_not_of(" \r\t") == std::string::npos) continue;
      nlohmann::json j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
      if (j.is_discarded() || !j.is_object())
        return Status::Corruption("QMP sent malformed JSON: " + line.substr(0, 200));
      return std::optional<nlohmann::json>(std::move(j));
    }
    if (buffer_.size() > kMaxLine)
      return Status::Corruption(fmt::format("QMP message longer than {} bytes", kMaxLine));
    pollfd p{fd_.get(), POLLIN, 0};
    int r = ::poll(&p, 1, static_cast<int>(remaining(deadline).count()));
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return PosixError("QMP poll", errno);
    if (r == 0) return std::optional<nlohmann::json>();
    char buf[65536];
    ssize_t n = ::recv(fd_.get(), buf, sizeof(buf), 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return PosixError("QMP recv", errno);
    if (n == 0) {
      fd_.reset();
      return Status::IoError("QEMU closed the QMP connection");
    }
    buffer_.append(buf, static_cast<size_t>(n));
  }
}

Result<nlohmann::json> QmpClient::execute(const std::string& command,
                                          const nlohmann::json& arguments) {
  uint64_t id = next_id_++;
  nlohmann::json req = {{"execute", command}, {"id", id}};
  if (!arguments.is_null()) req["arguments"] = arguments;
  RELIVE_RETURN_IF_ERROR(send_line(req.dump()));
  auto deadline = Clock::now() + timeout_;
  for (;;) {
    RELIVE_ASSIGN_OR_RETURN(std::optional<nlohmann::json> m, read_message(remaining(deadline)));
    if (!m) return Status::IoError(command + ": no answer from QEMU within the timeout");
    if (m->contains("event")) {
      events_.push_back(to_event(*m));
      continue;
    }
    if (!m->contains("id") || (*m)["id"] != id) continue;  // an answer to an abandoned command
    if (m->contains("error")) return Status::InvalidArgument(error_text(command, (*m)["error"]));
    if (!m->contains("return"))
      return Status::Corruption(command + ": answer without return or error: " + m->dump());
    return (*m)["return"];
  }
}

Result<std::optional<QmpEvent>> QmpClient::next_event(milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  while (events_.empty()) {
    RELIVE_ASSIGN_OR_RETURN(std::optional<nlohmann::json> m, read_message(remaining(deadline)));
    if (!m) return std::optional<QmpEvent>();
    if (m->contains("event")) events_.push_back(to_event(*m));
  }
  QmpEvent e = std::move(events_.front());
  events_.pop_front();
  return std::optional<QmpEvent>(std::move(e));
}

}  // namespace relive::qemu
