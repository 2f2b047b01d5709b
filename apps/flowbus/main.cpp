// flowbus — the command line. `flowbus demo`: a node with agents exchanging tasks, printing live
// latency percentiles (the README's main job).
#include "demo.hpp"

#include <CLI/CLI.hpp>

int main(int argc, char** argv) {
  CLI::App app{"flowbus: real-time messaging between software agents"};
  app.require_subcommand(1);

  flowbus::app::demo_options demo;
  CLI::App* demo_cmd = app.add_subcommand("demo", "run a node with agents exchanging tasks; print live latency");
  demo_cmd->add_option("--seconds", demo.seconds, "how long tasks are offered")->capture_default_str()->check(CLI::PositiveNumber);
  demo_cmd->add_option("--rate", demo.rate, "tasks offered per second (fixed rate)")->capture_default_str()->check(CLI::PositiveNumber);
  demo_cmd->add_option("--workers", demo.workers, "worker agents in the queue group")->capture_default_str()->check(CLI::Range(1, 1024));
  demo_cmd->add_option("--threads", demo.threads, "scheduler threads (0: one per CPU)")->capture_default_str();

  CLI11_PARSE(app, argc, argv);
  if (demo_cmd->parsed()) return flowbus::app::run_demo(demo);
  return 2;
}
