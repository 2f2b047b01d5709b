// The monitoring port's JSON endpoints (docs/monitoring.md) and its sampler.
#include "monitor_render.hpp"

#include <flowbus/codec/clock.hpp>
#include <flowbus/codec/decoder.hpp>
#include <flowbus/codec/trace.hpp>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <thread>
#include <unordered_map>

#include <unistd.h>

namespace flowbus::transport::detail {

using json = nlohmann::json;

extern const char* const dashboard_html; // dashboard_html.cpp, generated from dashboard.html

namespace {

std::string iso_time(std::uint64_t ns) {
  const std::time_t s = static_cast<std::time_t>(ns / 1'000'000'000u);
  std::tm tm{};
  gmtime_r(&s, &tm);
  char buf[64];
  const std::size_t n = std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  std::snprintf(buf + n, sizeof buf - n, ".%06uZ", static_cast<unsigned>(ns % 1'000'000'000u / 1000));
  return buf;
}

/// NATS's duration strings: "1h2m3s", "4.5s", "120ms".
std::string duration(std::uint64_t ns) {
  const std::uint64_t s = ns / 1'000'000'000u;
  char buf[64];
  if (s >= 60) {
    const std::uint64_t h = s / 3600, m = s % 3600 / 60, r = s % 60;
    if (h) std::snprintf(buf, sizeof buf, "%lluh%llum%llus", static_cast<unsigned long long>(h),
                         static_cast<unsigned long long>(m), static_cast<unsigned long long>(r));
    else std::snprintf(buf, sizeof buf, "%llum%llus", static_cast<unsigned long long>(m), static_cast<unsigned long long>(r));
  } else if (s) {
    std::snprintf(buf, sizeof buf, "%.3gs", static_cast<double>(ns) / 1e9);
  } else {
    std::snprintf(buf, sizeof buf, "%.3gms", static_cast<double>(ns) / 1e6);
  }
  return buf;
}

monitor_response json_response(const json& j, unsigned status = 200) {
  return {status, "application/json", j.dump(2) + "\n"};
}

monitor_response error_response(unsigned status, const std::string& why) {
  return json_response(json{{"error", why}}, status);
}

std::uint64_t num(const std::map<std::string, std::string>& q, const char* key, std::uint64_t dflt) {
  auto it = q.find(key);
  if (it == q.end() || it->second.empty()) return dflt;
  try {
    return std::stoull(it->second);
  } catch (...) {
    return dflt;
  }
}

bool flag(const std::map<std::string, std::string>& q, const char* key) {
  auto it = q.find(key);
  return it != q.end() && (it->second.empty() || it->second == "1" || it->second == "true");
}

json latency_json(const scheduling::bucket_snapshot& s) {
  return {{"count", s.count},
          {"p50_us", s.quantile(0.50) / 1e3},
          {"p90_us", s.quantile(0.90) / 1e3},
          {"p95_us", s.quantile(0.95) / 1e3},
          {"p99_us", s.quantile(0.99) / 1e3},
          {"mean_us", s.count ? s.sum_ns / static_cast<double>(s.count) / 1e3 : 0.0}};
}

json dead_by_reason(const actors::dead_letters& d) {
  json j;
  for (std::size_t i = 0; i < actors::dead_reason_count; ++i) {
    const auto why = static_cast<actors::dead_reason>(i);
    j[actors::to_string(why)] = d.count(why);
  }
  return j;
}

scheduling::bucket_snapshot all_lanes(const std::array<scheduling::bucket_snapshot, 5>& lanes) {
  scheduling::bucket_snapshot s;
  for (const auto& l : lanes)
    s.merge(l);
  return s;
}

} // namespace

std::map<std::string, std::string> parse_query(std::string_view query) {
  std::map<std::string, std::string> out;
  auto decode = [](std::string_view v) {
    std::string r;
    for (std::size_t i = 0; i < v.size(); ++i) {
      if (v[i] == '%' && i + 2 < v.size()) {
        const std::string hex(v.substr(i + 1, 2));
        char* end = nullptr;
        const long c = std::strtol(hex.c_str(), &end, 16);
        if (end == hex.c_str() + 2) {
          r += static_cast<char>(c);
          i += 2;
          continue;
        }
      }
      r += v[i] == '+' ? ' ' : v[i];
    }
    return r;
  };
  while (!query.empty()) {
    const std::size_t amp = query.find('&');
    const std::string_view part = query.substr(0, amp);
    const std::size_t eq = part.find('=');
    if (!part.empty()) out[decode(part.substr(0, eq))] = eq == std::string_view::npos ? "" : decode(part.substr(eq + 1));
    if (amp == std::string_view::npos) break;
    query.remove_prefix(amp + 1);
  }
  return out;
}

backlog backlog::of(const std::vector<connection_info>& conns) {
  backlog b;
  for (const connection_info& c : conns) {
    b.pending += c.pending;
    for (std::size_t i = 0; i < b.lanes.size(); ++i)
      b.lanes[i] += c.lanes[i];
  }
  return b;
}

breaker_counts breaker_counts::of(const actors::node& n) {
  breaker_counts b;
  for (const actors::agent_status& a : n.agents()) {
    if (a.breaker == scheduling::breaker_state::open) ++b.open;
    if (a.breaker == scheduling::breaker_state::half_open) ++b.half_open;
  }
  return b;
}

process_usage process_usage::now() {
  process_usage u;
  std::ifstream stat("/proc/self/stat");
  std::string line;
  if (std::getline(stat, line)) {
    // fields after the command (which may hold spaces) start after the last ')'
    const std::size_t p = line.rfind(')');
    if (p != std::string::npos) {
      std::istringstream rest(line.substr(p + 2));
      std::string field;
      unsigned long long utime = 0, stime = 0;
      for (int i = 3; i <= 15 && rest >> field; ++i) {
        if (i == 14) utime = std::stoull(field);
        if (i == 15) stime = std::stoull(field);
      }
      u.cpu_seconds = static_cast<double>(utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
    }
  }
  std::ifstream statm("/proc/self/statm");
  unsigned long long size = 0, resident = 0;
  if (statm >> size >> resident) u.rss_bytes = resident * static_cast<std::uint64_t>(sysconf(_SC_PAGESIZE));
  return u;
}

monitor_state::monitor_state(actors::node& n, const server* e, monitor_options o)
    : node(n), edge(e), opt(std::move(o)), start_ns_(codec::wall_clock_ns()) {
  server_name_ = opt.server_name;
  if (server_name_.empty()) {
    char host[256] = {};
    gethostname(host, sizeof host - 1);
    server_name_ = host;
  }
  last_.at = start_steady_;
  last_.cpu_seconds = process_usage::now().cpu_seconds;
}

void monitor_state::take_sample() {
  const auto now = std::chrono::steady_clock::now();
  const server_stats st = edge ? edge->stats() : server_stats{};
  const scheduling::bucket_snapshot age = edge ? all_lanes(edge->latency().age) : scheduling::bucket_snapshot{};
  const actors::routing_summary r = node.routing();
  const process_usage u = process_usage::now();
  const std::uint64_t pending = edge ? backlog::of(edge->connections()).pending : 0;
  std::lock_guard<std::mutex> g(m_);
  const double dt = std::chrono::duration<double>(now - last_.at).count();
  monitor_sample s;
  s.t_ms = codec::wall_clock_ns() / 1'000'000u;
  if (dt > 0) {
    s.in_msgs_per_s = static_cast<double>(st.frames_in - last_.in_msgs) / dt;
    s.out_msgs_per_s = static_cast<double>(st.frames_out - last_.out_msgs) / dt;
    s.in_bytes_per_s = static_cast<double>(st.bytes_in - last_.in_bytes) / dt;
    s.out_bytes_per_s = static_cast<double>(st.bytes_out - last_.out_bytes) / dt;
    s.cpu_percent = 100.0 * (u.cpu_seconds - last_.cpu_seconds) / dt;
  }
  scheduling::bucket_snapshot interval = age; // what was delivered since the last sample
  for (std::size_t i = 0; i < interval.counts.size(); ++i)
    interval.counts[i] -= std::min(interval.counts[i], last_.age.counts[i]);
  interval.count -= std::min(interval.count, last_.age.count);
  s.p50_us = interval.quantile(0.50) / 1e3;
  s.p95_us = interval.quantile(0.95) / 1e3;
  s.p99_us = interval.quantile(0.99) / 1e3;
  s.rss_bytes = u.rss_bytes;
  s.connections = st.active;
  s.agents = r.agents;
  s.subscriptions = r.subscriptions;
  s.pending = pending;
  s.dead_letters = node.dead().total();
  last_ = {now, st.frames_in, st.frames_out, st.bytes_in, st.bytes_out, u.cpu_seconds, age};
  history_.push_back(s);
  while (history_.size() > std::max<std::size_t>(opt.history, 1))
    history_.pop_front();
}

monitor_sample monitor_state::last_sample() const {
  std::lock_guard<std::mutex> g(m_);
  return history_.empty() ? monitor_sample{} : history_.back();
}

monitor_response monitor_state::render(std::string_view target) const {
  const std::size_t qm = target.find('?');
  std::string path(target.substr(0, qm));
  const auto q = parse_query(qm == std::string_view::npos ? std::string_view{} : target.substr(qm + 1));
  if (path.size() > 1 && path.back() == '/') path.pop_back();
  {
    std::lock_guard<std::mutex> g(m_);
    ++requests_[path];
  }
  if (path == "/" || path == "/index.html") return {200, "text/html; charset=utf-8", dashboard_html};
  if (path == "/healthz") return healthz();
  if (path == "/varz") return varz();
  if (path == "/connz") return connz(q);
  if (path == "/subsz") return subsz(q);
  if (path == "/agentz") return agentz();
  if (path == "/dlqz") return dlqz(q);
  if (path == "/routez") return routez();
  if (path == "/historyz") return historyz();
  if (path == "/tracez") return tracez(q);
  if (path == "/metrics") return metrics();
  return error_response(404, "no such endpoint: " + path +
                                 " (/healthz /varz /connz /subsz /agentz /dlqz /routez /historyz /tracez /metrics /)");
}

monitor_response monitor_state::healthz() const {
  std::string why;
  if (draining.load()) why = "draining: the node is shutting down";
  const std::string& dir = node.config().dlq_directory;
  if (why.empty() && !dir.empty() && access(dir.c_str(), W_OK) != 0)
    why = "the DLQ directory " + dir + " is not writable";
  if (why.empty() && !opt.required_peers.empty()) {
    const auto peers = node.peers();
    for (const std::string& name : opt.required_peers) {
      auto it = std::find_if(peers.begin(), peers.end(), [&](const actors::peer_status& p) { return p.name == name; });
      if (it == peers.end() || !it->up) {
        why = "cluster peer " + name + " is down";
        break;
      }
    }
  }
  if (why.empty()) return json_response({{"status", "ok"}});
  return json_response({{"status", "unavailable"}, {"error", why}}, 503);
}

monitor_response monitor_state::varz() const {
  const std::uint64_t now = codec::wall_clock_ns();
  const server_stats st = edge ? edge->stats() : server_stats{};
  const actors::routing_summary r = node.routing();
  const monitor_sample s = last_sample();
  const process_usage u = process_usage::now();
  json j;
  j["server_name"] = server_name_;
  j["version"] = FLOWBUS_VERSION;
  j["proto"] = 1;
  j["start"] = iso_time(start_ns_);
  j["now"] = iso_time(now);
  j["uptime"] = duration(now - start_ns_);
  j["uptime_s"] = static_cast<double>(now - start_ns_) / 1e9;
  if (edge) {
    const server_options& o = edge->options();
    j["host"] = o.address;
    j["port"] = edge->port();
    j["tls_required"] = !o.tls.cert_file.empty();
    j["tls_verify"] = !o.tls.client_ca_file.empty();
    j["auth_required"] = o.auth || o.public_keys;
    j["max_connections"] = o.max_connections;
    j["max_payload"] = o.max_message;
    j["io_threads"] = o.io_threads;
  }
  j["config"] = json::parse(opt.config_json, nullptr, false);
  if (j["config"].is_discarded()) j["config"] = json::object();
  j["cores"] = std::thread::hardware_concurrency();
  j["scheduler_threads"] = node.workers();
  j["cpu"] = s.cpu_percent;
  j["mem"] = u.rss_bytes;
  j["connections"] = st.active;
  j["total_connections"] = st.accepted;
  j["agents"] = r.agents;
  j["remote_agents"] = r.remote_agents;
  j["subscriptions"] = r.subscriptions;
  j["queue_groups"] = r.queue_groups;
  j["in_msgs"] = st.frames_in;
  j["out_msgs"] = st.frames_out;
  j["in_bytes"] = st.bytes_in;
  j["out_bytes"] = st.bytes_out;
  j["in_msgs_per_s"] = s.in_msgs_per_s;
  j["out_msgs_per_s"] = s.out_msgs_per_s;
  j["in_bytes_per_s"] = s.in_bytes_per_s;
  j["out_bytes_per_s"] = s.out_bytes_per_s;
  const backlog b = edge ? backlog::of(edge->connections()) : backlog{};
  j["pending"] = b.pending;
  json lane_json;
  for (std::size_t i = 0; i < b.lanes.size(); ++i)
    lane_json[lane_names[i]] = b.lanes[i];
  j["lanes"] = lane_json;
  j["slow_consumers"] = st.slow_consumers;
  j["dead_letters"] = {{"total", node.dead().total()}, {"by_reason", dead_by_reason(node.dead())}};
  j["flow_control"] = {{"paused", st.paused},          {"publisher_holds", st.holds},
                       {"window_waits", st.window_waits}, {"slow_consumers", st.slow_consumers},
                       {"rate_limited", st.rate_limited}, {"connections_limited", st.connections_limited}};
  j["edge"] = {{"accepted", st.accepted},         {"refused", st.refused},
               {"writes", st.writes},             {"batches", st.batches},
               {"protocol_errors", st.protocol_errors}, {"sequence_gaps", st.sequence_gaps},
               {"sequence_repeats", st.sequence_repeats}, {"acked", st.acked},
               {"shm_attached", st.shm_attached}, {"shm_doorbells", st.shm_doorbells},
               {"origins_refused", st.origins_refused}, {"tls_failed", st.tls_failed},
               {"auth_refused", st.auth_refused}, {"tokens_expired", st.tokens_expired},
               {"not_permitted", st.not_permitted}};
  const breaker_counts br = breaker_counts::of(node);
  j["breakers"] = {{"open", br.open}, {"half_open", br.half_open}};
  json lat;
  if (edge) {
    const edge_latency l = edge->latency();
    lat["age_at_delivery"] = latency_json(all_lanes(l.age));
    lat["queued_in_node"] = latency_json(all_lanes(l.queued));
    lat["last_interval"] = {{"p50_us", s.p50_us}, {"p95_us", s.p95_us}, {"p99_us", s.p99_us}};
  }
  lat["handler"] = latency_json(node.handler_times());
  j["latency"] = lat;
  j["route_cache"] = {{"lookups", r.route_lookups},
                      {"hits", r.route_cache_hits},
                      {"hit_rate", r.route_lookups ? static_cast<double>(r.route_cache_hits) / static_cast<double>(r.route_lookups) : 0.0}};
  const actors::cluster_totals ct = node.cluster_stats();
  j["cluster"] = {{"port", node.cluster_port()},
                  {"peers", node.peers().size()},
                  {"frames_acknowledged", ct.frames_acknowledged},
                  {"frames_in", ct.frames_in},
                  {"dead_lettered", ct.dead_lettered},
                  {"links_lost", ct.links_lost}};
  {
    std::lock_guard<std::mutex> g(m_);
    j["http_req_stats"] = requests_;
  }
  return json_response(j);
}

monitor_response monitor_state::connz(const std::map<std::string, std::string>& q) const {
  const std::uint64_t now = codec::wall_clock_ns();
  std::vector<connection_info> conns = edge ? edge->connections() : std::vector<connection_info>{};
  const std::string sort = q.count("sort") ? q.at("sort") : "cid";
  const bool subs = flag(q, "subs") || flag(q, "detail");
  const std::uint64_t offset = num(q, "offset", 0), limit = num(q, "limit", 1024);
  std::unordered_map<std::string, std::vector<std::string>> interest; // filled when needed
  auto interest_of = [&](const connection_info& c) -> const std::vector<std::string>& {
    auto it = interest.find(c.agent_id);
    if (it == interest.end()) it = interest.emplace(c.agent_id, c.agent_id.empty() ? std::vector<std::string>{} : node.interest_of(c.agent_id)).first;
    return it->second;
  };
  using ci = const connection_info&;
  auto by = [&](auto key) {
    std::stable_sort(conns.begin(), conns.end(), [&](ci a, ci b) { return key(a) > key(b); });
  };
  if (sort == "cid" || sort == "start") {
    // already ascending by cid, which is the order of start
  } else if (sort == "msgs_to" || sort == "out_msgs") by([](ci c) { return c.msgs_out; });
  else if (sort == "msgs_from" || sort == "in_msgs") by([](ci c) { return c.msgs_in; });
  else if (sort == "bytes_to" || sort == "out_bytes") by([](ci c) { return c.bytes_out; });
  else if (sort == "bytes_from" || sort == "in_bytes") by([](ci c) { return c.bytes_in; });
  else if (sort == "pending") by([](ci c) { return c.pending; });
  else if (sort == "last") by([](ci c) { return c.last_activity_ns; });
  else if (sort == "idle") by([&](ci c) { return now - std::min(now, c.last_activity_ns); });
  else if (sort == "uptime") by([&](ci c) { return now - std::min(now, c.start_ns); });
  else if (sort == "subs") by([&](ci c) { return interest_of(c).size(); });
  else return error_response(400, "unknown sort '" + sort + "' (cid start subs pending msgs_to msgs_from bytes_to bytes_from last idle uptime)");
  std::unordered_map<std::string, scheduling::breaker_state> breakers;
  for (const actors::agent_status& a : node.agents())
    breakers[a.id] = a.breaker;
  json list = json::array();
  for (std::size_t i = offset; i < conns.size() && list.size() < limit; ++i) {
    const connection_info& c = conns[i];
    json e = {{"cid", c.cid},
              {"kind", "Agent"},
              {"type", "websocket"},
              {"ip", c.ip},
              {"port", c.port},
              {"name", c.agent_id},
              {"agent_type", c.agent_type},
              {"state", c.state},
              {"tls", c.tls},
              {"shared_memory", c.shared_memory},
              {"start", iso_time(c.start_ns)},
              {"last_activity", iso_time(c.last_activity_ns)},
              {"uptime", duration(now - std::min(now, c.start_ns))},
              {"idle", duration(now - std::min(now, c.last_activity_ns))},
              {"in_msgs", c.msgs_in},
              {"in_bytes", c.bytes_in},
              {"out_msgs", c.msgs_out},
              {"out_bytes", c.bytes_out},
              {"pending", c.pending},
              {"window", c.window},
              {"credit", c.credit}};
    json lanes;
    for (std::size_t l = 0; l < c.lanes.size(); ++l)
      lanes[lane_names[l]] = c.lanes[l];
    e["lanes"] = lanes;
    const auto b = breakers.find(c.agent_id);
    e["breaker"] = b == breakers.end() ? "none" : scheduling::to_string(b->second);
    const auto& in = interest_of(c);
    e["subscriptions"] = in.size();
    if (subs) e["subscriptions_list"] = in;
    list.push_back(std::move(e));
  }
  return json_response({{"server_name", server_name_},
                        {"now", iso_time(now)},
                        {"num_connections", list.size()},
                        {"total", conns.size()},
                        {"offset", offset},
                        {"limit", limit},
                        {"sort", sort},
                        {"connections", list}});
}

monitor_response monitor_state::subsz(const std::map<std::string, std::string>& q) const {
  const actors::routing_summary r = node.routing();
  json j = {{"num_subscriptions", r.subscriptions},
            {"num_queue_groups", r.queue_groups},
            {"num_lookups", r.route_lookups},
            {"num_cache_hits", r.route_cache_hits},
            {"cache_hit_rate", r.route_lookups ? static_cast<double>(r.route_cache_hits) / static_cast<double>(r.route_lookups) : 0.0}};
  const std::vector<std::string> patterns = node.topics();
  j["num_patterns"] = patterns.size();
  if (flag(q, "subs")) {
    const std::uint64_t limit = num(q, "limit", 1024), offset = num(q, "offset", 0);
    json list = json::array();
    for (std::size_t i = offset; i < patterns.size() && list.size() < limit; ++i)
      list.push_back(patterns[i]);
    j["patterns"] = list;
  }
  std::string topic;
  if (auto it = q.find("topic"); it != q.end()) topic = it->second;
  else if (auto t = q.find("test"); t != q.end()) topic = t->second; // NATS's name
  if (!topic.empty()) {
    const actors::match_result m = node.match(topic);
    json groups = json::array();
    for (const auto& g : m.groups)
      groups.push_back(g);
    j["test"] = {{"topic", topic},
                 {"valid", actors::validate_topic(topic) == actors::topic_errc::ok},
                 {"subscribers", m.subscribers},
                 {"queue_groups", groups},
                 {"fanout", m.subscribers.size() + m.groups.size()}};
  }
  return json_response(j);
}

monitor_response monitor_state::agentz() const {
  json list = json::array();
  for (const actors::agent_status& a : node.agents())
    list.push_back({{"id", a.id},
                    {"type", a.type},
                    {"capabilities", a.capabilities},
                    {"in_flight", a.in_flight},
                    {"handled", a.handled},
                    {"breaker", scheduling::to_string(a.breaker)},
                    {"throttled", a.throttled},
                    {"subscriptions", node.interest_of(a.id)}});
  return json_response({{"server_name", server_name_},
                        {"now", iso_time(codec::wall_clock_ns())},
                        {"num_agents", list.size()},
                        {"agents", list}});
}

monitor_response monitor_state::dlqz(const std::map<std::string, std::string>& q) const {
  actors::dead_letters& d = node.dead();
  json kinds;
  for (std::size_t i = 0; i < actors::dlq_kind_count; ++i)
    kinds[actors::to_string(static_cast<actors::dlq_kind>(i))] = d.persisted(static_cast<actors::dlq_kind>(i));
  std::string reason_filter;
  if (auto it = q.find("reason"); it != q.end()) reason_filter = it->second;
  const std::uint64_t limit = num(q, "limit", 50);
  json recent = json::array();
  codec::decoder dec(codec::stored_frame_decoding());
  for (const actors::dead_letter& e : d.recent(std::max<std::uint64_t>(limit, 1) * (reason_filter.empty() ? 1 : 20))) {
    if (recent.size() >= limit) break;
    if (!reason_filter.empty() && reason_filter != actors::to_string(e.reason)) continue;
    json x = {{"reason", actors::to_string(e.reason)},
              {"recipient", e.recipient},
              {"time", iso_time(static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(e.when.time_since_epoch()).count()))},
              {"attempts", e.attempts},
              {"size", e.frame ? e.frame.size() : 0}};
    codec::message m;
    if (e.frame && dec.decode(codec::bytes_view(e.frame.data(), e.frame.size()), m)) {
      x["type"] = codec::to_string(m.type);
      if (m.has(codec::field::topic)) x["topic"] = std::string(m.topic());
      if (m.has(codec::field::source)) x["source"] = std::string(m.str(codec::field::source));
      x["payload_size"] = m.payload.size();
    }
    recent.push_back(std::move(x));
  }
  json depth = nullptr;
  if (flag(q, "depth") && !node.config().dlq_directory.empty()) { // reads the files: only when asked
    depth = json::object();
    std::vector<actors::dlq_entry> entries;
    for (std::size_t i = 0; i < actors::dlq_kind_count; ++i) {
      const auto k = static_cast<actors::dlq_kind>(i);
      const std::error_code ec = node.dlq_list(k, entries);
      depth[actors::to_string(k)] = ec ? json(ec.message()) : json(entries.size());
    }
  }
  return json_response({{"total", d.total()},
                        {"depth", depth},
                        {"held", d.size()},
                        {"evicted", d.evicted()},
                        {"by_reason", dead_by_reason(d)},
                        {"directory", node.config().dlq_directory},
                        {"persisted_by_kind", kinds},
                        {"not_persisted", d.not_persisted()},
                        {"torn_bytes_cut", d.torn_cut()},
                        {"recent", recent}});
}

monitor_response monitor_state::routez() const {
  json routes = json::array();
  for (const actors::peer_status& p : node.peers())
    routes.push_back({{"remote_name", p.name},
                      {"address", p.address},
                      {"up", p.up},
                      {"rtt_us", p.rtt.count()},
                      {"out_msgs", p.frames_out},
                      {"in_msgs", p.frames_in},
                      {"pending", p.pending},
                      {"dead_lettered", p.dead_lettered},
                      {"remote_agents", p.remote_agents},
                      {"subscriptions", p.interest}});
  const actors::cluster_totals t = node.cluster_stats();
  return json_response({{"server_name", server_name_},
                        {"cluster_port", node.cluster_port()},
                        {"num_routes", routes.size()},
                        {"routes", routes},
                        {"links_lost", t.links_lost},
                        {"duplicates_taken_down", t.duplicates_taken_down}});
}

monitor_response monitor_state::historyz() const {
  json list = json::array();
  std::lock_guard<std::mutex> g(m_);
  for (const monitor_sample& s : history_)
    list.push_back({{"t", s.t_ms},
                    {"in_msgs_per_s", s.in_msgs_per_s},
                    {"out_msgs_per_s", s.out_msgs_per_s},
                    {"in_bytes_per_s", s.in_bytes_per_s},
                    {"out_bytes_per_s", s.out_bytes_per_s},
                    {"p50_us", s.p50_us},
                    {"p95_us", s.p95_us},
                    {"p99_us", s.p99_us},
                    {"connections", s.connections},
                    {"agents", s.agents},
                    {"subscriptions", s.subscriptions},
                    {"pending", s.pending},
                    {"dead_letters", s.dead_letters},
                    {"cpu", s.cpu_percent},
                    {"mem", s.rss_bytes}});
  return json_response({{"interval_ms", opt.sample_interval.count()}, {"samples", list}});
}

monitor_response monitor_state::tracez(const std::map<std::string, std::string>& q) const {
  const std::vector<trace_record> all = edge ? edge->traces() : std::vector<trace_record>{};
  const std::uint64_t limit = num(q, "limit", 50);
  // per segment (from one hop kind to the next): how many, mean and max — the slowest hop is the
  // segment with the largest mean
  struct seg {
    std::uint64_t n = 0;
    double sum_us = 0, max_us = 0;
  };
  std::map<std::string, seg> segments;
  json list = json::array();
  for (const trace_record& t : all) {
    json hops = json::array();
    for (std::size_t i = 0; i < t.hops.size(); ++i) {
      json h = {{"hop", codec::to_string(t.hops[i].first)}, {"time", iso_time(t.hops[i].second)}};
      if (i) {
        const double us = (static_cast<double>(t.hops[i].second) - static_cast<double>(t.hops[i - 1].second)) / 1e3;
        h["after_us"] = us;
        seg& s = segments[std::string(codec::to_string(t.hops[i - 1].first)) + " -> " + codec::to_string(t.hops[i].first)];
        ++s.n;
        s.sum_us += us;
        s.max_us = std::max(s.max_us, us);
      }
      hops.push_back(std::move(h));
    }
    if (list.size() >= limit) continue;
    const double total = t.hops.size() > 1 ? (static_cast<double>(t.hops.back().second) - static_cast<double>(t.hops.front().second)) / 1e3 : 0;
    list.push_back({{"recipient", t.recipient},
                    {"source", t.source},
                    {"topic", t.topic},
                    {"target", t.target},
                    {"type", codec::to_string(static_cast<codec::msg_type>(t.type))},
                    {"priority", lane_names[std::min<std::size_t>(t.priority, 4)]},
                    {"total_us", total},
                    {"hops", hops}});
  }
  json segs = json::array();
  std::string slowest;
  double slowest_mean = -1;
  for (const auto& [name, s] : segments) {
    const double mean = s.sum_us / static_cast<double>(s.n);
    segs.push_back({{"segment", name}, {"count", s.n}, {"mean_us", mean}, {"max_us", s.max_us}});
    if (mean > slowest_mean) {
      slowest_mean = mean;
      slowest = name;
    }
  }
  return json_response({{"sample", edge ? edge->options().trace_sample : 0},
                        {"kept", all.size()},
                        {"segments", segs},
                        {"slowest_hop", slowest.empty() ? json(nullptr) : json({{"segment", slowest}, {"mean_us", slowest_mean}})},
                        {"traces", list}});
}

} // namespace flowbus::transport::detail
