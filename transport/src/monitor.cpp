// The monitoring port (monitor.hpp): an HTTP/1.1 server on its own thread and io_context, a
// sampler for rates and the dashboard's history, and the renderers of each endpoint.
#include <flowbus/transport/monitor.hpp>

#include "monitor_render.hpp"

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <thread>

namespace flowbus::transport {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;

struct monitor::impl : detail::monitor_state {
  impl(actors::node& n, const server* e, monitor_options o) : detail::monitor_state(n, e, std::move(o)) {}

  net::io_context ioc{1};
  tcp::acceptor acceptor{ioc};
  net::steady_timer timer{ioc};
  std::thread thread;
  std::atomic<bool> stopped{false};

  void accept();
  void tick();
};

namespace {

/// One HTTP connection: reads requests one after the other (keep-alive), answers each.
class http_session : public std::enable_shared_from_this<http_session> {
public:
  http_session(tcp::socket s, const detail::monitor_state& st) : stream_(std::move(s)), st_(st) {}
  void read() {
    req_ = {};
    stream_.expires_after(std::chrono::seconds(30)); // an idle keep-alive connection goes
    http::async_read(stream_, buf_, req_, [self = shared_from_this()](beast::error_code ec, std::size_t) {
      if (ec) return self->close();
      self->answer();
    });
  }

private:
  void answer() {
    res_ = {};
    res_.version(req_.version());
    res_.keep_alive(req_.keep_alive());
    res_.set(http::field::server, "flowbus");
    res_.set(http::field::access_control_allow_origin, "*"); // as NATS: monitoring data for any page
    res_.set(http::field::cache_control, "no-store");
    if (req_.method() != http::verb::get && req_.method() != http::verb::head) {
      res_.result(http::status::method_not_allowed);
      res_.set(http::field::content_type, "application/json");
      res_.body() = R"({"error":"only GET is served"})";
    } else {
      const monitor_response r = st_.render(std::string_view(req_.target().data(), req_.target().size()));
      res_.result(static_cast<http::status>(r.status));
      res_.set(http::field::content_type, r.content_type);
      if (req_.method() == http::verb::get) res_.body() = r.body;
    }
    res_.prepare_payload();
    http::async_write(stream_, res_, [self = shared_from_this()](beast::error_code ec, std::size_t) {
      if (ec || !self->res_.keep_alive()) return self->close();
      self->read();
    });
  }
  void close() {
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
  }

  beast::tcp_stream stream_;
  const detail::monitor_state& st_;
  beast::flat_buffer buf_;
  http::request<http::string_body> req_;
  http::response<http::string_body> res_;
};

} // namespace

void monitor::impl::accept() {
  acceptor.async_accept(ioc, [this](beast::error_code ec, tcp::socket s) {
    if (stopped.load()) return;
    if (!ec) std::make_shared<http_session>(std::move(s), *this)->read();
    accept();
  });
}

void monitor::impl::tick() {
  take_sample();
  timer.expires_after(opt.sample_interval);
  timer.async_wait([this](beast::error_code ec) {
    if (!ec && !stopped.load()) tick();
  });
}

monitor::monitor(actors::node& node, const server* edge, monitor_options options)
    : impl_(std::make_shared<impl>(node, edge, std::move(options))) {
  impl& m = *impl_;
  const tcp::endpoint ep(net::ip::make_address(m.opt.address), m.opt.port);
  m.acceptor.open(ep.protocol());
  m.acceptor.set_option(net::socket_base::reuse_address(true));
  m.acceptor.bind(ep); // throws system_error: the port is taken
  m.acceptor.listen();
  m.accept();
  m.tick();
  m.thread = std::thread([&m] {
    m.ioc.run();
  });
}

monitor::~monitor() { stop(); }

std::uint16_t monitor::port() const noexcept {
  beast::error_code ec;
  const auto ep = impl_->acceptor.local_endpoint(ec);
  return ec ? 0 : ep.port();
}

void monitor::set_draining() noexcept { impl_->draining.store(true); }

monitor_response monitor::render(std::string_view target) const { return impl_->render(target); }

void monitor::sample() { impl_->take_sample(); }

void monitor::stop() {
  impl& m = *impl_;
  if (m.stopped.exchange(true)) return;
  net::post(m.ioc, [&m] {
    beast::error_code ec;
    m.acceptor.close(ec);
    m.timer.cancel();
    m.ioc.stop(); // open keep-alive connections go with the context
  });
  if (m.thread.joinable()) m.thread.join();
}

} // namespace flowbus::transport
