/* What the bench's two C generators (connect-gen.c --tls, pipeline-gen.c --tls) share of TLS, through
 * the system's OpenSSL (bench/native.ts links -lssl -lcrypto): the client context and how a failed
 * SSL call is counted. Include after gen-tally.h (bench/native.ts rebuilds both when it changes). */
#include <errno.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <signal.h>
#include <stdio.h>

/**
 * A client context: TLS 1.3 only, X25519 only, the server's certificate not checked (a load tool),
 * no session cache (connect-gen --tls resume sets its own). NULL if OpenSSL refuses (printed as
 * "PROG: ...").
 */
static SSL_CTX *gen_tls_context(const char *prog) {
  SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
  if (!ctx || !SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION) ||
      !SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION) || !SSL_CTX_set1_groups_list(ctx, "X25519")) {
    fprintf(stderr, "%s: cannot set up TLS 1.3 with X25519: %s\n", prog, ERR_reason_error_string(ERR_get_error()));
    return NULL;
  }
  SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
  /* OpenSSL writes with write(2): a peer gone away must be an error, not SIGPIPE. */
  signal(SIGPIPE, SIG_IGN);
  /* A peer's EOF without close_notify is an eof error, as on plain TCP. */
  SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
  /* SSL_write returns after each record it wrote (reads go on while a large body is sent), and a
   * write repeated after WANT_READ/WANT_WRITE may pass the same bytes from a moved buffer. */
  SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
  return ctx;
}

/**
 * An SSL call on `ssl` returned `r` <= 0 (errno set to 0 before the call: SSL_ERROR_SYSCALL reads
 * it). -1: it only waits for the socket (WANT_READ or WANT_WRITE, whichever way: call it again on
 * the socket's next event). Else the kind the failure counts as: `k` (K_CONNECT for a handshake),
 * or K_EOF for the peer's close after the handshake; `*err` its errno (0: none), and an OpenSSL
 * error counted in `st` by its reason ("TLS wrong version number").
 */
static int gen_tls_failure(SSL *ssl, int r, enum kind k, struct tally *st, int *err) {
  int saved = errno;
  int e = SSL_get_error(ssl, r);
  *err = 0;
  if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) return -1;
  if (e == SSL_ERROR_ZERO_RETURN || (e == SSL_ERROR_SYSCALL && saved == 0)) return k == K_CONNECT ? K_CONNECT : K_EOF;
  if (e == SSL_ERROR_SYSCALL) {
    *err = saved;
    return k;
  }
  char name[CODE_LEN];
  unsigned long code = ERR_peek_last_error();
  const char *reason = code ? ERR_reason_error_string(code) : NULL;
  snprintf(name, sizeof name, "TLS %s", reason ? reason : "error");
  count_name(st, name);
  return k;
}
