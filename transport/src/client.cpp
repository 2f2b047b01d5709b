// The C++ client's public API (client.hpp) over its state (client_impl.hpp, which lists the units).
#include "client_impl.hpp"

#include <flowbus/codec/topic.hpp> // validate_topic, validate_pattern

namespace flowbus::transport {

using scheduling::errc;
using clk = std::chrono::steady_clock;

client::impl::impl(client_options o)
    : opt(std::move(o)), tls(opt.tls.enabled ? detail::make_client_tls(opt.tls) : nullptr),
      identity(opt.key_file.empty() ? std::nullopt : std::optional<agent_identity>(agent_identity::from_pem_file(opt.key_file))),
      batch(opt.max_message, opt.max_batch), receipts(opt.acks, opt.receive_window),
      send_ring(std::max<std::size_t>(opt.send_buffer, 2 * scheduling::mpsc_byte_ring::record_bytes(opt.max_message))),
      direct_batch(opt.max_message, opt.max_batch), answers(clk::now()) {}

client::client(client_options options) : impl_(std::make_shared<impl>(std::move(options))) {}

client::~client() { close(); }

errc client::connect(std::chrono::milliseconds timeout) {
  std::future<errc> f;
  {
    std::lock_guard<std::mutex> g(impl_->m);
    if (impl_->registered.load()) return errc::ok;
    impl_->welcome.emplace();
    f = impl_->welcome->get_future();
  }
  impl_->start();
  if (f.wait_for(timeout) != std::future_status::ready) return errc::timeout;
  return f.get();
}

bool client::connected() const noexcept { return impl_->registered.load(); }

void client::on_message(message_handler h) {
  std::lock_guard<std::mutex> g(impl_->m);
  impl_->subs.set_fallback(std::move(h));
}

std::future<errc> client::subscribe(std::string pattern, message_handler h, std::string group) {
  if (codec::validate_pattern(pattern) != codec::topic_errc::ok) {
    std::promise<errc> refused;
    refused.set_value(errc::invalid_pattern);
    return refused.get_future();
  }
  return impl_->change(codec::msg_type::subscribe, pattern, group, std::move(h));
}

std::future<errc> client::unsubscribe(std::string pattern, std::string group) {
  return impl_->change(codec::msg_type::unsubscribe, pattern, group);
}

errc client::publish(std::string_view topic, std::string_view payload, const scheduling::send_options& opts) {
  if (codec::validate_topic(topic) != codec::topic_errc::ok) return errc::invalid_topic;
  return impl_->send_data(scheduling::destination::topic(topic), false, {}, payload, opts);
}

std::future<errc> client::publish_acked(std::string_view topic, std::string_view payload, scheduling::send_options opts) {
  auto p = std::make_shared<std::promise<errc>>();
  auto f = p->get_future();
  impl_->publish_acked(topic, payload, std::move(opts), detail::answer_to(std::move(p)));
  return f;
}

void client::publish_acked(std::string_view topic, std::string_view payload, scheduling::send_options opts,
                           std::function<void(errc)> done) {
  impl_->publish_acked(topic, payload, std::move(opts), detail::answer_to(std::move(done)));
}

void client::impl::publish_acked(std::string_view topic, std::string_view payload, scheduling::send_options opts,
                                 detail::answer_to done) {
  if (codec::validate_topic(topic) != codec::topic_errc::ok) return done.set_value(errc::invalid_topic);
  opts.message_id = next_token++; // the same id space as subscription tokens: one ACK lookup
  std::vector<codec::byte> frame;
  {
    std::lock_guard<std::mutex> g(m); // registered before it can be answered
    answers.expect_ack(opts.message_id, std::move(done), clk::now() + opt.ack_timeout);
  }
  const errc e = send_data(scheduling::destination::topic(topic), false, {}, payload, opts, {}, codec::flag::ack_requested,
                           &frame);
  detail::answer_to turned_down;
  {
    std::lock_guard<std::mutex> g(m);
    if (e != errc::ok)
      turned_down = answers.forget_ack(opts.message_id); // (none: answered already)
    else
      answers.attach_frame(opts.message_id, std::move(frame),
                           sent.load(std::memory_order_relaxed) + queued.load(std::memory_order_relaxed));
  }
  if (turned_down) turned_down.set_value(e);
}

errc client::send(const scheduling::destination& to, std::string_view payload, const scheduling::send_options& opts) {
  if (to.what == scheduling::destination::kind::topic && codec::validate_topic(to.name) != codec::topic_errc::ok)
    return errc::invalid_topic;
  return impl_->send_data(to, false, {}, payload, opts);
}

errc client::broadcast(std::string_view payload, std::string_view agent_type, const scheduling::send_options& opts) {
  return impl_->send_data(scheduling::destination::topic({}), true, agent_type, payload, opts);
}

void client::request(const scheduling::destination& to, std::string_view payload, std::chrono::milliseconds timeout,
                     std::function<void(reply_result)> done) {
  scheduling::send_options o;
  o.type = codec::msg_type::request;
  o.correlation_id = impl_->next_corr++;
  {
    std::lock_guard<std::mutex> g(impl_->m);
    impl_->answers.expect_reply(o.correlation_id, std::move(done), clk::now() + timeout);
  }
  if (const errc e = impl_->send_data(to, false, {}, payload, o, impl_->opt.id); e != errc::ok)
    impl_->complete(o.correlation_id, reply_result{e, {}, {}});
}

std::future<reply_result> client::request(const scheduling::destination& to, std::string_view payload,
                                          std::chrono::milliseconds timeout) {
  auto p = std::make_shared<std::promise<reply_result>>();
  auto f = p->get_future();
  request(to, payload, timeout, [p](reply_result r) { p->set_value(std::move(r)); });
  return f;
}

errc client::respond(const incoming& req, std::string_view payload) {
  scheduling::send_options o;
  o.type = codec::msg_type::reply;
  o.correlation_id = req.correlation_id;
  o.prio = req.prio;
  return impl_->send_data(scheduling::destination::agent(req.reply_to), false, {}, payload, o);
}

void client::close() { impl_->shutdown(); }

client_stats client::stats() const {
  const impl& i = *impl_;
  return client_stats{i.sent.load(), i.received.load(), i.writes.load(), i.batches.load(), i.connects.load(),
                      i.refused.load(), i.holds.load(), i.unsent.load(), i.acked.load(), i.redelivered.load(),
                      i.duplicates.load(), i.handler_failures.load(), i.blocked_sends.load(),
                      i.direct_writes.load(), i.shm_connects.load(), i.doorbells.load()};
}

bool client::held() const noexcept { return impl_->held.load(std::memory_order_relaxed); }

const client_options& client::options() const noexcept { return impl_->opt; }

} // namespace flowbus::transport
