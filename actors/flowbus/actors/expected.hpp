// A value or a typed error, for the broker's API edges (C++17 has no std::expected; CAF's
// caf::expected would put CAF headers into every user's translation unit).
#pragma once

#include <cassert>
#include <utility>
#include <variant>

namespace flowbus::actors {

template <class T, class E> class expected {
public:
  expected(T value) : v_(std::in_place_index<0>, std::move(value)) {}
  expected(E error) : v_(std::in_place_index<1>, error) {}

  explicit operator bool() const noexcept { return v_.index() == 0; }
  bool has_value() const noexcept { return v_.index() == 0; }
  /// @pre has_value()
  T& value() & {
    assert(has_value());
    return std::get<0>(v_);
  }
  T&& value() && {
    assert(has_value());
    return std::get<0>(std::move(v_));
  }
  T& operator*() & { return value(); }
  T* operator->() { return &value(); }
  /// @pre !has_value()
  E error() const noexcept { return v_.index() == 1 ? std::get<1>(v_) : E{}; }

private:
  std::variant<T, E> v_;
};

} // namespace flowbus::actors
