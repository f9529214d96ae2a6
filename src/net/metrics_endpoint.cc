#include "net/metrics_endpoint.h"

#include <atomic>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <thread>

#include "common/host_port.h"
#include "common/logging.h"

namespace relive::net {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

namespace {

// One client connection: reads requests (keep-alive) and answers each, each read and write
// bounded by the I/O timeout. Owned by the pending handler through shared_from_this.
class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket socket, const metrics::Registry* registry, const MetricsEndpoint::Options& o,
          std::atomic<int>* open)
      : stream_(std::move(socket)), registry_(registry), o_(o), open_(open) {}
  ~Session() { open_->fetch_sub(1); }

  void read() {
    parser_.emplace();
    parser_->header_limit(o_.max_header_bytes);
    parser_->body_limit(o_.max_body_bytes);
    stream_.expires_after(o_.io_timeout);
    http::async_read(
        stream_, buffer_, *parser_,
        [self = shared_from_this()](beast::error_code ec, size_t) { self->on_read(ec); });
  }

 private:
  void on_read(beast::error_code ec) {
    if (ec == http::error::end_of_stream || ec == beast::error::timeout ||
        ec == asio::error::operation_aborted || ec == asio::error::connection_reset ||
        ec == asio::error::eof) {
      return close();
    }
    if (ec) {  // garbage, or over a limit
      return respond(http::status::bad_request, "bad request: " + ec.message() + "\n", 11, false,
                     false);
    }
    const auto& req = parser_->get();
    bool head = req.method() == http::verb::head;
    if (req.method() != http::verb::get && !head)
      return respond(http::status::method_not_allowed, "only GET\n", req.version(), false,
                     req.keep_alive());
    std::string_view target(req.target().data(), req.target().size());
    if (target != "/metrics" && !target.starts_with("/metrics?"))
      return respond(http::status::not_found, "not found; try /metrics\n", req.version(), head,
                     req.keep_alive());
    respond(http::status::ok, registry_->render(), req.version(), head, req.keep_alive());
  }

  void respond(http::status status, std::string body, unsigned version, bool head,
               bool keep_alive) {
    auto res = std::make_shared<http::response<http::string_body>>(status, version);
    res->set(http::field::server, "relived");
    res->set(http::field::content_type,
             status == http::status::ok ? metrics::kContentType : "text/plain; charset=utf-8");
    if (status == http::status::method_not_allowed) res->set(http::field::allow, "GET, HEAD");
    res->keep_alive(keep_alive);
    res->body() = std::move(body);
    res->prepare_payload();
    if (head) res->body().clear();  // Content-Length stays that of the GET answer
    stream_.expires_after(o_.io_timeout);
    http::async_write(stream_, *res,
                      [self = shared_from_this(), res](beast::error_code ec, size_t) {
                        if (ec || !res->keep_alive()) return self->close();
                        self->read();
                      });
  }

  void close() {
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_both, ignored);
    stream_.close();
  }

  beast::tcp_stream stream_;
  beast::flat_buffer buffer_{16384};
  std::optional<http::request_parser<http::string_body>> parser_;
  const metrics::Registry* registry_;
  const MetricsEndpoint::Options& o_;
  std::atomic<int>* open_;
};

}  // namespace

class MetricsEndpoint::Impl {
 public:
  Impl(const metrics::Registry* registry, const Options& o)
      : registry_(registry), o_(o), acceptor_(io_) {}
  ~Impl() {
    io_.stop();
    if (thread_.joinable()) thread_.join();
  }

  Status listen(const tcp::endpoint& at) {
    beast::error_code ec;
    acceptor_.open(at.protocol(), ec);
    if (!ec) acceptor_.set_option(asio::socket_base::reuse_address(true), ec);
    if (!ec) acceptor_.bind(at, ec);
    if (!ec) acceptor_.listen(asio::socket_base::max_listen_connections, ec);
    if (ec)
      return Status::IoError("metrics endpoint on " + at.address().to_string() + ":" +
                             std::to_string(at.port()) + ": " + ec.message());
    port_ = acceptor_.local_endpoint().port();
    accept();
    thread_ = std::thread([this] {
      // A handler that throws (a scrape callback, bad_alloc) costs that request, not relived.
      for (;;) {
        try {
          io_.run();
          return;
        } catch (const std::exception& e) {
          RELIVE_LOG_WARN("metrics endpoint: {}", e.what());
        } catch (...) {
          RELIVE_LOG_WARN("metrics endpoint: unknown exception");
        }
      }
    });
    return Status::Ok();
  }

  uint16_t port() const { return port_; }

 private:
  void accept() {
    acceptor_.async_accept([this](beast::error_code ec, tcp::socket s) {
      if (ec == asio::error::operation_aborted) return;
      if (!ec) {
        if (open_.fetch_add(1) >= o_.max_connections) {
          open_.fetch_sub(1);
          beast::error_code ignored;
          s.close(ignored);  // over the limit: the client retries at its next scrape
        } else {
          std::make_shared<Session>(std::move(s), registry_, o_, &open_)->read();
        }
      }
      accept();  // a failed accept (EMFILE, ...) does not stop the endpoint
    });
  }

  const metrics::Registry* registry_;
  const Options o_;
  std::atomic<int> open_{0};  // outlives the sessions, which io_'s destructor frees
  asio::io_context io_;
  tcp::acceptor acceptor_;
  uint16_t port_ = 0;
  std::thread thread_;
};

MetricsEndpoint::MetricsEndpoint(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
MetricsEndpoint::~MetricsEndpoint() = default;

uint16_t MetricsEndpoint::port() const { return impl_->port(); }

Result<std::unique_ptr<MetricsEndpoint>> MetricsEndpoint::start(const std::string& address,
                                                                const metrics::Registry* registry,
                                                                const Options& options) {
  // Port 0 (any free port) is allowed here, unlike in parse_host_port.
  std::string text = address;
  bool any_port = text.ends_with(":0");
  if (any_port) text.back() = '1';
  Result<HostPort> hp = parse_host_port(text);
  if (!hp.ok())
    return Status::InvalidArgument("metrics address wants HOST:PORT: " + hp.status().message());
  beast::error_code ec;
  asio::ip::address ip = asio::ip::make_address(hp->host, ec);
  if (ec)
    return Status::InvalidArgument("metrics address: '" + hp->host +
                                   "' is not an IP address (names are not resolved)");
  auto impl = std::make_unique<Impl>(registry, options);
  RELIVE_RETURN_IF_ERROR(impl->listen(tcp::endpoint(ip, any_port ? 0 : hp->port)));
  return std::unique_ptr<MetricsEndpoint>(new MetricsEndpoint(std::move(impl)));
}

}  // namespace relive::net
