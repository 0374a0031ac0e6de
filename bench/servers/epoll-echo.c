// epoll-echo: the cheapest echo server this machine runs, one thread, so the bench can show what the
// connect generator offers when the server costs next to nothing (BENCHMARKS.md, Method).
// usage: epoll-echo [HOST:PORT]   (default 127.0.0.1:0). Prints one JSON line
// {"msg":"listening","address":"HOST:PORT"} on stdout; SIGTERM ends it. Built by bench/native.ts.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

int main(int argc, char **argv) {
  char host[64] = "127.0.0.1";
  int port = 0;
  if (argc > 1) {
    const char *colon = strrchr(argv[1], ':');
    if (!colon || colon - argv[1] >= (long)sizeof host) {
      fprintf(stderr, "epoll-echo: give HOST:PORT, not '%s'\n", argv[1]);
      return 1;
    }
    memcpy(host, argv[1], (size_t)(colon - argv[1]));
    host[colon - argv[1]] = 0;
    port = atoi(colon + 1);
  }
  struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  if (inet_pton(AF_INET, host, &addr.sin_addr) != 1) {
    fprintf(stderr, "epoll-echo: '%s' is not an IPv4 address\n", host);
    return 1;
  }
  int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  int one = 1;
  setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  socklen_t len = sizeof addr;
  if (bind(lfd, (struct sockaddr *)&addr, sizeof addr) < 0 || listen(lfd, 4096) < 0 ||
      getsockname(lfd, (struct sockaddr *)&addr, &len) < 0) {
    perror("epoll-echo");
    return 1;
  }
  int ep = epoll_create1(0);
  struct epoll_event ev = {.events = EPOLLIN, .data.fd = lfd};
  epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
  printf("{\"msg\":\"listening\",\"address\":\"%s:%d\"}\n", host, ntohs(addr.sin_port));
  fflush(stdout);
  static char buf[65536];
  struct epoll_event evs[256];
  for (;;) {
    int n = epoll_wait(ep, evs, 256, -1);
    if (n < 0 && errno != EINTR) return 1;
    for (int i = 0; i < n; i++) {
      int fd = evs[i].data.fd;
      if (fd == lfd) {
        int c;
        while ((c = accept4(lfd, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
          struct epoll_event cev = {.events = EPOLLIN, .data.fd = c};
          epoll_ctl(ep, EPOLL_CTL_ADD, c, &cev);
        }
        continue;
      }
      ssize_t r = read(fd, buf, sizeof buf);
      if (r < 0 && errno == EAGAIN) continue;
      // Small replies fit the socket buffer; a short write drops the connection (a bench server).
      if (r <= 0 || write(fd, buf, (size_t)r) != r) close(fd);
    }
  }
}
