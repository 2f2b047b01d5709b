// The node's WebSocket listener: accepting connections (each a session, session.hpp), the
// connection limit, a graceful stop that drains the sessions, and the server's counters.
#include "session.hpp"
#include "tls_context.hpp"

#include <flowbus/scheduling/numa.hpp> // pin_current_thread

#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>

#include <spdlog/spdlog.h>

#include <algorithm>

namespace flowbus::transport {

using namespace detail; // beast, net, tcp (buffered_stream.hpp)
using namespace std::chrono_literals;

server::core::core(actors::node& n, server_options o)
    : node(n), opt(std::move(o)), ioc(static_cast<int>(opt.io_threads ? opt.io_threads : 1)),
      acceptor(net::make_strand(ioc)) {}

/// A session's lanes, and the ack window of an acknowledging agent.
scheduling::lane_options server::core::lane_options() const {
  scheduling::lane_options o;
  o.weights = opt.lane_weights;
  o.capacity = opt.mailbox_capacity ? opt.mailbox_capacity : node.config().mailbox_capacity;
  return o;
}

std::optional<reason> server::core::admit_connection(const tcp::socket& s, std::chrono::steady_clock::duration& delay) {
  if (active.fetch_add(1, std::memory_order_relaxed) >= opt.max_connections) return reason::too_many_connections;
  const rate_limits& l = opt.limits;
  if (l.connections_per_s <= 0) return std::nullopt;
  beast::error_code ec;
  const auto peer = s.remote_endpoint(ec);
  if (ec) return std::nullopt; // (gone already: its handshake fails)
  const auto now = std::chrono::steady_clock::now();
  if (connection_rates.size() >= 4096) { // forget idle addresses; bounded whatever the addresses
    for (auto it = connection_rates.begin(); it != connection_rates.end();)
      it = it->second.full(now) ? connection_rates.erase(it) : std::next(it);
    if (connection_rates.size() >= 65536) connection_rates.clear();
  }
  auto [it, fresh] = connection_rates.try_emplace(peer.address().to_string());
  if (fresh) it->second = scheduling::token_bucket(l.connections_per_s, l.burst_connections, now);
  if (l.action == rate_limits::over::refuse) {
    if (it->second.take(1, now)) return std::nullopt;
    connections_limited.fetch_add(1, std::memory_order_relaxed);
    return reason::connection_rate_limited;
  }
  delay = it->second.reserve(1, now);
  if (delay == std::chrono::steady_clock::duration::zero()) return std::nullopt;
  connections_limited.fetch_add(1, std::memory_order_relaxed);
  if (delay <= opt.handshake_timeout) return std::nullopt; // held: its handshake starts then
  it->second.reserve(-1, now); // (given back: this one is refused)
  delay = {};
  return reason::connection_rate_limited;
}

void server::core::accept() {
  acceptor.async_accept(net::make_strand(ioc), [this](beast::error_code ec, tcp::socket s) {
    if (stopping.load()) return;
    if (!ec) {
      accepted.fetch_add(1, std::memory_order_relaxed);
      std::chrono::steady_clock::duration delay{};
      const std::optional<reason> refuse = admit_connection(s, delay);
      std::make_shared<detail::session>(std::move(s), *this, refuse)->run(delay);
    } else {
      spdlog::warn("flowbus: accept: {}", ec.message()); // e.g. out of file descriptors: keep serving
    }
    accept();
  });
}

server::server(actors::node& node, server_options options) : core_(std::make_shared<core>(node, std::move(options))) {
  core& c = *core_;
  c.metrics.latency = c.opt.latency_metrics;
  c.metrics.trace_keep = std::max<std::size_t>(c.opt.trace_keep, 1);
  if (c.opt.shared_memory)
    if (const std::size_t n = shm_link::remove_stale())
      spdlog::info("flowbus: removed {} shared-memory channels left by node processes that died", n);
  if (c.opt.tls.enabled()) c.tls = detail::make_server_tls(c.opt.tls); // (throws: a file or key is bad)
  const tcp::endpoint ep(net::ip::make_address(c.opt.address), c.opt.port);
  c.acceptor.open(ep.protocol());
  c.acceptor.set_option(net::socket_base::reuse_address(true));
  c.acceptor.bind(ep);
  c.acceptor.listen(net::socket_base::max_listen_connections);
  c.accept();
  const std::size_t n = c.opt.io_threads ? c.opt.io_threads : 1;
  for (std::size_t i = 0; i < n; ++i)
    c.threads.emplace_back([&c, i] {
      if (!c.opt.pin_cpus.empty()) (void)scheduling::pin_current_thread({c.opt.pin_cpus[i % c.opt.pin_cpus.size()]});
      c.ioc.run();
    });
  spdlog::info("flowbus: listening on {}://{}:{} ({} I/O threads{})", c.tls ? "wss" : "ws", c.opt.address, port(), n,
               c.opt.tls.client_ca_file.empty() ? "" : ", client certificates required");
}

server::~server() { stop(); }

std::uint16_t server::port() const noexcept {
  beast::error_code ec;
  const auto ep = core_->acceptor.local_endpoint(ec);
  return ec ? 0 : ep.port();
}

void server::stop(std::chrono::milliseconds drain) {
  core& c = *core_;
  if (c.stopping.exchange(true)) return;
  net::post(c.acceptor.get_executor(), [&c] {
    beast::error_code ignored;
    c.acceptor.close(ignored);
  });
  std::vector<std::shared_ptr<detail::session>> all;
  {
    std::lock_guard<std::mutex> g(c.m);
    for (detail::session* s : c.sessions)
      if (auto p = s->weak_from_this().lock()) all.push_back(std::move(p));
  }
  for (auto& s : all)
    s->stop();
  all.clear();
  const auto until = std::chrono::steady_clock::now() + drain;
  for (;;) {
    {
      std::lock_guard<std::mutex> g(c.m);
      if (c.sessions.empty()) break;
    }
    if (std::chrono::steady_clock::now() >= until) break;
    std::this_thread::sleep_for(1ms);
  }
  c.ioc.stop();
  for (auto& t : c.threads)
    t.join();
  c.threads.clear();
  std::lock_guard<std::mutex> g(c.gate->m);
  c.gate->open = false; // from now on the node's callbacks find nobody to post to
}

const server_options& server::options() const noexcept { return core_->opt; }

std::vector<connection_info> server::connections() const {
  std::vector<connection_info> out;
  auto v = [](const auto& a) { return a.load(std::memory_order_relaxed); };
  std::lock_guard<std::mutex> g(core_->m); // a listed session lives until it is unlisted under m
  out.reserve(core_->sessions.size());
  for (const detail::session* s : core_->sessions) {
    const detail::connection_record& r = s->record();
    connection_info& c = out.emplace_back();
    c.cid = r.cid;
    c.ip = r.ip;
    c.port = r.port;
    {
      std::lock_guard<std::mutex> rg(r.m);
      c.agent_id = r.agent_id;
      c.agent_type = r.agent_type;
    }
    c.state = detail::session::state_name(v(r.state));
    c.tls = r.tls;
    c.shared_memory = v(r.shm);
    c.start_ns = r.start_ns;
    c.last_activity_ns = v(r.last_ns);
    c.msgs_in = v(r.msgs_in);
    c.bytes_in = v(r.bytes_in);
    c.msgs_out = v(r.msgs_out);
    c.bytes_out = v(r.bytes_out);
    for (std::size_t i = 0; i < c.lanes.size(); ++i)
      c.lanes[i] = v(r.lanes[i]);
    c.pending = v(r.pending);
    c.window = v(r.window);
    c.credit = v(r.credit);
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.cid < b.cid; });
  return out;
}

edge_latency server::latency() const {
  edge_latency l;
  for (std::size_t i = 0; i < l.queued.size(); ++i) {
    l.queued[i] = core_->metrics.queued[i].read();
    l.age[i] = core_->metrics.age[i].read();
  }
  return l;
}

std::vector<trace_record> server::traces() const {
  std::lock_guard<std::mutex> g(core_->metrics.trace_m);
  return {core_->metrics.traces.rbegin(), core_->metrics.traces.rend()};
}

server_stats server::stats() const {
  const core& c = *core_;
  auto v = [](const std::atomic<std::uint64_t>& a) { return a.load(std::memory_order_relaxed); };
  server_stats s;
  s.accepted = v(c.accepted);
  s.active = v(c.active);
  s.refused = v(c.refused);
  s.frames_in = v(c.frames_in);
  s.frames_out = v(c.frames_out);
  s.bytes_in = v(c.bytes_in);
  s.bytes_out = v(c.bytes_out);
  s.writes = v(c.writes);
  s.batches = v(c.batches);
  s.protocol_errors = v(c.protocol_errors);
  s.slow_consumers = v(c.slow_consumers);
  s.sequence_gaps = v(c.gaps);
  s.sequence_repeats = v(c.repeats);
  s.paused = v(c.paused);
  s.holds = v(c.holds);
  s.acked = v(c.acked);
  s.window_waits = v(c.window_waits);
  s.shm_attached = v(c.shm_attached);
  s.shm_doorbells = v(c.shm_doorbells);
  s.origins_refused = v(c.origins_refused);
  s.tls_failed = v(c.tls_failed);
  s.auth_refused = v(c.auth_refused);
  s.tokens_expired = v(c.tokens_expired);
  s.not_permitted = v(c.not_permitted);
  s.rate_limited = v(c.rate_limited);
  s.connections_limited = v(c.connections_limited);
  return s;
}

} // namespace flowbus::transport
