/* What the bench's two C generators (connect-gen.c, pipeline-gen.c) count alike: errors by kind and
 * code, the latency histogram (the scheme of src/bench/histogram.ts), and the tail of their JSON
 * (latency, errors, their own CPU). Included by both: each is still built from its one .c file
 * (bench/native.ts rebuilds either when this header changes). A program defines usage(). */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

/* Body of request/cycle `seq` of connection/loop `id`: a view into one random block, as
 * src/bench/payload.ts. */
#define PERIOD 65521
#define SEQ_STEP 4099
#define CONN_STEP 7919
/* Latency histogram (us): exact below 2*SUB, then SUB buckets per power of two. */
#define SUB_BITS 6
#define SUB (1 << SUB_BITS)
#define BUCKETS (SUB * (32 - SUB_BITS + 1))
#define MAX_CODES 16
#define CODE_LEN 48

enum kind { K_CONNECT, K_TIMEOUT, K_RESET, K_EOF, K_VERIFY, K_STALLED, KINDS };
static const char *KIND_NAMES[KINDS] = {"connect", "timeout", "reset", "eof", "verify", "stalled"};

struct code_count {
  char name[CODE_LEN];
  uint64_t n;
};

struct tally {
  uint64_t errors[KINDS];
  struct code_count codes[MAX_CODES];
  uint64_t counts[BUCKETS];
  uint64_t lat_n, lat_sum, lat_min, lat_max;
};

static void usage(const char *why);

static inline uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static inline int bucket_of(uint32_t us) {
  if (us < 2 * SUB) return (int)us;
  int shift = 31 - __builtin_clz(us) - SUB_BITS;
  return SUB * shift + (int)(us >> shift);
}

static inline uint64_t bucket_high(int i) {
  if (i < 2 * SUB) return (uint64_t)i;
  int shift = i / SUB - 1;
  uint64_t top = (uint64_t)(i - SUB * shift);
  return ((top + 1) << shift) - 1;
}

static inline void record_us(struct tally *st, uint64_t us) {
  if (us > 0xffffffffu) us = 0xffffffffu;
  st->counts[bucket_of((uint32_t)us)] += 1;
  st->lat_n += 1;
  st->lat_sum += us;
  if (st->lat_n == 1 || us < st->lat_min) st->lat_min = us;
  if (us > st->lat_max) st->lat_max = us;
}

/* One error of `name` (an errno name, a TLS reason); at most MAX_CODES names are kept. */
static inline void count_name(struct tally *st, const char *name) {
  for (int i = 0; i < MAX_CODES; i++) {
    if (st->codes[i].n == 0) {
      snprintf(st->codes[i].name, sizeof st->codes[i].name, "%s", name);
      st->codes[i].n = 1;
      return;
    }
    if (strcmp(st->codes[i].name, name) == 0) {
      st->codes[i].n += 1;
      return;
    }
  }
}

static inline void count_code(struct tally *st, int err) {
  const char *name = strerrorname_np(err);
  char buf[24];
  if (!name) {
    snprintf(buf, sizeof buf, "E%d", err);
    name = buf;
  }
  count_name(st, name);
}

static inline uint64_t quantile(const struct tally *st, double q) {
  if (st->lat_n == 0) return 0;
  if (q >= 1) return st->lat_max;
  uint64_t rank = (uint64_t)(q * (double)st->lat_n);
  if ((double)rank < q * (double)st->lat_n) rank += 1;
  if (rank < 1) rank = 1;
  uint64_t seen = 0;
  for (int i = 0; i < BUCKETS; i++) {
    seen += st->counts[i];
    if (seen >= rank) {
      uint64_t v = bucket_high(i);
      if (v > st->lat_max) v = st->lat_max;
      if (v < st->lat_min) v = st->lat_min;
      return v;
    }
  }
  return st->lat_max;
}

static inline void merge_tally(struct tally *into, const struct tally *from) {
  for (int k = 0; k < KINDS; k++) into->errors[k] += from->errors[k];
  for (int i = 0; i < MAX_CODES && from->codes[i].n; i++) {
    int j = 0;
    while (j < MAX_CODES && into->codes[j].n && strcmp(into->codes[j].name, from->codes[i].name) != 0) j++;
    if (j == MAX_CODES) continue;
    if (!into->codes[j].n) snprintf(into->codes[j].name, sizeof into->codes[j].name, "%s", from->codes[i].name);
    into->codes[j].n += from->codes[i].n;
  }
  for (int i = 0; i < BUCKETS; i++) into->counts[i] += from->counts[i];
  if (from->lat_n) {
    if (!into->lat_n || from->lat_min < into->lat_min) into->lat_min = from->lat_min;
    if (from->lat_max > into->lat_max) into->lat_max = from->lat_max;
  }
  into->lat_n += from->lat_n;
  into->lat_sum += from->lat_sum;
}

static inline uint64_t error_total(const struct tally *st) {
  uint64_t n = 0;
  for (int k = 0; k < KINDS; k++) n += st->errors[k];
  return n;
}

static inline long whole(const char *flag, const char *text, long min, long max) {
  char *end;
  errno = 0;
  long v = strtol(text, &end, 10);
  if (errno || *end || end == text || v < min || v > max) {
    char why[160];
    snprintf(why, sizeof why, "%s must be a whole number %ld..%ld, not '%s'", flag, min, max, text);
    usage(why);
  }
  return v;
}

static inline double json_ms(uint64_t us) { return (double)us / 1000.0; }

static inline double rusage_seconds(const struct timeval *a, const struct timeval *b) {
  return (double)(b->tv_sec - a->tv_sec) + (double)(b->tv_usec - a->tv_usec) / 1e6;
}

/* The JSON's tail after the program's own fields: latency, errors, codes and the CPU used since
 * `ru0`, then the closing brace and a newline. Returns the exit status: 2 with errors, else 0. */
static inline int print_tally_tail(const struct tally *st, const struct rusage *ru0, double seconds) {
  struct rusage ru1;
  getrusage(RUSAGE_SELF, &ru1);
  double user = rusage_seconds(&ru0->ru_utime, &ru1.ru_utime);
  double sys = rusage_seconds(&ru0->ru_stime, &ru1.ru_stime);
  uint64_t errors = error_total(st);
  printf("\"latencyMs\":{\"p50\":%.3f,\"p90\":%.3f,\"p99\":%.3f,\"p999\":%.3f,\"max\":%.3f,\"mean\":%.3f},",
         json_ms(quantile(st, 0.5)), json_ms(quantile(st, 0.9)), json_ms(quantile(st, 0.99)),
         json_ms(quantile(st, 0.999)), json_ms(st->lat_max),
         st->lat_n ? (double)st->lat_sum / (double)st->lat_n / 1000.0 : 0.0);
  printf("\"errors\":{");
  for (int k = 0; k < KINDS; k++) printf("%s\"%s\":%lu", k ? "," : "", KIND_NAMES[k], (unsigned long)st->errors[k]);
  printf("},\"errorTotal\":%lu,\"verifyFailures\":%lu,\"errorCodes\":{", (unsigned long)errors,
         (unsigned long)st->errors[K_VERIFY]);
  for (int i = 0; i < MAX_CODES && st->codes[i].n; i++)
    printf("%s\"%s\":%lu", i ? "," : "", st->codes[i].name, (unsigned long)st->codes[i].n);
  printf("},\"cpu\":{\"userSeconds\":%.3f,\"systemSeconds\":%.3f,\"cores\":%.3f}}\n", user, sys,
         seconds > 0 ? (user + sys) / seconds : 0.0);
  return errors > 0 ? 2 : 0;
}
