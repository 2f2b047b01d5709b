// base64url without padding (RFC 4648 §5, RFC 7515 §2), with OpenSSL's codec (private to
// transport/): tokens, public keys, nonces and signatures.
#pragma once

#include <openssl/evp.h>

#include <cctype>
#include <string>
#include <string_view>

namespace flowbus::transport::detail {

inline std::string base64url(std::string_view in) {
  std::string out(4 * ((in.size() + 2) / 3) + 1, '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(in.data()), static_cast<int>(in.size()));
  out.resize(static_cast<std::size_t>(n));
  while (!out.empty() && out.back() == '=')
    out.pop_back();
  for (char& c : out)
    c = c == '+' ? '-' : c == '/' ? '_' : c;
  return out;
}

/// false for anything but unpadded base64url (RFC 7515 §2).
inline bool unbase64url(std::string_view in, std::string& out) {
  if (in.empty() || in.size() % 4 == 1) return false;
  std::string s;
  s.reserve(in.size() + 3);
  for (char c : in) {
    if (std::isalnum(static_cast<unsigned char>(c))) s.push_back(c);
    else if (c == '-') s.push_back('+');
    else if (c == '_') s.push_back('/');
    else return false;
  }
  const std::size_t pad = (4 - s.size() % 4) % 4;
  s.append(pad, '=');
  out.assign(3 * s.size() / 4, '\0');
  const int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(s.data()), static_cast<int>(s.size()));
  if (n < 0) return false;
  out.resize(static_cast<std::size_t>(n) - pad); // (EVP_DecodeBlock counts the padding's zero bytes)
  return true;
}

} // namespace flowbus::transport::detail
