#include <flowbus/transport/structured_file.hpp>

#include <toml.hpp>

#include <fstream>
#include <iterator>
#include <stdexcept>

namespace flowbus::transport {
namespace {

using json = nlohmann::json;

json from_toml(const toml::value& v) {
  switch (v.type()) {
    case toml::value_t::boolean: return v.as_boolean();
    case toml::value_t::integer: {
      const std::int64_t i = v.as_integer();
      return i >= 0 ? json(static_cast<std::uint64_t>(i)) : json(i);
    }
    case toml::value_t::floating: return v.as_floating();
    case toml::value_t::string: return v.as_string().str;
    case toml::value_t::array: {
      json a = json::array();
      for (const toml::value& e : v.as_array())
        a.push_back(from_toml(e));
      return a;
    }
    case toml::value_t::table: {
      json o = json::object();
      for (const auto& [k, e] : v.as_table())
        o[k] = from_toml(e);
      return o;
    }
    default: throw std::runtime_error("a date or time, where none is expected");
  }
}

bool ends_with(const std::string& s, const char* tail) {
  const std::string t(tail);
  return s.size() >= t.size() && s.compare(s.size() - t.size(), t.size(), t) == 0;
}

} // namespace

json read_json_or_toml(const std::string& path, const char* what) {
  if (ends_with(path, ".toml")) {
    try {
      return from_toml(toml::parse(path));
    } catch (const std::exception& e) {
      throw std::runtime_error(std::string(what) + " " + path + ": " + e.what());
    }
  }
  std::ifstream f(path);
  if (!f) throw std::runtime_error(std::string("cannot read ") + what + " " + path);
  const std::string text((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  json j = json::parse(text, nullptr, false);
  if (j.is_discarded()) throw std::runtime_error(std::string(what) + " " + path + ": not JSON");
  return j;
}

} // namespace flowbus::transport
