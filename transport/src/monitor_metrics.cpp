// /metrics: Prometheus text exposition format 0.0.4 (docs/monitoring.md lists every family).
// Counters end in _total, times are in seconds, labels are a bounded set: lane (5), reason (10),
// kind (6), peer (the cluster's nodes) and, only when asked for, agent (one per connection).
#include "monitor_render.hpp"

#include <flowbus/codec/clock.hpp>

#include <cinttypes>
#include <cstdio>
#include <string>

namespace flowbus::transport::detail {

namespace {

class exposition {
public:
  /// Starts a family: its HELP and TYPE lines.
  void family(const char* name, const char* type, const char* help) {
    out_ += "# HELP ";
    out_ += name;
    out_ += ' ';
    out_ += help;
    out_ += "\n# TYPE ";
    out_ += name;
    out_ += ' ';
    out_ += type;
    out_ += '\n';
  }
  /// One sample; `labels` is `a="x",b="y"` (values escaped by label()) or empty.
  void sample(const std::string& name, const std::string& labels, double v) {
    out_ += name;
    if (!labels.empty()) {
      out_ += '{';
      out_ += labels;
      out_ += '}';
    }
    char buf[64];
    if (v == static_cast<double>(static_cast<std::int64_t>(v)) && v < 9.0e15 && v > -9.0e15)
      std::snprintf(buf, sizeof buf, " %" PRId64 "\n", static_cast<std::int64_t>(v));
    else
      std::snprintf(buf, sizeof buf, " %.9g\n", v);
    out_ += buf;
  }
  void one(const char* name, const char* type, const char* help, double v) {
    family(name, type, help);
    sample(name, {}, v);
  }
  /// A cumulative histogram in seconds from a snapshot in ns.
  void histogram(const std::string& name, const std::string& labels, const scheduling::bucket_snapshot& s) {
    std::uint64_t cum = 0;
    const std::string sep = labels.empty() ? "" : ",";
    for (std::size_t i = 0; i < scheduling::latency_bounds_ns.size(); ++i) {
      cum += s.counts[i];
      char le[32];
      std::snprintf(le, sizeof le, "%.9g", static_cast<double>(scheduling::latency_bounds_ns[i]) / 1e9);
      sample(name + "_bucket", labels + sep + "le=\"" + le + "\"", static_cast<double>(cum));
    }
    sample(name + "_bucket", labels + sep + "le=\"+Inf\"", static_cast<double>(s.count));
    sample(name + "_sum", labels, s.sum_ns / 1e9);
    sample(name + "_count", labels, static_cast<double>(s.count));
  }
  static std::string label(const char* key, const std::string& value) {
    std::string r = key;
    r += "=\"";
    for (char c : value) {
      if (c == '\\') r += "\\\\";
      else if (c == '"') r += "\\\"";
      else if (c == '\n') r += "\\n";
      else r += c;
    }
    r += '"';
    return r;
  }
  std::string take() { return std::move(out_); }

private:
  std::string out_;
};

} // namespace

monitor_response monitor_state::metrics() const {
  exposition x;
  const server_stats st = edge ? edge->stats() : server_stats{};
  const actors::routing_summary r = node.routing();
  const process_usage u = process_usage::now();
  const std::uint64_t now = codec::wall_clock_ns();
  auto d = [](std::uint64_t v) { return static_cast<double>(v); };

  x.family("flowbus_info", "gauge", "The node: version and name (always 1).");
  x.sample("flowbus_info", exposition::label("version", FLOWBUS_VERSION) + "," + exposition::label("server_name", server_name_), 1);
  x.one("flowbus_uptime_seconds", "gauge", "Seconds since the monitoring started with the node.", static_cast<double>(now - start_ns_) / 1e9);
  x.one("flowbus_process_cpu_seconds_total", "counter", "CPU time of the node process (user + system).", u.cpu_seconds);
  x.one("flowbus_process_resident_memory_bytes", "gauge", "Resident memory of the node process.", d(u.rss_bytes));
  x.one("flowbus_scheduler_threads", "gauge", "CAF scheduler worker threads.", d(node.workers()));
  x.one("flowbus_io_threads", "gauge", "WebSocket edge I/O threads.", d(edge ? edge->options().io_threads : 0));

  x.one("flowbus_connections", "gauge", "WebSocket connections open now.", d(st.active));
  x.one("flowbus_connections_accepted_total", "counter", "WebSocket connections accepted (TCP).", d(st.accepted));
  x.one("flowbus_connections_refused_total", "counter", "Connections refused (limit, handshake, registration).", d(st.refused));
  x.one("flowbus_agents", "gauge", "Agents registered on this node (connections and in-process actors).", d(r.agents));
  x.one("flowbus_remote_agents", "gauge", "Agents served by other nodes of the cluster.", d(r.remote_agents));
  x.one("flowbus_subscriptions", "gauge", "Subscriptions (pattern, subscriber) in the routing table.", d(r.subscriptions));
  x.one("flowbus_queue_groups", "gauge", "Queue groups in the routing table.", d(r.queue_groups));
  x.one("flowbus_route_lookups_total", "counter", "Topics looked up by senders (counted in steps of 256 per sender).", d(r.route_lookups));
  x.one("flowbus_route_cache_hits_total", "counter", "Of those, answered by the sender's route cache.", d(r.route_cache_hits));

  x.one("flowbus_messages_in_total", "counter", "FLOW messages received from agents over the edge (each of a BATCH).", d(st.frames_in));
  x.one("flowbus_messages_out_total", "counter", "Data messages written to agents over the edge.", d(st.frames_out));
  x.one("flowbus_bytes_in_total", "counter", "WebSocket payload bytes received from agents.", d(st.bytes_in));
  x.one("flowbus_bytes_out_total", "counter", "WebSocket payload bytes written to agents.", d(st.bytes_out));
  x.one("flowbus_writes_total", "counter", "Socket writes (each one or more WebSocket messages).", d(st.writes));
  x.one("flowbus_batches_total", "counter", "BATCH frames written.", d(st.batches));
  x.one("flowbus_acked_total", "counter", "Messages acknowledged by agents that acknowledge.", d(st.acked));

  x.family("flowbus_dead_letters_total", "counter", "Messages dead-lettered, by reason.");
  for (std::size_t i = 0; i < actors::dead_reason_count; ++i) {
    const auto why = static_cast<actors::dead_reason>(i);
    x.sample("flowbus_dead_letters_total", exposition::label("reason", actors::to_string(why)), d(node.dead().count(why)));
  }
  x.family("flowbus_dlq_persisted_total", "counter", "Dead letters written to the DLQ files, by queue.");
  for (std::size_t i = 0; i < actors::dlq_kind_count; ++i) {
    const auto k = static_cast<actors::dlq_kind>(i);
    x.sample("flowbus_dlq_persisted_total", exposition::label("kind", actors::to_string(k)), d(node.dead().persisted(k)));
  }
  x.one("flowbus_dlq_not_persisted_total", "counter", "Dead letters that did not reach the DLQ files.", d(node.dead().not_persisted()));

  x.one("flowbus_protocol_errors_total", "counter", "Connections closed for a malformed frame or protocol breach.", d(st.protocol_errors));
  x.one("flowbus_slow_consumers_total", "counter", "Connections cut because a write stayed blocked past the write timeout.", d(st.slow_consumers));
  x.one("flowbus_sequence_gaps_total", "counter", "Gaps in the sequence numbers agents sent.", d(st.sequence_gaps));
  x.one("flowbus_sequence_repeats_total", "counter", "Repeated sequence numbers agents sent.", d(st.sequence_repeats));
  x.one("flowbus_paused_total", "counter", "Times a connection stopped reading for want of a frame buffer.", d(st.paused));
  x.one("flowbus_publisher_holds_total", "counter", "Times a publisher was held by a recipient above its high water mark.", d(st.holds));
  x.one("flowbus_window_waits_total", "counter", "Times frames waited for an agent's receive window (CREDIT).", d(st.window_waits));
  x.one("flowbus_rate_limited_total", "counter", "Data messages over their agent's rate limit (held or refused).", d(st.rate_limited));
  x.one("flowbus_connections_limited_total", "counter", "Connections over their address's connection rate (held or refused).", d(st.connections_limited));
  x.one("flowbus_shm_attached_total", "counter", "Connections that attached a shared-memory channel.", d(st.shm_attached));
  x.one("flowbus_origins_refused_total", "counter", "WebSocket handshakes refused for their Origin.", d(st.origins_refused));
  x.one("flowbus_tls_failed_total", "counter", "TLS handshakes that failed.", d(st.tls_failed));
  x.one("flowbus_auth_refused_total", "counter", "REGISTERs refused for their credentials.", d(st.auth_refused));
  x.one("flowbus_tokens_expired_total", "counter", "Connections closed because their token expired.", d(st.tokens_expired));
  x.one("flowbus_not_permitted_total", "counter", "Publishes, subscriptions and sends refused by permissions.", d(st.not_permitted));

  const breaker_counts br = breaker_counts::of(node);
  x.family("flowbus_breakers", "gauge", "Agents' circuit breakers not closed, by state.");
  x.sample("flowbus_breakers", exposition::label("state", "open"), d(br.open));
  x.sample("flowbus_breakers", exposition::label("state", "half_open"), d(br.half_open));

  const std::vector<connection_info> conns = edge ? edge->connections() : std::vector<connection_info>{};
  const backlog b = backlog::of(conns);
  x.one("flowbus_pending_messages", "gauge", "Messages waiting to be written to agents (lanes and mailboxes).", d(b.pending));
  x.family("flowbus_lane_depth", "gauge", "Messages waiting in the edge's priority lanes, by lane.");
  for (std::size_t i = 0; i < b.lanes.size(); ++i)
    x.sample("flowbus_lane_depth", exposition::label("lane", lane_names[i]), d(b.lanes[i]));

  if (edge) {
    const edge_latency l = edge->latency();
    x.family("flowbus_queued_seconds", "histogram",
             "Time a message waited in the node, from the read that took it in to the write that sends it on, by lane.");
    for (std::size_t i = 0; i < l.queued.size(); ++i)
      x.histogram("flowbus_queued_seconds", exposition::label("lane", lane_names[i]), l.queued[i]);
    x.family("flowbus_delivery_age_seconds", "histogram",
             "Age of a message when written to its recipient, from the sender's timestamp, by lane.");
    for (std::size_t i = 0; i < l.age.size(); ++i)
      x.histogram("flowbus_delivery_age_seconds", exposition::label("lane", lane_names[i]), l.age[i]);
  }
  x.family("flowbus_handler_seconds", "histogram", "Time actor agents' handlers took per message.");
  x.histogram("flowbus_handler_seconds", {}, node.handler_times());

  const auto peers = node.peers();
  const actors::cluster_totals ct = node.cluster_stats();
  x.one("flowbus_cluster_frames_acknowledged_total", "counter", "Frames sent to other nodes and taken by them.", d(ct.frames_acknowledged));
  x.one("flowbus_cluster_frames_in_total", "counter", "Frames received from other nodes.", d(ct.frames_in));
  x.one("flowbus_cluster_dead_lettered_total", "counter", "Frames meant for other nodes, dead-lettered here.", d(ct.dead_lettered));
  x.one("flowbus_cluster_links_lost_total", "counter", "Links to other nodes lost.", d(ct.links_lost));
  x.family("flowbus_peer_up", "gauge", "Whether the link to another node is up (1) or being redialled (0).");
  for (const actors::peer_status& p : peers)
    x.sample("flowbus_peer_up", exposition::label("peer", p.name), p.up ? 1 : 0);
  x.family("flowbus_peer_pending", "gauge", "Frames queued for another node or sent and not yet acknowledged.");
  for (const actors::peer_status& p : peers)
    x.sample("flowbus_peer_pending", exposition::label("peer", p.name), d(p.pending));
  x.family("flowbus_peer_rtt_seconds", "gauge", "Round trip of the last acknowledged batch to another node.");
  for (const actors::peer_status& p : peers)
    x.sample("flowbus_peer_rtt_seconds", exposition::label("peer", p.name), static_cast<double>(p.rtt.count()) / 1e6);

  if (opt.per_agent_metrics) {
    x.family("flowbus_agent_messages_in_total", "counter", "Messages received from one connected agent.");
    for (const connection_info& c : conns)
      if (!c.agent_id.empty()) x.sample("flowbus_agent_messages_in_total", exposition::label("agent", c.agent_id), d(c.msgs_in));
    x.family("flowbus_agent_messages_out_total", "counter", "Data messages written to one connected agent.");
    for (const connection_info& c : conns)
      if (!c.agent_id.empty()) x.sample("flowbus_agent_messages_out_total", exposition::label("agent", c.agent_id), d(c.msgs_out));
    x.family("flowbus_agent_pending_messages", "gauge", "Messages waiting to be written to one connected agent.");
    for (const connection_info& c : conns)
      if (!c.agent_id.empty()) x.sample("flowbus_agent_pending_messages", exposition::label("agent", c.agent_id), d(c.pending));
  }
  return {200, "text/plain; version=0.0.4; charset=utf-8", x.take()};
}

} // namespace flowbus::transport::detail
