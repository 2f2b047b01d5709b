// What a NATS user types first, for a running node (docs/cli.md):
//   flowbus pub TOPIC [MSG]     publish (MSG, or each line of standard input)
//   flowbus sub PATTERN         print what arrives
//   flowbus req TARGET [MSG]    a request, its reply on standard output
//   flowbus reply TOPIC [MSG]   answer requests: MSG, the output of --command, or the request itself
//   flowbus agents / topics     the node's directory and subscriptions (its monitoring port)
// Exit codes a script can test: 0 done, 1 not connected (node unreachable, registration refused),
// 2 usage, 3 refused by the node, 4 timeout, 5 no responders.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace CLI {
class App;
} // namespace CLI

namespace flowbus::app {

/// The exit codes of the client commands.
enum exit_code : int { exit_ok = 0, exit_not_connected = 1, exit_usage = 2, exit_refused = 3, exit_timeout = 4,
                       exit_no_responders = 5 };

struct connection_options {
  std::string connect = "127.0.0.1:8081"; ///< host:port of the node's WebSocket edge
  std::string id;                         ///< the agent id (default: flowbus-<command>-<pid>)
  std::string type = "cli";
  std::string token;    ///< --auth token nodes
  std::string key_file; ///< --auth key nodes: an Ed25519 private key
  std::string tls_ca;   ///< wss://, trusting this CA
  std::string tls_server_name;
  double connect_timeout_s = 5;
};

struct pub_options {
  std::string topic;
  std::optional<std::string> message; ///< none: each line of standard input is one message
  std::uint64_t count = 1;            ///< with a message: how many times
  double rate = 0;                    ///< messages per second, at fixed intervals (0: as fast as accepted)
  std::string priority = "normal";
  bool acked = false; ///< each message confirmed by the node (publish_acked)
  std::vector<std::string> headers; ///< KEY=VALUE
};

struct sub_options {
  std::string pattern;
  std::string queue;
  std::uint64_t count = 0; ///< exit after this many (0: until interrupted)
  bool raw = false, json = false;
  bool acks = false;       ///< acknowledge each message (the node redelivers what was not)
  double timeout_s = 0;    ///< exit 4 if `count` messages did not arrive in this time (0: wait)
};

struct req_options {
  std::string target; ///< a topic, agent:ID or capability:NAME
  std::optional<std::string> message; ///< none: standard input
  double timeout_s = 2;
  std::string priority = "normal";
  std::vector<std::string> headers;
};

struct reply_options {
  std::string topic;
  std::optional<std::string> message; ///< the answer; none: --command's output, or the request echoed
  std::string command;                ///< sh -c COMMAND, the request's payload on its standard input
  std::string queue;
  std::uint64_t count = 0; ///< exit after answering this many (0: until interrupted)
};

struct directory_options {
  std::string monitor = "127.0.0.1:8222"; ///< the node's --monitor-port
  bool json = false;
};

/// The pub, sub, req, reply, agents and topics subcommands, registered on `app`.
class client_commands {
public:
  explicit client_commands(CLI::App& app);
  /// The exit code of the command given, or nothing if it was none of them.
  std::optional<int> run() const;

private:
  connection_options conn_;
  pub_options pub_;
  sub_options sub_;
  req_options req_;
  reply_options reply_;
  directory_options dir_;
  CLI::App *pub_cmd_, *sub_cmd_, *req_cmd_, *reply_cmd_, *agents_cmd_, *topics_cmd_;
};

} // namespace flowbus::app
