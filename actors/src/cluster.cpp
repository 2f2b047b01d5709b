// The cluster actor: one per node, published on the cluster port. It knows the other nodes —
// by address (whom to dial, with what backoff) and by name (their links) — and this node's
// interest and agents, which it sends to every new link and, as deltas, to all of them.
//
// Membership, as NATS does it: a node dials its --join addresses; each dial that reaches a
// node sends it `hello` (name, advertised address, the addresses it knows, its cluster actor),
// and both sides dial the addresses they did not know, so any one seed is enough for a full
// mesh. A new link's addresses also go to every other peer (`members`), so two nodes that
// joined through the same seed at the same moment still meet. Of two nodes, the one with the
// smaller name sets up their link (spawns its link actor and asks the other for its link actor),
// so a pair that dials each other at once still gets one link. A node that comes back (a new
// cluster actor under a known name) replaces its old link.
//
// Connecting never uses CAF's blocking remote_actor(): the middleman's connect is asked with a
// timeout (a peer that accepts TCP and never answers would hang remote_actor forever). A lost
// peer is redialled with exponential backoff and jitter — forever for --join addresses, a
// bounded number of times for addresses learned from others.
#include "cluster_impl.hpp"

#include <flowbus/scheduling/retry.hpp>

#include <caf/event_based_actor.hpp>
#include <caf/io/middleman.hpp>
#include <caf/openssl/manager.hpp>
#include <caf/openssl/publish.hpp>
#include <caf/send.hpp>
#include <caf/stateful_actor.hpp>

#include <spdlog/spdlog.h>

#include <algorithm>
#include <map>
#include <random>
#include <set>
#include <system_error>

namespace flowbus::actors {

namespace {

constexpr int gossiped_attempts = 20; ///< redials of an address learned from another node

struct address_state {
  enum kind : std::uint8_t { idle, dialing, linked, self } state = idle;
  bool configured = false; ///< from --join: redialled forever
  int attempts = 0;
  bool retry_armed = false;
  std::string name; ///< of the node found there, once known
};

struct peer {
  caf::actor link;
  caf::actor cluster; ///< its cluster actor: a new one under the same name is a restarted node
  std::string address;
  bool up = false;
};

struct cluster_state {
  node::impl* core = nullptr;
  std::string own, advertise; ///< this node's name and address
  std::map<std::string, address_state> addresses;
  std::map<std::string, peer> peers;
  std::set<std::pair<std::string, std::string>> interest; ///< this node's (pattern, group)
  std::map<std::string, std::string> agents;               ///< this node's agents: id -> entry
  std::minstd_rand rng{std::random_device{}()};
  bool stopping = false;
  static inline const char* name = "flowbus.cluster";
};
using cluster_actor = caf::stateful_actor<cluster_state>;

std::vector<std::string> known(const cluster_state& st) {
  std::vector<std::string> out{st.advertise};
  for (const auto& [a, s] : st.addresses)
    if (s.state != address_state::self && a != st.advertise) out.push_back(a);
  return out;
}

bool split(const std::string& address, std::string& host, std::uint16_t& port) {
  const auto colon = address.rfind(':');
  if (colon == std::string::npos || colon == 0) return false;
  host = address.substr(0, colon);
  const long p = std::strtol(address.c_str() + colon + 1, nullptr, 10);
  if (p <= 0 || p > 65535) return false;
  port = static_cast<std::uint16_t>(p);
  return true;
}

void publish_peers(cluster_actor* self) {
  auto& st = self->state;
  std::lock_guard<std::mutex> g(st.core->peers_m);
  for (auto it = st.core->peers.begin(); it != st.core->peers.end();)
    it = st.peers.count(it->first) ? std::next(it) : st.core->peers.erase(it);
}

void retry(cluster_actor* self, const std::string& address) {
  auto& st = self->state;
  auto& a = st.addresses[address];
  if (st.stopping || a.retry_armed || a.state != address_state::idle) return;
  if (!a.configured && a.attempts >= gossiped_attempts) {
    spdlog::info("flowbus cluster: giving up on {} after {} attempts (learned from another node)", address, a.attempts);
    st.addresses.erase(address);
    return;
  }
  // exponential from 100 ms up to max_backoff; the delay is drawn from the ceiling's upper half
  // (jitter that never redials at once)
  ++a.attempts;
  const auto base = scheduling::backoff_ceiling(static_cast<std::uint32_t>(a.attempts), std::chrono::milliseconds(100),
                                                st.core->cfg.cluster.max_backoff)
                        .count();
  const auto wait = base / 2 + static_cast<long long>(st.rng() % static_cast<unsigned long long>(base / 2 + 1));
  a.retry_armed = true;
  self->delayed_send(self, std::chrono::milliseconds(wait), dial_atom::value, address);
}

void dial(cluster_actor* self, const std::string& address);

void learn(cluster_actor* self, const std::vector<std::string>& addresses) {
  auto& st = self->state;
  for (const std::string& a : addresses) {
    std::string host;
    std::uint16_t port = 0;
    if (a == st.advertise || st.addresses.count(a) || !split(a, host, port)) continue;
    st.addresses[a];
    dial(self, a);
  }
}

/// A new link to `name` (replacing an older one): its actor, registered for node::peers().
caf::actor open_link(cluster_actor* self, const std::string& name, const caf::actor& their_cluster,
                     const std::string& address, caf::actor their_link) {
  auto& st = self->state;
  if (auto p = st.peers.find(name); p != st.peers.end()) { // it came back: the old link goes
    self->send(p->second.link, stop_atom::value, static_cast<std::uint8_t>(dead_reason::agent_unavailable));
    st.peers.erase(p);
  }
  auto stats = std::make_shared<link_stats>();
  caf::actor l = spawn_link(st.core, caf::actor_cast<caf::actor>(self), name, std::move(their_link), stats);
  st.peers[name] = peer{l, their_cluster, address, false};
  std::lock_guard<std::mutex> g(st.core->peers_m);
  st.core->peers[name] = node::impl::peer_entry{address, stats};
  return l;
}

/// This node sets up the link to `name` (the smaller name of the two does).
void initiate(cluster_actor* self, const std::string& name, const caf::actor& their_cluster, const std::string& address) {
  auto& st = self->state;
  if (auto p = st.peers.find(name); p != st.peers.end() && p->second.cluster == their_cluster)
    return; // set up already, or being set up
  caf::actor l = open_link(self, name, their_cluster, address, nullptr);
  self->request(their_cluster, st.core->cfg.cluster.connect_timeout, link_atom::value, st.own, st.advertise, l,
                caf::actor_cast<caf::actor>(self))
      .then(
          [=](caf::actor theirs) {
            if (auto p = self->state.peers.find(name); p != self->state.peers.end() && p->second.link == l)
              self->send(l, remote_atom::value, std::move(theirs));
          },
          [=](caf::error& e) {
            auto& s = self->state;
            if (auto p = s.peers.find(name); p != s.peers.end() && p->second.link == l) {
              spdlog::warn("flowbus cluster: node {} refused a link: {}", name, to_string(e));
              self->send(l, stop_atom::value, static_cast<std::uint8_t>(dead_reason::agent_unavailable));
              s.peers.erase(p);
              publish_peers(self);
              if (auto a = s.addresses.find(address); a != s.addresses.end()) {
                a->second.state = address_state::idle;
                retry(self, address);
              }
            }
          });
}

/// Who dials: the middleman, or with TLS its openssl counterpart (the same interface).
caf::io::middleman_actor middleman_actor(caf::actor_system& sys, const cluster_config& c) {
  return c.tls() ? sys.openssl_manager().actor_handle() : sys.middleman().actor_handle();
}

void dial(cluster_actor* self, const std::string& address) {
  auto& st = self->state;
  auto& a = st.addresses[address];
  a.retry_armed = false;
  if (st.stopping || a.state != address_state::idle) return;
  std::string host;
  std::uint16_t port = 0;
  if (!split(address, host, port)) {
    spdlog::error("flowbus cluster: '{}' is not host:port", address);
    st.addresses.erase(address);
    return;
  }
  a.state = address_state::dialing;
  const int attempt = a.attempts;
  auto mm = middleman_actor(self->system(), st.core->cfg.cluster);
  self->request(mm, st.core->cfg.cluster.connect_timeout, caf::connect_atom::value, host, port)
      .then(
          [=](const caf::node_id& nid, caf::strong_actor_ptr& ptr, const std::set<std::string>&) {
            auto& s = self->state;
            auto& ad = s.addresses[address];
            if (nid == self->system().node()) {
              ad.state = address_state::self; // our own address, under another spelling
              return;
            }
            if (!ptr) { // a node, but nothing published there
              ad.state = address_state::idle;
              retry(self, address);
              return;
            }
            auto theirs = caf::actor_cast<caf::actor>(ptr);
            self->request(theirs, s.core->cfg.cluster.connect_timeout, hello_atom::value, s.own, s.advertise, known(s),
                          caf::actor_cast<caf::actor>(self))
                .then(
                    [=](const std::string& name, const std::string& their_address, const std::vector<std::string>& members) {
                      auto& s2 = self->state;
                      auto& ad2 = s2.addresses[address];
                      ad2.name = name;
                      ad2.state = address_state::linked; // a link to `name` is up or being set up
                      learn(self, members);
                      if (s2.own < name) initiate(self, name, theirs, their_address);
                      self->delayed_send(self, 2 * s2.core->cfg.cluster.connect_timeout, check_atom::value, address, attempt);
                    },
                    [=](caf::error& e) {
                      spdlog::warn("flowbus cluster: {} refused this node: {}", address, to_string(e));
                      self->state.addresses[address].state = address_state::idle;
                      retry(self, address);
                    });
          },
          [=](caf::error& e) {
            spdlog::debug("flowbus cluster: cannot reach {}: {}", address, to_string(e));
            self->state.addresses[address].state = address_state::idle;
            retry(self, address);
          });
}

/// The interest and agents a new link announces to its peer.
void send_snapshot(cluster_actor* self, const caf::actor& link) {
  auto& st = self->state;
  std::vector<std::string> interest, agents;
  interest.reserve(2 * st.interest.size());
  for (const auto& [pattern, group] : st.interest) {
    interest.push_back(pattern);
    interest.push_back(group);
  }
  for (const auto& [id, entry] : st.agents)
    agents.push_back(entry);
  self->send(link, snapshot_atom::value, std::move(interest), std::move(agents));
}

template <class... Ts> void to_links(cluster_actor* self, const Ts&... xs) {
  for (const auto& [name, p] : self->state.peers)
    if (p.up) self->send(p.link, xs...);
}

caf::behavior cluster(cluster_actor* self, node::impl* core) {
  auto& st = self->state;
  st.core = core;
  st.own = core->cfg.cluster.name;
  self->set_default_handler(caf::drop);
  return {
      [=](start_atom, const std::string& advertise) { // listening now: dial the seeds
        auto& s = self->state;
        s.advertise = advertise;
        for (const std::string& a : s.core->cfg.cluster.join)
          if (a != s.advertise) s.addresses[a].configured = true;
        std::vector<std::string> seeds;
        for (const auto& [a, as] : s.addresses)
          seeds.push_back(a);
        for (const std::string& a : seeds)
          dial(self, a);
      },
      [=](dial_atom, const std::string& address) { dial(self, address); },
      [=](join_atom, const std::string& address) { // node::join: as if it were in cluster_config::join
        auto& s = self->state;
        if (address == s.advertise) return;
        s.addresses[address].configured = true;
        dial(self, address);
      },
      [=](check_atom, const std::string& address, int attempt) {
        // a dial whose hello was answered but no link came up: dial again
        auto& s = self->state;
        auto a = s.addresses.find(address);
        if (a == s.addresses.end() || a->second.attempts != attempt || a->second.state != address_state::linked) return;
        auto p = s.peers.find(a->second.name);
        if (p != s.peers.end() && p->second.up) return;
        a->second.state = address_state::idle;
        retry(self, address);
      },
      [=](hello_atom, const std::string& name, const std::string& address, const std::vector<std::string>& members,
          const caf::actor& theirs) -> caf::result<std::string, std::string, std::vector<std::string>> {
        auto& s = self->state;
        if (s.stopping) return caf::make_error(caf::sec::request_receiver_down);
        if (name == s.own) {
          spdlog::error("flowbus cluster: a node at {} has this node's name '{}': refused", address, name);
          return caf::make_error(caf::sec::invalid_argument, "duplicate node name " + name);
        }
        if (auto [a, fresh] = s.addresses.try_emplace(address); fresh) { // known now: redialled if it goes
          a->second.name = name;
          a->second.state = address_state::linked;
        }
        learn(self, members);
        if (s.own < name) initiate(self, name, theirs, address);
        return {s.own, s.advertise, known(s)};
      },
      [=](link_atom, const std::string& name, const std::string& address, const caf::actor& their_link,
          const caf::actor& theirs) -> caf::result<caf::actor> {
        auto& s = self->state;
        if (s.stopping) return caf::make_error(caf::sec::request_receiver_down);
        if (name == s.own) return caf::make_error(caf::sec::invalid_argument, "duplicate node name " + name);
        return open_link(self, name, theirs, address, their_link);
      },
      [=](link_up_atom, const std::string& name) {
        auto& s = self->state;
        auto p = s.peers.find(name);
        if (p == s.peers.end() || p->second.link != caf::actor_cast<caf::actor>(self->current_sender())) return;
        p->second.up = true;
        spdlog::info("flowbus cluster: linked with node {} at {}", name, p->second.address);
        for (auto& [a, as] : s.addresses)
          if (as.name == name || a == p->second.address) {
            as.name = name;
            as.state = address_state::linked;
            as.attempts = 0;
          }
        send_snapshot(self, p->second.link);
        const std::vector<std::string> all = known(s);
        for (const auto& [n, other] : s.peers) // gossip: the others meet the newcomer
          if (n != name && other.up) self->send(other.cluster, members_atom::value, all);
      },
      [=](link_down_atom, const std::string& name, const std::string& reason) {
        auto& s = self->state;
        auto p = s.peers.find(name);
        if (p == s.peers.end() || p->second.link != caf::actor_cast<caf::actor>(self->current_sender())) return;
        if (reason == "none") // it stopped, or replaced this link
          spdlog::info("flowbus cluster: node {} left: redialling {}", name, p->second.address);
        else
          spdlog::warn("flowbus cluster: node {} is down ({}): redialling {}", name, reason, p->second.address);
        const std::string address = p->second.address;
        s.peers.erase(p);
        publish_peers(self);
        for (auto& [a, as] : s.addresses)
          if (as.name == name && as.state == address_state::linked) {
            as.state = address_state::idle;
            retry(self, a);
          }
        if (!s.addresses.count(address)) {
          s.addresses[address];
          retry(self, address);
        }
      },
      [=](members_atom, const std::vector<std::string>& members) { learn(self, members); },
      [=](interest_atom a, const std::string& pattern, const std::string& group, bool add) {
        auto& s = self->state;
        if (add ? !s.interest.emplace(pattern, group).second : s.interest.erase({pattern, group}) == 0) return;
        to_links(self, a, pattern, group, add);
      },
      [=](lagent_atom a, const std::string& entry, bool add) {
        auto& s = self->state;
        std::string id;
        std::vector<std::string> caps;
        if (!parse_agent_entry(entry, id, caps)) return;
        if (add)
          s.agents[id] = entry;
        else
          s.agents.erase(id);
        to_links(self, a, entry, add);
      },
      [=](stop_atom) {
        auto& s = self->state;
        s.stopping = true;
        for (const auto& [name, p] : s.peers)
          self->send(p.link, stop_atom::value, static_cast<std::uint8_t>(dead_reason::shutdown));
        s.peers.clear();
        publish_peers(self);
        if (s.core->cfg.cluster.tls()) // (caf::openssl::unpublish does not compile in 0.17.6: asked directly)
          caf::anon_send(middleman_actor(self->system(), s.core->cfg.cluster), caf::unpublish_atom::value,
                         self->address(), s.core->cluster_port);
        else
          self->system().middleman().unpublish(caf::actor_cast<caf::actor>(self), s.core->cluster_port);
        self->quit();
      },
  };
}

} // namespace

void start_cluster(node::impl* core) {
  cluster_config& c = core->cfg.cluster;
  auto actor = core->sys->spawn(cluster, core);
  const auto port = c.tls() ? caf::openssl::publish(actor, static_cast<std::uint16_t>(c.port), c.address.c_str(), true)
                            : core->sys->middleman().publish(actor, static_cast<std::uint16_t>(c.port), c.address.c_str(), true);
  if (!port) {
    caf::anon_send_exit(actor, caf::exit_reason::user_shutdown);
    throw std::system_error(std::make_error_code(std::errc::address_in_use),
                            "cluster: cannot listen on " + c.address + ":" + std::to_string(c.port) + ": " +
                                to_string(port.error()));
  }
  core->cluster_port = *port;
  if (c.advertise.empty()) c.advertise = c.address + ":" + std::to_string(*port);
  core->cluster = actor;
  caf::anon_send(actor, start_atom::value, c.advertise);
}

void stop_cluster(node::impl* core) {
  if (core->cluster) caf::anon_send(core->cluster, stop_atom::value);
}

void remote_confirmations::open(const void* frame) {
  std::lock_guard<std::mutex> g(m_);
  if (entries_.emplace(frame, entry{}).second) open_.fetch_add(1, std::memory_order_release);
}

std::optional<errc> remote_confirmations::arm(const void* frame, std::uint32_t links,
                                              const std::function<void(std::uint64_t, errc)>& done,
                                              std::uint64_t message_id) {
  std::lock_guard<std::mutex> g(m_);
  const auto it = entries_.find(frame);
  if (it == entries_.end()) return errc::ok;
  entry& e = it->second;
  e.pending += links;
  if (e.pending <= 0) { // no link took it, or every one has answered already
    const errc r = e.result;
    entries_.erase(it);
    open_.fetch_sub(1, std::memory_order_release);
    return r;
  }
  e.armed = true;
  e.done = done;
  e.message_id = message_id;
  return std::nullopt;
}

bool remote_confirmations::tracks(const void* frame) {
  std::lock_guard<std::mutex> g(m_);
  return entries_.count(frame) != 0;
}

void remote_confirmations::settle(const void* frame, errc r) {
  std::function<void(std::uint64_t, errc)> done;
  errc result = errc::ok;
  std::uint64_t id = 0;
  {
    std::lock_guard<std::mutex> g(m_);
    const auto it = entries_.find(frame);
    if (it == entries_.end()) return;
    entry& e = it->second;
    if (r != errc::ok && e.result == errc::ok) e.result = r;
    if (--e.pending > 0 || !e.armed) return;
    done = std::move(e.done);
    result = e.result;
    id = e.message_id;
    entries_.erase(it);
    open_.fetch_sub(1, std::memory_order_release);
  }
  done(id, result); // outside the lock: it may send
}

std::vector<peer_status> node::peers() const {
  std::vector<peer_status> out;
  std::lock_guard<std::mutex> g(impl_->peers_m);
  for (const auto& [name, e] : impl_->peers) {
    const link_stats& s = *e.stats;
    peer_status p;
    p.name = name;
    p.address = e.address;
    p.up = s.up.load();
    p.frames_out = s.frames_out.load();
    p.frames_in = s.frames_in.load();
    p.pending = s.unacked.load() + (s.main ? s.main->in_flight() : 0);
    p.dead_lettered = s.dead.load();
    p.remote_agents = s.remote_agents.load();
    p.interest = s.interest.load();
    p.rtt = std::chrono::microseconds(s.rtt_us.load());
    out.push_back(std::move(p));
  }
  return out;
}

std::uint16_t node::cluster_port() const noexcept { return impl_->cluster_port; }

void node::join(const std::string& host_port) {
  if (impl_->cluster) caf::anon_send(impl_->cluster, join_atom::value, host_port);
}

cluster_totals node::cluster_stats() const noexcept {
  return {impl_->cluster_acked.load(), impl_->cluster_in.load(), impl_->cluster_dead.load(), impl_->links_lost.load(),
          impl_->duplicates_taken_down.load()};
}

} // namespace flowbus::actors
