#include <flowbus/scheduling/agent_messages.hpp>
#include <flowbus/scheduling/errc.hpp>

#include <algorithm>
#include <limits>

namespace flowbus::scheduling {

const char* to_string(errc e) noexcept {
  switch (e) {
    case errc::ok: return "ok";
    case errc::agent_unavailable: return "agent_unavailable";
    case errc::no_capable_agent: return "no_capable_agent";
    case errc::no_responders: return "no_responders";
    case errc::timeout: return "timeout";
    case errc::mailbox_full: return "mailbox_full";
    case errc::invalid_topic: return "invalid_topic";
    case errc::invalid_pattern: return "invalid_pattern";
    case errc::invalid_agent: return "invalid_agent";
    case errc::duplicate_agent: return "duplicate_agent";
    case errc::too_large: return "too_large";
    case errc::no_buffer: return "no_buffer";
    case errc::circuit_open: return "circuit_open";
    case errc::node_stopped: return "node_stopped";
    case errc::not_subscribed: return "not_subscribed";
    case errc::too_many_subscriptions: return "too_many_subscriptions";
    case errc::unauthenticated: return "unauthenticated";
    case errc::not_permitted: return "not_permitted";
    case errc::rate_limited: return "rate_limited";
    case errc::store_failed: return "store_failed";
  }
  return "invalid";
}

std::uint32_t max_attempts_of(const codec::message& m) noexcept {
  return static_cast<std::uint32_t>(
      std::min<std::uint64_t>(m.num(codec::field::max_attempts), std::numeric_limits<std::uint32_t>::max()));
}

delivery to_delivery(const codec::message& m) noexcept {
  delivery d;
  d.type = m.type;
  d.prio = m.prio;
  d.topic = m.topic();
  d.source = m.str(codec::field::source);
  d.target = m.str(codec::field::target);
  for (const codec::repeated_entry& e : m.repeated)
    if (e.id == codec::field::capability) d.target = e.key;
  d.reply_to = m.str(codec::field::reply_to);
  d.correlation_id = m.correlation_id();
  d.message_id = m.message_id();
  d.sequence = m.sequence;
  d.timestamp_ns = m.timestamp_ns;
  d.deadline_ns = m.deadline_ns();
  d.max_attempts = max_attempts_of(m);
  d.error_code = m.num(codec::field::error_code);
  d.trace = m.str(codec::field::trace);
  d.payload = m.payload.as_string();
  d.repeated = m.repeated;
  return d;
}

void data_message(codec::message& m, const message_route& route, std::string_view payload, const send_options& opts,
                  codec::priority default_prio, std::uint64_t timestamp_ns,
                  std::vector<codec::repeated_entry>& repeated) {
  m.type = opts.type;
  m.prio = opts.prio.value_or(default_prio);
  m.timestamp_ns = timestamp_ns;
  repeated.clear();
  if (route.broadcast) {
    m.flags |= codec::flag::broadcast;
    if (!route.agent_type.empty()) m.set(codec::field::agent_type, route.agent_type);
  } else if (route.to->what == destination::kind::topic) {
    m.set_topic(route.to->name);
  } else if (route.to->what == destination::kind::agent) {
    m.set(codec::field::target, route.to->name);
  } else {
    repeated.push_back({codec::field::capability, route.to->name, {}});
  }
  for (const codec::repeated_entry& e : opts.headers) // application headers travel as they came
    if (e.id == codec::field::header) repeated.push_back(e);
  if (!repeated.empty()) m.repeated = codec::repeated_fields(repeated.data(), repeated.size());
  m.set(codec::field::source, route.source);
  if (!route.reply_to.empty()) m.set(codec::field::reply_to, route.reply_to);
  if (opts.correlation_id) m.set(codec::field::correlation_id, opts.correlation_id);
  if (opts.message_id) m.set(codec::field::message_id, opts.message_id);
  if (opts.deadline_ns) m.set(codec::field::deadline, opts.deadline_ns);
  if (opts.max_attempts) m.set(codec::field::max_attempts, opts.max_attempts);
  if (!opts.trace.empty()) m.set(codec::field::trace, opts.trace);
  m.payload = codec::bytes_view(payload);
}

std::string_view delivery::header(std::string_view key) const noexcept {
  for (const codec::repeated_entry& e : repeated)
    if (e.id == codec::field::header && e.key == key) return e.value;
  return {};
}

} // namespace flowbus::scheduling
