// What the client commands share (client_cmd.cpp, stream_cmd.cpp): a connected session, the exit
// code of an outcome, interrupts, and a received message printed as `flowbus sub` prints it.
#pragma once

#include "client_cmd.hpp"

#include <flowbus/transport/client.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <thread>

namespace flowbus::app {

/// Set by SIGINT and SIGTERM once catch_interrupts() ran.
extern std::atomic<bool> interrupted;
/// SIGINT and SIGTERM end a sub or reply (exit 0) and a pub between two messages.
void catch_interrupts();
/// The exit code of an outcome (docs/cli.md).
int exit_for(transport::errc e);
std::string lower(std::string s);
std::string base64(std::string_view s);

/// A connected client, or the exit code saying why not (said on stderr).
struct session {
  std::unique_ptr<transport::client> client;
  int rc = exit_ok;
};

/// `direct`: for what comes to this agent's id (unicast, requests to agent:ID), set before REGISTER.
session open_session(const connection_options& c, const std::string& command, bool reconnect, bool acks,
                     transport::message_handler direct = {});
void add_connection_options(CLI::App& cmd, connection_options& c);

/// Answers a request after its handler returned (on another thread, or later), from the fields
/// respond() answers by, copied out of the handler's views.
transport::errc respond_later(transport::client& c, const std::string& reply_to, std::uint64_t correlation_id,
                              codec::priority prio, std::string_view payload);

/// One received message on standard output, as `sub` prints it: the payload alone (raw), one JSON
/// object, or a header line, its application headers and the payload.
void print_message(const transport::incoming& m, std::uint64_t n, bool raw, bool as_json);

/// Waits until interrupted, `done()`, or `timeout_s` (0: none) passed; false on the timeout.
template <class Done> bool wait_until_done(Done&& done, double timeout_s) {
  using clk = std::chrono::steady_clock;
  const auto until = clk::now() + std::chrono::duration_cast<clk::duration>(std::chrono::duration<double>(timeout_s));
  while (!interrupted.load() && !done()) {
    if (timeout_s > 0 && clk::now() >= until) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return true;
}

} // namespace flowbus::app
