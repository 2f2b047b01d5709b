#include "record_file.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>

namespace flowbus::actors::detail {

std::error_code last_error() { return {errno, std::generic_category()}; }

std::error_code write_all(int fd, const std::string& data) {
  std::size_t done = 0;
  while (done < data.size()) {
    const ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      return last_error();
    }
    done += static_cast<std::size_t>(n);
  }
  return {};
}

std::error_code sync_directory(const std::filesystem::path& dir) {
  const int fd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return last_error();
  const int rc = ::fsync(fd);
  const std::error_code ec = rc != 0 ? last_error() : std::error_code{};
  ::close(fd);
  return ec;
}

std::error_code make_directories(const std::filesystem::path& dir) {
  std::error_code ec;
  if (dir.empty() || std::filesystem::is_directory(dir, ec)) return {};
  if (std::filesystem::exists(dir, ec)) return std::make_error_code(std::errc::not_a_directory);
  if (auto e = make_directories(dir.parent_path())) return e;
  if (!std::filesystem::create_directory(dir, ec) && ec) return ec;
  return sync_directory(dir.parent_path()); // "" is the working directory
}

std::error_code read_from(int fd, std::uint64_t from, std::string& out) {
  out.clear();
  char buf[65536];
  for (auto at = static_cast<off_t>(from);;) {
    const ssize_t n = ::pread(fd, buf, sizeof buf, at);
    if (n < 0) {
      if (errno == EINTR) continue;
      return last_error();
    }
    if (n == 0) return {};
    out.append(buf, static_cast<std::size_t>(n));
    at += n;
  }
}

std::error_code read_file(const std::filesystem::path& path, std::string& out) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return last_error();
  const std::error_code e = read_from(fd, 0, out);
  ::close(fd);
  return e;
}

std::optional<std::uint32_t> whole_record_at(const codec::byte* base, std::size_t size, std::size_t at,
                                             std::uint32_t magic) {
  if (size - at < record_head) return std::nullopt;
  const auto* h = base + at;
  if (codec::load_le<std::uint32_t>(h) != magic) return std::nullopt;
  const auto len = codec::load_le<std::uint32_t>(h + 4);
  if (size - at - record_head < len) return std::nullopt;
  if (codec::crc32c(h + record_head, len) != codec::load_le<std::uint32_t>(h + 8)) return std::nullopt;
  return len;
}

void put_record(std::string& out, std::uint32_t magic, const std::string& body) {
  put<std::uint32_t>(out, magic);
  put<std::uint32_t>(out, static_cast<std::uint32_t>(body.size()));
  put<std::uint32_t>(out, codec::crc32c(body.data(), body.size()));
  out += body;
}

void write_file_atomically(const std::filesystem::path& path, const std::string& text) {
  const std::filesystem::path tmp = path.string() + ".tmp";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) throw std::system_error(last_error(), "create " + tmp.string());
  std::error_code e = write_all(fd, text);
  if (!e && ::fdatasync(fd) != 0) e = last_error();
  ::close(fd);
  if (!e && ::rename(tmp.c_str(), path.c_str()) != 0) e = last_error();
  if (!e) e = sync_directory(path.parent_path());
  if (e) {
    std::error_code ignored;
    std::filesystem::remove(tmp, ignored);
    throw std::system_error(e, "write " + path.string());
  }
}

} // namespace flowbus::actors::detail
