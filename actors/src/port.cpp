#include "port.hpp"

#include <flowbus/codec/clock.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <limits>

namespace flowbus::actors::detail {

port::port(node::impl* core, std::shared_ptr<node::impl> keep, std::shared_ptr<endpoint> ep, codec::priority prio)
    : core_(core), keep_(std::move(keep)), ep_(std::move(ep)), prio_(prio), enc_(codec::stored_frame_encoding()),
      dec_(codec::stored_frame_decoding()) {}

errc port::encode(const destination& to, std::string_view payload, const send_options& opts,
                  std::string_view reply_to, bool broadcast, std::string_view agent_type,
                  scheduling::buffer_ref& out) {
  codec::message m;
  data_message(m, message_route{&to, broadcast, agent_type, ep_->agent_id(), reply_to}, payload, opts, prio_,
               opts.timestamp_ns ? opts.timestamp_ns : codec::wall_clock_ns(), repeated_);
  const std::size_t need = enc_.literal_size(m);
  if (need > enc_.options().max_frame_size || need > core_->pool.largest_capacity()) return errc::too_large;
  out = core_->pool.try_acquire(need);
  if (!out && m.prio == codec::priority::critical) out = core_->critical_pool.try_acquire(need);
  if (!out) return errc::no_buffer;
  const codec::encode_result r = enc_.encode(m, out.data(), out.capacity());
  if (!r) {
    out.reset();
    return r.code == codec::errc::frame_too_large ? errc::too_large : errc::invalid_topic;
  }
  out.set_size(r.size);
  out.set_stamp(opts.ingress_ns);
  return errc::ok;
}

errc port::push(endpoint& ep, const scheduling::buffer_ref& frame) {
  switch (ep.push(frame)) {
    case endpoint::push_status::ok:
      // another node (it confirms the frame when its link's batch is answered), or a stream (once stored)
      if (ep.remote() || ep.confirms()) ++remote_pushes_;
      return errc::ok;
    case endpoint::push_status::closed:
      core_->dead.add(dead_reason::agent_unavailable, frame, ep.agent_id());
      return errc::agent_unavailable;
    case endpoint::push_status::full:
      core_->dead.add(dead_reason::overflow, frame, ep.agent_id());
      return errc::mailbox_full;
    case endpoint::push_status::circuit_open:
      core_->dead.add(dead_reason::circuit_open, frame, ep.agent_id());
      return errc::circuit_open;
  }
  return errc::ok;
}

const route* port::resolve(std::string_view topic) {
  const std::uint64_t gen = core_->routes.generation(); // read before the lookup: see left_right.hpp
  if (gen != cache_generation_) {
    cache_.clear();
    cache_generation_ = gen;
  }
  key_.assign(topic);
  if (++lookups_ == 256) { // the monitoring's hit rate, without a shared write per lookup
    core_->route_lookups.fetch_add(lookups_, std::memory_order_relaxed);
    core_->route_hits.fetch_add(hits_, std::memory_order_relaxed);
    lookups_ = hits_ = 0;
  }
  if (auto it = cache_.find(key_); it != cache_.end()) return ++hits_, it->second.get();
  if (validate_topic(topic) != topic_errc::ok) return nullptr;
  auto r = std::make_shared<route>();
  core_->routes.read([&](const routing_table& t) { t.resolve(topic, scratch_, *r); });
  for (const std::string& p : core_->cfg.lossless_topics) // once per topic: the route is cached
    if (pattern_matches(p, topic)) {
      r->lossless = true;
      break;
    }
  if (cache_.size() >= core_->cfg.route_cache) cache_.clear(); // bounded; refills with what is hot
  return cache_.emplace(key_, std::move(r)).first->second.get();
}

send_result port::deliver_route(std::string_view topic, const route& r, const scheduling::buffer_ref& frame) {
  send_result res;
  auto note = [&](errc e) {
    if (e == errc::ok)
      ++res.delivered;
    else if (res.code == errc::ok)
      res.code = e;
  };
  for (const auto& ep : r.direct) {
    note(push(*ep, frame));
    // a stream always holds its publishers (it is the store); a slow plain subscriber does only
    // on a lossless topic, else it is isolated: it does not hold us
    if (r.lossless || ep->confirms()) res.note_throttle(*ep);
  }
  for (const member_set& g : r.groups) {
    if (endpoint* ep = pick(g)) {
      note(push(*ep, frame));
      res.note_throttle(*ep);
    } else {
      core_->dead.add(dead_reason::agent_unavailable, frame, std::string(topic));
      note(errc::agent_unavailable);
    }
  }
  return res;
}

send_result port::send(const destination& to, std::string_view payload, const send_options& opts,
                       std::string_view reply_to) {
  if (core_->stopped.load(std::memory_order_acquire)) return {errc::node_stopped, 0};
  // a topic in the route cache was valid when it was resolved: resolve() validates only new ones
  const route* r = to.what == destination::kind::topic ? resolve(to.name) : nullptr;
  if (to.what == destination::kind::topic && !r) return {errc::invalid_topic, 0};
  scheduling::buffer_ref frame;
  if (const errc e = encode(to, payload, opts, reply_to, false, {}, frame); e != errc::ok) return {e, 0};
  ++sent_;
  return confirming(opts, frame, [&] { return route_frame(to, r, frame); });
}

template <class Route>
send_result port::confirming(const send_options& opts, const scheduling::buffer_ref& frame, Route&& route) {
  if (!opts.confirm || (!core_->cluster && !core_->has_streams.load(std::memory_order_acquire))) return route();
  // acknowledged, with other nodes or streams: those among the recipients confirm it later
  core_->confirmations.open(frame.data()); // before any push: a link may confirm at once
  remote_pushes_ = 0;
  send_result res = route();
  res.remote = remote_pushes_;
  if (const auto settled = core_->confirmations.arm(frame.data(), remote_pushes_, *opts.confirm, opts.message_id)) {
    if (*settled != errc::ok && res.code == errc::ok) res.code = *settled; // a link failed it already
  } else {
    res.confirm_pending = true;
  }
  return res;
}

send_result port::route_frame(const destination& to, const route* r, const scheduling::buffer_ref& frame) {
  switch (to.what) {
    case destination::kind::topic: return deliver_route(to.name, *r, frame);
    case destination::kind::agent:
      return core_->routes.read([&](const routing_table& t) -> send_result {
        endpoint* ep = t.agent(to.name);
        if (!ep) {
          core_->dead.add(dead_reason::agent_unavailable, frame, std::string(to.name));
          return {errc::agent_unavailable, 0};
        }
        const errc e = push(*ep, frame);
        send_result res{e, e == errc::ok ? 1u : 0u};
        res.note_throttle(*ep);
        return res;
      });
    case destination::kind::capability:
      return core_->routes.read([&](const routing_table& t) -> send_result {
        const member_set* set = t.capable(to.name);
        endpoint* ep = set ? pick(*set, to.policy) : nullptr;
        if (!ep) {
          core_->dead.add(dead_reason::agent_unavailable, frame, "capability:" + std::string(to.name));
          return {errc::no_capable_agent, 0};
        }
        const errc e = push(*ep, frame);
        send_result res{e, e == errc::ok ? 1u : 0u};
        res.note_throttle(*ep);
        return res;
      });
  }
  return {};
}

send_result port::broadcast(std::string_view payload, std::string_view agent_type, const send_options& opts) {
  if (core_->stopped.load(std::memory_order_acquire)) return {errc::node_stopped, 0};
  scheduling::buffer_ref frame;
  if (const errc e = encode({}, payload, opts, {}, true, agent_type, frame); e != errc::ok) return {e, 0};
  ++sent_;
  return confirming(opts, frame, [&] {
    send_result res;
    core_->routes.read([&](const routing_table& t) {
      auto to = [&](endpoint& ep) {
        if (&ep == ep_.get()) return;
        const errc e = push(ep, frame);
        res.note_throttle(ep);
        if (e == errc::ok)
          ++res.delivered;
        else if (res.code == errc::ok)
          res.code = e;
      };
      t.for_each_agent(agent_type, to);
      t.for_each_peer(to); // each other node once: it delivers to its own agents (of agent_type)
    });
    return res;
  });
}

bool port::decode(const scheduling::buffer_ref& frame, delivery& d) {
  codec::message m;
  if (dec_.decode(codec::bytes_view(frame.data(), frame.size()), m).code != codec::errc::ok) {
    core_->dead.add(dead_reason::corruption, frame, ep_->agent_id());
    return false;
  }
  d = to_delivery(m);
  d.frame = &frame;
  return true;
}

} // namespace flowbus::actors::detail

namespace flowbus::actors {
void send_result::note_throttle(endpoint& ep) {
  if (!ep.throttled()) return;
  ++throttled;
  if (!throttled_by) throttled_by = ep.shared_from_this();
}
} // namespace flowbus::actors
