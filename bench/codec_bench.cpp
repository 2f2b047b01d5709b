// Codec benchmarks: encode, decode and both for a message with a 256-byte payload and a pooled
// topic (steady state of a connection); batches; the scatter-gather prefix; CRC32C throughput at
// 64 B, 1 KiB and 64 KiB for the hardware and portable paths, and the combine operator.
#include <flowbus/codec/crc32c.hpp>
#include <flowbus/codec/decoder.hpp>
#include <flowbus/codec/encoder.hpp>

#include "bench_report.hpp"

#include <benchmark/benchmark.h>

#include <random>
#include <vector>

using namespace flowbus::codec;

namespace {

constexpr std::uint64_t t0 = 1'700'000'000'000'000'000ull;

struct sample {
  std::vector<byte> payload = std::vector<byte>(256, 0x5A);
  message m;
  sample() {
    m.type = msg_type::task_assignment;
    m.prio = priority::high;
    m.timestamp_ns = t0;
    m.set_topic("agent.coordinator.task.assign").set(field::source, "agent-7");
    m.set(field::message_id, std::uint64_t{1001}).set(field::correlation_id, std::uint64_t{42});
    m.payload = bytes_view(payload.data(), payload.size());
  }
};

void codec_encode_256(benchmark::State& state) {
  sample s;
  encoder enc;
  std::vector<byte> buf(1024);
  enc.encode(s.m, buf.data(), buf.size()); // first use defines the pooled strings
  for (auto _ : state) {
    s.m.set(field::message_id, s.m.message_id() + 1);
    const encode_result r = enc.encode(s.m, buf.data(), buf.size());
    benchmark::DoNotOptimize(r);
    benchmark::ClobberMemory();
  }
  state.counters["ops"] = 1;
}

void codec_decode_256(benchmark::State& state) {
  sample s;
  encoder enc;
  decoder dec;
  std::vector<byte> first(1024), buf(1024);
  const encode_result r1 = enc.encode(s.m, first.data(), first.size());
  message m;
  dec.decode(bytes_view(first.data(), r1.size), m);                // the receiver learns the pooled strings
  const encode_result r = enc.encode(s.m, buf.data(), buf.size()); // steady state: references
  for (auto _ : state) {
    const decode_status st = dec.decode(bytes_view(buf.data(), r.size), m);
    benchmark::DoNotOptimize(st);
    benchmark::DoNotOptimize(m);
  }
  state.counters["ops"] = 1;
}

void codec_encode_decode_256(benchmark::State& state) {
  sample s;
  encoder enc;
  decoder dec;
  std::vector<byte> buf(1024);
  message m;
  const encode_result r1 = enc.encode(s.m, buf.data(), buf.size());
  dec.decode(bytes_view(buf.data(), r1.size), m);
  for (auto _ : state) {
    const encode_result r = enc.encode(s.m, buf.data(), buf.size());
    const decode_status st = dec.decode(bytes_view(buf.data(), r.size), m);
    benchmark::DoNotOptimize(st);
    benchmark::DoNotOptimize(m);
  }
  if (m.topic() != "agent.coordinator.task.assign") state.SkipWithError("round trip lost the topic");
  state.counters["ops"] = 1;
}

void codec_encode_prefix_256(benchmark::State& state) {
  // per-recipient header + routing for a shared payload whose CRC is computed once (fan-out path)
  sample s;
  encoder enc;
  std::vector<byte> buf(256);
  const shared_payload payload(s.m.payload); // once per fan-out
  enc.encode_prefix(s.m, payload, buf.data(), buf.size());
  for (auto _ : state) {
    const encode_result r = enc.encode_prefix(s.m, payload, buf.data(), buf.size());
    benchmark::DoNotOptimize(r);
    benchmark::ClobberMemory();
  }
  state.counters["ops"] = 1;
}

void codec_batch32_encode_decode_128(benchmark::State& state) {
  sample s;
  s.payload.resize(128);
  s.m.payload = bytes_view(s.payload.data(), s.payload.size());
  encoder enc;
  decoder dec;
  std::vector<byte> buf(defaults::max_frame_size);
  message outer, inner;
  std::size_t seen = 0;
  for (auto _ : state) {
    batch_builder b(enc, buf.data(), buf.size());
    for (int i = 0; i < 32; ++i)
      b.add(s.m);
    const encode_result r = b.finish();
    dec.decode(bytes_view(buf.data(), r.size), outer);
    batch_reader br(dec, outer);
    while (!br.done() && br.next(inner))
      ++seen;
  }
  benchmark::DoNotOptimize(seen);
  if (seen != 32 * static_cast<std::size_t>(state.iterations())) state.SkipWithError("batch lost messages");
  state.counters["ops"] = 32;
}

std::vector<byte> random_bytes(std::size_t n) {
  std::mt19937_64 rng(1);
  std::vector<byte> v(n);
  for (auto& b : v)
    b = static_cast<byte>(rng());
  return v;
}

void crc32c_throughput(benchmark::State& state, std::uint32_t (*fn)(std::uint32_t, const void*, std::size_t) noexcept,
                       const char* label) {
  const auto data = random_bytes(static_cast<std::size_t>(state.range(0)));
  for (auto _ : state)
    benchmark::DoNotOptimize(fn(0, data.data(), data.size()));
  state.counters["bytes"] = static_cast<double>(data.size());
  state.SetLabel(label);
}

void crc32c_hw(benchmark::State& state) {
  if (!crc32c_hardware_available()) return state.SkipWithError("no SSE4.2");
  crc32c_throughput(state, crc32c_extend_hardware, "sse4.2");
}

void crc32c_portable(benchmark::State& state) { crc32c_throughput(state, crc32c_extend_portable, "slicing-by-8"); }

void crc32c_combine_256(benchmark::State& state) {
  std::uint32_t c = 0x12345678;
  for (auto _ : state) {
    c = crc32c_combine(c, 0x9abcdef0, 256);
    benchmark::DoNotOptimize(c);
  }
  state.counters["ops"] = 1;
}

void crc32c_shift_combine_256(benchmark::State& state) {
  const crc32c_shift shift(256);
  std::uint32_t c = 0x12345678;
  for (auto _ : state) {
    c = shift.combine(c, 0x9abcdef0);
    benchmark::DoNotOptimize(c);
  }
  state.counters["ops"] = 1;
}

} // namespace

BENCHMARK(codec_encode_256);
BENCHMARK(codec_decode_256);
BENCHMARK(codec_encode_decode_256);
BENCHMARK(codec_encode_prefix_256);
BENCHMARK(codec_batch32_encode_decode_128);
BENCHMARK(crc32c_hw)->Arg(64)->Arg(1024)->Arg(65536);
BENCHMARK(crc32c_portable)->Arg(64)->Arg(1024)->Arg(65536);
BENCHMARK(crc32c_combine_256);
BENCHMARK(crc32c_shift_combine_256);

int main(int argc, char** argv) { return flowbus::bench::run_main(argc, argv); }
