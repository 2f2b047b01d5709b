// Files of checksummed records, as the dead-letter queues (dlq.cpp) and the stream segments
// (segment_log.cpp) keep them: each record is magic (4 bytes, the file kind's), body length (4),
// CRC32C of the body (4), then the body, little-endian. A crash can leave a torn tail — a record
// cut short — which recovery truncates; a stretch that is not a whole record followed by one is
// damage, skipped and counted. Also the POSIX helpers both use: whole writes, directory fsyncs.
#pragma once

#include <flowbus/codec/bytes.hpp>
#include <flowbus/codec/crc32c.hpp>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <optional>
#include <string>
#include <system_error>

namespace flowbus::actors::detail {

constexpr std::size_t record_head = 12; // magic, body length, CRC

std::error_code last_error();
/// write() until all of `data` is written (EINTR retried).
std::error_code write_all(int fd, const std::string& data);
/// fsync a directory, so an entry created or removed in it survives a crash.
std::error_code sync_directory(const std::filesystem::path& dir);
/// create_directories, fsyncing the parent of each directory it creates.
std::error_code make_directories(const std::filesystem::path& dir);
/// Writes `text` to `path` through a temporary file, fdatasync and rename (and an fsync of the
/// directory), so a crash leaves the old file or the new one. Throws std::system_error.
void write_file_atomically(const std::filesystem::path& path, const std::string& text);
/// Reads a whole file into `out`.
std::error_code read_file(const std::filesystem::path& path, std::string& out);
/// Reads [from, end of file) of an open descriptor.
std::error_code read_from(int fd, std::uint64_t from, std::string& out);
/// The body length of the whole record at `at`, if one is there (magic, length and CRC all good).
std::optional<std::uint32_t> whole_record_at(const codec::byte* base, std::size_t size, std::size_t at,
                                             std::uint32_t magic);
/// Appends one record (head and body) to `out`.
void put_record(std::string& out, std::uint32_t magic, const std::string& body);

template <class T> void put(std::string& out, T v) {
  char b[sizeof(T)];
  codec::store_le(reinterpret_cast<codec::byte*>(b), v);
  out.append(b, sizeof(T));
}

struct scan_result {
  std::size_t whole_end = 0; // end of the last whole record (relative to the scanned data)
  std::uint64_t damaged_bytes = 0, damaged_regions = 0;
};

// Walks the records of `data`, calling on_record(offset, body, length) for each whole
// one; a stretch that is not a whole record followed by one is damage (skipped, counted), one
// that runs to the end is the torn tail (size - whole_end). on_record returns false for a record
// whose body does not parse: counted as damage too.
template <class F> scan_result scan_records(const std::string& data, std::uint32_t magic, F&& on_record) {
  const auto* base = reinterpret_cast<const codec::byte*>(data.data());
  const std::size_t size = data.size();
  scan_result r;
  std::size_t at = 0;
  while (at < size) {
    if (auto len = whole_record_at(base, size, at, magic)) {
      if (!on_record(at, base + at + record_head, *len)) {
        r.damaged_bytes += record_head + *len;
        ++r.damaged_regions;
      }
      at += record_head + *len;
      r.whole_end = at;
      continue;
    }
    // resynchronise: the next offset where a whole record starts
    std::size_t next = at + 1;
    for (; next < size; ++next) {
      const void* f = std::memchr(data.data() + next, static_cast<int>(magic & 0xFF), size - next);
      if (!f) {
        next = size;
        break;
      }
      next = static_cast<std::size_t>(static_cast<const char*>(f) - data.data());
      if (whole_record_at(base, size, next, magic)) break;
    }
    if (next >= size) break; // nothing whole after it: the torn tail
    r.damaged_bytes += next - at;
    ++r.damaged_regions;
    at = next;
  }
  return r;
}

} // namespace flowbus::actors::detail
