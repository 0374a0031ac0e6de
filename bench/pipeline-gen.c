// pipeline-gen: a native pipelined message generator for `npm run bench` (bench/native.ts builds
// it with the system compiler into .bench-out/native/; it is never committed as a binary).
//
// N persistent connections, spread over T threads (one epoll per thread), each keeping D
// requests of S-byte bodies in flight: the load of `tcpdaemon bench --mode echo --depth D`,
// without the node tool's cost per message. Framing (--codec):
//   raw   the bytes themselves; the server echoes them (each S bytes is one message);
//   lars  8-byte header: msgid int32 LE, body length int32 LE, then the body (src/message/codecs/
//         lars.ts); the server answers each frame with the same msgid and body, in order;
//   seq   16-byte header: msgid, length, seq uint32 LE, flags (bit 0 REPLY), 3 reserved zero
//         bytes (src/message/codecs/seq.ts); the answer is the same frame flagged REPLY, and may
//         come in any order: it is matched by its seq.
// Every reply is verified byte for byte: raw and lars against the reply expected next (in
// order), seq against the request its seq names. A wrong byte, a wrong msgid, length, seq or
// flag, bytes nobody asked for: a `verify` error, the connection is closed (RST) and opened
// again after RETRY_MS, its requests in flight dropped. A message's latency runs from the
// moment its request was queued for writing to the last byte of its reply.
//
// With --tls each connection speaks TLS 1.3 with X25519 (OpenSSL; bench/native.ts links -lssl
// -lcrypto; the set-up shared with connect-gen is in gen-tls.h): the handshake first, then the same
// requests and verification over TLS. OpenSSL reads and writes as the protocol needs (a write may
// wait for a read, a read for a write), so every event of a TLS connection retries its writes and
// its reads until both wait. A failed handshake is a `connect` error, named by OpenSSL's reason.
//
// Every connection is opened (and its handshake done) before the load starts: the measured time,
// the rate and the CPU are those of the messages only.
//
// At the end it prints one JSON object on stdout: messages per second, errors by kind (the kinds
// of `tcpdaemon bench`), latency percentiles, its own CPU time (getrusage) and each thread's
// CPU time over the load's (threadBusy).
// Exit status: 0 no errors, 2 the run finished but counted errors, 1 bad arguments or failure.
#define _GNU_SOURCE
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "gen-tally.h"
#include "gen-tls.h"

#define MAX_CONNS 60000
#define MAX_THREADS 64
#define MAX_DEPTH 1024
#define MAX_SIZE (16 * 1024 * 1024)
#define MAX_IN_FLIGHT_BYTES (1ull << 30) /* over all connections, as the node tool */
#define RETRY_MS 50
#define PROGRESS_TIMEOUT_MS 10000 /* requests in flight and nothing moved this long: a timeout */
#define STALL_MS 2000             /* the oldest reply missing this long at the end: stalled */
#define SCAN_MS 5
#define FLAG_REPLY 1

enum codec { C_RAW, C_LARS, C_SEQ };
static const char *CODEC_NAMES[] = {"raw", "lars", "seq"};
static const size_t HEADER[] = {0, 8, 16};

enum state { WAITING, CONNECTING, HANDSHAKING, OPEN };

struct conn {
  int fd;
  SSL *ssl; /* --tls: the connection's TLS, else NULL */
  enum state state;
  uint32_t id;
  uint64_t next_k;   /* requests queued over the connection's life (sets each body) */
  uint64_t head_k;   /* raw, lars: the oldest request not answered */
  uint32_t inflight; /* requests queued and not answered */
  size_t pos;        /* bytes of the reply being read so far */
  int cur;           /* seq: slot of the reply being read, -1 while in its header */
  uint8_t hdr[16];   /* seq: the reply's header, as it arrives */
  uint64_t *sent_ns; /* per slot: when its request was queued */
  uint64_t *slot_k;  /* seq: the request number in each slot */
  uint32_t *slot_seq; /* seq: the seq outstanding in each slot, 0 = free */
  uint32_t *slot_gen; /* seq: how many times each slot was used */
  uint8_t *out;       /* requests queued and not yet written */
  size_t out_off, out_len;
  uint64_t written, received; /* bytes, this connection */
  uint64_t progress_ns, retry_ns;
};

struct stats {
  uint64_t done, sent, bytes;
  uint64_t handshakes; /* --tls: handshakes done (one per connection opened) */
  struct tally t;
};

struct thread {
  pthread_t tid;
  struct conn *conns;
  int nconns;
  int epfd;
  uint8_t *block;
  struct stats st;
  uint64_t stopped_ns; /* when its loop ended: the run's measured time ends there */
  uint64_t cpu_ns;     /* its own CPU over the load (CLOCK_THREAD_CPUTIME_ID) */
  int failed;
};

static struct sockaddr_storage g_addr;
static socklen_t g_addrlen;
static size_t g_size = 64;
static uint32_t g_depth = 16;
static enum codec g_codec = C_LARS;
static int32_t g_msgid = 1;
static size_t g_header, g_frame;
static uint8_t g_lars_header[8]; /* the same for every lars request: msgid, length */
static uint64_t g_duration_ns;
/* The load's span: set once every thread's connections are open (until then g_end_ns is 0). */
static uint64_t g_start_ns, g_end_ns;
static struct rusage g_ru0; /* the CPU used when the load started */
static pthread_barrier_t g_ready;
static SSL_CTX *g_ctx; /* --tls, else NULL */

static void put_u32le(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)v, p[1] = (uint8_t)(v >> 8), p[2] = (uint8_t)(v >> 16), p[3] = (uint8_t)(v >> 24);
}

static uint32_t get_u32le(const uint8_t *p) {
  return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

static const uint8_t *body_of(const struct thread *t, uint32_t id, uint64_t k) {
  uint32_t start = (uint32_t)(((uint64_t)(id % PERIOD) * CONN_STEP + (k % PERIOD) * SEQ_STEP) % PERIOD);
  return t->block + start;
}

static void reset_conn(struct conn *c) {
  c->head_k = c->next_k;
  c->inflight = 0;
  c->pos = 0;
  c->cur = -1;
  c->out_off = c->out_len = 0;
  c->written = c->received = 0;
  if (c->slot_seq) memset(c->slot_seq, 0, g_depth * sizeof *c->slot_seq);
}

/** The connection failed: count it, drop it and what was in flight, open it again after RETRY_MS. */
static void fail(struct thread *t, struct conn *c, enum kind k, int err, uint64_t now) {
  t->st.t.errors[k] += 1;
  if (err) count_code(&t->st.t, err);
  if (c->ssl) {
    SSL_free(c->ssl);
    c->ssl = NULL;
    ERR_clear_error(); /* the thread's error queue starts empty for the next connection */
  }
  if (c->fd >= 0) {
    struct linger lg = {1, 0}; /* a reset: nothing of a failed connection is worth a FIN */
    setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    close(c->fd);
  }
  c->fd = -1;
  c->state = WAITING;
  c->retry_ns = now + (uint64_t)RETRY_MS * 1000000u;
  reset_conn(c);
}

/** Appends request number next_k (in `slot` for seq) to the connection's writes. */
static void queue_request(struct thread *t, struct conn *c, uint32_t slot, uint64_t now) {
  uint64_t k = c->next_k++;
  if (c->out_off > 0 && c->out_off + c->out_len + g_frame > (size_t)g_depth * g_frame) {
    memmove(c->out, c->out + c->out_off, c->out_len);
    c->out_off = 0;
  }
  uint8_t *p = c->out + c->out_off + c->out_len;
  if (g_codec == C_LARS) {
    memcpy(p, g_lars_header, 8);
  } else if (g_codec == C_SEQ) {
    uint64_t seq = (uint64_t)c->slot_gen[slot] * g_depth + slot + 1;
    if (seq > 0xffffffffu) c->slot_gen[slot] = 0, seq = slot + 1;
    c->slot_gen[slot] += 1;
    c->slot_seq[slot] = (uint32_t)seq;
    c->slot_k[slot] = k;
    put_u32le(p, (uint32_t)g_msgid);
    put_u32le(p + 4, (uint32_t)g_size);
    put_u32le(p + 8, (uint32_t)seq);
    put_u32le(p + 12, 0); /* flags, then three reserved zero bytes */
  }
  memcpy(p + g_header, body_of(t, c->id, k), g_size);
  c->out_len += g_frame;
  c->sent_ns[g_codec == C_SEQ ? slot : k % g_depth] = now;
  c->inflight += 1;
  t->st.sent += 1;
}

/** --tls: an SSL call returned `r` <= 0. True if it only waits for the socket; else the connection failed (counted). */
static int tls_waits(struct thread *t, struct conn *c, int r, enum kind k, uint64_t now) {
  int err, kind = gen_tls_failure(c->ssl, r, k, &t->st.t, &err);
  if (kind < 0) return 1;
  fail(t, c, (enum kind)kind, err, now);
  return 0;
}

/** Writes what is queued; false if the connection failed. The rest goes on the socket's next event. */
static int flush(struct thread *t, struct conn *c, uint64_t now) {
  while (c->out_len > 0) {
    ssize_t n;
    if (c->ssl) {
      errno = 0; /* SSL_ERROR_SYSCALL reads it */
      int r = SSL_write(c->ssl, c->out + c->out_off, c->out_len > INT32_MAX ? INT32_MAX : (int)c->out_len);
      if (r <= 0) return tls_waits(t, c, r, K_RESET, now);
      n = r;
    } else if ((n = send(c->fd, c->out + c->out_off, c->out_len, MSG_NOSIGNAL)) < 0) {
      if (errno == EAGAIN) return 1;
      if (errno == EINTR) continue;
      fail(t, c, K_RESET, errno, now);
      return 0;
    }
    c->out_off += (size_t)n;
    c->out_len -= (size_t)n;
    c->written += (uint64_t)n;
    c->progress_ns = now;
  }
  c->out_off = 0;
  return 1;
}

static void start_conn(struct thread *t, struct conn *c, uint64_t now) {
  reset_conn(c);
  c->progress_ns = now;
  int fd = socket(g_addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    fail(t, c, K_CONNECT, errno, now);
    return;
  }
  c->fd = fd;
  int one = 1; /* as the node tool (setNoDelay): a request is never held back */
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (g_ctx) {
    c->ssl = SSL_new(g_ctx);
    if (!c->ssl || !SSL_set_fd(c->ssl, fd)) {
      fail(t, c, K_CONNECT, ENOMEM, now);
      return;
    }
    SSL_set_connect_state(c->ssl);
  }
  if (connect(fd, (struct sockaddr *)&g_addr, g_addrlen) < 0 && errno != EINPROGRESS) {
    fail(t, c, K_CONNECT, errno, now);
    return;
  }
  struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET, .data.ptr = c};
  if (epoll_ctl(t->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
    fail(t, c, K_CONNECT, errno, now);
    return;
  }
  c->state = CONNECTING;
}

/** A reply is in full: count it and, while the run lasts, queue the next request (in its slot). */
static void reply_done(struct thread *t, struct conn *c, uint32_t slot, uint64_t now) {
  record_us(&t->st.t, (now - c->sent_ns[slot]) / 1000u);
  t->st.done += 1;
  t->st.bytes += g_size;
  c->inflight -= 1;
  c->pos = 0;
  if (now < g_end_ns) queue_request(t, c, slot, now);
}

/** raw, lars: `buf` continues the replies expected in order; false at the first wrong byte. */
static int match_in_order(struct thread *t, struct conn *c, const uint8_t *buf, size_t n, uint64_t now) {
  size_t off = 0;
  while (off < n) {
    if (c->inflight == 0) return 0; /* a reply to nothing */
    uint64_t k = c->head_k;
    if (c->pos < g_header) {
      size_t take = g_header - c->pos < n - off ? g_header - c->pos : n - off;
      if (memcmp(buf + off, g_lars_header + c->pos, take) != 0) return 0;
      c->pos += take, off += take;
      if (c->pos < g_header) return 1;
    }
    size_t at = c->pos - g_header;
    size_t take = g_size - at < n - off ? g_size - at : n - off;
    if (memcmp(buf + off, body_of(t, c->id, k) + at, take) != 0) return 0;
    c->pos += take, off += take;
    if (c->pos == g_frame) {
      c->head_k += 1;
      reply_done(t, c, (uint32_t)(k % g_depth), now);
    }
  }
  return 1;
}

/** seq: `buf` continues replies in any order, each matched by its seq; false at the first wrong byte. */
static int match_by_seq(struct thread *t, struct conn *c, const uint8_t *buf, size_t n, uint64_t now) {
  size_t off = 0;
  while (off < n) {
    if (c->cur < 0) {
      if (c->inflight == 0) return 0;
      size_t take = g_header - c->pos < n - off ? g_header - c->pos : n - off;
      memcpy(c->hdr + c->pos, buf + off, take);
      c->pos += take, off += take;
      if (c->pos < g_header) return 1;
      uint32_t seq = get_u32le(c->hdr + 8);
      uint32_t slot = seq == 0 ? 0 : (seq - 1) % g_depth;
      if ((int32_t)get_u32le(c->hdr) != g_msgid || get_u32le(c->hdr + 4) != g_size || seq == 0 ||
          c->slot_seq[slot] != seq || get_u32le(c->hdr + 12) != FLAG_REPLY)
        return 0;
      c->cur = (int)slot;
    }
    uint32_t slot = (uint32_t)c->cur;
    size_t at = c->pos - g_header;
    size_t take = g_size - at < n - off ? g_size - at : n - off;
    if (memcmp(buf + off, body_of(t, c->id, c->slot_k[slot]) + at, take) != 0) return 0;
    c->pos += take, off += take;
    if (c->pos == g_frame) {
      c->slot_seq[slot] = 0;
      c->cur = -1;
      reply_done(t, c, slot, now);
    }
  }
  return 1;
}

/** `c` is open (its handshake done): while the run lasts, D requests go out at once. False if it failed. */
static int start_load(struct thread *t, struct conn *c, uint64_t now) {
  if (now < g_end_ns)
    for (uint32_t i = 0; i < g_depth; i++) queue_request(t, c, i, now);
  return flush(t, c, now);
}

/** One read (through TLS with --tls): bytes, 0 when it waits for the socket, -1 when the connection failed (counted). */
static ssize_t receive(struct thread *t, struct conn *c, uint8_t *buf, size_t buflen, uint64_t now) {
  if (c->ssl) {
    errno = 0; /* SSL_ERROR_SYSCALL reads it */
    int r = SSL_read(c->ssl, buf, buflen > INT32_MAX ? INT32_MAX : (int)buflen);
    if (r > 0) return r;
    return tls_waits(t, c, r, K_RESET, now) ? 0 : -1;
  }
  for (;;) {
    ssize_t n = recv(c->fd, buf, buflen, 0);
    if (n > 0) return n;
    if (n == 0) {
      fail(t, c, K_EOF, 0, now);
      return -1;
    }
    if (errno == EAGAIN) return 0;
    if (errno == EINTR) continue;
    fail(t, c, K_RESET, errno, now);
    return -1;
  }
}

static void on_event(struct thread *t, struct conn *c, uint32_t events, uint8_t *buf, size_t buflen) {
  uint64_t now = now_ns();
  if (c->state == CONNECTING) {
    if (!(events & (EPOLLOUT | EPOLLERR | EPOLLHUP))) return;
    int err = 0;
    socklen_t len = sizeof err;
    getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err || (events & EPOLLERR)) {
      fail(t, c, K_CONNECT, err ? err : ECONNREFUSED, now);
      return;
    }
    c->progress_ns = now;
    c->state = c->ssl ? HANDSHAKING : OPEN;
    if (!c->ssl && !start_load(t, c, now)) return;
  }
  if (c->state == HANDSHAKING) {
    errno = 0; /* SSL_ERROR_SYSCALL reads it */
    int r = SSL_do_handshake(c->ssl);
    if (r != 1) {
      tls_waits(t, c, r, K_CONNECT, now);
      return;
    }
    t->st.handshakes += 1;
    c->state = OPEN;
    c->progress_ns = now;
    if (!start_load(t, c, now)) return;
  } else if (c->state == OPEN && c->out_len > 0 && (c->ssl || (events & EPOLLOUT))) {
    /* TLS: a write that waited may have waited for the peer's bytes as well as for room. */
    if (!flush(t, c, now)) return;
  }
  if (c->state != OPEN) return;
  /* TLS: a read may have waited for room to write, so any event retries it. */
  if (!c->ssl && !(events & (EPOLLIN | EPOLLERR | EPOLLHUP | EPOLLRDHUP))) return;
  for (;;) {
    ssize_t n = receive(t, c, buf, buflen, now);
    if (n < 0) return;
    if (n == 0) break;
    c->progress_ns = now;
    c->received += (uint64_t)n;
    /* A reply is as long as its request: bytes beyond what was written cannot be right. */
    int ok = c->received <= c->written &&
             (g_codec == C_SEQ ? match_by_seq(t, c, buf, (size_t)n, now) : match_in_order(t, c, buf, (size_t)n, now));
    if (!ok) {
      fail(t, c, K_VERIFY, 0, now);
      return;
    }
    /* Drained (what comes later raises another edge), unless the peer's FIN may be behind it.
     * TLS reads on until OpenSSL waits for the socket: it may hold records already read. */
    if (!c->ssl && (size_t)n < buflen && !(events & (EPOLLRDHUP | EPOLLHUP))) break;
  }
  /* The next requests of every reply read, in one write. */
  flush(t, c, now);
}

/** The request outstanding longest on `c` was queued at this time (0: none). */
static uint64_t oldest_sent(const struct conn *c) {
  if (c->inflight == 0) return 0;
  if (g_codec != C_SEQ) return c->sent_ns[c->head_k % g_depth];
  uint64_t oldest = 0;
  for (uint32_t i = 0; i < g_depth; i++)
    if (c->slot_seq[i] && (!oldest || c->sent_ns[i] < oldest)) oldest = c->sent_ns[i];
  return oldest;
}

static void scan(struct thread *t, uint64_t now) {
  for (int i = 0; i < t->nconns; i++) {
    struct conn *c = &t->conns[i];
    if (c->state == WAITING) {
      if (now >= c->retry_ns && now < g_end_ns) start_conn(t, c, now);
    } else if ((c->state != OPEN || c->inflight > 0) &&
               now - c->progress_ns > (uint64_t)PROGRESS_TIMEOUT_MS * 1000000u) {
      fail(t, c, K_TIMEOUT, 0, now);
    }
  }
}

static uint64_t thread_cpu_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/** Waits for events (and scans) once; false if epoll_wait failed. */
static int poll_once(struct thread *t, struct epoll_event *evs, int nevs, uint8_t *buf, size_t buflen,
                     uint64_t *next_scan) {
  uint64_t now = now_ns();
  if (now >= *next_scan) {
    scan(t, now);
    *next_scan = now + (uint64_t)SCAN_MS * 1000000u;
  }
  int n = epoll_wait(t->epfd, evs, nevs, SCAN_MS);
  if (n < 0) return errno == EINTR;
  for (int i = 0; i < n; i++) on_event(t, evs[i].data.ptr, evs[i].events, buf, buflen);
  return 1;
}

/** Some connection of `t` is still connecting or in its handshake. */
static int opening(const struct thread *t) {
  for (int i = 0; i < t->nconns; i++)
    if (t->conns[i].state == CONNECTING || t->conns[i].state == HANDSHAKING) return 1;
  return 0;
}

static void *run_thread(void *arg) {
  struct thread *t = arg;
  enum { EVENTS = 256 };
  struct epoll_event evs[EVENTS];
  size_t buflen = 256 * 1024;
  uint8_t *buf = malloc(buflen);
  uint64_t now = now_ns();
  uint64_t next_scan = now + (uint64_t)SCAN_MS * 1000000u;
  /* Open every connection (a failed one waits for the load to retry it), then start the load at
   * once on every thread: the first to pass the barrier sets its span. */
  if (!buf) t->failed = 1;
  else
    for (int i = 0; i < t->nconns; i++) start_conn(t, &t->conns[i], now);
  while (!t->failed && opening(t))
    if (!poll_once(t, evs, EVENTS, buf, buflen, &next_scan)) t->failed = 1;
  if (pthread_barrier_wait(&g_ready) == PTHREAD_BARRIER_SERIAL_THREAD) {
    getrusage(RUSAGE_SELF, &g_ru0);
    g_start_ns = now_ns();
    g_end_ns = g_start_ns + g_duration_ns;
  }
  pthread_barrier_wait(&g_ready);
  uint64_t cpu0 = thread_cpu_ns();
  now = now_ns();
  for (int i = 0; i < t->nconns && !t->failed; i++)
    if (t->conns[i].state == OPEN) start_load(t, &t->conns[i], now);
  while (!t->failed && now_ns() < g_end_ns)
    if (!poll_once(t, evs, EVENTS, buf, buflen, &next_scan)) t->failed = 1;
  now = now_ns();
  t->stopped_ns = now;
  t->cpu_ns = thread_cpu_ns() - cpu0;
  for (int i = 0; i < t->nconns; i++) {
    struct conn *c = &t->conns[i];
    uint64_t oldest = c->state == OPEN ? oldest_sent(c) : 0;
    if (oldest && now - oldest > (uint64_t)STALL_MS * 1000000u) t->st.t.errors[K_STALLED] += 1;
    if (c->ssl) {
      SSL_shutdown(c->ssl); /* our close_notify; the peer's is not waited for */
      SSL_free(c->ssl);
      c->ssl = NULL;
    }
    if (c->fd >= 0) close(c->fd);
    c->fd = -1;
  }
  free(buf);
  return NULL;
}

static void merge(struct stats *into, const struct stats *from) {
  into->done += from->done;
  into->sent += from->sent;
  into->bytes += from->bytes;
  into->handshakes += from->handshakes;
  merge_tally(&into->t, &from->t);
}

static void usage(const char *why) {
  fprintf(stderr,
          "pipeline-gen: %s\n"
          "usage: pipeline-gen --port PORT [--host HOST] [--connections N] [--depth D] [--size S]\n"
          "                    [--codec raw|lars|seq] [--msgid M] [--duration SECONDS] [--threads T] [--tls]\n"
          "  N persistent connections (default 50, at most %d), each keeping D requests (default 16,\n"
          "  at most %d) of S-byte bodies (default 64, at most %d) in flight, framed by the codec\n"
          "  (default lars; msgid M, default 1), every reply verified byte for byte, for SECONDS\n"
          "  (default 5), over T threads (default 1). One JSON object on stdout.\n"
          "  --tls: each connection speaks TLS 1.3 (X25519; the certificate is not checked), its\n"
          "  handshake done before the load starts.\n"
          "exit status: 0 no errors, 2 errors counted, 1 bad arguments or failure\n",
          why, MAX_CONNS, MAX_DEPTH, MAX_SIZE);
  exit(1);
}

int main(int argc, char **argv) {
  const char *host = "127.0.0.1", *port = NULL;
  long conns = 50, threads = 1;
  int tls = 0;
  double duration = 5;
  for (int i = 1; i < argc; i++) {
    const char *flag = argv[i];
    if (strcmp(flag, "--help") == 0 || strcmp(flag, "-h") == 0) usage("help");
    if (strcmp(flag, "--tls") == 0) {
      tls = 1;
      continue;
    }
    if (i + 1 >= argc) usage("a flag needs a value");
    const char *v = argv[++i];
    if (strcmp(flag, "--host") == 0) host = v;
    else if (strcmp(flag, "--port") == 0) port = v, whole(flag, v, 1, 65535);
    else if (strcmp(flag, "--connections") == 0) conns = whole(flag, v, 1, MAX_CONNS);
    else if (strcmp(flag, "--depth") == 0) g_depth = (uint32_t)whole(flag, v, 1, MAX_DEPTH);
    else if (strcmp(flag, "--size") == 0) g_size = (size_t)whole(flag, v, 1, MAX_SIZE);
    else if (strcmp(flag, "--threads") == 0) threads = whole(flag, v, 1, MAX_THREADS);
    else if (strcmp(flag, "--msgid") == 0) g_msgid = (int32_t)whole(flag, v, -2147483647L - 1, 2147483647L);
    else if (strcmp(flag, "--duration") == 0) {
      char *end;
      duration = strtod(v, &end);
      if (*end || end == v || !(duration > 0 && duration <= 3600)) usage("--duration must be seconds above 0 up to 3600");
    } else if (strcmp(flag, "--codec") == 0) {
      if (strcmp(v, "raw") == 0) g_codec = C_RAW;
      else if (strcmp(v, "lars") == 0) g_codec = C_LARS;
      else if (strcmp(v, "seq") == 0) g_codec = C_SEQ;
      else usage("--codec must be raw, lars or seq");
    } else {
      char why[160];
      snprintf(why, sizeof why, "unknown flag '%s'", flag);
      usage(why);
    }
  }
  if (!port) usage("--port is required");
  if (threads > conns) threads = conns;
  g_header = HEADER[g_codec];
  g_frame = g_header + g_size;
  if ((unsigned long long)conns * g_depth * g_frame > MAX_IN_FLIGHT_BYTES)
    usage("connections x depth x frame size is over 1 GiB in flight");
  put_u32le(g_lars_header, (uint32_t)g_msgid);
  put_u32le(g_lars_header + 4, (uint32_t)g_size);

  struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai;
  int gai = getaddrinfo(host, port, &hints, &ai);
  if (gai) {
    fprintf(stderr, "pipeline-gen: %s:%s: %s\n", host, port, gai_strerror(gai));
    return 1;
  }
  memcpy(&g_addr, ai->ai_addr, ai->ai_addrlen);
  g_addrlen = ai->ai_addrlen;
  freeaddrinfo(ai);
  if (tls) {
    if (!(g_ctx = gen_tls_context("pipeline-gen"))) return 1;
    /* Whole socket reads, not a record header and then its body: half the reads. */
    SSL_CTX_set_read_ahead(g_ctx, 1);
  }

  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && (rlim_t)conns + 64 > rl.rlim_cur) {
    fprintf(stderr, "pipeline-gen: --connections %ld needs more open files than the limit of %lu\n", conns,
            (unsigned long)rl.rlim_cur);
    return 1;
  }

  static struct thread ts[MAX_THREADS];
  struct conn *all = calloc((size_t)conns, sizeof *all);
  if (!all) return 1;
  for (long i = 0; i < conns; i++) {
    struct conn *c = &all[i];
    c->id = (uint32_t)i;
    c->fd = -1;
    c->sent_ns = calloc(g_depth, sizeof *c->sent_ns);
    c->out = malloc((size_t)g_depth * g_frame);
    if (g_codec == C_SEQ) {
      c->slot_k = calloc(g_depth, sizeof *c->slot_k);
      c->slot_seq = calloc(g_depth, sizeof *c->slot_seq);
      c->slot_gen = calloc(g_depth, sizeof *c->slot_gen);
      if (!c->slot_k || !c->slot_seq || !c->slot_gen) return 1;
    }
    if (!c->sent_ns || !c->out) {
      fprintf(stderr, "pipeline-gen: out of memory\n");
      return 1;
    }
  }
  g_duration_ns = (uint64_t)(duration * 1e9);
  if (pthread_barrier_init(&g_ready, NULL, (unsigned)threads) != 0) return 1;
  long first = 0;
  for (long k = 0; k < threads; k++) {
    struct thread *t = &ts[k];
    long n = conns / threads + (k < conns % threads ? 1 : 0);
    t->conns = all + first;
    t->nconns = (int)n;
    first += n;
    t->epfd = epoll_create1(EPOLL_CLOEXEC);
    t->block = malloc(PERIOD + g_size);
    if (t->epfd < 0 || !t->block) {
      perror("pipeline-gen");
      return 1;
    }
    /* A random block per thread: the same bytes never come back by chance. */
    uint64_t x = now_ns() ^ ((uint64_t)k << 32) ^ 0x9e3779b97f4a7c15u;
    for (size_t i = 0; i < PERIOD + g_size; i++) {
      x ^= x << 13, x ^= x >> 7, x ^= x << 17;
      t->block[i] = (uint8_t)(x >> 24);
    }
    if (pthread_create(&t->tid, NULL, run_thread, t) != 0) {
      perror("pipeline-gen: pthread_create");
      return 1;
    }
  }
  struct stats total;
  memset(&total, 0, sizeof total);
  int failed = 0;
  uint64_t stopped = 0;
  for (long k = 0; k < threads; k++) {
    pthread_join(ts[k].tid, NULL);
    merge(&total, &ts[k].st);
    failed |= ts[k].failed;
    if (ts[k].stopped_ns > stopped) stopped = ts[k].stopped_ns;
  }
  double seconds = stopped > g_start_ns ? (double)(stopped - g_start_ns) / 1e9 : 0;
  if (failed) {
    fprintf(stderr, "pipeline-gen: epoll_wait failed or out of memory\n");
    return 1;
  }

  printf("{\"generator\":\"pipeline-gen\",\"target\":\"%s:%s\",\"codec\":\"%s\",\"msgid\":%d,\"connections\":%ld,"
         "\"depth\":%u,\"threads\":%ld,\"size\":%zu,\"seconds\":%.3f,\"completed\":%lu,\"sent\":%lu,"
         "\"perSecond\":%.1f,\"mbPerSecond\":%.3f,\"tls\":%s,\"handshakes\":%lu,",
         host, port, CODEC_NAMES[g_codec], g_msgid, conns, g_depth, threads, g_size, seconds,
         (unsigned long)total.done, (unsigned long)total.sent, seconds > 0 ? (double)total.done / seconds : 0.0,
         seconds > 0 ? (double)total.bytes / seconds / 1e6 : 0.0, tls ? "true" : "false",
         (unsigned long)total.handshakes);
  /* Each thread's CPU over the load ÷ the load's time: near 1, that thread is the limit. */
  printf("\"threadBusy\":[");
  for (long k = 0; k < threads; k++)
    printf("%s%.3f", k ? "," : "", seconds > 0 ? (double)ts[k].cpu_ns / 1e9 / seconds : 0.0);
  printf("],");
  return print_tally_tail(&total.t, &g_ru0, seconds);
}
