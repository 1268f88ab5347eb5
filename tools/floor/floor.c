// floor: the hardware and kernel floor for cross-process messaging on this machine.
// Measures, between two processes on two cores:
//   spin   - round trip of one cache line through MAP_SHARED memory, both sides spinning
//   futex  - round trip where each side sleeps in FUTEX_WAIT and is woken by FUTEX_WAKE
//   uds    - round trip of a 64-byte message over a Unix stream socketpair
//   pipe   - round trip of a 64-byte message over two pipes
//   ring   - one-way throughput of a C ring in shmring's record layout (FORMAT.md)
//            (16-byte header stamped with its position, 8-byte alignment, cached head,
//            head stored once per batch), for 64-byte and 64 KiB messages
//   memcpy - single-core copy bandwidth (the ceiling for payload throughput)
//
// Build and run: cc -O2 -o floor tools/floor/floor.c && ./floor (Linux; two CPUs).
// It pins its two processes to CPUs 0 and 1. Compare shmring with what it
// prints in the same sitting: absolute figures drift on a shared machine.
#define _GNU_SOURCE
#include <linux/futex.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + ts.tv_nsec;
}
static void pin(int cpu) {
  cpu_set_t s;
  CPU_ZERO(&s);
  CPU_SET(cpu, &s);
  sched_setaffinity(0, sizeof s, &s);
}
static int cmp(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}
static void report(const char *name, uint64_t *rtt, int n) {
  qsort(rtt, n, sizeof *rtt, cmp);
  printf("%-6s rtt_ns p50=%llu p99=%llu p999=%llu (n=%d)\n", name,
         (unsigned long long)rtt[n / 2], (unsigned long long)rtt[n * 99 / 100],
         (unsigned long long)rtt[n * 999 / 1000], n);
}
static long futex(_Atomic uint32_t *a, int op, uint32_t v) {
  return syscall(SYS_futex, a, op, v, NULL, NULL, 0);
}


// ring: producer writes [len u32 | kind u32 | pos u64][payload], commits by storing pos;
// consumer polls pos at head, copies the payload out, stores head once per batch.
struct ringctl { _Alignas(128) _Atomic uint64_t head; _Alignas(128) _Atomic uint64_t tail; };
static double ring_run(size_t msg, long count, size_t cap) {
  struct ringctl *ctl = mmap(NULL, sizeof *ctl, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  unsigned char *data = mmap(NULL, cap, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
  memset(data, 0xff, cap);  // stale bytes must never look committed
  ctl->head = 0; ctl->tail = 0;
  size_t rec = (16 + msg + 7) & ~(size_t)7, mask = cap - 1;
  unsigned char *payload = malloc(msg), *out = malloc(msg);
  memset(payload, 7, msg);
  uint64_t t0 = now_ns();
  if (fork() == 0) {
    pin(1);
    uint64_t head = 0;
    for (long i = 0; i < count;) {
      unsigned char *h = data + (head & mask);
      _Atomic uint64_t *posw = (_Atomic uint64_t *)(h + 8);
      if (atomic_load_explicit(posw, memory_order_acquire) != head) continue;
      uint32_t len = *(uint32_t *)h, kind = *(uint32_t *)(h + 4);
      if (kind == 1) memcpy(out, h + 16, len), i++;
      head += kind == 1 ? ((16 + len + 7) & ~(size_t)7) : len;
      if ((i & 31) == 0 || i == count) atomic_store_explicit(&ctl->head, head, memory_order_release);
    }
    atomic_store_explicit(&ctl->head, head, memory_order_release);
    _exit(out[0] == 7 ? 0 : 1);
  }
  pin(0);
  uint64_t tail = 0, cached_head = 0;
  for (long i = 0; i < count; i++) {
    size_t idx = tail & mask;
    size_t need = rec, pad = 0;
    if (idx + rec > cap) pad = cap - idx, need = pad + rec;
    while (tail + need - cached_head > cap) cached_head = atomic_load_explicit(&ctl->head, memory_order_acquire);
    if (pad) {
      unsigned char *h = data + idx;
      *(uint32_t *)h = (uint32_t)pad; *(uint32_t *)(h + 4) = 2;
      atomic_store_explicit((_Atomic uint64_t *)(h + 8), tail, memory_order_release);
      tail += pad; idx = 0;
    }
    unsigned char *h = data + idx;
    memcpy(h + 16, payload, msg);
    *(uint32_t *)h = (uint32_t)msg; *(uint32_t *)(h + 4) = 1;
    atomic_store_explicit((_Atomic uint64_t *)(h + 8), tail, memory_order_release);
    tail += rec;
  }
  int st; wait(&st);
  double s = (now_ns() - t0) / 1e9;
  munmap(data, cap); munmap(ctl, sizeof *ctl); free(payload); free(out);
  return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? count / s : -1;
}

enum { N = 200000 };

int main(void) {
  uint64_t *rtt = malloc(N * sizeof *rtt);
  struct shared { _Alignas(64) _Atomic uint32_t ping; _Alignas(64) _Atomic uint32_t pong; } *sh =
      mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);

  // spin
  sh->ping = sh->pong = 0;
  if (fork() == 0) {
    pin(1);
    for (uint32_t i = 1; i <= N; i++) {
      while (atomic_load_explicit(&sh->ping, memory_order_acquire) != i) {}
      atomic_store_explicit(&sh->pong, i, memory_order_release);
    }
    _exit(0);
  }
  pin(0);
  for (uint32_t i = 1; i <= N; i++) {
    uint64_t t = now_ns();
    atomic_store_explicit(&sh->ping, i, memory_order_release);
    while (atomic_load_explicit(&sh->pong, memory_order_acquire) != i) {}
    rtt[i - 1] = now_ns() - t;
  }
  wait(NULL);
  report("spin", rtt, N);

  // futex: each side always sleeps until woken
  sh->ping = sh->pong = 0;
  int nf = N / 4;
  if (fork() == 0) {
    pin(1);
    for (uint32_t i = 1; i <= (uint32_t)nf; i++) {
      while (atomic_load(&sh->ping) != i) futex(&sh->ping, FUTEX_WAIT, i - 1);
      atomic_store(&sh->pong, i);
      futex(&sh->pong, FUTEX_WAKE, 1);
    }
    _exit(0);
  }
  for (uint32_t i = 1; i <= (uint32_t)nf; i++) {
    uint64_t t = now_ns();
    atomic_store(&sh->ping, i);
    futex(&sh->ping, FUTEX_WAKE, 1);
    while (atomic_load(&sh->pong) != i) futex(&sh->pong, FUTEX_WAIT, i - 1);
    rtt[i - 1] = now_ns() - t;
  }
  wait(NULL);
  report("futex", rtt, nf);

  // uds
  char buf[64] = {0};
  int sv[2];
  socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
  if (fork() == 0) {
    pin(1);
    for (int i = 0; i < nf; i++) {
      if (read(sv[1], buf, 64) != 64 || write(sv[1], buf, 64) != 64) _exit(1);
    }
    _exit(0);
  }
  for (int i = 0; i < nf; i++) {
    uint64_t t = now_ns();
    if (write(sv[0], buf, 64) != 64 || read(sv[0], buf, 64) != 64) return 1;
    rtt[i] = now_ns() - t;
  }
  wait(NULL);
  report("uds", rtt, nf);

  // pipe
  int a[2], b[2];
  if (pipe(a) || pipe(b)) return 1;
  if (fork() == 0) {
    pin(1);
    for (int i = 0; i < nf; i++) {
      if (read(a[0], buf, 64) != 64 || write(b[1], buf, 64) != 64) _exit(1);
    }
    _exit(0);
  }
  for (int i = 0; i < nf; i++) {
    uint64_t t = now_ns();
    if (write(a[1], buf, 64) != 64 || read(b[0], buf, 64) != 64) return 1;
    rtt[i] = now_ns() - t;
  }
  wait(NULL);
  report("pipe", rtt, nf);

  // uds streaming throughput, 64-byte messages, one way
  int tv[2];
  socketpair(AF_UNIX, SOCK_STREAM, 0, tv);
  long msgs = 2000000;
  if (fork() == 0) {
    pin(1);
    char rb[65536];
    long need = msgs * 64;
    while (need > 0) { ssize_t r = read(tv[1], rb, sizeof rb); if (r <= 0) _exit(1); need -= r; }
    _exit(0);
  }
  uint64_t t0 = now_ns();
  for (long i = 0; i < msgs; i++) if (write(tv[0], buf, 64) != 64) return 1;
  wait(NULL);
  double s = (now_ns() - t0) / 1e9;
  printf("uds    stream 64B: %.2f Mmsg/s\n", msgs / s / 1e6);

  double r64 = ring_run(64, 20000000, 1 << 20);
  printf("ring   stream 64B: %.2f Mmsg/s (%.2f GB/s)\n", r64 / 1e6, r64 * 64 / 1e9);
  double r64k = ring_run(65536, 200000, 16 << 20);
  printf("ring   stream 64KiB: %.0f msg/s (%.2f GB/s)\n", r64k, r64k * 65536 / 1e9);

  // memcpy bandwidth, 1 MiB blocks
  size_t sz = 1 << 20;
  char *src = malloc(sz), *dst = malloc(sz);
  memset(src, 1, sz); memset(dst, 2, sz);
  int reps = 20000;
  t0 = now_ns();
  for (int i = 0; i < reps; i++) { memcpy(dst, src, sz); __asm__ volatile("" ::: "memory"); }
  s = (now_ns() - t0) / 1e9;
  printf("memcpy 1MiB: %.2f GB/s\n", (double)sz * reps / s / 1e9);
  return 0;
}
