// Two socket calls node lacks or makes dear (src/native/addon.ts). N-API only, so one build serves
// Node 20, 22 and 24.
//   dup(fd)    an LF worker takes a fresh descriptor of the listening socket for each turn from the
//              one it keeps, instead of asking the daemon for a copy.
//   peer4(fd)  an accepted IPv4 connection's peer as one number; node's getpeername builds an object
//              and two strings per connection, which few connections ever read.
#define _GNU_SOURCE
#define NAPI_VERSION 8
#include <errno.h>
#include <arpa/inet.h>
#include <fcntl.h>
#include <node_api.h>
#include <string.h>
#include <sys/socket.h>

static napi_value throw_errno(napi_env env, int err) {
  const char *name = strerrorname_np(err);
  napi_value code, msg, error;
  napi_create_string_utf8(env, name ? name : "EIO", NAPI_AUTO_LENGTH, &code);
  napi_create_string_utf8(env, strerror(err), NAPI_AUTO_LENGTH, &msg);
  napi_create_error(env, code, msg, &error);
  napi_throw(env, error);
  return NULL;
}

static napi_value dup_fd(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  int32_t fd;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 1 ||
      napi_get_value_int32(env, argv[0], &fd) != napi_ok || fd < 0) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "dup(fd): fd must be a descriptor number");
    return NULL;
  }
  // Close-on-exec, as node's own descriptors: a handler's child processes do not inherit the socket.
  int copy = fcntl(fd, F_DUPFD_CLOEXEC, 3);
  if (copy < 0) return throw_errno(env, errno);
  napi_value out;
  napi_create_int32(env, copy, &out);
  return out;
}

// address * 65536 + port (below 2^48, exact in a double), or -1: not IPv4 (the caller asks node),
// not a descriptor, or no peer any more (reset).
static napi_value peer4(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  int32_t fd = -1;
  double packed = -1;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) == napi_ok && argc >= 1)
    napi_get_value_int32(env, argv[0], &fd);
  struct sockaddr_storage peer;
  socklen_t len = sizeof peer;
  if (fd >= 0 && getpeername(fd, (struct sockaddr *)&peer, &len) == 0 && peer.ss_family == AF_INET) {
    const struct sockaddr_in *in = (const struct sockaddr_in *)&peer;
    packed = (double)ntohl(in->sin_addr.s_addr) * 65536.0 + ntohs(in->sin_port);
  }
  napi_value out;
  napi_create_double(env, packed, &out);
  return out;
}

static void export_fn(napi_env env, napi_value exports, const char *name, napi_callback cb) {
  napi_value fn;
  napi_create_function(env, name, NAPI_AUTO_LENGTH, cb, NULL, &fn);
  napi_set_named_property(env, exports, name, fn);
}

NAPI_MODULE_INIT() {
  export_fn(env, exports, "dup", dup_fd);
  export_fn(env, exports, "peer4", peer4);
  return exports;
}
