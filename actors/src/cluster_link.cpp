// A link to one other node: the frames this node's senders route to it, sent in batches; the
// frames it sends, delivered here; its interest and agents, kept in the routing table.
//
// Outbound. The peer is reached through link endpoints in the routing table: `main` (subscribed
// to the peer's plain interest, serving its agents and capabilities, taking broadcasts) and one
// per queue group the peer has members in. Senders push into them like into any agent's mailbox;
// the push that finds the link idle rings its doorbell, and that sender's own thread drains the
// endpoints into batches and hands them to the middleman (link_data::kick) — one CAF message each,
// tagged with which group a frame was picked for — with at most batches_in_flight unacknowledged.
// The peer answers each batch with how many frames it took (acked_atom), so a frame that does not
// arrive (the link dies, the peer runs out of buffers, no answer in time) is dead-lettered here
// with the peer named, never lost without a record.
//
// Inbound. A batch from the peer is taken on the middleman's thread as it arrives (the link actor's
// enqueue(), not its mailbox) and delivered to this node's agents only — local subscribers, a local
// member of the group it was picked for, the local agent it names — never to another link: one
// hop in a full mesh, so no loops. A frame whose deadline passed is dead-lettered here, naming
// this node.
//
// The link actor keeps the control part in its mailbox: the peer's interest and agents, this
// node's changes for the peer, the peer's failure (a down message), stop.
#include "cluster_impl.hpp"
#include "cluster_wire.hpp"
#include "port.hpp"

#include <flowbus/codec/clock.hpp>
#include <flowbus/codec/encoder.hpp>
#include <flowbus/codec/trace.hpp>
#include <flowbus/scheduling/fixed_rate.hpp>
#include <flowbus/scheduling/lanes.hpp>

#include <caf/event_based_actor.hpp>
#include <caf/send.hpp>

#include <spdlog/spdlog.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <map>
#include <mutex>
#include <optional>
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
constexpr auto tick_period = std::chrono::seconds(1);      ///< how often unanswered batches are looked at
/// A batch with a frame for a held recipient (a lossless topic's subscriber above its high water
/// mark) is answered once the recipient is down to its low mark — at most this late (the sending
/// node gives a batch up after 10 s)
constexpr auto max_ack_hold = std::chrono::seconds(5);
constexpr auto hold_poll = std::chrono::milliseconds(1); ///< how often a held answer looks again

struct batch {
  std::vector<scheduling::buffer_ref> frames;
  clock_type::time_point sent;
};

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

/// The link's data path, shared by the threads that call in: a sender whose push rings a link
/// endpoint's doorbell sends the batch itself (kick), the middleman's thread hands in the peer's
/// batches and acknowledgements (link_actor::enqueue), the link actor does the control part
/// (interest, agents, failure). One mutex guards it all; a sender never waits for it (try_lock:
/// the holder sends what was rung for before it lets go).
class link_data {
public:
  link_data(node::impl* core, std::string peer, std::shared_ptr<link_stats> stats)
      : core_(core), peer_(std::move(peer)), stats_(std::move(stats)) {}

  /// Called once from the link actor before anything else: the endpoints and the sender identity.
  void start(std::shared_ptr<link_data> me, caf::weak_actor_ptr self) {
    self_ = std::move(self);
    bell_ = std::make_shared<bell>(bell{me});
    main_ = make_endpoint(node_recipient(peer_), core_->cfg.cluster.link_capacity);
    {
      std::lock_guard<std::mutex> g(core_->peers_m); // node::peers() reads its backlog
      stats_->main = main_;
    }
    port_ = std::make_unique<detail::port>(core_, nullptr, main_, codec::priority::normal);
    core_->routes.modify([&](routing_table& t) { t.add_peer(main_, true); });
  }

  /// A link endpoint's doorbell: send what the endpoints hold now, unless another thread holds the
  /// link — then that thread does it before it lets go (it sees `wanted_`). `wanted_` is only ever
  /// read-modify-written: the holder's look after unlocking and this announcement are ordered, so
  /// either the holder sees it or this thread's try_lock sees the mutex free (no fence needed,
  /// which ThreadSanitizer could not follow).
  void kick() noexcept {
    wanted_.fetch_or(1u, std::memory_order_acq_rel);
    for (;;) {
      std::unique_lock<std::mutex> g(m_, std::try_to_lock);
      if (!g) return;
      wanted_.exchange(0u, std::memory_order_acq_rel);
      flush();
      g.unlock();
      if (!wanted_.fetch_or(0u, std::memory_order_acq_rel)) return;
    }
  }

  void up(caf::actor remote) {
    locked([&] {
      remote_ = std::move(remote);
      stats_->up = true;
      flush();
    });
  }

  /// A batch from the peer: delivered to this node's agents; how many frames were taken, or none
  /// once the link is torn down (the peer dead-letters what it has in flight when it sees that).
  /// `hold`: a recipient of a lossless topic is above its high water mark — the answer waits
  /// (hold_answer), so the peer's window fills and its publishers are held, as on one node.
  std::optional<std::uint32_t> take(const std::vector<char>& bytes, bool& hold) {
    std::optional<std::uint32_t> taken;
    locked([&] {
      if (torn_) return;
      wire::batch_reader r(bytes);
      std::string_view f, g;
      std::uint32_t n = 0;
      const std::uint64_t now = scheduling::steady_ns(); // their time in this node starts here
      while (r.next(f, g)) {
        scheduling::buffer_ref b = core_->pool.try_acquire(f.size());
        if (!b) b = core_->critical_pool.try_acquire(f.size());
        if (!b) break; // the sender dead-letters the rest (overflow, naming this node)
        std::memcpy(b.data(), f.data(), f.size());
        b.set_size(f.size());
        b.set_stamp(now);
        deliver(std::move(b), g);
        ++n;
      }
      if (!r.ok()) spdlog::error("flowbus cluster: a malformed batch from node {}: {} frames taken", peer_, n);
      stats_->frames_in += n;
      core_->cluster_in += n;
      taken = n;
      prune_holders();
      hold = !holders_.empty() || !held_.empty(); // (answers keep their order)
    });
    return taken;
  }

  /// Keeps the answer to batch `id` until the held recipients catch up; true if it is the first
  /// one held (the caller then starts polling: release_held).
  bool hold_answer(caf::strong_actor_ptr to, std::uint64_t id, std::uint32_t n) {
    bool first = false;
    locked([&] {
      first = held_.empty();
      held_.push_back(held_answer{std::move(to), id, n, clock_type::now()});
    });
    return first;
  }

  /// Sends the held answers once no held recipient is above its low mark any more (or after
  /// max_ack_hold); true while some are still held.
  bool release_held() {
    std::vector<held_answer> out;
    bool still = false;
    locked([&] {
      prune_holders();
      if (!held_.empty() && !holders_.empty() && clock_type::now() - held_.front().since < max_ack_hold) {
        still = true;
        return;
      }
      holders_.clear();
      out.swap(held_);
    });
    for (held_answer& h : out)
      caf::anon_send(caf::actor_cast<caf::actor>(h.to), acked_atom::value, h.id, h.frames);
    return still;
  }

  /// The peer took the first `accepted` frames of batch `id`.
  void acked(std::uint64_t id, std::uint32_t accepted) {
    locked([&] {
      const auto it = in_flight_.find(id);
      if (it == in_flight_.end()) return;
      batch& b = it->second;
      stats_->rtt_us = static_cast<std::uint64_t>(
          std::chrono::duration_cast<std::chrono::microseconds>(clock_type::now() - b.sent).count());
      stats_->unacked -= b.frames.size();
      core_->cluster_acked += std::min<std::size_t>(accepted, b.frames.size());
      for (std::size_t i = 0; i < accepted && i < b.frames.size(); ++i)
        confirm(core_, b.frames[i], errc::ok);
      // the peer takes frames in order and stops at the first it has no buffer for
      if (accepted < b.frames.size()) dead_letter(b.frames, accepted, dead_reason::overflow);
      in_flight_.erase(it);
      flush();
    });
  }

  /// Batches unanswered for longer than `timeout` are given up: dead-lettered, naming the peer.
  void expire(clock_type::duration timeout) {
    locked([&] {
      const auto now = clock_type::now();
      for (auto it = in_flight_.begin(); it != in_flight_.end();) {
        if (now - it->second.sent < timeout) {
          ++it;
          continue;
        }
        spdlog::warn("flowbus cluster: a batch of {} frames to node {} was not answered: dead-lettered",
                     it->second.frames.size(), peer_);
        stats_->unacked -= it->second.frames.size();
        dead_letter(it->second.frames, 0, dead_reason::agent_unavailable);
        it = in_flight_.erase(it);
      }
      flush();
    });
  }

  void apply_interest(const std::vector<std::string>& pairs, bool add);
  void apply_agents(const std::vector<std::string>& entries, bool add);
  void tear_down(dead_reason why);

private:
  struct bell {
    std::weak_ptr<link_data> data;
    static void ring(void* self) noexcept {
      if (auto d = static_cast<bell*>(self)->data.lock()) d->kick();
    }
  };

  /// Runs f under the lock, then sends what a sender rang for meanwhile.
  template <class F> void locked(F&& f) {
    {
      std::lock_guard<std::mutex> g(m_);
      f();
    }
    if (wanted_.fetch_or(0u, std::memory_order_acq_rel)) kick();
  }

  std::shared_ptr<endpoint> make_endpoint(std::string name, std::size_t capacity) {
    auto ep = std::make_shared<endpoint>(core_->next_link_id.fetch_add(1), std::move(name), std::string(),
                                         std::vector<std::string>{}, capacity, &bell::ring, bell_, &core_->dead);
    ep->set_remote();
    // senders of lossless traffic hold at the high water mark instead of overrunning the link
    const scheduling::lane_options marks;
    const auto at = [&](double f) { return static_cast<std::uint64_t>(f * static_cast<double>(ep->capacity())); };
    ep->water_marks(at(marks.high), at(marks.low));
    return ep;
  }

  void dead_letter(std::vector<scheduling::buffer_ref>& frames, std::size_t from, dead_reason why) {
    for (std::size_t i = from; i < frames.size(); ++i) {
      confirm(core_, frames[i], errc_of(why));
      core_->dead.add(why, std::move(frames[i]), node_recipient(peer_));
    }
    stats_->dead += frames.size() - from;
    core_->cluster_dead += frames.size() - from;
  }

  /// A recipient that should hold the frames' senders: above its high water mark (its consumer
  /// says so), or with an eighth of its mailbox not yet taken by its consumer (a connection moves
  /// frames into its lanes only when its strand runs, and sheds what its lanes cannot take: the
  /// mark may be set late while a link pours in).
  static bool backed_up(const endpoint& ep) noexcept { return ep.throttled() || ep.in_flight() * 8 >= ep.capacity(); }
  static bool caught_up(const endpoint& ep) noexcept { return !ep.throttled() && ep.in_flight() * 16 <= ep.capacity(); }

  /// Drops the held recipients that caught up (down to their low mark) or went away.
  void prune_holders() {
    holders_.erase(std::remove_if(holders_.begin(), holders_.end(),
                                  [](const std::weak_ptr<endpoint>& w) {
                                    const auto ep = w.lock();
                                    return !ep || !ep->open() || caught_up(*ep);
                                  }),
                   holders_.end());
  }

  void flush();
  void drop_queued(dead_reason why);
  void note_request(const scheduling::buffer_ref& f);
  void fail_open_requests();
  void deliver(scheduling::buffer_ref frame, std::string_view group);
  void retrace(scheduling::buffer_ref& frame, codec::message& m);

  node::impl* const core_;
  const std::string peer_;
  const std::shared_ptr<link_stats> stats_;
  caf::weak_actor_ptr self_; ///< the link actor: batches are sent as from it, so acks come back to it
  std::shared_ptr<bell> bell_;
  std::mutex m_;
  std::atomic<unsigned> wanted_{0}; ///< a doorbell rang while another thread held m_
  // under m_ (main_ and port_ are set once, in start())
  caf::actor remote_;
  std::shared_ptr<endpoint> main_;
  std::map<std::string, std::shared_ptr<endpoint>> groups_; ///< key (pattern '\x1f' group) -> its endpoint
  std::unordered_map<std::uint64_t, batch> in_flight_;
  std::uint64_t next_batch_ = 0;
  std::unique_ptr<detail::port> port_; ///< inbound: route cache and pushes with dead-lettering
  /// requests this node's agents sent to the peer and not yet answered: (requester, correlation id)
  /// -> when. If the link is lost, each requester gets an ERROR agent_unavailable at once instead
  /// of waiting for its timeout. Bounded (max_open_requests; beyond, a request just times out).
  std::map<std::pair<std::string, std::uint64_t>, clock_type::time_point> open_requests_;
  struct held_answer {
    caf::strong_actor_ptr to;
    std::uint64_t id;
    std::uint32_t frames;
    clock_type::time_point since;
  };
  std::vector<held_answer> held_;               ///< answers waiting for held recipients, in order
  std::vector<std::weak_ptr<endpoint>> holders_; ///< lossless recipients above their high water mark
  codec::encoder enc_{[] {
    codec::encoder_options o;
    o.pool_strings = false;
    return o;
  }()};
  codec::decoder dec_{codec::stored_frame_decoding()}; // the sending node's stored frames; BASP rides on TCP
  bool torn_ = false;
  dead_reason torn_why_ = dead_reason::agent_unavailable;
};

/// Sends what the link endpoints hold, batch by batch, while the window allows. Under m_.
void link_data::flush() {
  if (torn_) { // a sender that found the endpoint still open as the link went: its frame is accounted too
    drop_queued(torn_why_);
    return;
  }
  if (!remote_) return; // drained once the peer's link is known
  const caf::strong_actor_ptr self = caf::actor_cast<caf::strong_actor_ptr>(self_);
  if (!self) return;
  const cluster_config& cfg = core_->cfg.cluster;
  while (in_flight_.size() < cfg.batches_in_flight) {
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
      ep.catch_up(); // water marks: held senders of lossless traffic go on once it is down to the low one
      more = more || r.more;
      return r.count;
    };
    take(*main_, 0);
    for (const auto& [key, ep] : groups_)
      if (take(*ep, static_cast<std::uint16_t>(keys.size() + 1)) > 0) keys.push_back(key);
    if (frames.empty()) return;
    for (const auto& f : frames)
      if (f.size() > codec::offset::type &&
          static_cast<codec::msg_type>(f.data()[codec::offset::type]) == codec::msg_type::request)
        note_request(f);
    wire::batch_writer w(keys);
    for (std::size_t i = 0; i < frames.size(); ++i)
      w.add(tags[i], frames[i].data(), frames[i].size());
    const std::uint64_t id = next_batch_++;
    stats_->frames_out += frames.size();
    stats_->unacked += frames.size();
    in_flight_.emplace(id, batch{std::move(frames), clock_type::now()});
    remote_->eq_impl(caf::make_message_id(), self, nullptr, frames_atom::value, id, std::move(w.bytes()));
    if (!more) return;
  }
}

/// A request crosses to the peer: remembered until its reply comes back (or the link goes).
void link_data::note_request(const scheduling::buffer_ref& f) {
  codec::message m;
  if (dec_.decode(codec::bytes_view(f.data(), f.size()), m).code != codec::errc::ok) return;
  const std::string_view requester = m.str(codec::field::reply_to);
  if (requester.empty()) return;
  const auto now = clock_type::now();
  if (open_requests_.size() >= max_open_requests) // answered elsewhere or timed out long ago
    for (auto it = open_requests_.begin(); it != open_requests_.end();)
      it = now - it->second > open_request_age ? open_requests_.erase(it) : std::next(it);
  if (open_requests_.size() < max_open_requests) open_requests_[{std::string(requester), m.correlation_id()}] = now;
}

/// The link is lost: every request still open across it fails at once (ERROR agent_unavailable to
/// its requester, as the node answers a request nobody can take) instead of at its timeout.
void link_data::fail_open_requests() {
  const std::string source = node_recipient(peer_);
  for (const auto& [key, when] : open_requests_) {
    codec::message e;
    e.type = codec::msg_type::error;
    e.prio = codec::priority::high;
    e.timestamp_ns = codec::wall_clock_ns();
    e.set(codec::field::target, key.first);
    e.set(codec::field::source, source);
    e.set(codec::field::correlation_id, key.second);
    e.set(codec::field::error_code, wire_code(errc::agent_unavailable));
    scheduling::buffer_ref b = core_->pool.try_acquire(enc_.literal_size(e));
    if (!b) b = core_->critical_pool.try_acquire(enc_.literal_size(e));
    if (!b) continue; // the request then ends at its timeout
    const codec::encode_result r = enc_.encode(e, b.data(), b.capacity());
    if (!r) continue;
    b.set_size(r.size);
    core_->routes.read([&](const routing_table& t) {
      if (endpoint* ep = t.local_agent(key.first)) (void)ep->push(b); // a gone requester needs no answer
    });
  }
  open_requests_.clear();
}

/// A traced frame (codec/trace.hpp) gets this node's arrival as a hop: encoded again with it (a
/// sampled frame is rare); `m` is decoded again from the new frame. Kept as it came if no buffer.
void link_data::retrace(scheduling::buffer_ref& frame, codec::message& m) {
  std::string t(m.str(codec::field::trace));
  if (!codec::valid_trace(t)) t.clear();
  codec::append_hop(t, codec::hop::cluster_in, codec::wall_clock_ns());
  m.set(codec::field::trace, t);
  scheduling::buffer_ref b = core_->pool.try_acquire(enc_.literal_size(m));
  if (!b) return;
  const codec::encode_result r = enc_.encode(m, b.data(), b.capacity());
  if (!r) return;
  b.set_size(r.size);
  b.set_stamp(frame.stamp());
  frame = std::move(b);
  (void)dec_.decode(codec::bytes_view(frame.data(), frame.size()), m);
}

/// Delivers one frame from the peer to this node's agents (never to another link). Under m_.
void link_data::deliver(scheduling::buffer_ref frame, std::string_view group) {
  codec::message m;
  if (dec_.decode(codec::bytes_view(frame.data(), frame.size()), m).code != codec::errc::ok) {
    core_->dead.add(dead_reason::corruption, std::move(frame), node_recipient(peer_));
    return;
  }
  if (m.deadline_ns() && codec::wall_clock_ns() > m.deadline_ns()) {
    core_->dead.add(dead_reason::expired, std::move(frame), node_recipient(core_->cfg.cluster.name));
    return;
  }
  if (m.has(codec::field::trace)) retrace(frame, m);
  if (m.type == codec::msg_type::reply && !open_requests_.empty())
    open_requests_.erase({std::string(m.str(codec::field::target)), m.correlation_id()});
  detail::port& p = *port_;
  auto one = [&](endpoint* ep, std::string_view missing) {
    if (ep)
      p.push(*ep, frame);
    else
      core_->dead.add(dead_reason::agent_unavailable, frame, std::string(missing));
  };
  if (!group.empty()) {
    core_->routes.read([&](const routing_table& t) {
      const member_set* g = t.group(group);
      one(g ? pick_local(*g) : nullptr, m.topic());
    });
  } else if (m.flags & codec::flag::broadcast) {
    core_->routes.read([&](const routing_table& t) {
      t.for_each_agent(m.str(codec::field::agent_type), [&](endpoint& ep) { p.push(ep, frame); });
    });
  } else if (!m.topic().empty()) {
    if (const route* r = p.resolve(m.topic()))
      for (const auto& ep : r->direct) {
        if (ep->remote()) continue;
        p.push(*ep, frame);
        if (r->lossless && backed_up(*ep) &&
            std::none_of(holders_.begin(), holders_.end(), [&](const auto& w) { return w.lock() == ep; }))
          holders_.push_back(ep);
      }
  } else if (const std::string_view target = m.str(codec::field::target); !target.empty()) {
    core_->routes.read([&](const routing_table& t) { one(t.local_agent(target), target); });
  } else {
    for (const codec::repeated_entry& e : m.repeated)
      if (e.id == codec::field::capability) {
        core_->routes.read([&](const routing_table& t) {
          const member_set* s = t.capable(e.key);
          one(s ? pick_local(*s) : nullptr, "capability:" + std::string(e.key));
        });
        return;
      }
    core_->dead.add(dead_reason::agent_unavailable, std::move(frame), node_recipient(core_->cfg.cluster.name));
  }
}

/// The peer's interest changed: its endpoints join or leave the routing table's subscriptions.
void link_data::apply_interest(const std::vector<std::string>& pairs, bool add) {
  std::vector<std::shared_ptr<endpoint>> gone; // group endpoints dropped
  locked([&] {
    if (torn_) return;
    std::vector<std::shared_ptr<endpoint>> fresh; // group endpoints created
    std::vector<std::pair<std::size_t, std::shared_ptr<endpoint>>> targets;
    for (std::size_t i = 0; i + 1 < pairs.size(); i += 2) {
      if (validate_pattern(pairs[i]) != topic_errc::ok) {
        spdlog::warn("flowbus cluster: node {} announced an invalid pattern '{}': ignored", peer_, pairs[i]);
        continue;
      }
      if (pairs[i + 1].empty()) {
        targets.emplace_back(i, main_);
        continue;
      }
      std::string key = pairs[i] + '\x1f' + pairs[i + 1];
      auto g = groups_.find(key);
      std::shared_ptr<endpoint> ep;
      if (g != groups_.end()) {
        ep = g->second;
        if (!add) {
          gone.push_back(ep);
          groups_.erase(g);
        }
      } else if (add) {
        ep = make_endpoint(node_recipient(peer_) + "/" + pairs[i + 1], core_->cfg.mailbox_capacity);
        groups_.emplace(std::move(key), ep);
        fresh.push_back(ep);
      } else {
        continue;
      }
      targets.emplace_back(i, std::move(ep));
    }
    core_->routes.modify([&](routing_table& t) {
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
    stats_->interest += static_cast<std::uint64_t>(add ? n : -n);
  });
  // what was queued for the group on that node has nowhere to go; no sender drains these any more
  // (gone from groups_ and the routing table), so no lock is needed
  for (const auto& ep : gone) {
    ep->close();
    ep->drain(
        [&](scheduling::buffer_ref&& f) {
          confirm(core_, f, errc::agent_unavailable);
          core_->dead.add(dead_reason::agent_unavailable, std::move(f), ep->agent_id());
        },
        ~std::size_t{0});
  }
}

void link_data::apply_agents(const std::vector<std::string>& entries, bool add) {
  std::string id;
  std::vector<std::string> caps;
  std::int64_t changed = 0;
  std::vector<std::string> both; // ids live here too: the directory settles which node keeps them
  locked([&] {
    if (torn_) return;
    core_->routes.modify([&](routing_table& t) {
      changed = 0;
      both.clear();
      for (const std::string& e : entries) {
        if (!parse_agent_entry(e, id, caps)) continue;
        if (add && t.local_agent(id)) both.push_back(id);
        if (add)
          changed += t.add_remote_agent(id, caps, main_->id()) ? 1 : 0;
        else {
          const bool had = t.remote_agent(id) == main_.get();
          t.remove_remote_agent(id, main_->id());
          changed -= had ? 1 : 0;
        }
      }
    });
  });
  stats_->remote_agents += static_cast<std::uint64_t>(changed);
  for (const std::string& i : both)
    caf::anon_send(core_->dir, duplicate_atom::value, i, peer_);
}

/// Closes the link endpoints and dead-letters what they hold (each acknowledged send told why).
/// Under m_.
void link_data::drop_queued(dead_reason why) {
  std::uint64_t n = 0;
  auto drop = [&](endpoint& ep) {
    ep.close();
    n += ep.drain(
              [&](scheduling::buffer_ref&& f) {
                confirm(core_, f, errc_of(why));
                core_->dead.add(why, std::move(f), ep.agent_id());
              },
              ~std::size_t{0})
             .count;
  };
  drop(*main_);
  for (const auto& [key, ep] : groups_)
    drop(*ep);
  stats_->dead += n;
  core_->cluster_dead += n;
}

/// The link is gone (peer down, replaced, node stopping): nothing routes to the peer any more, and
/// every frame queued for it or unacknowledged goes to the dead letters.
void link_data::tear_down(dead_reason why) {
  locked([&] { // (then a sender that rang meanwhile gets its frame dead-lettered and answered: flush)
    if (torn_) return;
    torn_ = true;
    stats_->up = false;
    core_->routes.modify([&](routing_table& t) {
      for (const auto& [key, ep] : groups_)
        t.remove_peer(ep->id());
      t.remove_peer(main_->id());
    });
    torn_why_ = why;
    drop_queued(why);
    for (auto& [id, b] : in_flight_) {
      stats_->unacked -= b.frames.size();
      dead_letter(b.frames, 0, why);
    }
    in_flight_.clear();
    held_.clear(); // the peer dead-letters what it had in flight when it sees the link go
    holders_.clear();
    if (why != dead_reason::shutdown) fail_open_requests();
    open_requests_.clear();
    stats_->remote_agents = 0;
    stats_->interest = 0;
    remote_ = caf::actor();
  });
}

/// The link actor: control in its mailbox, the data path (the peer's batches and acknowledgements)
/// taken in enqueue() on the calling thread — the middleman's — without a trip through the
/// scheduler (docs/architecture.md: one wake-up less on each side of a hop).
class link_actor final : public caf::event_based_actor {
public:
  link_actor(caf::actor_config& cfg, node::impl* core, caf::actor cluster, std::string peer, caf::actor remote,
             std::shared_ptr<link_stats> stats)
      : caf::event_based_actor(cfg), core_(core), cluster_(std::move(cluster)), peer_(std::move(peer)),
        first_remote_(std::move(remote)), data_(std::make_shared<link_data>(core, peer_, std::move(stats))) {}

  const char* name() const override { return "flowbus.link"; }

  void enqueue(caf::mailbox_element_ptr what, caf::execution_unit* host) override {
    caf::type_erased_tuple& c = what->content();
    if (c.match_elements<frames_atom, std::uint64_t, std::vector<char>>()) {
      bool hold = false;
      const std::optional<std::uint32_t> n = data_->take(c.get_as<std::vector<char>>(2), hold);
      if (!n || !what->sender) return;
      const std::uint64_t id = c.get_as<std::uint64_t>(1);
      if (!hold)
        caf::anon_send(caf::actor_cast<caf::actor>(what->sender), acked_atom::value, id, *n);
      else if (data_->hold_answer(what->sender, id, *n)) // the first held: the actor polls until it goes
        caf::anon_send(caf::actor_cast<caf::actor>(ctrl()), hold_atom::value);
      return;
    }
    if (c.match_elements<acked_atom, std::uint64_t, std::uint32_t>()) {
      data_->acked(c.get_as<std::uint64_t>(1), c.get_as<std::uint32_t>(2));
      return;
    }
    caf::event_based_actor::enqueue(std::move(what), host);
  }

  /// Lets go of the handles it holds (the cluster actor holds this one: a cycle otherwise, as a
  /// stateful actor's state would be destroyed here).
  void on_exit() override {
    cluster_ = caf::actor();
    first_remote_ = caf::actor();
    remote_ = caf::actor();
  }

  caf::behavior make_behavior() override {
    data_->start(data_, caf::actor_cast<caf::weak_actor_ptr>(this));
    set_default_handler(caf::drop);
    set_down_handler([this](caf::down_msg& dm) {
      if (dm.source != remote_.address()) return;
      if (dm.reason == caf::exit_reason::normal) { // it stopped (shutdown) or replaced this link
        spdlog::info("flowbus cluster: node {} closed its link", peer_);
      } else {
        spdlog::warn("flowbus cluster: link to node {} lost ({})", peer_, to_string(dm.reason));
        ++core_->links_lost;
      }
      data_->tear_down(dead_reason::agent_unavailable);
      send(cluster_, link_down_atom::value, peer_, to_string(dm.reason));
      quit();
    });
    if (first_remote_) become_up(std::move(first_remote_));
    delayed_send(this, tick_period, ltick_atom::value);
    return {
        [this](remote_atom, caf::actor r) {
          if (!remote_) become_up(std::move(r));
        },
        [this](ltick_atom) {
          // generous: a slow but live peer must not see its frames dead-lettered (and then replayed twice)
          const auto timeout =
              std::max<std::chrono::milliseconds>(std::chrono::seconds(10), 4 * core_->cfg.cluster.connection_timeout);
          data_->expire(timeout);
          delayed_send(this, tick_period, ltick_atom::value);
        },
        [this](hold_atom) {
          if (data_->release_held()) delayed_send(this, hold_poll, hold_atom::value);
        },
        [this](rinterest_atom, const std::vector<std::string>& pairs, bool add) { data_->apply_interest(pairs, add); },
        [this](ragent_atom, const std::vector<std::string>& entries, bool add) { data_->apply_agents(entries, add); },
        // from this node's cluster actor: forwarded to the peer
        [this](snapshot_atom, std::vector<std::string>& interest, std::vector<std::string>& agents) {
          if (!interest.empty()) send(remote_, rinterest_atom::value, std::move(interest), true);
          if (!agents.empty()) send(remote_, ragent_atom::value, std::move(agents), true);
        },
        [this](interest_atom, const std::string& pattern, const std::string& group, bool add) {
          send(remote_, rinterest_atom::value, std::vector<std::string>{pattern, group}, add);
        },
        [this](lagent_atom, const std::string& entry, bool add) {
          send(remote_, ragent_atom::value, std::vector<std::string>{entry}, add);
        },
        [this](stop_atom, std::uint8_t why) {
          data_->tear_down(static_cast<dead_reason>(why));
          quit();
        },
    };
  }

private:
  void become_up(caf::actor remote) {
    remote_ = remote;
    monitor(remote_);
    send(cluster_, link_up_atom::value, peer_);
    data_->up(std::move(remote));
  }

  node::impl* const core_;
  caf::actor cluster_;
  const std::string peer_;
  caf::actor first_remote_; ///< the peer's link when this side answered (spawn_link); else remote_atom brings it
  caf::actor remote_;       ///< the peer's link actor, once known (the actor's copy; data_ has its own)
  const std::shared_ptr<link_data> data_;
};

} // namespace

caf::actor spawn_link(node::impl* core, caf::actor cluster, std::string peer, caf::actor remote,
                      std::shared_ptr<link_stats> stats) {
  return core->sys->spawn<link_actor>(core, std::move(cluster), std::move(peer), std::move(remote), std::move(stats));
}

} // namespace flowbus::actors
