// Shared memory beside a WebSocket connection (docs/protocol.md §13), one unit for both ends: the
// node offers a channel in the WebSocket handshake (a `Flowbus-Shm` response header naming a
// POSIX shm object), an agent on the same host opens it before its REGISTER, and from REGISTER on
// every FLOW message of the connection travels as a record of a ring (scheduling/shm_channel.hpp):
// the same bytes a WebSocket message would carry. The WebSocket stays for the handshake, pings,
// the close and the doorbells: an empty binary message means "look at the rings" — sent only
// when the other side parked (or waits for space), so a busy connection makes no system call.
#pragma once

#include <flowbus/scheduling/shm_channel.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

namespace flowbus::transport::detail {

/// The handshake header: "1" in the agent's request, the channel's name in the node's response.
inline constexpr char shm_header[] = "Flowbus-Shm";
/// In the node's 101: it sends CHALLENGE next (public-key agents), so a client with a key waits
/// for it before REGISTER — and one connecting to a node without keys registers at once.
inline constexpr char challenge_header[] = "Flowbus-Challenge";

class shm_link {
public:
  /// Node: a channel for one connection, named flowbus-<pid>-<n> (mode 0600: only processes of
  /// the node's user can open it). Null (and `ec`) if it cannot be made.
  static std::unique_ptr<shm_link> offer(std::size_t ring_bytes, std::error_code& ec);
  /// Agent: opens the channel the node named, if its rings take messages of `max_message` bytes.
  /// Null (and `ec`) if it cannot (another host or user, a name that is not the node's form, rings
  /// too small): the connection goes on over WebSocket alone, and the node sees no attach.
  static std::unique_ptr<shm_link> open(const std::string& name, std::size_t max_message, std::error_code& ec);
  /// Node, at start: removes channels left by node processes that died before their agents
  /// registered (a name holds the creator's pid). Returns how many.
  static std::size_t remove_stale();

  ~shm_link();
  shm_link(const shm_link&) = delete;
  shm_link& operator=(const shm_link&) = delete;

  const std::string& name() const noexcept { return name_; }
  /// Node, at REGISTER: whether the agent opened the channel (it does so before sending
  /// REGISTER). The name is removed either way: nobody else may open it.
  bool agent_attached();

  // ---- sending (one producer at a time) ----
  /// Queues one FLOW message (a frame or a BATCH) to be written as a record.
  void stage(const unsigned char* p, std::size_t n);
  std::size_t staged_bytes() const noexcept { return staged_.size() - staged_at_; }
  /// Writes what is staged as far as the ring has room. False: the ring is full and the reader
  /// will ring when it frees space (the rest stays staged).
  bool write_staged();
  /// One record now, unstaged (nothing may be staged). False: no room.
  bool write_now(const unsigned char* p, std::size_t n);

  // ---- receiving (one consumer) ----
  scheduling::shm_endpoint& ring() noexcept { return ep_; }
  /// Hands read space back. True: the writer waits for it — ring the other side.
  bool publish() noexcept { return ep_.publish(); }
  /// The reader's idle strategy after a pass that read `records`: true — look again soon (more
  /// than a pass waits, it is within `spin` of the last record read, or a record came as it
  /// parked); false — parked: the writer rings when it commits.
  bool poll_again(std::size_t records, bool pass_full, std::chrono::microseconds spin) noexcept;

  /// Producer: whether the other side must be rung now (a commit found it parked). Reading it
  /// clears it. (The producer's flag: a client's sending thread may own the producing side while
  /// its I/O thread reads.)
  bool take_doorbell() noexcept {
    const bool r = ring_peer_;
    ring_peer_ = false;
    return r;
  }

private:
  shm_link() = default;
  scheduling::shm_channel ch_;
  scheduling::shm_endpoint ep_;
  std::string name_;
  bool named_ = false; ///< the name still exists (node side)
  bool ring_peer_ = false;
  std::chrono::steady_clock::time_point last_read_{}; ///< a record was last read (the busy-poll's clock)
  std::vector<unsigned char> staged_; ///< [u32 length][bytes] per message
  std::size_t staged_at_ = 0;
};

} // namespace flowbus::transport::detail
