#include <flowbus/scheduling/circuit_breaker.hpp>
#include <flowbus/scheduling/lanes.hpp>

namespace flowbus::scheduling {

const char* to_string(pressure p) noexcept {
  switch (p) {
    case pressure::normal: return "normal";
    case pressure::throttled: return "throttled";
    case pressure::shedding: return "shedding";
    case pressure::emergency: return "emergency";
  }
  return "invalid";
}

const char* to_string(breaker_state s) noexcept {
  switch (s) {
    case breaker_state::closed: return "closed";
    case breaker_state::open: return "open";
    case breaker_state::half_open: return "half_open";
  }
  return "invalid";
}

} // namespace flowbus::scheduling
