// Shared main for flowbus's Google Benchmark programs: every benchmark runs several repetitions
// and is reported as one JSON line (the median, with min and max for the spread), so results from
// a noisy shared machine are read as medians and ratios within one run.
//
// A benchmark tells the reporter what one iteration means through counters:
//   state.counters["ops"]   = messages (or operations) per iteration  -> ns_per_op, msgs_per_s
//   state.counters["bytes"] = bytes per iteration                     -> gb_per_s
#pragma once

namespace flowbus::bench {

/// Parses --summary (a human-readable table after the JSON lines) and --quick (fewer repetitions),
/// passes the rest to Google Benchmark, runs everything. Returns the process exit code.
int run_main(int argc, char** argv);

} // namespace flowbus::bench
