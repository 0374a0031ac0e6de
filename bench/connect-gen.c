// connect-gen: a native connect-loop load generator for `npm run bench` (bench/native.ts builds
// it with the system compiler into .bench-out/native/; it is never committed as a binary).
//
// N loops, spread over T threads (one epoll per thread). Each loop repeats one cycle:
// socket, non-blocking connect, write S bytes, read S bytes and compare every byte with what
// was written, close, either plainly (FIN) or with SO_LINGER 0 (RST). A failed cycle is counted
// and the loop starts again after RETRY_MS. At the end it prints one JSON object on stdout:
// cycles per second, errors by kind (the same kinds as `tcpdaemon bench`), latency percentiles
// (from socket() to the last echoed byte) and its own CPU time (getrusage).
//
// With --tls new|resume (OpenSSL; bench/native.ts links -lssl -lcrypto) each cycle speaks TLS 1.3
// with X25519 over the connection: the handshake (a full one each time, or resuming the session
// ticket the thread got last), the body written and verified through TLS, close_notify, close.
// The server's certificate is not checked (a load tool); `resumed` counts the handshakes the
// server actually resumed.
//
// Exit status: 0 no errors, 2 the run finished but counted errors, 1 bad arguments or failure.
#define _GNU_SOURCE
#include <arpa/inet.h>
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

#define MAX_LOOPS 60000
#define MAX_THREADS 64
#define MAX_SIZE (16 * 1024 * 1024)
#define RETRY_MS 50
#define PROGRESS_TIMEOUT_MS 10000 /* no progress for this long: a timeout error */
#define STALL_MS 2000             /* a reply missing this long at the end: stalled */
#define SCAN_MS 5                 /* how often retries and timeouts are looked at */

enum state { WAITING, CONNECTING, HANDSHAKING, SENDING, READING };
enum tls_mode { TLS_OFF, TLS_NEW, TLS_RESUME };
static const char *TLS_NAMES[] = {"off", "new", "resume"};

struct loop {
  int fd;
  SSL *ssl; /* --tls: this cycle's TLS connection, else NULL */
  enum state state;
  uint32_t id;
  uint32_t seq;
  const uint8_t *body;
  size_t sent;
  size_t matched;
  uint64_t started_ns;  /* socket() of this cycle */
  uint64_t progress_ns; /* last connect, write or read that moved */
  uint64_t written_ns;  /* when the whole body was written */
  uint64_t retry_ns;    /* WAITING: when to start again */
};

struct stats {
  uint64_t done;
  uint64_t resumed; /* --tls: handshakes that resumed a session */
  struct tally t;
};

struct thread {
  pthread_t tid;
  struct loop *loops;
  int nloops;
  int epfd;
  uint8_t *block;
  struct stats st;
  int failed;
};

static struct sockaddr_storage g_addr;
static socklen_t g_addrlen;
static size_t g_size = 64;
static int g_rst = 0;
static uint64_t g_start_ns, g_end_ns;
static enum tls_mode g_tls = TLS_OFF;
static SSL_CTX *g_ctx;
/* --tls resume: the last session ticket this thread received (TLS 1.3 sends it after the handshake). */
static __thread SSL_SESSION *t_session;

static void close_fd(int fd, int rst) {
  if (rst) {
    struct linger lg = {1, 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
  }
  close(fd);
}

static void drop_tls(struct loop *l) {
  if (!l->ssl) return;
  SSL_free(l->ssl);
  l->ssl = NULL;
  ERR_clear_error(); /* the thread's error queue starts empty for the next cycle */
}

/** The cycle failed: count it, drop the socket, start again after RETRY_MS. */
static void fail(struct thread *t, struct loop *l, enum kind k, int err, uint64_t now) {
  t->st.t.errors[k] += 1;
  if (err) count_code(&t->st.t, err);
  drop_tls(l);
  if (l->fd >= 0) close_fd(l->fd, 1); /* a reset: nothing of a failed cycle is worth a FIN */
  l->fd = -1;
  l->state = WAITING;
  l->retry_ns = now + (uint64_t)RETRY_MS * 1000000u;
}

static void start_cycle(struct thread *t, struct loop *l, uint64_t now) {
  uint32_t start = (uint32_t)(((uint64_t)(l->id % PERIOD) * CONN_STEP + (uint64_t)(l->seq % PERIOD) * SEQ_STEP) % PERIOD);
  l->seq += 1;
  l->body = t->block + start;
  l->sent = 0;
  l->matched = 0;
  l->started_ns = now;
  l->progress_ns = now;
  int fd = socket(g_addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    fail(t, l, K_CONNECT, errno, now);
    return;
  }
  l->fd = fd;
  if (g_tls != TLS_OFF) {
    /* The handshake's flights and the body are separate small writes: Nagle would hold them back. */
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    l->ssl = SSL_new(g_ctx);
    if (!l->ssl || !SSL_set_fd(l->ssl, fd)) {
      fail(t, l, K_CONNECT, ENOMEM, now);
      return;
    }
    SSL_set_connect_state(l->ssl);
    if (g_tls == TLS_RESUME && t_session) {
      /* A copy: OpenSSL marks a TLS 1.3 session it resumed as used up, and servers that send no
       * new ticket after a resumption (node's) get the same ticket again, as node's client offers it. */
      SSL_SESSION *copy = SSL_SESSION_dup(t_session);
      if (copy) {
        SSL_set_session(l->ssl, copy);
        SSL_SESSION_free(copy);
      }
    }
  }
  if (connect(fd, (struct sockaddr *)&g_addr, g_addrlen) < 0 && errno != EINPROGRESS) {
    fail(t, l, K_CONNECT, errno, now);
    return;
  }
  struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLET, .data.ptr = l};
  if (epoll_ctl(t->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
    fail(t, l, K_CONNECT, errno, now);
    return;
  }
  l->state = CONNECTING;
}

/** Writes what is left of the body; false if the cycle failed. */
static int send_body(struct thread *t, struct loop *l, uint64_t now) {
  while (l->sent < g_size) {
    ssize_t n = send(l->fd, l->body + l->sent, g_size - l->sent, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EAGAIN) {
        /* The rest goes when the socket is writable; Nagle must not hold back its tail. */
        int one = 1;
        setsockopt(l->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        return 1;
      }
      fail(t, l, K_RESET, errno, now);
      return 0;
    }
    l->sent += (size_t)n;
    l->progress_ns = now;
  }
  if (l->state != READING) {
    l->state = READING;
    l->written_ns = now;
  }
  return 1;
}

/* --tls resume: keep the newest ticket of this thread (OpenSSL hands over its reference: return 1). */
static int on_new_session(SSL *ssl, SSL_SESSION *session) {
  (void)ssl;
  if (t_session) SSL_SESSION_free(t_session);
  t_session = session;
  return 1;
}

/** An SSL call returned `r` <= 0: true when it only waits for the socket; else the cycle failed (counted). */
static int tls_blocked(struct thread *t, struct loop *l, int r, enum kind k, uint64_t now) {
  int err, kind = gen_tls_failure(l->ssl, r, k, &t->st.t, &err);
  if (kind < 0) return 1;
  fail(t, l, (enum kind)kind, err, now);
  return 0;
}

/** The cycle was echoed in full: count it, close (close_notify, then FIN or RST), start the next. */
static void cycle_done(struct thread *t, struct loop *l, uint64_t now) {
  record_us(&t->st.t, (now - l->started_ns) / 1000u);
  t->st.done += 1;
  if (l->ssl) {
    if (!g_rst) SSL_shutdown(l->ssl); /* our close_notify; the peer's is not waited for */
    drop_tls(l);
  }
  close_fd(l->fd, g_rst);
  l->fd = -1;
  if (now < g_end_ns) start_cycle(t, l, now);
  else l->state = WAITING;
}

/** --tls: drives the handshake, the writes and the reads of `l` until each waits for the socket. */
static void tls_advance(struct thread *t, struct loop *l, uint8_t *buf, size_t buflen, uint64_t now) {
  if (l->state == HANDSHAKING) {
    errno = 0; /* SSL_ERROR_SYSCALL reads it */
    int r = SSL_do_handshake(l->ssl);
    if (r != 1) {
      tls_blocked(t, l, r, K_CONNECT, now);
      return;
    }
    if (SSL_session_reused(l->ssl)) t->st.resumed += 1;
    l->state = SENDING;
    l->progress_ns = now;
  }
  if (l->state == SENDING) {
    while (l->sent < g_size) {
      size_t left = g_size - l->sent;
      errno = 0; /* SSL_ERROR_SYSCALL reads it */
      int n = SSL_write(l->ssl, l->body + l->sent, left > INT32_MAX ? INT32_MAX : (int)left);
      if (n <= 0) {
        if (!tls_blocked(t, l, n, K_RESET, now)) return;
        break; /* the rest when the socket lets it; meanwhile read what came back */
      }
      l->sent += (size_t)n;
      l->progress_ns = now;
    }
    if (l->sent == g_size) {
      l->state = READING;
      l->written_ns = now;
    }
  }
  for (;;) {
    errno = 0; /* SSL_ERROR_SYSCALL reads it */
    int n = SSL_read(l->ssl, buf, buflen > INT32_MAX ? INT32_MAX : (int)buflen);
    if (n <= 0) {
      tls_blocked(t, l, n, K_RESET, now);
      return;
    }
    l->progress_ns = now;
    if ((size_t)n > l->sent - l->matched || memcmp(buf, l->body + l->matched, (size_t)n) != 0) {
      fail(t, l, K_VERIFY, 0, now);
      return;
    }
    l->matched += (size_t)n;
    if (l->matched == g_size) {
      cycle_done(t, l, now);
      return;
    }
  }
}

static void on_event(struct thread *t, struct loop *l, uint32_t events, uint8_t *buf, size_t buflen) {
  uint64_t now = now_ns();
  if (l->state == CONNECTING) {
    if (!(events & (EPOLLOUT | EPOLLERR | EPOLLHUP))) return;
    int err = 0;
    socklen_t len = sizeof err;
    getsockopt(l->fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err || (events & EPOLLERR)) {
      fail(t, l, K_CONNECT, err ? err : ECONNREFUSED, now);
      return;
    }
    l->state = l->ssl ? HANDSHAKING : SENDING;
    l->progress_ns = now;
  }
  if (l->ssl) {
    /* OpenSSL reads and writes as the handshake needs: drive it on any event until it waits. */
    tls_advance(t, l, buf, buflen, now);
    return;
  }
  if (l->state == SENDING && (events & EPOLLOUT)) {
    if (!send_body(t, l, now)) return;
  }
  if (!(events & (EPOLLIN | EPOLLERR | EPOLLHUP | EPOLLRDHUP))) return;
  for (;;) {
    ssize_t n = recv(l->fd, buf, buflen, 0);
    if (n < 0) {
      if (errno == EAGAIN) return;
      fail(t, l, K_RESET, errno, now);
      return;
    }
    if (n == 0) {
      fail(t, l, K_EOF, 0, now);
      return;
    }
    l->progress_ns = now;
    /* Bytes before the whole body was written, or past its length, are wrong bytes too. */
    if ((size_t)n > l->sent - l->matched || memcmp(buf, l->body + l->matched, (size_t)n) != 0) {
      fail(t, l, K_VERIFY, 0, now);
      return;
    }
    l->matched += (size_t)n;
    if (l->matched == g_size) {
      cycle_done(t, l, now);
      return;
    }
  }
}

/** Starts loops whose retry is due; fails those that made no progress for too long. */
static void scan(struct thread *t, uint64_t now) {
  for (int i = 0; i < t->nloops; i++) {
    struct loop *l = &t->loops[i];
    if (l->state == WAITING) {
      if (now >= l->retry_ns && now < g_end_ns) start_cycle(t, l, now);
    } else if (now - l->progress_ns > (uint64_t)PROGRESS_TIMEOUT_MS * 1000000u) {
      fail(t, l, K_TIMEOUT, 0, now);
    }
  }
}

static void *run_thread(void *arg) {
  struct thread *t = arg;
  enum { EVENTS = 256 };
  struct epoll_event evs[EVENTS];
  size_t buflen = 64 * 1024;
  uint8_t *buf = malloc(buflen);
  if (!buf) {
    t->failed = 1;
    return NULL;
  }
  uint64_t now = now_ns();
  for (int i = 0; i < t->nloops; i++) start_cycle(t, &t->loops[i], now);
  uint64_t next_scan = now + (uint64_t)SCAN_MS * 1000000u;
  while ((now = now_ns()) < g_end_ns) {
    if (now >= next_scan) {
      scan(t, now);
      next_scan = now + (uint64_t)SCAN_MS * 1000000u;
    }
    int n = epoll_wait(t->epfd, evs, EVENTS, SCAN_MS);
    if (n < 0) {
      if (errno == EINTR) continue;
      t->failed = 1;
      break;
    }
    for (int i = 0; i < n; i++) on_event(t, evs[i].data.ptr, evs[i].events, buf, buflen);
  }
  now = now_ns();
  for (int i = 0; i < t->nloops; i++) {
    struct loop *l = &t->loops[i];
    if (l->state == READING && now - l->written_ns > (uint64_t)STALL_MS * 1000000u) t->st.t.errors[K_STALLED] += 1;
    drop_tls(l);
    if (l->fd >= 0) close_fd(l->fd, 1);
    l->fd = -1;
  }
  if (t_session) SSL_SESSION_free(t_session);
  t_session = NULL;
  free(buf);
  return NULL;
}

static void merge(struct stats *into, const struct stats *from) {
  into->done += from->done;
  into->resumed += from->resumed;
  merge_tally(&into->t, &from->t);
}

static void usage(const char *why) {
  fprintf(stderr,
          "connect-gen: %s\n"
          "usage: connect-gen --port PORT [--host HOST] [--connections N] [--size S] [--duration SECONDS]\n"
          "                   [--close fin|rst] [--threads T] [--tls new|resume]\n"
          "  N concurrent loops (default 8, at most %d) of: connect, send S bytes (default 64, at most %d),\n"
          "  read them back verifying every byte, close (fin: plain close; rst: SO_LINGER 0), for SECONDS\n"
          "  (default 5), over T threads (default 1). One JSON object on stdout.\n"
          "  --tls: each cycle over TLS 1.3 (X25519; the certificate is not checked), a full handshake\n"
          "  each time (new) or resuming the thread's last session ticket (resume).\n"
          "exit status: 0 no errors, 2 errors counted, 1 bad arguments or failure\n",
          why, MAX_LOOPS, MAX_SIZE);
  exit(1);
}

/** The client context of every cycle (gen-tls.h), with the session callback for --tls resume. 0 or -1. */
static int setup_tls(void) {
  g_ctx = gen_tls_context("connect-gen");
  if (!g_ctx) return -1;
  if (g_tls == TLS_RESUME) {
    SSL_CTX_set_session_cache_mode(g_ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
    SSL_CTX_sess_set_new_cb(g_ctx, on_new_session);
  }
  return 0;
}

int main(int argc, char **argv) {
  const char *host = "127.0.0.1", *port = NULL;
  long loops = 8, threads = 1;
  double duration = 5;
  for (int i = 1; i < argc; i++) {
    const char *flag = argv[i];
    if (strcmp(flag, "--help") == 0 || strcmp(flag, "-h") == 0) usage("help");
    if (i + 1 >= argc) usage("a flag needs a value");
    const char *v = argv[++i];
    if (strcmp(flag, "--host") == 0) host = v;
    else if (strcmp(flag, "--port") == 0) port = v, whole(flag, v, 1, 65535);
    else if (strcmp(flag, "--connections") == 0) loops = whole(flag, v, 1, MAX_LOOPS);
    else if (strcmp(flag, "--size") == 0) g_size = (size_t)whole(flag, v, 1, MAX_SIZE);
    else if (strcmp(flag, "--threads") == 0) threads = whole(flag, v, 1, MAX_THREADS);
    else if (strcmp(flag, "--duration") == 0) {
      char *end;
      duration = strtod(v, &end);
      if (*end || end == v || !(duration > 0 && duration <= 3600)) usage("--duration must be seconds above 0 up to 3600");
    } else if (strcmp(flag, "--close") == 0) {
      if (strcmp(v, "fin") == 0) g_rst = 0;
      else if (strcmp(v, "rst") == 0) g_rst = 1;
      else usage("--close must be fin or rst");
    } else if (strcmp(flag, "--tls") == 0) {
      if (strcmp(v, "new") == 0) g_tls = TLS_NEW;
      else if (strcmp(v, "resume") == 0) g_tls = TLS_RESUME;
      else usage("--tls must be new or resume");
    } else {
      char why[160];
      snprintf(why, sizeof why, "unknown flag '%s'", flag);
      usage(why);
    }
  }
  if (!port) usage("--port is required");
  if (threads > loops) threads = loops;

  struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai;
  int gai = getaddrinfo(host, port, &hints, &ai);
  if (gai) {
    fprintf(stderr, "connect-gen: %s:%s: %s\n", host, port, gai_strerror(gai));
    return 1;
  }
  memcpy(&g_addr, ai->ai_addr, ai->ai_addrlen);
  if (g_tls != TLS_OFF && setup_tls() != 0) return 1;
  g_addrlen = ai->ai_addrlen;
  freeaddrinfo(ai);

  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && (rlim_t)loops + 64 > rl.rlim_cur) {
    fprintf(stderr, "connect-gen: --connections %ld needs more open files than the limit of %lu\n", loops,
            (unsigned long)rl.rlim_cur);
    return 1;
  }

  static struct thread ts[MAX_THREADS];
  struct loop *all = calloc((size_t)loops, sizeof *all);
  if (!all) return 1;
  for (long i = 0; i < loops; i++) all[i].id = (uint32_t)i, all[i].fd = -1;
  struct rusage ru0;
  getrusage(RUSAGE_SELF, &ru0);
  g_start_ns = now_ns();
  g_end_ns = g_start_ns + (uint64_t)(duration * 1e9);
  long first = 0;
  for (long k = 0; k < threads; k++) {
    struct thread *t = &ts[k];
    long n = loops / threads + (k < loops % threads ? 1 : 0);
    t->loops = all + first;
    t->nloops = (int)n;
    first += n;
    t->epfd = epoll_create1(EPOLL_CLOEXEC);
    t->block = malloc(PERIOD + g_size);
    if (t->epfd < 0 || !t->block) {
      perror("connect-gen");
      return 1;
    }
    /* A random block per thread: the same bytes never come back by chance. */
    uint64_t x = now_ns() ^ ((uint64_t)k << 32) ^ 0x9e3779b97f4a7c15u;
    for (size_t i = 0; i < PERIOD + g_size; i++) {
      x ^= x << 13, x ^= x >> 7, x ^= x << 17;
      t->block[i] = (uint8_t)(x >> 24);
    }
    if (pthread_create(&t->tid, NULL, run_thread, t) != 0) {
      perror("connect-gen: pthread_create");
      return 1;
    }
  }
  struct stats total;
  memset(&total, 0, sizeof total);
  int failed = 0;
  for (long k = 0; k < threads; k++) {
    pthread_join(ts[k].tid, NULL);
    merge(&total, &ts[k].st);
    failed |= ts[k].failed;
  }
  double seconds = (double)(now_ns() - g_start_ns) / 1e9;
  if (failed) {
    fprintf(stderr, "connect-gen: epoll_wait failed\n");
    return 1;
  }

  printf("{\"generator\":\"connect-gen\",\"target\":\"%s:%s\",\"close\":\"%s\",\"connections\":%ld,\"threads\":%ld,"
         "\"size\":%zu,\"seconds\":%.3f,\"completed\":%lu,\"perSecond\":%.1f,\"tls\":\"%s\",\"resumed\":%lu,",
         host, port, g_rst ? "rst" : "fin", loops, threads, g_size, seconds, (unsigned long)total.done,
         seconds > 0 ? (double)total.done / seconds : 0.0, TLS_NAMES[g_tls], (unsigned long)total.resumed);
  return print_tally_tail(&total.t, &ru0, seconds);
}
