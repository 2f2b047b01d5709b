// `flowbus node` as a child process, for tests that treat the node as its users do: a process
// to connect to, signal, kill and restart.
#pragma once

#include <doctest/doctest.h>

#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

extern char** environ;

namespace flowbus::test {

/// `flowbus node` in a child process on 127.0.0.1 (`port` 0: any free port, read from its first line).
struct node_process {
  pid_t pid = -1;
  std::uint16_t port = 0;
  std::uint16_t cluster_port = 0; ///< with --cluster-port: where it listens for other nodes
  int out = -1; ///< its standard output, open until it exits (it prints its stop line there)

  /// `prefix`: a command to run the node under (e.g. {"/usr/sbin/ip", "netns", "exec", NS}).
  explicit node_process(std::uint16_t want = 0, std::vector<std::string> extra = {},
                        std::vector<std::string> prefix = {}) {
    int fds[2];
    REQUIRE(pipe(fds) == 0);
    out = fds[0];
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, fds[1], STDOUT_FILENO);
    posix_spawn_file_actions_addclose(&fa, fds[0]);
    std::vector<std::string> args = prefix;
    args.insert(args.end(), {FLOWBUS_EXE, "node", "--port", std::to_string(want), "--log-level", "warn"});
    args.insert(args.end(), extra.begin(), extra.end());
    std::vector<char*> argv;
    for (auto& a : args)
      argv.push_back(a.data());
    argv.push_back(nullptr);
    const int rc = posix_spawn(&pid, prefix.empty() ? FLOWBUS_EXE : prefix[0].c_str(), &fa, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&fa);
    close(fds[1]);
    REQUIRE(rc == 0);
    // "flowbus node: listening on ws://127.0.0.1:PORT (...)" (wss:// with TLS)
    std::string line;
    char c;
    while (read(out, &c, 1) == 1 && c != '\n')
      line += c;
    const auto at = line.find("://"); // ws:// or wss://
    REQUIRE_MESSAGE(at != std::string::npos, "the node process did not start: '" << line << "'");
    port = static_cast<std::uint16_t>(std::atoi(line.c_str() + line.find(':', at + 3) + 1));
    REQUIRE(port != 0);
    // "(cluster node NAME at HOST:PORT; ..."
    if (const auto cn = line.find("cluster node "); cn != std::string::npos) {
      const auto colon = line.find(':', line.find(" at ", cn));
      cluster_port = static_cast<std::uint16_t>(std::atoi(line.c_str() + colon + 1));
    }
  }
  node_process(const node_process&) = delete;
  node_process& operator=(const node_process&) = delete;

  /// Stops the process with `sig` and reaps it; its exit status. `stop_line` (if given) receives
  /// what it printed after its first line (its stop line).
  int stop(int sig = SIGTERM, std::string* stop_line = nullptr) {
    if (pid <= 0) return -1;
    kill(pid, sig);
    std::string rest;
    char buf[4096];
    for (ssize_t n; (n = read(out, buf, sizeof buf)) > 0;) rest.append(buf, static_cast<std::size_t>(n));
    int st = 0;
    waitpid(pid, &st, 0);
    pid = -1;
    close(out);
    if (stop_line) *stop_line = rest;
    return st;
  }
  ~node_process() { stop(SIGKILL); }
};


} // namespace flowbus::test
