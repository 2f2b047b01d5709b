#include "port.hpp"

namespace flowbus::actors {

sender::sender(std::unique_ptr<detail::port> p) : port_(std::move(p)) {}
sender::~sender() = default;
sender::sender(sender&&) noexcept = default;

send_result sender::publish(std::string_view topic, std::string_view payload, const send_options& opts) {
  return port_->send(destination::topic(topic), payload, opts);
}
send_result sender::send_to(std::string_view agent_id, std::string_view payload, const send_options& opts) {
  return port_->send(destination::agent(agent_id), payload, opts);
}
send_result sender::broadcast(std::string_view payload, std::string_view agent_type, const send_options& opts) {
  return port_->broadcast(payload, agent_type, opts);
}
send_result sender::send_to_capability(std::string_view capability, std::string_view payload, balance policy,
                                       const send_options& opts) {
  return port_->send(destination::capability(capability, policy), payload, opts);
}
send_result sender::send(const destination& to, std::string_view payload, const send_options& opts) {
  return port_->send(to, payload, opts);
}
send_result sender::respond(const delivery& request, std::string_view payload) {
  send_options o;
  o.type = codec::msg_type::reply;
  o.correlation_id = request.correlation_id;
  o.prio = request.prio;
  return port_->send(destination::agent(request.reply_to), payload, o);
}
const std::string& sender::id() const noexcept { return port_->ep().agent_id(); }
std::uint64_t sender::sent() const noexcept { return port_->sent(); }

errc to_errc(directory_errc e) noexcept {
  switch (e) {
    case directory_errc::ok: return errc::ok;
    case directory_errc::duplicate_id: return errc::duplicate_agent;
    case directory_errc::unknown_agent: return errc::agent_unavailable;
    case directory_errc::invalid_id:
    case directory_errc::invalid_interval: return errc::invalid_agent;
  }
  return errc::invalid_agent;
}

errc to_errc(topic_errc e, bool pattern) noexcept {
  if (e == topic_errc::ok) return errc::ok;
  return pattern ? errc::invalid_pattern : errc::invalid_topic;
}

} // namespace flowbus::actors
