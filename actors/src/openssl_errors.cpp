// A workaround for CAF 0.17.6's TLS links (libcaf_openssl, Debian's build): OpenSSL's error queue
// is per thread, and SSL_get_error() reads it — so it must be empty before each TLS I/O call
// (OpenSSL's manual, SSL_get_error(3)). CAF's session drains it only inside a log statement that
// Debian's build compiles out. One failed handshake on a node's cluster port (a peer whose
// certificate another CA signed, a node without TLS, a port scanner) leaves an error in the queue
// of the middleman's thread, and the next read on any *healthy* link of that thread then looks
// failed: CAF drops it (tests/actors/cluster_tls.test.cpp caught it: every outsider's dial dropped
// the link between two good nodes).
//
// The fix is what OpenSSL asks for: these definitions stand in for the library's TLS I/O calls
// (the executable's symbols come first in the dynamic lookup), clear the calling thread's error
// queue, and call OpenSSL's own (dlsym RTLD_NEXT). Nothing else changes: same arguments, same
// results. They are in the actors layer's node.cpp object file's company so every program that
// runs a node gets them (node.cpp refers to flowbus_openssl_errors_linked).
#include <dlfcn.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

namespace flowbus::actors::detail {
int flowbus_openssl_errors_linked = 0;
} // namespace flowbus::actors::detail

namespace {
template <class F> F next(const char* name) noexcept { return reinterpret_cast<F>(dlsym(RTLD_NEXT, name)); }
} // namespace

extern "C" {

int SSL_read(SSL* s, void* buf, int num) {
  static const auto real = next<int (*)(SSL*, void*, int)>("SSL_read");
  ERR_clear_error();
  return real(s, buf, num);
}

int SSL_write(SSL* s, const void* buf, int num) {
  static const auto real = next<int (*)(SSL*, const void*, int)>("SSL_write");
  ERR_clear_error();
  return real(s, buf, num);
}

int SSL_accept(SSL* s) {
  static const auto real = next<int (*)(SSL*)>("SSL_accept");
  ERR_clear_error();
  return real(s);
}

int SSL_connect(SSL* s) {
  static const auto real = next<int (*)(SSL*)>("SSL_connect");
  ERR_clear_error();
  return real(s);
}

} // extern "C"
