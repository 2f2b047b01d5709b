#include "egress_queue.hpp"

#include "delivery_tracker.hpp"

#include <flowbus/codec/clock.hpp>
#include <flowbus/codec/decoder.hpp>
#include <flowbus/codec/frame_header.hpp>
#include <flowbus/codec/trace.hpp>
#include <flowbus/codec/types.hpp>
#include <flowbus/scheduling/fixed_rate.hpp>

#include <algorithm>

namespace flowbus::transport::detail {

egress_queue::egress_queue(actors::dead_letters& dead, const std::string& agent, scheduling::lane_options lanes,
                           edge_metrics* metrics)
    : dead_(dead), agent_(agent), lane_options_(lanes), metrics_(metrics) {}

/// Records a data frame leaving: the time it waited in the node and its age (the clocks are read
/// once per message gathered).
void egress_queue::observe(const scheduling::buffer_ref& f, std::uint64_t& steady, std::uint64_t& wall) {
  if (f.size() < codec::defaults::header_size) return;
  const bool traced = f.data()[codec::offset::flags] & codec::flag::traced;
  if (!metrics_->latency && !traced) return;
  if (!steady) {
    steady = scheduling::steady_ns();
    wall = codec::wall_clock_ns();
  }
  if (traced) keep_trace(f, wall);
  if (!metrics_->latency) return;
  const std::size_t lane = std::min<std::size_t>(f.data()[codec::offset::priority], scheduling::lane_count - 1);
  if (const std::uint64_t in = f.stamp(); in && steady > in) queued_runs_.record(metrics_->queued[lane], steady - in);
  const auto ts = codec::load_le<std::uint64_t>(f.data() + codec::offset::timestamp);
  if (ts && wall > ts) age_runs_.record(metrics_->age[lane], wall - ts);
}

/// A traced frame written now: its trace, with this write as the last hop, kept for /tracez.
void egress_queue::keep_trace(const scheduling::buffer_ref& f, std::uint64_t wall) {
  codec::decoder d(codec::stored_frame_decoding());
  codec::message m;
  if (!d.decode(codec::bytes_view(f.data(), f.size()), m)) return;
  const std::string_view t = m.str(codec::field::trace);
  if (!codec::valid_trace(t)) return;
  trace_record r;
  r.recipient = agent_;
  r.source = m.str(codec::field::source);
  r.topic = m.topic();
  r.target = m.str(codec::field::target);
  r.type = static_cast<std::uint8_t>(m.type);
  r.priority = static_cast<std::uint8_t>(m.prio);
  for (std::size_t i = 0; i < t.size() / codec::trace_record_size; ++i)
    r.hops.emplace_back(codec::hop_kind(t, i), codec::hop_time(t, i));
  r.hops.emplace_back(codec::hop::node_out, wall);
  std::lock_guard<std::mutex> g(metrics_->trace_m);
  metrics_->traces.push_back(std::move(r));
  while (metrics_->traces.size() > metrics_->trace_keep)
    metrics_->traces.pop_front();
}

void egress_queue::admit(scheduling::buffer_ref&& f) {
  const std::size_t lane = f.size() > codec::offset::priority ? f.data()[codec::offset::priority] : 2;
  std::uint64_t deadline = 0;
  if (f.size() > codec::offset::flags && (f.data()[codec::offset::flags] & codec::flag::has_deadline)) {
    codec::decoder d(codec::stored_frame_decoding()); // the node's own frame: literal strings, its checksum not redone
    codec::message m;
    if (d.decode(codec::bytes_view(f.data(), f.size()), m)) deadline = m.deadline_ns();
  }
  if (!lanes_) lanes_ = std::make_unique<scheduling::lane_scheduler<scheduling::buffer_ref>>(lane_options_);
  auto a = lanes_->push(std::move(f), lane, deadline);
  if (a.rejected) dead_.add(actors::dead_reason::shed, std::move(*a.rejected), agent_);
  if (a.evicted) dead_.add(actors::dead_reason::shed, std::move(*a.evicted), agent_);
}

bool egress_queue::waits_for_agent(const delivery_tracker* acks) const {
  return !drained() && (window_.used_up() || (acks && acks->full()));
}

/// The next frame by lane; with the receive window used up only CRITICAL, and no more than one
/// window beyond it (the window bounds what waits unread at the agent, the lanes keep the rest —
/// where urgent frames can still overtake it).
std::optional<scheduling::buffer_ref> egress_queue::next_frame(std::size_t& window_waits) {
  const auto may = window_.may_send();
  if (may == receive_window::lanes::any) return lanes_->next();
  if (may == receive_window::lanes::critical_only)
    if (auto f = lanes_->next_from(0)) return f;
  if (!lanes_->empty()) ++window_waits;
  return std::nullopt;
}

egress_queue::gathered egress_queue::gather(outbound_batch& batch, bool deliver, delivery_tracker* acks,
                                            std::uint64_t& next_sequence, std::uint64_t wall_ns,
                                            std::uint64_t steady_ns) {
  gathered g;
  batch.clear();
  std::size_t controls = 0;
  while (controls < control_.size() && batch.fits(control_[controls].size())) {
    batch.add(codec::bytes_view(control_[controls].data(), control_[controls].size()));
    ++controls;
  }
  control_.erase(control_.begin(), control_.begin() + static_cast<std::ptrdiff_t>(controls));
  sent_.clear();
  std::uint64_t now_steady = 0, now_wall = 0; // read at the first data frame (observe)
  if (deliver && lanes_) {
    if (lanes_->earliest_deadline())
      lanes_->expire(wall_ns ? wall_ns : codec::wall_clock_ns(), [&](scheduling::buffer_ref&& f, std::size_t) {
        dead_.add(actors::dead_reason::expired, std::move(f), agent_);
      });
    for (;;) {
      if (acks && acks->full(sent_.size())) break;
      if (!held_) {
        auto next = next_frame(g.window_waits);
        if (!next) break;
        if (acks && !acks->allows(*next, steady_ns, g.arm)) continue; // dead-lettered: circuit open
        held_ = std::move(*next);
      }
      if (!batch.fits(held_.size())) break; // leads the next message
      batch.add(codec::bytes_view(held_.data(), held_.size()));
      if (metrics_) observe(held_, now_steady, now_wall);
      if (codec::is_data(static_cast<codec::msg_type>(held_.data()[codec::offset::type]))) window_.wrote_data();
      if (acks) sent_.push_back(std::move(held_)); // kept until the agent acknowledges it
      held_ = {};
      ++g.data;
    }
  }
  if (now_steady) { // something was observed: its runs go into the shared histograms now
    queued_runs_.flush();
    age_runs_.flush();
  }
  if (batch.empty()) return g;
  const std::uint64_t first = next_sequence;
  g.message = batch.finish(next_sequence);
  for (std::size_t i = 0; i < sent_.size(); ++i)
    acks->sent(first + controls + i, std::move(sent_[i]));
  sent_.clear();
  return g;
}

std::size_t egress_queue::drop_all(actors::dead_reason why) {
  std::size_t n = 0;
  auto gone = [&](scheduling::buffer_ref&& f) {
    dead_.add(why, std::move(f), agent_);
    ++n;
  };
  if (held_) gone(std::move(held_));
  held_ = {};
  if (lanes_) lanes_->clear([&](scheduling::buffer_ref&& f, std::size_t) { gone(std::move(f)); });
  return n;
}

} // namespace flowbus::transport::detail
