// A same-host client's shared-memory rings (shm_link.hpp, docs/protocol.md §13): the channel the
// node named in its 101 opened before REGISTER, records written by the I/O thread's flush or by a
// sending thread itself (direct), the node's records read as its WebSocket messages would be,
// and doorbells both ways.
#include "client_impl.hpp"

#include <boost/asio/post.hpp>

#include <spdlog/spdlog.h>


namespace flowbus::transport {

using namespace detail; // beast, websocket, net

namespace {
/// A doorbell: an empty binary WebSocket message, masked with a key from `keys` (RFC 6455).
std::vector<unsigned char> doorbell(std::mt19937_64& keys) {
  std::vector<unsigned char> bell;
  append_masked_frame(bell, nullptr, 0, static_cast<std::uint32_t>(keys()));
  return bell;
}
} // namespace

/// After the handshake: opens the channel the node offered, if it did (before REGISTER: the node
/// looks for our attach when it reads it).
void client::impl::open_shm() {
  if (!upgrade || !opt.shared_memory || tls) return; // (the 101 was kept for its challenge header only)
  const auto it = upgrade->find(detail::shm_header);
  if (it == upgrade->end()) {
    spdlog::info("flowbus client {}: the node offers no shared memory: WebSocket only", opt.id);
    return;
  }
  std::error_code ec;
  shm = detail::shm_link::open(std::string(it->value()), opt.max_message, ec);
  if (!shm) {
    spdlog::info("flowbus client {}: shared memory offered but not opened ({}): WebSocket only", opt.id, ec.message());
    return;
  }
  shm_connects.fetch_add(1, std::memory_order_relaxed);
}

/// After REGISTER is on its way: our messages go into the ring from now on, and the I/O thread
/// parks on the node's ring (its WELCOME rings us).
void client::impl::start_shm(std::uint64_t gen) {
  upgrade.reset();
  if (!shm) return;
  shm_on = true;
  {
    std::lock_guard<std::mutex> g(m);
    shm_direct = true;
  }
  drain_shm(gen);
}

/// A sending thread's one frame, straight into the ring. False: the ring is full (the frame
/// stays queued for the I/O thread). @pre m is held, direct_ok and shm_direct
bool client::impl::write_direct_shm(codec::bytes_view frame) {
  if (!shm->write_now(frame.data(), frame.size())) return false;
  if (shm->take_doorbell()) {
    doorbells.fetch_add(1, std::memory_order_relaxed);
    const std::vector<unsigned char> bell = doorbell(direct_rng);
    const auto r = ws->next_layer().try_write_now(bell.data(), bell.size(),
                                                  [self = shared_from_this(), gen = generation](beast::error_code ec) {
                                                    if (gen == self->generation && ec) self->lost("write: " + ec.message());
                                                  });
    if (r == decltype(r)::refused) // a write is in flight: the I/O thread rings behind it
      net::post(ioc, [self = shared_from_this(), gen = generation] {
        if (gen == self->generation) self->ring_node();
      });
  }
  return true;
}

/// Writes what flush() staged into the ring; a full ring waits for the node's doorbell (writing
/// stays set meanwhile). Once written, flushes again after the other handlers' turn, as a
/// socket write's completion would.
void client::impl::write_shm(std::uint64_t gen) {
  const bool all = shm->write_staged();
  if (shm->take_doorbell()) ring_node();
  writing = true;
  if (!all) {
    shm_blocked = true;
    return;
  }
  net::post(ioc, [self = shared_from_this(), gen] {
    if (gen != self->generation) return;
    self->writing = false;
    self->flush();
  });
}

/// Reads the node's records (up to 64 a pass) as its WebSocket messages, then grants the ACK
/// and CREDIT owed, hands space back (ringing the node if it waits for it), and busy-polls for
/// shm_spin or parks. `last`: the connection is ending — read what is there, nothing more.
void client::impl::drain_shm(std::uint64_t gen, bool last) {
  if (!shm_on || gen != generation) return;
  scheduling::shm_endpoint& ring = shm->ring();
  if (!last) ring.unpark();
  std::size_t n = 0;
  bool corrupt = false;
  scheduling::shm_endpoint::record r;
  while ((last || n < 64) && ring.next(r, corrupt)) {
    ++n;
    const bool ok = on_message(codec::bytes_view(r.data, r.size));
    if (gen != generation || !ok) return; // lost meanwhile (the channel lives until the next dial)
    ring.release(r);
  }
  if (shm->publish()) ring_node();
  if (corrupt) return lost("the node's shared-memory ring holds a damaged record");
  if (last) return;
  if (const auto seq = receipts.ack_owed()) send_ack(*seq);
  if (const auto c = receipts.credit_owed()) send_credit(*c);
  if (shm->poll_again(n, n >= 64, opt.shm_spin)) post_drain(gen);
}

void client::impl::post_drain(std::uint64_t gen) {
  if (shm_posted) return;
  shm_posted = true;
  net::post(ioc, [self = shared_from_this(), gen] {
    self->shm_posted = false;
    self->drain_shm(gen);
  });
}

/// The node rang: records wait in its ring, or space came back in ours.
void client::impl::on_doorbell() {
  if (shm_blocked) {
    shm_blocked = false;
    writing = false;
    flush();
  }
  drain_shm(generation);
}

/// Wakes the node (I/O thread): an empty binary WebSocket message, behind what is being written.
void client::impl::ring_node() {
  doorbells.fetch_add(1, std::memory_order_relaxed);
  auto bell = std::make_shared<std::vector<unsigned char>>(doorbell(rng));
  ws->next_layer().write_frames(net::buffer(*bell), [self = shared_from_this(), bell, gen = generation](
                                                        beast::error_code ec, std::size_t) {
    if (gen == self->generation && ec) self->lost("write: " + ec.message());
  });
}

} // namespace flowbus::transport
