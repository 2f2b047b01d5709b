// A link to one other node: the frames this node's senders route to it, sent in batches; the
// frames it sends, delivered here; its interest and agents, kept in the routing table.
//
// Outbound. The peer is reached through link endpoints in the routing table: `main` (subscribed
// to the peer's plain interest, serving its agents and capabilities, taking broadcasts) and one
// per queue group the peer has members in. Senders push into them like into any agent's mailbox;
// the doorbell (a drain_atom) wakes this actor, which drains them into batches — one CAF message
// each, tagged with which group a frame was picked for — with at most batches_in_flight
// unacknowledged. A batch is a request: the peer answers how many frames it took, so a frame
// that does not arrive (the link dies, the peer runs out of buffers) is dead-lettered here with
// the peer named, never lost without a record.
//
// Inbound. A frame from the peer is delivered to this node's agents only — local subscribers,
// a local member of the group it was picked for, the local agent it names — never to another
// link: one hop in a full mesh, so no loops. A frame whose deadline passed is dead-lettered here,
// naming this node.
#include "cluster_impl.hpp"
#include "cluster_wire.hpp"
#include "port.hpp"

#include <flowbus/actors/actor_mailbox.hpp>
#include <flowbus/codec/clock.hpp>
#include <flowbus/codec/encoder.hpp>
#include <flowbus/scheduling/lanes.hpp>

#include <caf/event_based_actor.hpp>
#include <caf/send.hpp>
#include <caf/stateful_actor.hpp>

#include <spdlog/spdlog.h>

#include <chrono>
#include <cstring>
#include <map>
#include <unordered_map>

namespace flowbus::actors {

std::string agent_entry(const std::string& id, const std::string& type, const std::vector<std::string>& caps) {
  std::string e = id;
  e += '\x1f';
  e += type;
  for (const std::string& c : caps) {
    e += '\x1f';
    e += c;
  }
  return e;
}

bool parse_agent_entry(const std::string& entry, std::string& id, std::vector<std::string>& caps) {
  caps.clear();
  std::size_t at = entry.find('\x1f');
  id = entry.substr(0, at);
  if (id.empty()) return false;
  if (at == std::string::npos) return true;
  at = entry.find('\x1f', at + 1); // skip the type: routing needs id and capabilities
  while (at != std::string::npos) {
    const std::size_t next = entry.find('\x1f', at + 1);
    caps.push_back(entry.substr(at + 1, next == std::string::npos ? std::string::npos : next - at - 1));
    at = next;
  }
  return true;
}

namespace {

using clock_type = std::chrono::steady_clock;
constexpr std::size_t max_open_requests = 65536;
constexpr auto open_request_age = std::chrono::minutes(2); ///< older ones are forgotten when the map is full

struct batch {
  std::vector<scheduling::buffer_ref> frames;
  clock_type::time_point sent;
};

struct link_state {
  node::impl* core = nullptr;
  std::string peer;
  caf::actor remote, cluster;
  std::shared_ptr<link_stats> stats;
  std::shared_ptr<endpoint> main;
  std::map<std::string, std::shared_ptr<endpoint>> groups; ///< key (pattern '\x1f' group) -> its endpoint
  std::unordered_map<std::uint64_t, batch> in_flight;
  std::uint64_t next_batch = 0;
  std::unique_ptr<detail::port> port; ///< inbound: route cache and pushes with dead-lettering
  /// requests this node's agents sent to the peer and not yet answered: (requester, correlation id)
  /// -> when. If the link is lost, each requester gets an ERROR agent_unavailable at once instead
  /// of waiting for its timeout. Bounded (max_open_requests; beyond, a request just times out).
  std::map<std::pair<std::string, std::uint64_t>, clock_type::time_point> open_requests;
  codec::encoder enc{[] {
    codec::encoder_options o;
    o.pool_strings = false;
    return o;
  }()};
  codec::decoder dec{[] {
    codec::decoder_options o;
    o.verify_checksum = false; // checked at the edge where it entered the cluster; BASP rides on TCP
    return o;
  }()};
  bool torn = false;
  static inline const char* name = "flowbus.link";
};
using link_actor = caf::stateful_actor<link_state>;

std::shared_ptr<endpoint> make_endpoint(link_actor* self, std::string name, std::size_t capacity) {
  node::impl* core = self->state.core;
  auto bell = std::make_shared<actor_doorbell>(actor_doorbell{caf::actor_cast<caf::weak_actor_ptr>(self)});
  auto ep = std::make_shared<endpoint>(core->next_link_id.fetch_add(1), std::move(name), std::string(),
                                       std::vector<std::string>{}, capacity, &actor_doorbell::ring, std::move(bell),
                                       &core->dead);
  ep->set_remote();
  // senders of lossless traffic hold at the high water mark instead of overrunning the link
  const scheduling::lane_options marks;
  const auto at = [&](double f) { return static_cast<std::uint64_t>(f * static_cast<double>(ep->capacity())); };
  ep->water_marks(at(marks.high), at(marks.low));
  return ep;
}

/// An acknowledged send waiting for this link (send_options::confirm) learns how its frame fared.
/// Before the frame is let go: its buffer is the key.
void confirm(node::impl* core, const scheduling::buffer_ref& f, errc e) {
  if (!core->confirmations.idle()) core->confirmations.settle(f.data(), e);
}

errc errc_of(dead_reason why) noexcept {
  return why == dead_reason::shutdown ? errc::node_stopped
         : why == dead_reason::overflow ? errc::mailbox_full
                                        : errc::agent_unavailable;
}

void dead_letter(link_actor* self, std::vector<scheduling::buffer_ref>& frames, std::size_t from, dead_reason why) {
  auto& st = self->state;
  for (std::size_t i = from; i < frames.size(); ++i) {
    confirm(st.core, frames[i], errc_of(why));
    st.core->dead.add(why, std::move(frames[i]), node_recipient(st.peer));
  }
  st.stats->dead += frames.size() - from;
  st.core->cluster_dead += frames.size() - from;
}

void flush(link_actor* self);

/// A request crosses to the peer: remembered until its reply comes back (or the link goes).
void note_request(link_actor* self, const scheduling::buffer_ref& f) {
  auto& st = self->state;
  codec::message m;
  if (st.dec.decode(codec::bytes_view(f.data(), f.size()), m).code != codec::errc::ok) return;
  const std::string_view requester = m.str(codec::field::reply_to);
  if (requester.empty()) return;
  const auto now = clock_type::now();
  if (st.open_requests.size() >= max_open_requests) // answered elsewhere or timed out long ago
    for (auto it = st.open_requests.begin(); it != st.open_requests.end();)
      it = now - it->second > open_request_age ? st.open_requests.erase(it) : std::next(it);
  if (st.open_requests.size() < max_open_requests)
    st.open_requests[{std::string(requester), m.correlation_id()}] = now;
}

/// The link is lost: every request still open across it fails at once (ERROR agent_unavailable to
/// its requester, as the node answers a request nobody can take) instead of at its timeout.
void fail_open_requests(link_actor* self) {
  auto& st = self->state;
  node::impl* core = st.core;
  const std::string source = node_recipient(st.peer);
  for (const auto& [key, when] : st.open_requests) {
    codec::message e;
    e.type = codec::msg_type::error;
    e.prio = codec::priority::high;
    e.timestamp_ns = codec::wall_clock_ns();
    e.set(codec::field::target, key.first);
    e.set(codec::field::source, source);
    e.set(codec::field::correlation_id, key.second);
    e.set(codec::field::error_code, wire_code(errc::agent_unavailable));
    scheduling::buffer_ref b = core->pool.try_acquire(st.enc.literal_size(e));
    if (!b) b = core->critical_pool.try_acquire(st.enc.literal_size(e));
    if (!b) continue; // the request then ends at its timeout
    const codec::encode_result r = st.enc.encode(e, b.data(), b.capacity());
    if (!r) continue;
    b.set_size(r.size);
    core->routes.read([&](const routing_table& t) {
      if (endpoint* ep = t.local_agent(key.first)) (void)ep->push(b); // a gone requester needs no answer
    });
  }
  st.open_requests.clear();
}

void acked(link_actor* self, std::uint64_t id, std::uint32_t accepted) {
  auto& st = self->state;
  const auto it = st.in_flight.find(id);
  if (it == st.in_flight.end()) return;
  batch& b = it->second;
  st.stats->rtt_us = static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::microseconds>(clock_type::now() - b.sent).count());
  st.stats->unacked -= b.frames.size();
  st.core->cluster_acked += std::min<std::size_t>(accepted, b.frames.size());
  for (std::size_t i = 0; i < accepted && i < b.frames.size(); ++i)
    confirm(st.core, b.frames[i], errc::ok);
  // the peer takes frames in order and stops at the first it has no buffer for
  if (accepted < b.frames.size()) dead_letter(self, b.frames, accepted, dead_reason::overflow);
  st.in_flight.erase(it);
  flush(self);
}

void failed(link_actor* self, std::uint64_t id, const caf::error& e) {
  auto& st = self->state;
  const auto it = st.in_flight.find(id);
  if (it == st.in_flight.end()) return;
  spdlog::warn("flowbus cluster: a batch of {} frames to node {} failed ({}): dead-lettered",
               it->second.frames.size(), st.peer, to_string(e));
  st.stats->unacked -= it->second.frames.size();
  dead_letter(self, it->second.frames, 0, dead_reason::agent_unavailable);
  st.in_flight.erase(it);
}

/// Sends what the link endpoints hold, batch by batch, while the window allows.
void flush(link_actor* self) {
  auto& st = self->state;
  if (!st.remote || st.torn) return; // drained once the peer's link is known
  const cluster_config& cfg = st.core->cfg.cluster;
  while (st.in_flight.size() < cfg.batches_in_flight) {
    std::vector<scheduling::buffer_ref> frames;
    std::vector<std::uint16_t> tags;
    std::vector<std::string> keys;
    bool more = false;
    auto take = [&](endpoint& ep, std::uint16_t tag) {
      const std::size_t room = cfg.batch_frames - frames.size();
      if (room == 0) {
        more = true;
        return std::size_t{0};
      }
      const auto r = ep.drain(
          [&](scheduling::buffer_ref&& f) {
            frames.push_back(std::move(f));
            tags.push_back(tag);
          },
          room);
      more = more || r.more;
      return r.count;
    };
    take(*st.main, 0);
    for (const auto& [key, ep] : st.groups)
      if (take(*ep, static_cast<std::uint16_t>(keys.size() + 1)) > 0) keys.push_back(key);
    if (frames.empty()) return;
    for (const auto& f : frames)
      if (f.size() > codec::offset::type &&
          static_cast<codec::msg_type>(f.data()[codec::offset::type]) == codec::msg_type::request)
        note_request(self, f);
    wire::batch_writer w(keys);
    for (std::size_t i = 0; i < frames.size(); ++i)
      w.add(tags[i], frames[i].data(), frames[i].size());
    const std::uint64_t id = st.next_batch++;
    st.stats->frames_out += frames.size();
    st.stats->unacked += frames.size();
    st.in_flight.emplace(id, batch{std::move(frames), clock_type::now()});
    // generous: a slow but live peer must not see its frames dead-lettered (and then replayed twice)
    const auto timeout = std::max<std::chrono::milliseconds>(std::chrono::seconds(10), 4 * cfg.connection_timeout);
    self->request(st.remote, timeout, frames_atom::value, std::move(w.bytes()))
        .then([=](std::uint32_t accepted) { acked(self, id, accepted); },
              [=](caf::error& e) { failed(self, id, e); });
    if (!more) return;
  }
}

/// Delivers one frame from the peer to this node's agents (never to another link).
void deliver(link_actor* self, scheduling::buffer_ref frame, std::string_view group) {
  auto& st = self->state;
  node::impl* core = st.core;
  codec::message m;
  if (st.dec.decode(codec::bytes_view(frame.data(), frame.size()), m).code != codec::errc::ok) {
    core->dead.add(dead_reason::corruption, std::move(frame), node_recipient(st.peer));
    return;
  }
  if (m.deadline_ns() && codec::wall_clock_ns() > m.deadline_ns()) {
    core->dead.add(dead_reason::expired, std::move(frame), node_recipient(core->cfg.cluster.name));
    return;
  }
  if (m.type == codec::msg_type::reply && !st.open_requests.empty())
    st.open_requests.erase({std::string(m.str(codec::field::target)), m.correlation_id()});
  detail::port& p = *st.port;
  auto one = [&](endpoint* ep, std::string_view missing) {
    if (ep)
      p.push(*ep, frame);
    else
      core->dead.add(dead_reason::agent_unavailable, frame, std::string(missing));
  };
  if (!group.empty()) {
    core->routes.read([&](const routing_table& t) {
      const member_set* g = t.group(group);
      one(g ? pick_local(*g) : nullptr, m.topic());
    });
  } else if (m.flags & codec::flag::broadcast) {
    core->routes.read([&](const routing_table& t) {
      t.for_each_agent(m.str(codec::field::agent_type), [&](endpoint& ep) { p.push(ep, frame); });
    });
  } else if (!m.topic().empty()) {
    if (const route* r = p.resolve(m.topic()))
      for (const auto& ep : r->direct)
        if (!ep->remote()) p.push(*ep, frame);
  } else if (const std::string_view target = m.str(codec::field::target); !target.empty()) {
    core->routes.read([&](const routing_table& t) { one(t.local_agent(target), target); });
  } else {
    for (const codec::repeated_entry& e : m.repeated)
      if (e.id == codec::field::capability) {
        core->routes.read([&](const routing_table& t) {
          const member_set* s = t.capable(e.key);
          one(s ? pick_local(*s) : nullptr, "capability:" + std::string(e.key));
        });
        return;
      }
    core->dead.add(dead_reason::agent_unavailable, std::move(frame), node_recipient(core->cfg.cluster.name));
  }
}

/// The peer's interest changed: its endpoints join or leave the routing table's subscriptions.
void apply_interest(link_actor* self, const std::vector<std::string>& pairs, bool add) {
  auto& st = self->state;
  node::impl* core = st.core;
  std::vector<std::shared_ptr<endpoint>> fresh, gone; // group endpoints created or dropped
  std::vector<std::pair<std::size_t, std::shared_ptr<endpoint>>> targets;
  for (std::size_t i = 0; i + 1 < pairs.size(); i += 2) {
    if (validate_pattern(pairs[i]) != topic_errc::ok) {
      spdlog::warn("flowbus cluster: node {} announced an invalid pattern '{}': ignored", st.peer, pairs[i]);
      continue;
    }
    if (pairs[i + 1].empty()) {
      targets.emplace_back(i, st.main);
      continue;
    }
    std::string key = pairs[i] + '\x1f' + pairs[i + 1];
    auto g = st.groups.find(key);
    std::shared_ptr<endpoint> ep;
    if (g != st.groups.end()) {
      ep = g->second;
      if (!add) {
        gone.push_back(ep);
        st.groups.erase(g);
      }
    } else if (add) {
      ep = make_endpoint(self, node_recipient(st.peer) + "/" + pairs[i + 1], core->cfg.mailbox_capacity);
      st.groups.emplace(std::move(key), ep);
      fresh.push_back(ep);
    } else {
      continue;
    }
    targets.emplace_back(i, std::move(ep));
  }
  core->routes.modify([&](routing_table& t) {
    for (const auto& ep : fresh)
      t.add_peer(ep, false);
    for (const auto& [i, ep] : targets) {
      if (add && pairs[i + 1].empty())
        t.subscribe(pairs[i], ep->id());
      else if (add)
        t.subscribe_group(pairs[i], pairs[i + 1], balance::round_robin, ep->id());
      else
        t.unsubscribe(pairs[i], pairs[i + 1], ep->id());
    }
    for (const auto& ep : gone)
      t.remove_peer(ep->id());
  });
  const std::int64_t n = static_cast<std::int64_t>(targets.size());
  st.stats->interest += static_cast<std::uint64_t>(add ? n : -n);
  for (const auto& ep : gone) { // what was queued for the group on that node has nowhere to go
    ep->close();
    ep->drain(
        [&](scheduling::buffer_ref&& f) {
          confirm(core, f, errc::agent_unavailable);
          core->dead.add(dead_reason::agent_unavailable, std::move(f), ep->agent_id());
        },
        ~std::size_t{0});
  }
}

void apply_agents(link_actor* self, const std::vector<std::string>& entries, bool add) {
  auto& st = self->state;
  std::string id;
  std::vector<std::string> caps;
  std::int64_t changed = 0;
  st.core->routes.modify([&](routing_table& t) {
    changed = 0;
    for (const std::string& e : entries) {
      if (!parse_agent_entry(e, id, caps)) continue;
      if (add)
        changed += t.add_remote_agent(id, caps, st.main->id()) ? 1 : 0;
      else {
        const bool had = t.remote_agent(id) == st.main.get();
        t.remove_remote_agent(id, st.main->id());
        changed -= had ? 1 : 0;
      }
    }
  });
  st.stats->remote_agents += static_cast<std::uint64_t>(changed);
}

/// The link is gone (peer down, replaced, node stopping): nothing routes to the peer any more, and
/// every frame queued for it or unacknowledged goes to the dead letters.
void tear_down(link_actor* self, dead_reason why) {
  auto& st = self->state;
  if (st.torn) return;
  st.torn = true;
  st.stats->up = false;
  node::impl* core = st.core;
  core->routes.modify([&](routing_table& t) {
    for (const auto& [key, ep] : st.groups)
      t.remove_peer(ep->id());
    t.remove_peer(st.main->id());
  });
  std::uint64_t n = 0;
  auto drop = [&](endpoint& ep) {
    ep.close();
    n += ep.drain(
              [&](scheduling::buffer_ref&& f) {
                confirm(core, f, errc_of(why));
                core->dead.add(why, std::move(f), ep.agent_id());
              },
              ~std::size_t{0})
             .count;
  };
  drop(*st.main);
  for (const auto& [key, ep] : st.groups)
    drop(*ep);
  st.stats->dead += n;
  core->cluster_dead += n;
  for (auto& [id, b] : st.in_flight) {
    st.stats->unacked -= b.frames.size();
    dead_letter(self, b.frames, 0, why);
  }
  st.in_flight.clear();
  if (why != dead_reason::shutdown) fail_open_requests(self);
  st.open_requests.clear();
  st.stats->remote_agents = 0;
  st.stats->interest = 0;
}

void become_up(link_actor* self, caf::actor remote) {
  auto& st = self->state;
  st.remote = std::move(remote);
  self->monitor(st.remote);
  st.stats->up = true;
  self->send(st.cluster, link_up_atom::value, st.peer);
  flush(self);
}

caf::behavior link(link_actor* self, node::impl* core, caf::actor cluster, std::string peer, caf::actor remote,
                   std::shared_ptr<link_stats> stats) {
  auto& st = self->state;
  st.core = core;
  st.peer = std::move(peer);
  st.cluster = std::move(cluster);
  st.stats = std::move(stats);
  st.main = make_endpoint(self, node_recipient(st.peer), core->cfg.cluster.link_capacity);
  {
    std::lock_guard<std::mutex> g(core->peers_m); // node::peers() reads its backlog
    st.stats->main = st.main;
  }
  st.port = std::make_unique<detail::port>(core, nullptr, st.main, codec::priority::normal);
  core->routes.modify([&](routing_table& t) { t.add_peer(st.main, true); });
  self->set_default_handler(caf::drop);
  self->set_down_handler([=](caf::down_msg& dm) {
    if (dm.source != self->state.remote.address()) return;
    if (dm.reason == caf::exit_reason::normal) { // it stopped (shutdown) or replaced this link
      spdlog::info("flowbus cluster: node {} closed its link", self->state.peer);
    } else {
      spdlog::warn("flowbus cluster: link to node {} lost ({})", self->state.peer, to_string(dm.reason));
      ++self->state.core->links_lost;
    }
    tear_down(self, dead_reason::agent_unavailable);
    self->send(self->state.cluster, link_down_atom::value, self->state.peer, to_string(dm.reason));
    self->quit();
  });
  if (remote) become_up(self, std::move(remote));
  return {
      [=](remote_atom, caf::actor r) {
        if (!self->state.remote) become_up(self, std::move(r));
      },
      [=](drain_atom) { flush(self); },
      [=](frames_atom, const std::vector<char>& bytes) -> std::uint32_t {
        auto& s = self->state;
        wire::batch_reader r(bytes);
        std::string_view f, g;
        std::uint32_t n = 0;
        while (r.next(f, g)) {
          scheduling::buffer_ref b = core->pool.try_acquire(f.size());
          if (!b) b = core->critical_pool.try_acquire(f.size());
          if (!b) break; // the sender dead-letters the rest (overflow, naming this node)
          std::memcpy(b.data(), f.data(), f.size());
          b.set_size(f.size());
          deliver(self, std::move(b), g);
          ++n;
        }
        if (!r.ok()) spdlog::error("flowbus cluster: a malformed batch from node {}: {} frames taken", s.peer, n);
        s.stats->frames_in += n;
        core->cluster_in += n;
        return n;
      },
      [=](rinterest_atom, const std::vector<std::string>& pairs, bool add) { apply_interest(self, pairs, add); },
      [=](ragent_atom, const std::vector<std::string>& entries, bool add) { apply_agents(self, entries, add); },
      // from this node's cluster actor: forwarded to the peer
      [=](snapshot_atom, std::vector<std::string>& interest, std::vector<std::string>& agents) {
        if (!interest.empty()) self->send(self->state.remote, rinterest_atom::value, std::move(interest), true);
        if (!agents.empty()) self->send(self->state.remote, ragent_atom::value, std::move(agents), true);
      },
      [=](interest_atom, const std::string& pattern, const std::string& group, bool add) {
        self->send(self->state.remote, rinterest_atom::value, std::vector<std::string>{pattern, group}, add);
      },
      [=](lagent_atom, const std::string& entry, bool add) {
        self->send(self->state.remote, ragent_atom::value, std::vector<std::string>{entry}, add);
      },
      [=](stop_atom, std::uint8_t why) {
        tear_down(self, static_cast<dead_reason>(why));
        self->quit();
      },
  };
}

} // namespace

caf::actor spawn_link(node::impl* core, caf::actor cluster, std::string peer, caf::actor remote,
                      std::shared_ptr<link_stats> stats) {
  return core->sys->spawn(link, core, std::move(cluster), std::move(peer), std::move(remote), std::move(stats));
}

} // namespace flowbus::actors
