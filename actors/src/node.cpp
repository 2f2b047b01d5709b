#include "port.hpp"
#include "cluster_impl.hpp"
#include "stream_json.hpp"
#include "dlq_stream.hpp"
#include "stream_writer.hpp"

#include <flowbus/actors/dlq.hpp>

#include <caf/atom.hpp>
#include <caf/io/middleman.hpp>
#include <caf/openssl/manager.hpp>
#include <caf/scoped_actor.hpp>
#include <caf/send.hpp>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include <spdlog/spdlog.h>

#include <limits>
#include <system_error>
#include <thread>

namespace flowbus::actors {

node::impl::impl(node_config c)
    : cfg(std::move(c)), pool(cfg.buffers), critical_pool(cfg.critical_buffers), dead(cfg.dead_letter_capacity),
      sys_cfg(std::make_unique<caf::actor_system_config>()) {
  for (const std::string& p : cfg.lossless_topics)
    if (validate_pattern(p) != topic_errc::ok)
      throw std::system_error(std::make_error_code(std::errc::invalid_argument), "lossless topic pattern '" + p + "'");
  open_dlq(this); // before any thread starts: an unusable directory refuses the node
  for (const stream_config& s : cfg.streams) // likewise a stream whose log cannot be opened
    streams.push_back(open_stream(*this, s));
  for (const stream_config& s : saved_streams(cfg.stream_directory, cfg.streams)) // those added at run time before
    streams.push_back(open_stream(*this, s));
  // spdlog's registry is a function-local static: created here, before the actors that log run on
  // several threads at once (libspdlog is not instrumented, so TSan would not see its guard)
  spdlog::default_logger_raw();
  const std::size_t workers = cfg.workers ? cfg.workers : std::max(1u, std::thread::hardware_concurrency());
  sys_cfg->set("scheduler.policy", cfg.policy == scheduler_policy::sharing ? caf::atom("sharing") : caf::atom("stealing"));
  sys_cfg->set("scheduler.max-threads", workers);
  sys_cfg->set("logger.console", caf::atom("none"));
  // with idle_poll, idle workers keep polling at that period instead of backing off to 10 ms
  if (cfg.idle_poll.count() > 0) {
    sys_cfg->set("work-stealing.moderate-sleep-duration", caf::timespan{cfg.idle_poll});
    sys_cfg->set("work-stealing.moderate-poll-attempts", std::numeric_limits<int>::max() / 2);
    sys_cfg->set("work-stealing.relaxed-sleep-duration", caf::timespan{cfg.idle_poll});
  } else if (cfg.park_idle_workers) {
    sys_cfg->set("work-stealing.moderate-poll-attempts", 0); // aggressive polls (no sleep), then the condition variable
  }
  if (cfg.cluster.port >= 0) configure_cluster(cfg.cluster, *sys_cfg);
  if (cfg.timer_slack.count() > 0) install_timer_slack(*sys_cfg, cfg.timer_slack);
  if (cfg.pinning.enabled) pins = install_thread_pinning(*sys_cfg, cfg.pinning);
  sys = std::make_unique<caf::actor_system>(*sys_cfg);
  dir = spawn_directory(this);
  spawn_dlq_actors(this);
  if (cfg.cluster.port >= 0) {
    try {
      start_cluster(this);
    } catch (...) {
      caf::anon_send(dir, stop_atom::value);
      stop_dlq_actors(this);
      throw;
    }
  }
}

namespace detail {
extern int flowbus_openssl_errors_linked;
} // namespace detail

namespace {
[[noreturn]] void refuse(const std::string& what) {
  throw std::system_error(std::make_error_code(std::errc::invalid_argument), "cluster: " + what);
}
/// All three TLS files, and usable: a certificate and the key that matches it, and a CA file with
/// at least one certificate — checked now, so a wrong path is a refusal to start, not a cluster
/// whose handshakes all fail.
void check_tls_files(const cluster_config& c) {
  if (c.tls_certificate.empty() || c.tls_key.empty() || c.tls_ca.empty())
    refuse("TLS needs a certificate, its key and a CA file, all three (with none CAF falls back to an "
           "anonymous cipher: encrypted, but nobody authenticated)");
  std::unique_ptr<SSL_CTX, decltype(&SSL_CTX_free)> ctx(SSL_CTX_new(TLS_method()), &SSL_CTX_free);
  if (!ctx) refuse("TLS: OpenSSL cannot make a context");
  if (!c.tls_passphrase.empty()) SSL_CTX_set_default_passwd_cb_userdata(ctx.get(), const_cast<char*>(c.tls_passphrase.c_str()));
  if (SSL_CTX_use_certificate_chain_file(ctx.get(), c.tls_certificate.c_str()) != 1)
    refuse("TLS: cannot load the certificate " + c.tls_certificate);
  if (SSL_CTX_use_PrivateKey_file(ctx.get(), c.tls_key.c_str(), SSL_FILETYPE_PEM) != 1)
    refuse("TLS: cannot load the key " + c.tls_key);
  if (SSL_CTX_check_private_key(ctx.get()) != 1)
    refuse("TLS: the key " + c.tls_key + " does not match the certificate " + c.tls_certificate);
  if (SSL_CTX_load_verify_locations(ctx.get(), c.tls_ca.c_str(), nullptr) != 1)
    refuse("TLS: cannot load the CA file " + c.tls_ca);
  ERR_clear_error();
}
} // namespace

void configure_cluster(const cluster_config& c, caf::actor_system_config& sys_cfg) {
  if (c.name.empty()) refuse("a node in a cluster needs a name");
  if (c.port > 65535) refuse("port " + std::to_string(c.port));
  // CAF 0.17 has no heartbeats by default: a hung peer would never be noticed. And a node that
  // checks for silence but sends no heartbeats itself drops its healthy idle links.
  if (c.heartbeat_interval.count() <= 0 || c.connection_timeout.count() <= 0)
    refuse("heartbeat interval and connection timeout must both be set (CAF 0.17 has them off by default)");
  if (c.connection_timeout < 3 * c.heartbeat_interval)
    refuse("connection timeout must be at least three heartbeat intervals");
  if (c.batch_frames == 0 || c.batches_in_flight == 0 || c.link_capacity == 0) refuse("link sizes must be positive");
  sys_cfg.load<caf::io::middleman>();
  if (c.tls()) {
    detail::flowbus_openssl_errors_linked = 1; // (openssl_errors.cpp: keeps its TLS fix in the program)
    check_tls_files(c);
    sys_cfg.load<caf::openssl::manager>();
    sys_cfg.openssl_certificate = c.tls_certificate;
    sys_cfg.openssl_key = c.tls_key;
    sys_cfg.openssl_passphrase = c.tls_passphrase;
    sys_cfg.openssl_cafile = c.tls_ca;
  }
  sys_cfg.set("middleman.heartbeat-interval", caf::timespan{c.heartbeat_interval});
  sys_cfg.set("middleman.connection-timeout", caf::timespan{c.connection_timeout});
  sys_cfg.set("middleman.app-identifiers", std::vector<std::string>{c.app_id});
  // the middleman's own thread deserializes what arrives and hands a link its peer's batches
  // directly (link_actor::enqueue), instead of waking a BASP worker on the scheduler first: one
  // thread hand-off less per hop (cross-node p50 ~600 -> ~400 us here; docs/benchmarks.md)
  sys_cfg.set("middleman.workers", std::size_t{0});
}

node::impl::~impl() {
  stop_dlq_actors(this);
  dir = nullptr;
  for (auto& a : dlqs) a = nullptr;
  sys.reset(); // actors first: they hold endpoints and buffers of the members below
  persist_remaining(this); // dead letters of the last moments (endpoints released with the actors)
}

node::node() : node(node_config{}) {}
node::node(node_config config) : impl_(std::make_shared<impl>(std::move(config))) {
  for (auto& w : impl_->streams)
    start_stream(impl_, *w);
  for (auto& d : impl_->dlq_streams)
    if (d) {
      agent_spec spec{d->name(), "dlq"};
      spec.heartbeat_interval = std::chrono::milliseconds(60000); // its thread may wait on the disk
      d->start(internal_agent(impl_, std::move(spec), d->waiter(), nullptr));
    }
  if (!impl_->cfg.stream_directory.empty() || !impl_->cfg.dlq_directory.empty()) {
    impl_->stream_api = std::make_unique<stream_admin>(impl_);
    agent_spec spec{"$streams", "stream"};
    spec.heartbeat_interval = std::chrono::milliseconds(60000);
    auto c = connect(std::move(spec));
    if (!c) throw std::invalid_argument(std::string("the agent $streams: ") + to_string(c.error()));
    impl_->stream_api->start(std::move(*c));
  }
}

node::~node() {
  shutdown();
  impl_->dir = nullptr;
  impl_->sys.reset(); // clients may keep impl alive; the threads go now
}

namespace {
registered register_agent(node::impl& core, registration r) {
  registered out{errc::node_stopped, nullptr};
  caf::scoped_actor s{*core.sys};
  s->request(core.dir, caf::infinite, register_atom::value, std::move(r))
      .receive([&](registered& res) { out = std::move(res); }, [&](caf::error&) {});
  return out;
}
} // namespace

expected<agent_handle, errc> node::spawn(agent_spec spec, agent_handler handler, start_handler on_start) {
  if (impl_->stopping.load()) return errc::node_stopped;
  if (!handler) handler = [](agent_context&, const delivery&) {};
  auto boot = std::make_shared<agent_boot>(
      agent_boot{impl_.get(), std::move(handler), std::move(on_start), spec.heartbeat_interval, spec.priority,
                 spec.idle_spin, spec.retry,
                 spec.breaker_enabled ? std::optional<scheduling::breaker_options>(spec.breaker) : std::nullopt});
  caf::actor a = spawn_agent(impl_.get(), std::move(boot));
  std::string id = spec.id;
  registered r = register_agent(*impl_, registration{std::move(spec), a, nullptr, nullptr});
  if (r.code != errc::ok) {
    caf::anon_send_exit(a, caf::exit_reason::user_shutdown);
    return r.code;
  }
  return agent_handle{std::move(id), r.ep->id(), std::move(a)};
}

expected<std::unique_ptr<client>, errc> node::connect(agent_spec spec) {
  if (impl_->stopping.load()) return errc::node_stopped;
  auto waiter = std::make_shared<client_waiter>();
  const codec::priority prio = spec.priority;
  const std::chrono::milliseconds heartbeat = spec.heartbeat_interval;
  registered r = register_agent(*impl_, registration{std::move(spec), nullptr, waiter, &client_waiter::ring});
  if (r.code != errc::ok) return r.code;
  auto p = std::make_unique<detail::port>(impl_.get(), impl_, std::move(r.ep), prio);
  return std::make_unique<client>(std::move(p), std::move(waiter), heartbeat);
}

shutdown_report node::shutdown() {
  shutdown_report rep;
  if (impl_->stopping.exchange(true)) return rep;
  const std::uint64_t dead_before = impl_->dead.count(dead_reason::shutdown);
  // Quiescence: every frame announced to an actor agent has been handled, and nothing moved
  // between two looks 1 ms apart (both sums only grow, so equal sums mean nothing happened).
  auto sums = [&] {
    std::uint64_t announced = 0, handled = 0;
    std::lock_guard<std::mutex> g(impl_->m);
    for (const auto& w : impl_->actor_endpoints)
      if (auto ep = w.lock()) {
        handled += ep->handled();
        announced += ep->handled() + ep->in_flight();
      }
    return std::make_pair(announced, handled);
  };
  const auto deadline = std::chrono::steady_clock::now() + impl_->cfg.drain_timeout;
  auto last = sums();
  rep.drained = false;
  while (std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
    const auto now = sums();
    if (now == last && now.first == now.second) {
      rep.drained = true;
      break;
    }
    last = now;
  }
  rep.handled = last.second;
  if (impl_->stream_api) impl_->stream_api->stop();
  for (auto& d : impl_->dlq_streams)
    if (d) d->stop(); // (the DLQ actors may still wake them: they go with the node)
  { // the streams store what reached them, sync, and confirm it before anything else stops
    std::lock_guard<std::mutex> g(impl_->streams_m);
    for (auto& w : impl_->streams)
      w->stop();
  }
  stop_cluster(impl_.get()); // the links go first: what is queued for other nodes is dead-lettered (shutdown)
  caf::anon_send(impl_->dir, stop_atom::value);
  impl_->sys->await_all_actors_done();
  flush_dlq_actors(impl_.get()); // everything the agents dead-lettered on their way out is on disk
  stop_dlq_actors(impl_.get());
  persist_remaining(impl_.get()); // and what came after the flush, so not_persisted() is final here
  impl_->stopped.store(true, std::memory_order_release);
  rep.dead_lettered = impl_->dead.count(dead_reason::shutdown) - dead_before;
  return rep;
}

std::unique_ptr<stream_writer> open_stream(node::impl& core, const stream_config& s) {
  if (!valid_stream_name(s.name))
    throw std::invalid_argument("stream name '" + s.name + "': 1-64 letters, digits, '_' or '-'");
  if (s.subjects.empty()) throw std::invalid_argument("stream " + s.name + ": no subjects");
  for (const std::string& p : s.subjects)
    if (validate_pattern(p) != topic_errc::ok)
      throw std::invalid_argument("stream " + s.name + ": subject '" + p + "': " + to_string(validate_pattern(p)));
  for (const auto& w : core.streams)
    if (w->config().name == s.name) throw std::invalid_argument("stream " + s.name + " exists");
  auto w = std::make_unique<stream_writer>(&core, s);
  detail::write_file_atomically(s.directory / s.name / "stream.json", to_json(s).dump(2) + "\n"); // it reopens by itself
  return w;
}

std::unique_ptr<client> internal_agent(const std::shared_ptr<node::impl>& keep, agent_spec spec,
                                       std::shared_ptr<client_waiter> waiter, std::shared_ptr<endpoint>* ep) {
  node::impl& core = *keep;
  const std::string id = spec.id;
  const std::chrono::milliseconds heartbeat = spec.heartbeat_interval;
  registered r = register_agent(core, registration{std::move(spec), nullptr, waiter, &client_waiter::ring});
  if (r.code != errc::ok) throw std::invalid_argument("the agent " + id + ": " + to_string(r.code));
  if (ep) *ep = r.ep;
  auto p = std::make_unique<detail::port>(&core, keep, std::move(r.ep), codec::priority::normal);
  return std::make_unique<client>(std::move(p), std::move(waiter), heartbeat);
}

void start_stream(const std::shared_ptr<node::impl>& keep, stream_writer& w) {
  node::impl& core = *keep;
  agent_spec spec{"$stream." + w.config().name, "stream"};
  spec.heartbeat_interval = std::chrono::milliseconds(60000); // its thread may wait on the disk
  // room for a burst while its publishers are held back (its water marks, stream_writer::start)
  spec.mailbox_capacity = std::max<std::size_t>(core.cfg.mailbox_capacity, 65536);
  auto waiter = std::make_shared<client_waiter>();
  waiter->try_inline = &stream_writer::ring_inline; // sparse pushes: on the pushing thread (stream_writer.hpp)
  waiter->inline_context = w.gate();
  std::shared_ptr<endpoint> ep;
  auto agent = internal_agent(keep, std::move(spec), waiter, &ep);
  core.has_streams.store(true, std::memory_order_release); // before any frame can reach it
  w.start(std::move(agent), std::move(ep), waiter);
}

void add_stream(const std::shared_ptr<node::impl>& core, const stream_config& c) {
  if (core->stopping.load()) throw std::invalid_argument("the node is stopping");
  std::lock_guard<std::mutex> g(core->streams_m);
  auto w = open_stream(*core, c);
  start_stream(core, *w);
  core->streams.push_back(std::move(w));
}

bool remove_stream(node::impl& core, std::string_view name) {
  std::unique_ptr<stream_writer> w;
  {
    std::lock_guard<std::mutex> g(core.streams_m);
    const auto it = std::find_if(core.streams.begin(), core.streams.end(),
                                 [&](const auto& s) { return s->config().name == name; });
    if (it == core.streams.end()) return false;
    w = std::move(*it);
    core.streams.erase(it);
  }
  w->stop(); // what reached it is stored and confirmed; then its files go
  const std::filesystem::path dir = w->config().directory / w->config().name;
  w.reset();
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
  if (ec) spdlog::error("flowbus: stream {} removed, but not its directory {}: {}", name, dir.string(), ec.message());
  return true;
}

void node::add_stream(stream_config config) { actors::add_stream(impl_, config); }
bool node::remove_stream(std::string_view name) { return actors::remove_stream(*impl_, name); }

std::vector<stream_status> node::streams() const {
  std::vector<stream_status> out;
  std::lock_guard<std::mutex> g(impl_->streams_m);
  for (const auto& w : impl_->streams)
    out.push_back(w->status());
  return out;
}

std::vector<agent_status> node::agents() const {
  std::vector<agent_status> out;
  impl_->routes.read([&](const routing_table& t) {
    t.for_each_agent({}, [&](endpoint& ep) {
      out.push_back({ep.agent_id(), ep.agent_type(), ep.id(), ep.capabilities(), ep.in_flight(), ep.handled(),
                     ep.breaker(), ep.throttled()});
    });
  });
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.handle < b.handle; });
  return out;
}

expected<scheduling::breaker_state, errc> node::breaker(std::string_view agent_id) const {
  return impl_->routes.read([&](const routing_table& t) -> expected<scheduling::breaker_state, errc> {
    const endpoint* ep = t.agent(agent_id);
    if (!ep) return errc::agent_unavailable;
    return ep->breaker();
  });
}

routing_summary node::routing() const {
  routing_summary r;
  impl_->routes.read([&](const routing_table& t) {
    r.agents = t.agent_count();
    r.remote_agents = t.remote_agent_count();
    r.subscriptions = t.subscription_count();
    r.queue_groups = t.group_count();
  });
  r.route_lookups = impl_->route_lookups.load(std::memory_order_relaxed);
  r.route_cache_hits = impl_->route_hits.load(std::memory_order_relaxed);
  return r;
}

match_result node::match(std::string_view topic) const {
  match_result out;
  if (validate_topic(topic) != topic_errc::ok) return out;
  route r;
  routing_table::scratch scratch;
  impl_->routes.read([&](const routing_table& t) { t.resolve(topic, scratch, r); });
  auto name = [](const endpoint& ep) { return ep.remote() ? "node:" + std::to_string(ep.id()) : std::string(ep.agent_id()); };
  for (const auto& ep : r.direct)
    out.subscribers.push_back(name(*ep));
  for (const member_set& g : r.groups) {
    auto& members = out.groups.emplace_back();
    for (const auto& ep : g.members)
      members.push_back(name(*ep));
  }
  return out;
}

std::vector<std::string> node::interest_of(std::string_view agent_id) const {
  return impl_->routes.read([&](const routing_table& t) {
    const endpoint* ep = t.local_agent(agent_id);
    return ep ? t.interest_of(ep->id()) : std::vector<std::string>{};
  });
}

scheduling::bucket_snapshot node::handler_times() const { return impl_->handler_time.read(); }

std::vector<std::string> node::topics() const {
  std::vector<std::string> out;
  if (impl_->stopping.load()) return out;
  caf::scoped_actor s{*impl_->sys};
  s->request(impl_->dir, caf::infinite, topics_atom::value)
      .receive([&](std::vector<std::string>& t) { out = std::move(t); }, [&](caf::error&) {});
  return out;
}

dead_letters& node::dead() noexcept { return impl_->dead; }

bool node::dlq_flush() {
  if (impl_->cfg.dlq_directory.empty()) return false;
  if (impl_->dlq_live.load()) flush_dlq_actors(impl_.get());
  else persist_remaining(impl_.get());
  return true;
}

std::error_code node::dlq_list(dlq_kind kind, std::vector<dlq_entry>& out) {
  out.clear();
  if (!dlq_flush()) return std::make_error_code(std::errc::operation_not_supported);
  dlq_file::contents c;
  auto ec = dlq_file(impl_->dlq_files.at(static_cast<std::size_t>(kind))).load(c); // (the log the node keeps open)
  out = std::move(c.entries);
  return ec;
}

dlq_replay_result node::dlq_replay(dlq_kind kind, const std::vector<std::uint64_t>& ids) {
  dlq_replay_result r;
  std::vector<dlq_entry> entries;
  if ((r.error = dlq_list(kind, entries))) return r;
  auto c = connect({"flowbus.dlq.replay", "flowbus"});
  if (!c) {
    r.error = std::make_error_code(std::errc::operation_canceled);
    return r;
  }
  const replay_outcome out = replay_entries(entries, ids, replay_through(static_cast<sender&>(**c)));
  r.replayed = out.sent.size();
  r.failed = out.failed;
  r.error = dlq_file(impl_->dlq_files.at(static_cast<std::size_t>(kind))).remove(out.sent);
  return r;
}

std::error_code node::dlq_purge(dlq_kind kind) {
  if (!dlq_flush()) return std::make_error_code(std::errc::operation_not_supported);
  return dlq_file(impl_->dlq_files.at(static_cast<std::size_t>(kind))).purge();
}
std::size_t node::workers() const noexcept { return impl_->sys ? impl_->sys->scheduler().num_workers() : 0; }
const node_config& node::config() const noexcept { return impl_->cfg; }
std::shared_ptr<pinning_report> node::pinning() const { return impl_->pins; }
caf::actor_system& node::system() noexcept { return *impl_->sys; }
caf::actor node::directory() const { return impl_->dir; }

} // namespace flowbus::actors
