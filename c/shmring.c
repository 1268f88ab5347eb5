/*
 * shmring.c: a C client of shmring rings, written from FORMAT.md. Section
 * names in comments are FORMAT.md's. Every word of shared memory is loaded
 * once, checked, and then used: a ring another process scribbled on gives
 * SHMRING_ECORRUPT, never an access out of bounds.
 *
 * Shared words are read and written with the __atomic builtins of GCC and
 * Clang on the mapped memory.
 */
#define _GNU_SOURCE
#include "shmring.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sched.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#ifndef __linux__
#error "shmring's C library runs on Linux only for now"
#endif
#include <linux/futex.h>

/* Header page. */
#define MAGIC 0x01474e49524d4853ULL
#define VERSION 1u
#define INIT_COMPLETE 0x59444552u
#define HEADER_SIZE 4096u
#define LINE_SIZE 128u
#define MIN_CAPACITY 256ULL
#define MAX_CAPACITY (1ULL << 40)
#define MAX_SLOTS 4096u
#define MAX_SUBSCRIBERS 4096u
#define FLAG_MULTI 1u
#define FLAG_FANOUT 2u

#define OFF_MAGIC 0
#define OFF_VERSION 8
#define OFF_FLAGS 12
#define OFF_HEADER_SIZE 16
#define OFF_LINE_SIZE 20
#define OFF_SLOT_COUNT 24
#define OFF_MAX_MESSAGE 28
#define OFF_CAPACITY 32
#define OFF_DATA_OFFSET 40
#define OFF_TOTAL_SIZE 48
#define OFF_KEY 56
#define OFF_UUID 64
#define OFF_CREATOR_PID 80
#define OFF_CREATED_NS 88
#define OFF_INIT 96
#define OFF_REMOVED 100
#define OFF_SUB_COUNT 104

/* Control lines. */
#define OFF_TAIL 4096
#define OFF_HEAD 4224
#define OFF_DATA_BELL 4352
#define OFF_SPACE_BELL 4480
#define OFF_CONSUMER 4608
#define OFF_PRODUCERS 4736
#define OFF_SLOTS 5120

/* Consumer line, relative to OFF_CONSUMER. */
#define CONS_STATE 0
#define CONS_PID 4
#define CONS_MESSAGES 8
#define CONS_BYTES 16
#define CONS_PARKS 24
#define CONS_WAKES 32
#define CONS_RECOVERED 40
#define CONS_REAPED 48
#define CONS_GEN 56
#define CONS_CORRUPT 64
#define CONS_BATCH 72

/* Producers' line, relative to OFF_PRODUCERS. */
#define PRODS_ATTACHES 0
#define PRODS_ATTACHED 8
#define PRODS_FENCED 12

/* Producer slot, relative to its start. */
#define SLOT_STATE 0
#define SLOT_PID 4
#define SLOT_GEN 8
#define SLOT_CLAIM_POS 16
#define SLOT_CLAIM_LEN 24
#define SLOT_MESSAGES 32
#define SLOT_BYTES 40
#define SLOT_FULL_WAITS 48
#define SLOT_PARKS 56
#define SLOT_WAKES 64
#define SLOT_FENCED 72

/* Records. */
#define REC_HEADER 16u
#define REC_ALIGN 8u
#define ENTRY_HEADER 8u
#define KIND_MESSAGE 1u
#define KIND_PADDING 2u
#define KIND_BATCH 3u
#define KIND_SLACK (1u << 8)
#define KIND_TYPE_MASK 0xffu
#define KIND_FLAG_MASK 0xff00u
#define KIND_SLOT_SHIFT 16
#define NO_CLAIM UINT64_MAX

/* The fan-out line, relative to its start F (Fan-out), and a subscriber
 * line's own fields (the others are the consumer line's). */
#define FAN_SEQ 0
#define FAN_COPY 8
#define FAN_COPY_SIZE 24
#define FAN_EVICTIONS 56
#define FAN_EVICT_NS 64
#define FAN_ATTACHES 72
#define FAN_RAISES 80
#define FAN_LINES 88
#define SUB_POS 80
#define SUB_LOST 88
#define SUB_LOST_BYTES 96
#define SUB_LAPS 104
#define SUB_FREE 0u
#define SUB_RELIABLE 1u
#define SUB_LOSSY 2u
#define SUB_EVICTED 3u

#define LIVENESS_NS 100000000LL /* look at the peers every 100 ms while waiting */
#define SPIN_NS 20000LL         /* poll this long before sleeping */

/* ---- errors ---- */

const char *shmring_strerror(int err) {
	switch (err) {
	case SHMRING_OK: return "ok";
	case SHMRING_ESYS: return "system call failed (see errno)";
	case SHMRING_EBADMAGIC: return "bad magic number, not a shmring segment";
	case SHMRING_EVERSION: return "unsupported layout version";
	case SHMRING_ESIZE: return "segment has the wrong size";
	case SHMRING_EBADHEADER: return "invalid header field";
	case SHMRING_ENOTREADY: return "segment initialisation not complete";
	case SHMRING_ECORRUPT: return "shared memory corrupt";
	case SHMRING_ETOOLARGE: return "message larger than the maximum";
	case SHMRING_EFULL: return "ring full";
	case SHMRING_EEMPTY: return "ring empty";
	case SHMRING_EPRODUCERBUSY: return "no free producer slot";
	case SHMRING_ECONSUMERBUSY: return "another consumer is attached";
	case SHMRING_ECONSUMERDEAD: return "the consumer died";
	case SHMRING_EREMOVED: return "ring removed or replaced";
	case SHMRING_ETIMEOUT: return "timed out";
	case SHMRING_ESHORTBUFFER: return "buffer too small for message";
	case SHMRING_EOF: return "end of stream";
	case SHMRING_EFANOUT: return "a fan-out ring has subscribers, not a consumer";
	case SHMRING_EINVAL: return "invalid argument";
	case SHMRING_ENOTSUPPORTED: return "not supported on this system";
	case SHMRING_ENOTFANOUT: return "not a fan-out ring";
	case SHMRING_ESUBSCRIBERSFULL: return "no free subscriber line";
	case SHMRING_ELOST: return "messages lost: lapped by the producers";
	case SHMRING_EEVICTED: return "subscriber evicted for holding the producers back too long";
	}
	return "unknown error";
}

/* ---- shared words ---- */

static inline uint64_t ld64(const uint8_t *p) { return __atomic_load_n((const uint64_t *)(const void *)p, __ATOMIC_ACQUIRE); }
static inline uint32_t ld32(const uint8_t *p) { return __atomic_load_n((const uint32_t *)(const void *)p, __ATOMIC_ACQUIRE); }
static inline void st64(uint8_t *p, uint64_t v) { __atomic_store_n((uint64_t *)(void *)p, v, __ATOMIC_RELEASE); }
static inline void st32(uint8_t *p, uint32_t v) { __atomic_store_n((uint32_t *)(void *)p, v, __ATOMIC_RELEASE); }
static inline uint64_t add64(uint8_t *p, uint64_t v) { return __atomic_add_fetch((uint64_t *)(void *)p, v, __ATOMIC_SEQ_CST); }
static inline uint32_t add32(uint8_t *p, uint32_t v) { return __atomic_add_fetch((uint32_t *)(void *)p, v, __ATOMIC_SEQ_CST); }
static inline int cas64(uint8_t *p, uint64_t old, uint64_t v) {
	return __atomic_compare_exchange_n((uint64_t *)(void *)p, &old, v, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
}
static inline int cas32(uint8_t *p, uint32_t old, uint32_t v) {
	return __atomic_compare_exchange_n((uint32_t *)(void *)p, &old, v, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
}
static inline void fence(void) { __atomic_thread_fence(__ATOMIC_SEQ_CST); }

/* uncount decrements a count, never below zero. */
static void uncount(uint8_t *p) {
	for (;;) {
		uint32_t v = ld32(p);
		if (v == 0 || cas32(p, v, v - 1)) return;
	}
}

static int64_t now_ns(void) {
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void sleep_ns(int64_t ns) {
	struct timespec ts = {(time_t)(ns / 1000000000LL), (long)(ns % 1000000000LL)};
	nanosleep(&ts, NULL);
}

static uint64_t record_size(uint64_t n) { return (REC_HEADER + n + REC_ALIGN - 1) & ~(uint64_t)(REC_ALIGN - 1); }
static uint64_t entry_size(uint64_t n) { return ENTRY_HEADER + ((n + REC_ALIGN - 1) & ~(uint64_t)(REC_ALIGN - 1)); }

static uint32_t max_message_for(uint64_t capacity) {
	uint64_t m = capacity / 2 - REC_HEADER;
	if (m > (1ULL << 31)) m = 1ULL << 31;
	return (uint32_t)m;
}

static uint64_t data_offset_for(uint32_t slots, uint32_t subs) {
	uint64_t end = OFF_SLOTS + (uint64_t)slots * LINE_SIZE;
	if (subs > 0) end += (1 + (uint64_t)subs) * LINE_SIZE;
	return (end + HEADER_SIZE - 1) & ~(uint64_t)(HEADER_SIZE - 1);
}

/* ---- the header ---- */

int shmring_validate(const void *memv, size_t len, struct shmring_info *info) {
	const uint8_t *mem = memv;
	struct shmring_info in;
	if (len < HEADER_SIZE) return SHMRING_ESIZE;
	if ((uintptr_t)mem % 8 != 0) return SHMRING_EINVAL;
	memset(&in, 0, sizeof in);
	uint64_t magic = ld64(mem + OFF_MAGIC);
	if (magic == 0) return SHMRING_ENOTREADY;
	if (magic != MAGIC) return SHMRING_EBADMAGIC;
	/* The init word before the version (Opening, step 3). */
	if (ld32(mem + OFF_INIT) != INIT_COMPLETE) return SHMRING_ENOTREADY;
	if (ld32(mem + OFF_VERSION) != VERSION) return SHMRING_EVERSION;
	if (ld32(mem + OFF_HEADER_SIZE) != HEADER_SIZE) return SHMRING_EBADHEADER;
	if (ld32(mem + OFF_LINE_SIZE) != LINE_SIZE) return SHMRING_EBADHEADER;
	in.capacity = ld64(mem + OFF_CAPACITY);
	in.max_message = ld32(mem + OFF_MAX_MESSAGE);
	in.slots = ld32(mem + OFF_SLOT_COUNT);
	uint64_t key = ld64(mem + OFF_KEY);
	in.creator_pid = ld32(mem + OFF_CREATOR_PID);
	in.created_ns = (int64_t)ld64(mem + OFF_CREATED_NS);
	uint32_t flags = ld32(mem + OFF_FLAGS);
	if (flags & ~(FLAG_MULTI | FLAG_FANOUT)) return SHMRING_EBADHEADER;
	in.multi_producer = (flags & FLAG_MULTI) != 0;
	if (flags & FLAG_FANOUT) {
		in.subscribers = ld32(mem + OFF_SUB_COUNT);
		if (in.subscribers == 0) return SHMRING_EBADHEADER;
	}
	if (in.slots == 0 || in.max_message == 0) return SHMRING_EBADHEADER;
	if (in.capacity < MIN_CAPACITY || in.capacity > MAX_CAPACITY || (in.capacity & (in.capacity - 1)) != 0) return SHMRING_EBADHEADER;
	if (in.capacity > (uint64_t)PTRDIFF_MAX) return SHMRING_EBADHEADER; /* not addressable here */
	if (in.max_message > max_message_for(in.capacity)) return SHMRING_EBADHEADER;
	if (in.slots > MAX_SLOTS || in.subscribers > MAX_SUBSCRIBERS) return SHMRING_EBADHEADER;
	if (key == 0) return SHMRING_EBADHEADER;
	in.data_offset = ld64(mem + OFF_DATA_OFFSET);
	if (in.data_offset != data_offset_for(in.slots, in.subscribers)) return SHMRING_EBADHEADER;
	in.size = ld64(mem + OFF_TOTAL_SIZE);
	if (in.size != in.data_offset + in.capacity) return SHMRING_EBADHEADER;
	if ((uint64_t)len != in.size) return SHMRING_ESIZE;
	memcpy(in.uuid, mem + OFF_UUID, 16);
	if (info) *info = in;
	return SHMRING_OK;
}

/* ---- the ring ---- */

struct shmring {
	char *path; /* the file it was opened or created by (shmring_remove) */
	int fd;
	uint8_t *mem;
	size_t len;
	struct shmring_info info;
	uint8_t *data;
	uint64_t mask, key;
	uint64_t fan_off; /* a fan-out ring's fan-out line, F */
	/* The liveness locks this handle holds (OFD locks do not exclude
	 * their own open file description): their offsets. */
	int held_lock; /* a spin lock over held */
	uint64_t *held;
	size_t nheld, capheld;
};

static inline uint8_t *at(const shmring *r, uint64_t off) { return r->mem + off; }
static inline uint64_t slot_off(uint32_t i) { return OFF_SLOTS + (uint64_t)i * LINE_SIZE; }
static inline int multi(const shmring *r) { return r->info.multi_producer; }

static void held_acquire(shmring *r) {
	while (__atomic_exchange_n(&r->held_lock, 1, __ATOMIC_ACQUIRE)) {
	}
}
static void held_release(shmring *r) { __atomic_store_n(&r->held_lock, 0, __ATOMIC_RELEASE); }

static int held_find(const shmring *r, uint64_t off) {
	for (size_t i = 0; i < r->nheld; i++)
		if (r->held[i] == off) return (int)i;
	return -1;
}

static int ofd_lock(int fd, short type, uint64_t off, int cmd, struct flock *out) {
	struct flock fl;
	memset(&fl, 0, sizeof fl);
	fl.l_type = type;
	fl.l_whence = SEEK_SET;
	fl.l_start = (off_t)off;
	fl.l_len = 1;
	int rc = fcntl(fd, cmd, &fl);
	if (out) *out = fl;
	return rc;
}

/* try_lock takes the liveness lock at off without waiting: 1 if taken, 0 if
 * held (by another process, or by this handle), or an error. */
static int try_lock(shmring *r, uint64_t off) {
	held_acquire(r);
	int rc;
	if (held_find(r, off) >= 0) {
		rc = 0;
	} else if (ofd_lock(r->fd, F_WRLCK, off, F_OFD_SETLK, NULL) == 0) {
		if (r->nheld == r->capheld) {
			size_t n = r->capheld ? 2 * r->capheld : 8;
			uint64_t *h = realloc(r->held, n * sizeof *h);
			if (!h) {
				ofd_lock(r->fd, F_UNLCK, off, F_OFD_SETLK, NULL);
				held_release(r);
				errno = ENOMEM;
				return SHMRING_ESYS;
			}
			r->held = h;
			r->capheld = n;
		}
		r->held[r->nheld++] = off;
		rc = 1;
	} else if (errno == EAGAIN || errno == EACCES) {
		rc = 0;
	} else {
		rc = SHMRING_ESYS;
	}
	held_release(r);
	return rc;
}

static void unlock(shmring *r, uint64_t off) {
	held_acquire(r);
	int i = held_find(r, off);
	if (i >= 0) {
		r->held[i] = r->held[--r->nheld];
		ofd_lock(r->fd, F_UNLCK, off, F_OFD_SETLK, NULL);
	}
	held_release(r);
}

/* locked reports whether anyone holds the lock at off: 1, 0, or an error. */
static int locked(shmring *r, uint64_t off) {
	held_acquire(r);
	int mine = held_find(r, off) >= 0;
	held_release(r);
	if (mine) return 1;
	struct flock fl;
	if (ofd_lock(r->fd, F_WRLCK, off, F_OFD_GETLK, &fl) != 0) return SHMRING_ESYS;
	return fl.l_type != F_UNLCK;
}

/* make_ring makes the handle of a ring validated in mem (len bytes), mapped
 * from fd, opened by path. NULL when out of memory. */
static shmring *make_ring(int fd, uint8_t *mem, size_t len, const char *path) {
	shmring *r = calloc(1, sizeof *r);
	char *p = strdup(path);
	if (!r || !p) {
		free(r);
		free(p);
		return NULL;
	}
	r->fd = fd;
	r->mem = mem;
	r->len = len;
	r->path = p;
	shmring_validate(mem, len, &r->info);
	r->data = r->mem + r->info.data_offset;
	r->mask = r->info.capacity - 1;
	r->key = ld64(r->mem + OFF_KEY);
	r->fan_off = OFF_SLOTS + (uint64_t)r->info.slots * LINE_SIZE;
	return r;
}

static int open_path(const char *path, shmring **out) {
	int64_t start = now_ns();
	int64_t delay = 100000;
	for (;;) {
		int fd = open(path, O_RDWR | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0) return SHMRING_ESYS;
		struct stat st;
		if (fstat(fd, &st) != 0) {
			close(fd);
			return SHMRING_ESYS;
		}
		int rc = SHMRING_ESIZE;
		void *mem = MAP_FAILED;
		if ((uint64_t)st.st_size >= HEADER_SIZE && (uint64_t)st.st_size <= (uint64_t)SIZE_MAX) {
			mem = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
			if (mem == MAP_FAILED) {
				int e = errno;
				close(fd);
				errno = e;
				return SHMRING_ESYS;
			}
			rc = shmring_validate(mem, (size_t)st.st_size, NULL);
		}
		if (rc == SHMRING_OK) {
			shmring *r = make_ring(fd, mem, (size_t)st.st_size, path);
			if (!r) {
				munmap(mem, (size_t)st.st_size);
				close(fd);
				errno = ENOMEM;
				return SHMRING_ESYS;
			}
			/* The presence lock, then: is the name still this file? */
			struct stat now;
			if (ld32(at(r, OFF_REMOVED)) != 0 || ofd_lock(fd, F_RDLCK, 0, F_OFD_SETLK, NULL) != 0 ||
			    stat(path, &now) != 0 || now.st_dev != st.st_dev || now.st_ino != st.st_ino) {
				shmring_close(r);
				return SHMRING_EREMOVED;
			}
			*out = r;
			return SHMRING_OK;
		}
		if (mem != MAP_FAILED) munmap(mem, (size_t)st.st_size);
		close(fd);
		/* A creator between open(2) and its init word: wait a second. */
		if ((rc != SHMRING_ENOTREADY && rc != SHMRING_ESIZE) || now_ns() - start > 1000000000LL) return rc;
		sleep_ns(delay);
		if (delay < 10000000) delay *= 2;
	}
}

int shmring_open(const char *name, shmring **out) {
	if (!name || !out || !*name || strchr(name, '/') || strlen(name) > 200) return SHMRING_EINVAL;
	char path[256];
	snprintf(path, sizeof path, "/dev/shm/%s", name);
	return open_path(path, out);
}

int shmring_open_file(const char *path, shmring **out) {
	if (!path || !out || !*path) return SHMRING_EINVAL;
	return open_path(path, out);
}

const struct shmring_info *shmring_info_of(const shmring *r) { return &r->info; }

int shmring_close(shmring *r) {
	if (!r) return SHMRING_OK;
	munmap(r->mem, r->len);
	int rc = close(r->fd) == 0 ? SHMRING_OK : SHMRING_ESYS;
	free(r->held);
	free(r->path);
	free(r);
	return rc;
}

/* random_bytes fills b from the kernel's random source. */
static int random_bytes(void *b, size_t n) {
	uint8_t *p = b;
	while (n > 0) {
		long k = syscall(SYS_getrandom, p, n, 0);
		if (k < 0) {
			if (errno == EINTR) continue;
			return SHMRING_ESYS;
		}
		p += k;
		n -= (size_t)k;
	}
	return SHMRING_OK;
}

/* create_path makes a ring file at path (Header page, "Creating"). */
static int create_path(const char *path, const struct shmring_config *cfg, shmring **out) {
	struct shmring_config c = {0};
	if (cfg) c = *cfg;
	if (!c.capacity) c.capacity = 1 << 20;
	if (!c.slots) c.slots = 64;
	if (!c.mode) c.mode = 0600;
	if (c.capacity < MIN_CAPACITY || c.capacity > MAX_CAPACITY || (c.capacity & (c.capacity - 1)) || c.capacity > (uint64_t)PTRDIFF_MAX) return SHMRING_EINVAL;
	uint32_t limit = max_message_for(c.capacity);
	if (!c.max_message) c.max_message = limit;
	if (c.max_message > limit || c.slots > MAX_SLOTS || c.subscribers > MAX_SUBSCRIBERS) return SHMRING_EINVAL;
	uint64_t data_off = data_offset_for(c.slots, c.subscribers), size = data_off + c.capacity;
	if (size > (uint64_t)SIZE_MAX || size > (uint64_t)INT64_MAX) return SHMRING_EINVAL;
	uint64_t key = 0;
	uint8_t uuid[16];
	while (key == 0)
		if (random_bytes(&key, sizeof key) != SHMRING_OK) return SHMRING_ESYS;
	if (random_bytes(uuid, sizeof uuid) != SHMRING_OK) return SHMRING_ESYS;
	uuid[6] = (uint8_t)((uuid[6] & 0x0f) | 0x40); /* version 4 */
	uuid[8] = (uint8_t)((uuid[8] & 0x3f) | 0x80); /* RFC 4122 variant */

	int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, c.mode);
	if (fd < 0) return SHMRING_ESYS;
	/* Present from the start (Peers, "Presence"): a cleaner does not take
	 * a ring that is being created. */
	int rc = SHMRING_OK;
	for (int64_t start = now_ns(); ofd_lock(fd, F_RDLCK, 0, F_OFD_SETLK, NULL) != 0;) {
		if (now_ns() - start > 1000000000LL) {
			rc = SHMRING_ESYS;
			break;
		}
		sleep_ns(1000000);
	}
	int e = 0;
	if (rc == SHMRING_OK && (e = posix_fallocate(fd, 0, (off_t)size)) != 0) {
		errno = e;
		rc = SHMRING_ESYS;
	}
	uint8_t *mem = MAP_FAILED;
	if (rc == SHMRING_OK && (mem = mmap(NULL, (size_t)size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)) == MAP_FAILED) rc = SHMRING_ESYS;
	if (rc != SHMRING_OK) {
		e = errno;
		unlink(path);
		close(fd);
		errno = e;
		return rc;
	}
	/* The file is zeros: write the header, the init word last. */
	st64(mem + OFF_MAGIC, MAGIC);
	st32(mem + OFF_VERSION, VERSION);
	st32(mem + OFF_FLAGS, (c.multi_producer ? FLAG_MULTI : 0) | (c.subscribers ? FLAG_FANOUT : 0));
	st32(mem + OFF_HEADER_SIZE, HEADER_SIZE);
	st32(mem + OFF_LINE_SIZE, LINE_SIZE);
	st32(mem + OFF_SLOT_COUNT, c.slots);
	st32(mem + OFF_MAX_MESSAGE, c.max_message);
	st64(mem + OFF_CAPACITY, c.capacity);
	st64(mem + OFF_DATA_OFFSET, data_off);
	st64(mem + OFF_TOTAL_SIZE, size);
	st64(mem + OFF_KEY, key);
	memcpy(mem + OFF_UUID, uuid, 16);
	st32(mem + OFF_CREATOR_PID, (uint32_t)getpid());
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	st64(mem + OFF_CREATED_NS, (uint64_t)((int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec));
	if (c.subscribers) {
		st32(mem + OFF_SUB_COUNT, c.subscribers);
		int64_t ev = c.evict_after_ns == 0 ? 1000000000LL : c.evict_after_ns;
		st64(mem + OFF_SLOTS + (uint64_t)c.slots * LINE_SIZE + FAN_EVICT_NS, ev > 0 ? (uint64_t)ev : 0);
	}
	__atomic_store_n((uint32_t *)(void *)(mem + OFF_INIT), INIT_COMPLETE, __ATOMIC_SEQ_CST);
	shmring *r = make_ring(fd, mem, (size_t)size, path); /* it keeps the presence lock */
	if (!r) {
		unlink(path);
		munmap(mem, (size_t)size);
		close(fd);
		errno = ENOMEM;
		return SHMRING_ESYS;
	}
	*out = r;
	return SHMRING_OK;
}


int shmring_create(const char *name, const struct shmring_config *cfg, shmring **out) {
	if (!name || !out || !*name || strchr(name, '/') || strlen(name) > 200) return SHMRING_EINVAL;
	char path[256];
	snprintf(path, sizeof path, "/dev/shm/%s", name);
	return create_path(path, cfg, out);
}

int shmring_create_file(const char *path, const struct shmring_config *cfg, shmring **out) {
	if (!path || !out || !*path) return SHMRING_EINVAL;
	return create_path(path, cfg, out);
}

/* ---- positions and records ---- */

/* span_ok: head and tail can be a head and a tail (Positions). */
static int span_ok(const shmring *r, uint64_t head, uint64_t tail) {
	return head <= tail && tail - head <= r->info.capacity && ((head | tail) % REC_ALIGN) == 0;
}

struct record {
	uint64_t pos, length, after;
	uint32_t type;
};

/* record_at looks at position pos (after the gap rule): 1 and the record
 * if one is committed there, 0 if not, or SHMRING_ECORRUPT. */
static int record_at(const shmring *r, uint64_t pos, struct record *rec) {
	uint64_t off = pos & r->mask, rem = r->info.capacity - off;
	if (rem < REC_HEADER) {
		pos += rem;
		off = 0;
		rem = r->info.capacity;
	}
	uint8_t *hdr = r->data + off;
	if (ld64(hdr + 8) != (pos ^ r->key)) return 0;
	uint64_t length = ld32(hdr);
	uint32_t kind = ld32(hdr + 4);
	uint64_t size = record_size(length);
	switch (kind & KIND_TYPE_MASK) {
	case KIND_MESSAGE:
		if (kind & KIND_SLACK) size += REC_ALIGN;
		if (length > r->info.max_message || size > rem || (kind & KIND_FLAG_MASK & ~KIND_SLACK)) return SHMRING_ECORRUPT;
		break;
	case KIND_BATCH:
		if (length < ENTRY_HEADER || length % REC_ALIGN || length > r->info.max_message || size > rem || (kind & KIND_FLAG_MASK)) return SHMRING_ECORRUPT;
		break;
	case KIND_PADDING:
		if (length % REC_ALIGN || size > rem || (kind & KIND_FLAG_MASK)) return SHMRING_ECORRUPT;
		break;
	default:
		return SHMRING_ECORRUPT;
	}
	rec->pos = pos;
	rec->length = length;
	rec->type = kind & KIND_TYPE_MASK;
	rec->after = pos + size;
	return 1;
}

/* write_header commits a record header at pos: its stamp last. */
static void write_header(shmring *r, uint64_t pos, uint32_t length, uint32_t kind) {
	uint8_t *hdr = r->data + (pos & r->mask);
	st32(hdr, length);
	st32(hdr + 4, kind);
	st64(hdr + 8, pos ^ r->key);
}

static void pad_to(shmring *r, uint64_t pos, uint64_t end, uint32_t slot) {
	if (end - pos >= REC_HEADER) write_header(r, pos, (uint32_t)(end - pos - REC_HEADER), KIND_PADDING | slot << KIND_SLOT_SHIFT);
}

/* ---- doorbells (Doorbells: sleeping and waking) ---- */

struct bell {
	uint8_t *word, *waiters, *armed;
};

static struct bell bell_at(shmring *r, uint64_t off) {
	struct bell b = {at(r, off), at(r, off + 4), at(r, off + 8)};
	return b;
}

static long futex(uint8_t *word, int op, uint32_t val, const struct timespec *ts) {
	return syscall(SYS_futex, (uint32_t *)(void *)word, op, val, ts, NULL, 0);
}

static void bell_arm(struct bell b, uint32_t v) {
	for (;;) {
		uint32_t a = ld32(b.armed);
		if ((int32_t)(v - a) <= 0 || cas32(b.armed, a, v)) return;
	}
}

/* bell_ring_saw wakes the sleepers, one system call per arming; it reports
 * whether it made the call, and in *saw whether the waiter count was
 * non-zero. The caller has fenced after its commit (or relies on the
 * sleepers' membarrier: Fenced commits). */
static int bell_ring_saw(struct bell b, int *saw) {
	*saw = 0;
	if (ld32(b.waiters) == 0) return 0;
	*saw = 1;
	uint32_t w = ld32(b.word);
	if (w != ld32(b.armed) || !cas32(b.word, w, w + 1)) return 0;
	/* Every sleeper, not the count: one woken and back asleep on w + 1
	 * before this call is one more than the count, and the kernel wakes
	 * by priority (Doorbells). */
	futex(b.word, FUTEX_WAKE, INT32_MAX, NULL);
	return 1;
}

static int bell_ring(struct bell b) {
	int saw;
	return bell_ring_saw(b, &saw);
}

/* bell_wake_all wakes every sleeper, without the armed check: for a peer
 * that attaches (Doorbells, "Watching the peers while asleep"). A waker that
 * died between its compare-and-swap and its wake call left sleepers on a
 * doorbell that bell_ring takes for rung. */
static void bell_wake_all(struct bell b) {
	if (ld32(b.waiters) == 0) return;
	add32(b.word, 1);
	futex(b.word, FUTEX_WAKE, INT32_MAX, NULL);
}

/* membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED): whether this kernel has it. */
static int barrier_state; /* 0 unknown, 1 available, 2 not */
static int global_barrier(void) {
	int s = __atomic_load_n(&barrier_state, __ATOMIC_RELAXED);
	if (s == 0) {
		long q = syscall(SYS_membarrier, 0 /* QUERY */, 0, 0);
		s = (q >= 0 && (q & (1 << 1))) ? 1 : 2;
		__atomic_store_n(&barrier_state, s, __ATOMIC_RELAXED);
	}
	if (s != 1) return -1;
	return syscall(SYS_membarrier, 1 << 1 /* GLOBAL_EXPEDITED */, 0, 0) == 0 ? 0 : -1;
}

/* register_barrier registers this process for the sleepers' membarrier
 * (MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED): only then may its producers
 * commit without a fence. It reports whether it is registered. */
static int barrier_registered; /* 0 unknown, 1 yes, 2 no */
static int register_barrier(void) {
	int s = __atomic_load_n(&barrier_registered, __ATOMIC_ACQUIRE);
	if (s == 0) {
		global_barrier(); /* the query */
		s = __atomic_load_n(&barrier_state, __ATOMIC_RELAXED) == 1 && syscall(SYS_membarrier, 1 << 2 /* REGISTER_GLOBAL_EXPEDITED */, 0, 0) == 0 ? 1 : 2;
		__atomic_store_n(&barrier_registered, s, __ATOMIC_RELEASE);
	}
	return s == 1;
}

/* A waiter's look: 1 ready, 0 not yet, < 0 an error that ends the wait. */
typedef int (*try_fn)(void *arg);
typedef int (*check_fn)(void *arg);

/* wait_on waits until try reports ready, an error, or the timeout. It
 * polls for SPIN_NS, then sleeps on the doorbell by the procedure of
 * Doorbells, calling check (the peers' liveness) every LIVENESS_NS. On the
 * data doorbell (data_side) the membarrier of step 4 is skipped when every
 * attached producer fences its commits (Fenced commits). */
static int wait_on(shmring *r, struct bell b, int data_side, try_fn try, check_fn check, void *arg, int64_t timeout_ns, uint8_t *parks) {
	int64_t start = now_ns(), deadline = timeout_ns < 0 ? INT64_MAX : start + timeout_ns, last_check = start;
	for (unsigned i = 1;; i++) {
		int rc = try(arg);
		if (rc != 0) return rc < 0 ? rc : SHMRING_OK;
		if (i % 64 == 0 && now_ns() - start >= SPIN_NS) break;
	}
	for (;;) {
		int64_t now = now_ns();
		if (now >= deadline) return SHMRING_ETIMEOUT;
		if (check && now - last_check >= LIVENESS_NS) {
			last_check = now;
			int rc = check(arg);
			if (rc < 0) return rc;
		}
		uint32_t v = ld32(b.word);
		bell_arm(b, v);
		add32(b.waiters, 1);
		int64_t slice = LIVENESS_NS;
		int skip = data_side && ld32(at(r, OFF_PRODUCERS + PRODS_FENCED)) == ld32(at(r, OFF_PRODUCERS + PRODS_ATTACHED));
		if (!skip && global_barrier() != 0) slice = 1000000; /* a peer may rely on the barrier: bound the sleep */
		fence();
		int rc = try(arg);
		if (rc == 0) {
			int64_t d = deadline - now_ns();
			if (d > slice) d = slice;
			if (d > 0) {
				struct timespec ts = {(time_t)(d / 1000000000LL), (long)(d % 1000000000LL)};
				futex(b.word, FUTEX_WAIT, v, &ts);
				if (parks) add64(parks, 1);
			}
		}
		uncount(b.waiters);
		if (rc != 0) return rc < 0 ? rc : SHMRING_OK;
	}
}

/* ---- peers ---- */

/* settled: the claim recorded in a dead producer's slot can no longer hold
 * the consumer up (Peers, "Producer"). */
static int settled(shmring *r, uint64_t off, uint64_t head) {
	if (!multi(r)) return 1;
	uint64_t pos = ld64(at(r, off + SLOT_CLAIM_POS));
	if (pos == NO_CLAIM || ld64(at(r, off + SLOT_CLAIM_LEN)) == 0 || pos < head) return 1;
	return pos >= ld64(at(r, OFF_TAIL));
}

static void unfence_slot(shmring *r, uint64_t off) {
	if (ld32(at(r, off + SLOT_FENCED)) == 1) {
		uncount(at(r, OFF_PRODUCERS + PRODS_FENCED));
		st32(at(r, off + SLOT_FENCED), 0);
	}
}

static void reset_slot(shmring *r, uint64_t off) {
	st64(at(r, off + SLOT_CLAIM_LEN), 0);
	st64(at(r, off + SLOT_CLAIM_POS), NO_CLAIM);
	for (uint64_t f = SLOT_MESSAGES; f <= SLOT_WAKES; f += 8) st64(at(r, off + f), 0);
	st32(at(r, off + SLOT_PID), (uint32_t)getpid());
	add64(at(r, off + SLOT_GEN), 1);
}

/* attach_slot takes a free slot, or a dead producer's whose claim is
 * settled: its index, or an error. */
static int attach_slot(shmring *r, uint32_t *slot) {
	uint32_t n = multi(r) ? r->info.slots : 1;
	int attempts = multi(r) ? 2 : 10;
	for (int a = 0; a < attempts; a++) {
		if (a > 0) sleep_ns(1000000);
		for (uint32_t i = 0; i < n; i++) {
			uint64_t off = slot_off(i);
			int rc = try_lock(r, off);
			if (rc < 0) return rc;
			if (rc == 0) continue;
			uint32_t st = ld32(at(r, off + SLOT_STATE));
			if (st == 0) {
				unfence_slot(r, off);
				reset_slot(r, off);
				st32(at(r, off + SLOT_STATE), 1);
				add32(at(r, OFF_PRODUCERS + PRODS_ATTACHED), 1);
			} else if (st == 1 && settled(r, off, ld64(at(r, OFF_HEAD)))) {
				unfence_slot(r, off); /* its owner died: take its place */
				reset_slot(r, off);
			} else {
				unlock(r, off);
				continue;
			}
			add64(at(r, OFF_PRODUCERS + PRODS_ATTACHES), 1);
			fence();
			bell_wake_all(bell_at(r, OFF_DATA_BELL));
			*slot = i;
			return SHMRING_OK;
		}
	}
	return SHMRING_EPRODUCERBUSY;
}

static void detach_slot(shmring *r, uint32_t i) {
	uint64_t off = slot_off(i);
	st32(at(r, off + SLOT_PID), 0);
	unfence_slot(r, off);
	uncount(at(r, OFF_PRODUCERS + PRODS_ATTACHED));
	st32(at(r, off + SLOT_STATE), 0);
	unlock(r, off);
	fence();
	bell_ring(bell_at(r, OFF_DATA_BELL));
}

/* consumer_dead: the consumer line is marked attached, its lock is free,
 * and its attach count did not move meanwhile. */
static int consumer_dead(shmring *r) {
	uint64_t g = ld64(at(r, OFF_CONSUMER + CONS_GEN));
	if (ld32(at(r, OFF_CONSUMER + CONS_STATE)) != 1) return 0;
	int held = locked(r, OFF_CONSUMER);
	if (held != 0) return held < 0 ? held : 0;
	return ld32(at(r, OFF_CONSUMER + CONS_STATE)) == 1 && ld64(at(r, OFF_CONSUMER + CONS_GEN)) == g;
}

/* Defined with the subscribers, used by the producers of fan-out rings. */
struct frontier {
	uint64_t pos, msgs, bytes;
};
static int recover_claim(shmring *r, uint64_t head, uint64_t *end);
static int load_frontier(shmring *r, struct frontier *f);
static int batch_count(shmring *r, const struct record *rec, uint64_t *msgs, uint64_t *bytes);
static uint64_t sub_line(const shmring *r, uint32_t i);
static uint32_t lines_used(shmring *r);

/* ---- the producer ---- */

struct shmring_producer {
	shmring *r;
	uint32_t slot;
	uint64_t off;
	uint32_t kind;
	uint64_t tail, head; /* single producer: the next position; the cached head */
	uint64_t resv_pos, claim_pos;
	uint32_t resv_len;
	uint64_t messages, bytes, full_waits, wakes;
	uint64_t want; /* the record size the current wait claims */
	int resv;      /* a reservation is in progress */
	/* Fenced commits: fenced while counted in the producers' fenced word;
	 * may_unfence when this process is registered for the membarrier;
	 * quiet counts commits in a row that found no waiter. */
	int fenced, may_unfence;
	unsigned quiet;
	/* Fan-out rings: the lag bound, and since when (and at which frontier,
	 * needing which position) the producer found no room. */
	int fan;
	int64_t evict_ns, full_since;
	uint64_t full_front;
};

/* set_fenced starts or stops fencing every commit (Doorbells, "Fenced
 * commits"): to start, slot_fenced then the count (a locked instruction,
 * which also makes the earlier commits visible); to stop, the count then
 * slot_fenced, and only then commits without the fence. */
static void set_fenced(shmring_producer *p, int on) {
	shmring *r = p->r;
	if (on) {
		st32(at(r, p->off + SLOT_FENCED), 1);
		add32(at(r, OFF_PRODUCERS + PRODS_FENCED), 1);
	} else {
		uncount(at(r, OFF_PRODUCERS + PRODS_FENCED));
		st32(at(r, p->off + SLOT_FENCED), 0);
	}
	p->fenced = on;
	p->quiet = 0;
}

/* skip_committed: where a new single producer resumes (Peers). */
static int skip_committed(shmring *r, uint64_t pos, uint64_t head, uint64_t *out) {
	while (pos - head < r->info.capacity) {
		struct record rec;
		int rc = record_at(r, pos, &rec);
		if (rc < 0) return rc;
		if (rc == 0) break;
		pos = rec.after;
	}
	*out = pos;
	return SHMRING_OK;
}

int shmring_producer_attach(shmring *r, shmring_producer **out) {
	if (!r || !out) return SHMRING_EINVAL;
	if (ld32(at(r, OFF_REMOVED)) != 0) return SHMRING_EREMOVED;
	uint32_t slot;
	int rc = attach_slot(r, &slot);
	if (rc != SHMRING_OK) return rc;
	shmring_producer *p = calloc(1, sizeof *p);
	if (!p) {
		detach_slot(r, slot);
		errno = ENOMEM;
		return SHMRING_ESYS;
	}
	p->r = r;
	p->slot = slot;
	p->off = slot_off(slot);
	p->kind = KIND_MESSAGE | slot << KIND_SLOT_SHIFT;
	uint64_t head = ld64(at(r, OFF_HEAD)), tail = ld64(at(r, OFF_TAIL));
	if (!multi(r)) {
		if (!span_ok(r, head, tail) || (rc = skip_committed(r, tail, head, &tail)) != SHMRING_OK) {
			detach_slot(r, slot);
			free(p);
			return rc != SHMRING_OK ? rc : SHMRING_ECORRUPT;
		}
		st64(at(r, OFF_TAIL), tail);
	}
	p->tail = tail;
	p->head = head;
	if (r->info.subscribers > 0) {
		p->fan = 1;
		uint64_t ns = ld64(at(r, r->fan_off + FAN_EVICT_NS));
		p->evict_ns = ns > 365ULL * 24 * 3600 * 1000000000ULL ? (int64_t)(365LL * 24 * 3600 * 1000000000LL) : (int64_t)ns;
	}
	/* It starts fenced (a sleeping consumer then needs no membarrier for
	 * it), and stops after 64 commits in a row that found no waiter, if
	 * this process is registered for the membarrier: a stream, where the
	 * fence would cost throughput. */
	p->may_unfence = register_barrier();
	set_fenced(p, 1);
	*out = p;
	return SHMRING_OK;
}

/* reliable_limit: how far the frontier may move, the lowest reliable
 * subscriber's position (a position before the frontier holds it where it
 * is), or the tail. */
static uint64_t reliable_limit(shmring *r, uint64_t front, uint64_t tail) {
	uint64_t limit = tail;
	for (uint32_t i = 0, n = lines_used(r); i < n; i++) {
		uint64_t off = sub_line(r, i);
		if (ld32(at(r, off + CONS_STATE)) != SUB_RELIABLE) continue;
		uint64_t pos = ld64(at(r, off + SUB_POS));
		if (pos < limit) limit = pos > front ? pos : front;
	}
	return limit;
}

/* raise moves the frontier of a fan-out ring so that it reaches need if it
 * can, and capacity/8 beyond (Fan-out, "The frontier"); it returns the
 * head word afterwards, which may be short of need. */
static int raise_frontier(shmring_producer *p, uint64_t need, uint64_t *out) {
	shmring *r = p->r;
	uint64_t h = ld64(at(r, OFF_HEAD));
	*out = h;
	/* The frontier cannot move: no lock. A limit short of need but past the
	 * frontier must be walked to, for the lag bound evicts only the
	 * subscribers that hold the frontier. */
	if (reliable_limit(r, h, ld64(at(r, OFF_TAIL))) <= h) return SHMRING_OK;
	int got = try_lock(r, r->fan_off);
	if (got <= 0) return got; /* another producer, or a subscriber attaching: look again */
	struct frontier f, g;
	int rc = load_frontier(r, &f);
	uint64_t tail = ld64(at(r, OFF_TAIL));
	if (rc == SHMRING_OK && !span_ok(r, f.pos, tail)) rc = SHMRING_ECORRUPT;
	if (rc == SHMRING_OK) {
		h = ld64(at(r, OFF_HEAD));
		if (h > f.pos) rc = SHMRING_ECORRUPT;
		else if (h < f.pos) st64(at(r, OFF_HEAD), f.pos); /* an updater died before its last store */
	}
	g = f;
	if (rc == SHMRING_OK && f.pos < need) {
		uint64_t limit = reliable_limit(r, f.pos, tail), target = need + r->info.capacity / 8;
		if (target > limit) target = limit;
		while (g.pos < target) {
			struct record rec;
			int k = record_at(r, g.pos, &rec);
			if (k < 0) {
				rc = k;
				break;
			}
			if (k == 0) {
				uint64_t end;
				if (!multi(r)) break;
				k = recover_claim(r, g.pos, &end);
				if (k < 0) rc = k;
				if (k != 1 || end > limit) break;
				g.pos = end;
				continue;
			}
			if (rec.after > limit) break;
			if (rec.type == KIND_MESSAGE) {
				g.msgs++;
				g.bytes += rec.length;
			} else if (rec.type == KIND_BATCH && (rc = batch_count(r, &rec, &g.msgs, &g.bytes)) != SHMRING_OK) {
				break;
			}
			g.pos = rec.after;
		}
		if (rc == SHMRING_OK && g.pos > f.pos) {
			/* The other copy, then the sequence word, then head. */
			uint8_t *seq = at(r, r->fan_off + FAN_SEQ);
			uint64_t sq = ld64(seq) + 1;
			uint8_t *copy = at(r, r->fan_off + FAN_COPY + (sq & 1) * FAN_COPY_SIZE);
			st64(copy, g.pos);
			st64(copy + 8, g.msgs);
			st64(copy + 16, g.bytes);
			st64(seq, sq);
			st64(at(r, OFF_HEAD), g.pos);
			add64(at(r, r->fan_off + FAN_RAISES), 1);
		}
	}
	unlock(r, r->fan_off); /* a system call: a full barrier before the writes it allows */
	if (rc != SHMRING_OK) return rc;
	if (g.pos > f.pos) {
		fence();
		bell_ring(bell_at(r, OFF_SPACE_BELL)); /* other producers may wait for room */
	}
	*out = g.pos > f.pos ? g.pos : f.pos;
	return SHMRING_OK;
}

/* note_full records that a claim found no room with the frontier at front:
 * the lag bound counts from the first such claim while it stays there. */
static void note_full(shmring_producer *p, uint64_t front) {
	if (p->full_since == 0 || p->full_front != front) {
		p->full_since = now_ns();
		p->full_front = front;
	}
}

/* CLAIM_BACKOFF: how many times a producer that lost the compare-and-swap
 * of the tail to another pauses before it tries again, as the Go producer
 * does (ring/claim_multi.go, claimBackoff): retrying at once passes the
 * tail's line from core to core at every attempt. */
#define CLAIM_BACKOFF 32

static inline void cpu_pause(void) {
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ __volatile__("yield");
#endif
}

/* claim_multi: Many producers, "Claiming". */
static int claim_multi(shmring_producer *p, uint64_t rec) {
	shmring *r = p->r;
	for (;;) {
		uint64_t pos = ld64(at(r, OFF_TAIL));
		uint64_t skip = 0, rem = r->info.capacity - (pos & r->mask);
		if (rem < rec) skip = rem;
		uint64_t end = pos + skip + rec;
		if (end - p->head > r->info.capacity || pos < p->head || pos % REC_ALIGN) {
			uint64_t h = ld64(at(r, OFF_HEAD));
			if (!span_ok(r, h, pos)) {
				if (ld64(at(r, OFF_TAIL)) != pos) continue;
				return SHMRING_ECORRUPT;
			}
			p->head = h;
			if (end - h > r->info.capacity) {
				if (!p->fan) return 0;
				uint64_t nh;
				int rc = raise_frontier(p, end - r->info.capacity, &nh);
				if (rc != SHMRING_OK) return rc;
				if (end - nh > r->info.capacity) {
					note_full(p, nh);
					return 0;
				}
				p->head = nh;
				continue; /* the tail may have moved meanwhile */
			}
		}
		st64(at(r, p->off + SLOT_CLAIM_POS), pos);
		st64(at(r, p->off + SLOT_CLAIM_LEN), skip + rec);
		if (cas64(at(r, OFF_TAIL), pos, end)) {
			p->claim_pos = pos;
			p->resv_pos = pos + skip;
			return 1;
		}
		for (int i = 0; i < CLAIM_BACKOFF; i++) cpu_pause();
	}
}

/* claim makes room for rec bytes: 1, 0 when full, or an error. */
static int claim(shmring_producer *p, uint64_t rec) {
	shmring *r = p->r;
	if (ld32(at(r, OFF_REMOVED)) != 0) return SHMRING_EREMOVED;
	if (multi(r)) return claim_multi(p, rec);
	uint64_t pos = p->tail, skip = 0, rem = r->info.capacity - (pos & r->mask);
	if (rem < rec) skip = rem;
	uint64_t end = pos + skip + rec;
	if (end - p->head > r->info.capacity) {
		uint64_t h = ld64(at(r, OFF_HEAD));
		if (!span_ok(r, h, pos)) return SHMRING_ECORRUPT;
		p->head = h;
		if (end - h > r->info.capacity) {
			if (!p->fan) return 0;
			int rc = raise_frontier(p, end - r->info.capacity, &h);
			if (rc != SHMRING_OK) return rc;
			if (end - h > r->info.capacity) {
				note_full(p, h);
				return 0;
			}
			p->head = h;
		}
	}
	pad_to(r, pos, pos + skip, p->slot);
	if (skip > 0) {
		pos += skip;
		p->tail = pos;
		st64(at(r, OFF_TAIL), pos);
	}
	p->resv_pos = pos;
	return 1;
}

static int try_claim(void *arg) {
	shmring_producer *p = arg;
	return claim(p, p->want);
}

/* check_subscribers is a waiting producer's look at a fan-out ring's
 * subscribers (Fan-out, "The lag bound and death"): it frees the lines of
 * dead ones, and evicts the reliable ones that held it back for the lag
 * bound. */
static int check_subscribers(shmring_producer *p) {
	shmring *r = p->r;
	int freed = 0;
	for (uint32_t i = 0, n = lines_used(r); i < n; i++) {
		uint64_t off = sub_line(r, i);
		if (ld32(at(r, off + CONS_STATE)) == SUB_FREE) continue;
		int held = locked(r, off);
		if (held < 0) return held;
		if (held) continue;
		int got = try_lock(r, off);
		if (got < 0) return got;
		if (got == 0) continue;
		if (ld32(at(r, off + CONS_STATE)) != SUB_FREE) {
			st32(at(r, off + CONS_PID), 0);
			st32(at(r, off + CONS_STATE), SUB_FREE);
			freed++;
		}
		unlock(r, off);
	}
	int evicted = 0;
	if (p->evict_ns > 0 && p->full_since != 0 && ld64(at(r, OFF_HEAD)) == p->full_front && now_ns() - p->full_since >= p->evict_ns) {
		for (uint32_t i = 0, n = lines_used(r); i < n; i++) {
			uint64_t off = sub_line(r, i);
			if (ld32(at(r, off + CONS_STATE)) == SUB_RELIABLE && ld64(at(r, off + SUB_POS)) <= p->full_front &&
			    cas32(at(r, off + CONS_STATE), SUB_RELIABLE, SUB_EVICTED)) {
				add64(at(r, r->fan_off + FAN_EVICTIONS), 1);
				evicted++;
			}
		}
		if (evicted) {
			/* An evicted subscriber asleep for data learns at once. */
			struct bell b = bell_at(r, OFF_DATA_BELL);
			add32(b.word, 1);
			futex(b.word, FUTEX_WAKE, INT32_MAX, NULL);
			p->full_since = 0;
		}
	}
	return 0;
}

static int check_consumer(void *arg) {
	shmring_producer *p = arg;
	if (p->fan) return check_subscribers(p);
	int dead = consumer_dead(p->r);
	if (dead < 0) return dead;
	return dead ? SHMRING_ECONSUMERDEAD : 0;
}

static int reserve(shmring_producer *p, size_t n, int64_t timeout_ns) {
	if (n > p->r->info.max_message) return SHMRING_ETOOLARGE;
	p->want = record_size(n);
	int rc = claim(p, p->want);
	if (rc < 0) return rc;
	if (rc == 1) {
		p->resv_len = (uint32_t)n;
		return SHMRING_OK;
	}
	p->full_waits++;
	st64(at(p->r, p->off + SLOT_FULL_WAITS), p->full_waits);
	if (timeout_ns == 0) {
		if (p->fan) {
			int rc2 = check_subscribers(p);
			return rc2 < 0 ? rc2 : SHMRING_EFULL;
		}
		int dead = consumer_dead(p->r);
		if (dead < 0) return dead;
		return dead ? SHMRING_ECONSUMERDEAD : SHMRING_EFULL;
	}
	rc = wait_on(p->r, bell_at(p->r, OFF_SPACE_BELL), 0, try_claim, check_consumer, p, timeout_ns, at(p->r, p->off + SLOT_PARKS));
	if (rc == SHMRING_OK) p->resv_len = (uint32_t)n;
	return rc;
}

/* commit publishes the reserved record with n bytes of the given kind. */
static void commit(shmring_producer *p, uint32_t n, uint32_t kind, uint64_t msgs, uint64_t bytes) {
	shmring *r = p->r;
	if (multi(r)) {
		uint64_t used = p->resv_pos + record_size(n), end = p->resv_pos + record_size(p->resv_len);
		if (end - used == REC_ALIGN)
			kind |= KIND_SLACK;
		else if (end != used)
			pad_to(r, used, end, p->slot);
		write_header(r, p->resv_pos, n, kind);
		pad_to(r, p->claim_pos, p->resv_pos, p->slot);
	} else {
		write_header(r, p->resv_pos, n, kind);
		p->tail = p->resv_pos + record_size(n);
		st64(at(r, OFF_TAIL), p->tail);
	}
	p->messages += msgs;
	p->bytes += bytes;
	st64(at(r, p->off + SLOT_MESSAGES), p->messages);
	st64(at(r, p->off + SLOT_BYTES), p->bytes);
	if (p->fenced) fence(); /* the commit before the waiter count */
	int saw;
	if (bell_ring_saw(bell_at(r, OFF_DATA_BELL), &saw)) {
		p->wakes++;
		st64(at(r, p->off + SLOT_WAKES), p->wakes);
	}
	if (saw) {
		p->quiet = 0;
		if (!p->fenced) set_fenced(p, 1);
	} else if (p->fenced && p->may_unfence && ++p->quiet >= 64) {
		set_fenced(p, 0);
	}
	if (p->fan && multi(r)) {
		/* A producer may wait for this commit to move the frontier
		 * over it; it sleeps with the membarrier (or this process
		 * fenced above). */
		bell_ring(bell_at(r, OFF_SPACE_BELL));
	}
}

int shmring_reserve(shmring_producer *p, size_t n, void **buf, int64_t timeout_ns) {
	if (!p || !buf || p->resv) return SHMRING_EINVAL;
	int rc = reserve(p, n, timeout_ns);
	if (rc != SHMRING_OK) return rc;
	p->resv = 1;
	*buf = p->r->data + (p->resv_pos & p->r->mask) + REC_HEADER;
	return SHMRING_OK;
}

int shmring_commit(shmring_producer *p, size_t n) {
	if (!p || !p->resv || n > p->resv_len) return SHMRING_EINVAL;
	p->resv = 0;
	commit(p, (uint32_t)n, p->kind, 1, n);
	return SHMRING_OK;
}

int shmring_abort(shmring_producer *p) {
	if (!p || !p->resv) return SHMRING_EINVAL;
	p->resv = 0;
	if (multi(p->r)) {
		/* The space is claimed already: it becomes padding. */
		shmring *r = p->r;
		pad_to(r, p->resv_pos, p->resv_pos + record_size(p->resv_len), p->slot);
		pad_to(r, p->claim_pos, p->resv_pos, p->slot);
		fence();
		bell_ring(bell_at(r, OFF_DATA_BELL));
	}
	return SHMRING_OK;
}

int shmring_send(shmring_producer *p, const void *msg, size_t n, int64_t timeout_ns) {
	if (!p || (!msg && n > 0) || p->resv) return SHMRING_EINVAL;
	int rc = reserve(p, n, timeout_ns);
	if (rc != SHMRING_OK) return rc;
	if (n > 0) memcpy(p->r->data + (p->resv_pos & p->r->mask) + REC_HEADER, msg, n);
	commit(p, (uint32_t)n, p->kind, 1, n);
	return SHMRING_OK;
}

int shmring_send_batch(shmring_producer *p, const struct shmring_msg *msgs, size_t count, size_t *sent, int64_t timeout_ns) {
	if (!p || (!msgs && count > 0) || !sent || p->resv) return SHMRING_EINVAL;
	*sent = 0;
	size_t k = 0;
	uint64_t size = 0;
	for (; k < count; k++) {
		uint64_t s = size + entry_size(msgs[k].len);
		if (s > p->r->info.max_message) break;
		size = s;
	}
	if (k <= 1) {
		if (count == 0) return SHMRING_OK;
		int rc = shmring_send(p, msgs[0].data, msgs[0].len, timeout_ns);
		if (rc == SHMRING_OK) *sent = 1;
		return rc;
	}
	int rc = reserve(p, (size_t)size, timeout_ns);
	if (rc != SHMRING_OK) return rc;
	uint8_t *buf = p->r->data + (p->resv_pos & p->r->mask) + REC_HEADER;
	uint64_t off = 0, bytes = 0;
	for (size_t i = 0; i < k; i++) {
		st32(buf + off, (uint32_t)msgs[i].len);
		st32(buf + off + 4, 0);
		if (msgs[i].len > 0) memcpy(buf + off + ENTRY_HEADER, msgs[i].data, msgs[i].len);
		off += entry_size(msgs[i].len);
		bytes += msgs[i].len;
	}
	commit(p, (uint32_t)size, KIND_BATCH | p->slot << KIND_SLOT_SHIFT, k, bytes);
	*sent = k;
	return SHMRING_OK;
}

int shmring_producer_close(shmring_producer *p) {
	if (!p) return SHMRING_OK;
	if (p->resv) shmring_abort(p);
	detach_slot(p->r, p->slot);
	free(p);
	return SHMRING_OK;
}

/* ---- the consumer ---- */

struct shmring_consumer {
	shmring *r;
	uint64_t line; /* its line: the consumer line, or a subscriber line */
	uint64_t pub;  /* the word it publishes its head in: head, or its line's position */
	uint64_t head, published, batch;
	int in_batch;
	uint64_t batch_start, entry_off, batch_end, batch_after; /* data-area offsets; batch_after a position */
	int eof;
	uint64_t eof_after;
	uint64_t messages, bytes, wakes, recovered, reaped, corrupt;
	/* The message found by the last look (next). */
	uint64_t m_off, m_len, m_after;
	/* A subscriber of a fan-out ring (Fan-out, "Reading"): its kind, the
	 * stream index of its head (messages + base, bytes + base_bytes),
	 * and its losses. */
	int fan, lossy, evicted;
	uint64_t base, base_bytes, lost, lost_bytes, laps;
	uint64_t last_lost, last_lost_bytes;
};

static void publish(shmring_consumer *c) {
	shmring *r = c->r;
	c->published = c->head;
	uint64_t mark = 0;
	if (c->in_batch) mark = (uint64_t)(uint32_t)c->head << 32 | (c->entry_off - c->batch_start);
	st64(at(r, c->line + CONS_BATCH), mark);
	st64(at(r, c->pub), c->head);
	st64(at(r, c->line + CONS_MESSAGES), c->messages);
	st64(at(r, c->line + CONS_BYTES), c->bytes);
	fence();
	if (bell_ring(bell_at(r, OFF_SPACE_BELL))) {
		c->wakes++;
		st64(at(r, c->line + CONS_WAKES), c->wakes);
	}
}

/* resume_batch: Batches, a predecessor's place in the batch at head. */
static void resume_batch(shmring_consumer *c, uint64_t mark) {
	shmring *r = c->r;
	uint64_t skip = mark & 0xffffffffu;
	if (skip == 0 || (uint32_t)(mark >> 32) != (uint32_t)c->head) return;
	struct record rec;
	if (record_at(r, c->head, &rec) != 1 || rec.type != KIND_BATCH || skip >= rec.length) return;
	uint64_t start = (rec.pos & r->mask) + REC_HEADER, off = 0;
	while (off < skip) {
		uint64_t n = ld32(r->data + start + off);
		if (n > r->info.max_message) return;
		off += entry_size(n);
	}
	if (off != skip) return;
	c->in_batch = 1;
	c->batch_start = start;
	c->entry_off = start + skip;
	c->batch_end = start + rec.length;
	c->batch_after = rec.after;
}

int shmring_consumer_attach(shmring *r, int eof, uint64_t eof_after, shmring_consumer **out) {
	if (!r || !out) return SHMRING_EINVAL;
	if (ld32(at(r, OFF_REMOVED)) != 0) return SHMRING_EREMOVED;
	if (r->info.subscribers > 0) return SHMRING_EFANOUT;
	int rc = try_lock(r, OFF_CONSUMER);
	if (rc < 0) return rc;
	if (rc == 0) return SHMRING_ECONSUMERBUSY;
	uint64_t head = ld64(at(r, OFF_HEAD)), tail = ld64(at(r, OFF_TAIL));
	if (!span_ok(r, head, tail)) {
		unlock(r, OFF_CONSUMER);
		return SHMRING_ECORRUPT;
	}
	shmring_consumer *c = calloc(1, sizeof *c);
	if (!c) {
		unlock(r, OFF_CONSUMER);
		errno = ENOMEM;
		return SHMRING_ESYS;
	}
	c->r = r;
	c->line = OFF_CONSUMER;
	c->pub = OFF_HEAD;
	c->head = c->published = head;
	c->batch = r->info.capacity / 8 > REC_ALIGN ? r->info.capacity / 8 : REC_ALIGN;
	c->eof = eof;
	c->eof_after = eof_after ? eof_after : 1;
	c->messages = ld64(at(r, OFF_CONSUMER + CONS_MESSAGES));
	c->bytes = ld64(at(r, OFF_CONSUMER + CONS_BYTES));
	c->wakes = ld64(at(r, OFF_CONSUMER + CONS_WAKES));
	c->recovered = ld64(at(r, OFF_CONSUMER + CONS_RECOVERED));
	c->reaped = ld64(at(r, OFF_CONSUMER + CONS_REAPED));
	c->corrupt = ld64(at(r, OFF_CONSUMER + CONS_CORRUPT));
	resume_batch(c, ld64(at(r, OFF_CONSUMER + CONS_BATCH)));
	add64(at(r, OFF_CONSUMER + CONS_GEN), 1);
	st32(at(r, OFF_CONSUMER + CONS_STATE), 1);
	st32(at(r, OFF_CONSUMER + CONS_PID), (uint32_t)getpid());
	fence();
	bell_wake_all(bell_at(r, OFF_SPACE_BELL));
	*out = c;
	return SHMRING_OK;
}

/* next_entry: the message at the consumer's place in a batch. */
static int next_entry(shmring_consumer *c) {
	shmring *r = c->r;
	uint64_t n = ld32(r->data + c->entry_off);
	uint32_t zero = ld32(r->data + c->entry_off + 4);
	uint64_t next = c->entry_off + entry_size(n);
	if (zero != 0 || n > r->info.max_message || next > c->batch_end) return SHMRING_ECORRUPT;
	c->m_off = c->entry_off + ENTRY_HEADER;
	c->m_len = n;
	c->m_after = next == c->batch_end ? c->batch_after : c->head;
	return 1;
}

/* next looks for the message at head, consuming padding: 1 found, 0 none,
 * or an error. */
static int next(shmring_consumer *c) {
	if (c->in_batch) return next_entry(c);
	for (int i = 0; i < 64; i++) {
		struct record rec;
		int rc = record_at(c->r, c->head, &rec);
		if (rc <= 0) return rc;
		if (rec.type == KIND_MESSAGE) {
			c->m_off = (rec.pos & c->r->mask) + REC_HEADER;
			c->m_len = rec.length;
			c->m_after = rec.after;
			return 1;
		}
		if (rec.type == KIND_BATCH) {
			c->in_batch = 1;
			c->batch_start = (rec.pos & c->r->mask) + REC_HEADER;
			c->entry_off = c->batch_start;
			c->batch_end = c->batch_start + rec.length;
			c->batch_after = rec.after;
			return next_entry(c);
		}
		c->head = rec.after; /* padding */
	}
	return 0;
}

static void advance(shmring_consumer *c) {
	if (c->in_batch) {
		c->entry_off += entry_size(c->m_len);
		if (c->entry_off >= c->batch_end) c->in_batch = 0;
	}
	c->head = c->m_after;
	c->messages++;
	c->bytes += c->m_len;
}

static int producers_gone(shmring_consumer *c) {
	shmring *r = c->r;
	if (ld64(at(r, OFF_PRODUCERS + PRODS_ATTACHES)) < c->eof_after || ld32(at(r, OFF_PRODUCERS + PRODS_ATTACHED)) != 0) return 0;
	uint32_t n = multi(r) ? r->info.slots : 1;
	/* Every slot's lock, whatever its state word says: a scribbled count
	 * or state must not end the stream while a producer lives. */
	for (uint32_t i = 0; i < n; i++)
		if (locked(r, slot_off(i)) != 0) return 0;
	return 1;
}

/* boundary: a claim starts or ends at pos (Recovery). */
static int boundary(shmring *r, uint64_t pos) {
	if (ld64(at(r, OFF_TAIL)) == pos) return 1;
	for (uint32_t i = 0; i < r->info.slots; i++)
		if (ld64(at(r, slot_off(i) + SLOT_CLAIM_POS)) == pos) return 1;
	struct record rec;
	return record_at(r, pos, &rec);
}

/* recover_claim looks for a dead producer's claim at head when no live
 * producer claims head (Many producers, "Recovery"): 1 and where it ends, 0,
 * or an error. Nothing is written: the caller moves its own position. */
static int recover_claim(shmring *r, uint64_t head, uint64_t *end_out) {
	uint64_t tail = ld64(at(r, OFF_TAIL));
	if (tail == head) return 0;
	if (!span_ok(r, head, tail)) return SHMRING_ECORRUPT;
	uint32_t dead_slot[64];
	uint64_t dead_len[64];
	int ndead = 0, claimants = 0, rc = 0;
	for (uint32_t i = 0; i < r->info.slots && rc == 0; i++) {
		uint64_t off = slot_off(i);
		if (ld32(at(r, off + SLOT_STATE)) != 1 || ld64(at(r, off + SLOT_CLAIM_POS)) != head) continue;
		claimants++;
		int got = try_lock(r, off);
		if (got < 0) {
			rc = got;
			break;
		}
		if (got == 0 || ndead == 64) {
			if (got == 1) unlock(r, off);
			rc = -1000; /* a live producer claims head: wait for it */
			break;
		}
		dead_slot[ndead] = i;
		dead_len[ndead] = 0;
		if (ld32(at(r, off + SLOT_STATE)) == 1 && ld64(at(r, off + SLOT_CLAIM_POS)) == head) dead_len[ndead] = ld64(at(r, off + SLOT_CLAIM_LEN));
		ndead++;
	}
	struct record rec;
	int result = 0;
	if (rc == 0) {
		int committed = record_at(r, head, &rec);
		if (committed != 0) {
			result = committed < 0 ? committed : 0;
		} else if (claimants == 0) {
			result = SHMRING_ECORRUPT; /* committed, then overwritten */
		} else {
			/* The shortest dead claim that ends on a boundary. */
			for (int pass = 0; pass < ndead && result == 0; pass++) {
				int best = -1;
				for (int j = 0; j < ndead; j++)
					if (dead_len[j] != UINT64_MAX && (best < 0 || dead_len[j] < dead_len[best])) best = j;
				if (best < 0) break;
				uint64_t len = dead_len[best];
				dead_len[best] = UINT64_MAX;
				if (len < REC_HEADER || len % REC_ALIGN || len > tail - head) continue;
				uint64_t end = head + len;
				int b = boundary(r, end);
				if (b < 0) {
					result = b;
					break;
				}
				if (!b) continue;
				uint64_t rem = r->info.capacity - (head & r->mask);
				if (len > rem) {
					int k = record_at(r, head + rem, &rec);
					if (k < 0) {
						result = k;
						break;
					}
					if (k) end = head + rem; /* only the padding is missing */
				}
				*end_out = end;
				result = 1;
			}
		}
	} else if (rc != -1000) {
		result = rc;
	}
	for (int j = 0; j < ndead; j++) unlock(r, slot_off(dead_slot[j]));
	return result;
}

/* recover_head skips a dead producer's claim at the consumer's head
 * (Many producers, "Recovery"): 1 if it did, 0 if not, or an error. */
static int recover_head(shmring_consumer *c) {
	uint64_t end;
	int rc = recover_claim(c->r, c->head, &end);
	if (rc != 1) return rc;
	c->head = end;
	c->recovered++;
	st64(at(c->r, c->line + CONS_RECOVERED), c->recovered);
	publish(c);
	return 1;
}

/* check_stuck: a single-producer ring whose tail is past a head where
 * nothing is committed has an overwritten header (Positions). */
static int check_stuck(shmring_consumer *c) {
	shmring *r = c->r;
	uint64_t tail = ld64(at(r, OFF_TAIL)), head = c->head, rem = r->info.capacity - (head & r->mask);
	if (rem < REC_HEADER) head += rem;
	if (tail <= head) return 0;
	if (!span_ok(r, c->head, tail)) return SHMRING_ECORRUPT;
	struct record rec;
	int rc = record_at(r, c->head, &rec);
	if (rc != 0) return rc < 0 ? rc : 0;
	return SHMRING_ECORRUPT;
}

/* reap frees the slots of dead producers whose claims are settled before
 * head (the consumer's head, or a fan-out ring's frontier). */
static int reap(shmring_consumer *c, uint64_t head) {
	shmring *r = c->r;
	uint32_t n = multi(r) ? r->info.slots : 1;
	for (uint32_t i = 0; i < n; i++) {
		uint64_t off = slot_off(i);
		if (ld32(at(r, off + SLOT_STATE)) != 1) continue;
		int held = locked(r, off);
		if (held != 0) {
			if (held < 0) return held;
			continue;
		}
		int got = try_lock(r, off);
		if (got < 0) return got;
		if (got == 0) continue;
		if (ld32(at(r, off + SLOT_STATE)) == 1 && settled(r, off, head)) {
			unfence_slot(r, off);
			uncount(at(r, OFF_PRODUCERS + PRODS_ATTACHED));
			st32(at(r, off + SLOT_STATE), 0);
			c->reaped++;
			st64(at(r, c->line + CONS_REAPED), c->reaped);
		}
		unlock(r, off);
	}
	return 0;
}

static int maintain(void *arg) {
	shmring_consumer *c = arg;
	shmring *r = c->r;
	uint64_t front = ld64(at(r, OFF_HEAD));
	if (c->fan && front > c->head) return 0; /* passed: the next look says so */
	int rc = multi(r) ? recover_head(c) : check_stuck(c);
	if (rc < 0) {
		if (c->fan && ld64(at(r, OFF_HEAD)) > c->head) return 0; /* overwritten while it looked */
		return rc;
	}
	return reap(c, c->fan ? front : c->head);
}

/* ---- subscribers of a fan-out ring (Fan-out) ---- */

static uint64_t sub_line(const shmring *r, uint32_t i) { return r->fan_off + LINE_SIZE + (uint64_t)i * LINE_SIZE; }

/* lines_used: the subscriber lines ever taken (the others are free). */
static uint32_t lines_used(shmring *r) {
	uint32_t n = ld32(at(r, r->fan_off + FAN_LINES));
	return n < r->info.subscribers ? n : r->info.subscribers;
}

/* load_frontier reads the current copy of the frontier. */
static int load_frontier(shmring *r, struct frontier *f) {
	uint8_t *seq = at(r, r->fan_off + FAN_SEQ);
	for (int i = 0; i < 1000; i++) {
		uint64_t s = ld64(seq);
		uint8_t *copy = at(r, r->fan_off + FAN_COPY + (s & 1) * FAN_COPY_SIZE);
		f->pos = ld64(copy);
		f->msgs = ld64(copy + 8);
		f->bytes = ld64(copy + 16);
		if (ld64(seq) == s) return SHMRING_OK;
		sched_yield();
	}
	return SHMRING_ECORRUPT;
}

/* batch_count counts the messages of a batch record, and their bytes. */
static int batch_count(shmring *r, const struct record *rec, uint64_t *msgs, uint64_t *bytes) {
	uint64_t start = (rec->pos & r->mask) + REC_HEADER;
	for (uint64_t off = 0; off < rec->length;) {
		uint64_t n = ld32(r->data + start + off), next = off + entry_size(n);
		if (n > r->info.max_message || next > rec->length) return SHMRING_ECORRUPT;
		(*msgs)++;
		*bytes += n;
		off = next;
	}
	return SHMRING_OK;
}

int shmring_subscribe(shmring *r, int lossy, int oldest, int eof, uint64_t eof_after, shmring_consumer **out) {
	if (!r || !out) return SHMRING_EINVAL;
	if (ld32(at(r, OFF_REMOVED)) != 0) return SHMRING_EREMOVED;
	if (r->info.subscribers == 0) return SHMRING_ENOTFANOUT;
	uint32_t idx = 0;
	uint64_t line = 0;
	for (; idx < r->info.subscribers; idx++) {
		int got = try_lock(r, sub_line(r, idx));
		if (got < 0) return got;
		if (got == 1) break; /* free, or its subscriber died: ours */
	}
	if (idx == r->info.subscribers) return SHMRING_ESUBSCRIBERSFULL;
	line = sub_line(r, idx);
	/* The fan-out lock, held for one frontier update at a time. */
	int got = 0;
	for (int64_t start = now_ns(); (got = try_lock(r, r->fan_off)) == 0 && now_ns() - start < 1000000000LL;) sleep_ns(50000);
	if (got != 1) {
		unlock(r, line);
		return got < 0 ? got : SHMRING_ETIMEOUT;
	}
	struct frontier f;
	int rc = load_frontier(r, &f);
	uint64_t tail = ld64(at(r, OFF_TAIL));
	if (rc == SHMRING_OK && !span_ok(r, f.pos, tail)) rc = SHMRING_ECORRUPT;
	while (rc == SHMRING_OK && !oldest && f.pos < tail) {
		/* After the frontier nothing is overwritten while the lock is
		 * held: walk to the end of what is committed, counting. */
		struct record rec;
		int k = record_at(r, f.pos, &rec);
		if (k <= 0) {
			rc = k;
			break;
		}
		/* Past a gap too short for a header, a record may start at the
		 * tail: committed since the tail was read. */
		if (rec.pos >= tail) break;
		if (rec.type == KIND_MESSAGE) {
			f.msgs++;
			f.bytes += rec.length;
		} else if (rec.type == KIND_BATCH) {
			rc = batch_count(r, &rec, &f.msgs, &f.bytes);
		}
		f.pos = rec.after;
		if (f.pos > tail) rc = SHMRING_ECORRUPT;
	}
	if (rc == SHMRING_OK) {
		uint8_t *lines = at(r, r->fan_off + FAN_LINES);
		for (;;) {
			uint32_t n = ld32(lines);
			if (n > idx || cas32(lines, n, idx + 1)) break;
		}
		for (uint64_t w = CONS_MESSAGES; w <= CONS_BATCH; w += 8) st64(at(r, line + w), 0);
		for (uint64_t w = SUB_LOST; w <= SUB_LAPS; w += 8) st64(at(r, line + w), 0);
		st64(at(r, line + SUB_POS), f.pos);
		add64(at(r, line + CONS_GEN), 1);
		st32(at(r, line + CONS_PID), (uint32_t)getpid());
		st32(at(r, line + CONS_STATE), lossy ? SUB_LOSSY : SUB_RELIABLE);
		add64(at(r, r->fan_off + FAN_ATTACHES), 1);
	}
	unlock(r, r->fan_off);
	fence();
	bell_wake_all(bell_at(r, OFF_SPACE_BELL)); /* a producer may have found the lock held */
	if (rc != SHMRING_OK) {
		unlock(r, line);
		return rc;
	}
	shmring_consumer *c = calloc(1, sizeof *c);
	if (!c) {
		st32(at(r, line + CONS_STATE), SUB_FREE);
		unlock(r, line);
		errno = ENOMEM;
		return SHMRING_ESYS;
	}
	c->r = r;
	c->line = line;
	c->pub = line + SUB_POS;
	c->head = c->published = f.pos;
	c->batch = r->info.capacity / 8 > REC_ALIGN ? r->info.capacity / 8 : REC_ALIGN;
	c->eof = eof;
	c->eof_after = eof_after ? eof_after : 1;
	c->fan = 1;
	c->lossy = lossy != 0;
	c->base = f.msgs;
	c->base_bytes = f.bytes;
	*out = c;
	return SHMRING_OK;
}

void shmring_lost(const shmring_consumer *c, uint64_t *messages, uint64_t *bytes) {
	*messages = c->last_lost;
	*bytes = c->last_lost_bytes;
}

/* overrun handles a frontier past the subscriber's head: a lossy one was
 * lapped (it moves to the frontier and counts what it lost, exactly), a
 * reliable one was evicted. */
static int overrun(shmring_consumer *c) {
	shmring *r = c->r;
	if (!c->lossy) {
		if (ld32(at(r, c->line + CONS_STATE)) == SUB_EVICTED) {
			c->evicted = 1;
			return SHMRING_EEVICTED;
		}
		return SHMRING_ECORRUPT;
	}
	struct frontier f;
	int rc = load_frontier(r, &f);
	if (rc != SHMRING_OK) return rc;
	uint64_t msgs = c->messages + c->base, bytes = c->bytes + c->base_bytes;
	if (f.pos <= c->head || f.msgs < msgs || f.bytes < bytes) return SHMRING_ECORRUPT;
	c->last_lost = f.msgs - msgs;
	c->last_lost_bytes = f.bytes - bytes;
	c->base += c->last_lost;
	c->base_bytes += c->last_lost_bytes;
	c->lost += c->last_lost;
	c->lost_bytes += c->last_lost_bytes;
	c->laps++;
	c->head = f.pos;
	c->in_batch = 0;
	st64(at(r, c->line + SUB_LOST), c->lost);
	st64(at(r, c->line + SUB_LOST_BYTES), c->lost_bytes);
	st64(at(r, c->line + SUB_LAPS), c->laps);
	publish(c);
	return SHMRING_ELOST;
}

/* passed reports whether the frontier is past the subscriber's head. */
static int passed(const shmring_consumer *c) { return ld64(at(c->r, OFF_HEAD)) > c->head; }

/* look_again is poll's last look before the end of the stream or the
 * removal is reported: on a subscriber, nothing at its head or what makes no
 * sense may mean that its head was overwritten since the first look, a lap
 * (or an eviction). A subscriber stalled between the two looks while the
 * producers evicted it, passed it and left would otherwise report a clean
 * end of a stream it did not read to its end. */
static int look_again(shmring_consumer *c) {
	int rc = next(c);
	if (rc <= 0 && c->fan) {
		__atomic_thread_fence(__ATOMIC_ACQUIRE);
		if (passed(c)) return overrun(c);
	}
	return rc;
}

/* poll is one look: 1 with a message in c->m_*, 0 nothing, or an error
 * (SHMRING_EOF, SHMRING_EREMOVED, SHMRING_ECORRUPT). */
static int poll_once(void *arg) {
	shmring_consumer *c = arg;
	if (c->fan) {
		if (c->evicted) return SHMRING_EEVICTED;
		if (!c->lossy && ld32(at(c->r, c->line + CONS_STATE)) == SUB_EVICTED) {
			c->evicted = 1;
			return SHMRING_EEVICTED;
		}
	}
	if (c->head - c->published >= c->batch) publish(c);
	int rc = next(c);
	/* Nothing, or what makes no sense: it may have been overwritten. */
	if (rc <= 0 && c->fan && passed(c)) return overrun(c);
	if (rc != 0) return rc;
	if (c->head != c->published) publish(c);
	if (c->eof && producers_gone(c)) {
		rc = look_again(c);
		return rc != 0 ? rc : SHMRING_EOF;
	}
	if (ld32(at(c->r, OFF_REMOVED)) != 0) {
		rc = look_again(c);
		return rc != 0 ? rc : SHMRING_EREMOVED;
	}
	return 0;
}

int shmring_recv(shmring_consumer *c, void *buf, size_t cap, size_t *n, int64_t timeout_ns) {
	if (!c || !n || (!buf && cap > 0)) return SHMRING_EINVAL;
	int rc = poll_once(c);
	if (rc == 0) {
		if (timeout_ns == 0) return SHMRING_EEMPTY;
		rc = wait_on(c->r, bell_at(c->r, OFF_DATA_BELL), 1, poll_once, maintain, c, timeout_ns, at(c->r, c->line + CONS_PARKS));
		if (rc == SHMRING_OK) rc = 1;
	}
	if (rc == SHMRING_ECORRUPT) {
		c->corrupt++;
		st64(at(c->r, c->line + CONS_CORRUPT), c->corrupt);
	}
	if (rc != 1) return rc;
	*n = (size_t)c->m_len;
	if (cap < c->m_len) {
		/* A length read from a record being overwritten is no
		 * message's length. */
		if (c->fan) {
			__atomic_thread_fence(__ATOMIC_ACQUIRE);
			if (passed(c)) return overrun(c);
		}
		return SHMRING_ESHORTBUFFER;
	}
	memcpy(buf, c->r->data + c->m_off, (size_t)c->m_len);
	if (c->fan) {
		/* The copy's loads before the frontier's (a sequence lock). */
		__atomic_thread_fence(__ATOMIC_ACQUIRE);
		if (passed(c)) return overrun(c);
	}
	advance(c); /* published by the next call, after this one returns */
	return SHMRING_OK;
}

int shmring_consumer_close(shmring_consumer *c) {
	if (!c) return SHMRING_OK;
	shmring *r = c->r;
	publish(c);
	st32(at(r, c->line + CONS_PID), 0);
	st32(at(r, c->line + CONS_STATE), 0);
	unlock(r, c->line);
	if (c->fan) {
		fence();
		bell_ring(bell_at(r, OFF_SPACE_BELL)); /* producers may have waited for it */
	}
	free(c);
	return SHMRING_OK;
}

void shmring_consumer_stats_of(const shmring_consumer *c, struct shmring_consumer_stats *st) {
	st->messages = c->messages;
	st->bytes = c->bytes;
	st->recovered = c->recovered;
	st->reaped = c->reaped;
	st->parks = ld64(at(c->r, c->line + CONS_PARKS));
	st->lost = c->lost;
	st->lost_bytes = c->lost_bytes;
	st->laps = c->laps;
	st->head = c->head;
	st->head_word = ld64(at(c->r, OFF_HEAD));
	st->published = c->fan ? ld64(at(c->r, c->line + SUB_POS)) : c->head;
	st->line_state = ld32(at(c->r, c->line + CONS_STATE));
}

int shmring_remove(shmring *r) {
	if (!r) return SHMRING_EINVAL;
	/* The mark, then every sleeper woken, then the name (Removal). */
	st32(at(r, OFF_REMOVED), 1);
	fence();
	uint64_t bells[2] = {OFF_DATA_BELL, OFF_SPACE_BELL};
	for (int i = 0; i < 2; i++) {
		struct bell b = bell_at(r, bells[i]);
		add32(b.word, 1);
		futex(b.word, FUTEX_WAKE, INT32_MAX, NULL);
	}
	return unlink(r->path) == 0 ? SHMRING_OK : SHMRING_ESYS;
}
