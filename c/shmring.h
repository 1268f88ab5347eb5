/*
 * shmring.h: a C client of shmring rings, written from FORMAT.md.
 *
 * Creates rings, or opens one that a Go program (or this library) created,
 * and joins it as a producer or as its consumer, with the same validation,
 * claims, commits, recovery and doorbells as the Go side. On fan-out rings
 * it produces (moving the frontier, evicting stalled subscribers at the lag
 * bound) and subscribes (shmring_subscribe). C11, libc and the Linux kernel
 * (futex, open-file-description locks, membarrier); nothing else. Linux
 * only, for now.
 *
 * Every function returns SHMRING_OK (0) or a negative error code;
 * shmring_strerror names it. SHMRING_ESYS means a system call failed, and
 * errno says why. Timeouts are in nanoseconds: 0 does not wait, a negative
 * value waits for ever.
 *
 * A handle is not safe for concurrent use: one thread at a time may call a
 * producer's or a consumer's functions. Several producers in one process
 * need one handle each (on a multi-producer ring).
 */
#ifndef SHMRING_H
#define SHMRING_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

enum {
	SHMRING_OK = 0,
	SHMRING_ESYS = -1,            /* a system call failed: see errno */
	SHMRING_EBADMAGIC = -2,       /* not a ring */
	SHMRING_EVERSION = -3,        /* a layout version this library does not read */
	SHMRING_ESIZE = -4,           /* the file's size disagrees with the header */
	SHMRING_EBADHEADER = -5,      /* a header field out of range */
	SHMRING_ENOTREADY = -6,       /* the creator has not finished the ring */
	SHMRING_ECORRUPT = -7,        /* shared memory holds what no correct peer writes */
	SHMRING_ETOOLARGE = -8,       /* a message over the ring's maximum */
	SHMRING_EFULL = -9,           /* no room now (timeout 0) */
	SHMRING_EEMPTY = -10,         /* nothing to read now (timeout 0) */
	SHMRING_EPRODUCERBUSY = -11,  /* every producer slot is taken */
	SHMRING_ECONSUMERBUSY = -12,  /* another consumer is attached */
	SHMRING_ECONSUMERDEAD = -13,  /* the consumer died while a producer waited for room */
	SHMRING_EREMOVED = -14,       /* the ring was removed or replaced */
	SHMRING_ETIMEOUT = -15,       /* the timeout passed */
	SHMRING_ESHORTBUFFER = -16,   /* the buffer cannot hold the next message */
	SHMRING_EOF = -17,            /* the producers came and went, and the ring is drained */
	SHMRING_EFANOUT = -18,        /* a fan-out ring: subscribe (shmring_subscribe) */
	SHMRING_EINVAL = -19,         /* a bad argument */
	SHMRING_ENOTSUPPORTED = -20,  /* not on this system */
	SHMRING_ENOTFANOUT = -21,     /* shmring_subscribe on a ring made for one consumer */
	SHMRING_ESUBSCRIBERSFULL = -22, /* every subscriber line is taken */
	SHMRING_ELOST = -23,          /* a lossy subscriber was lapped: see shmring_lost */
	SHMRING_EEVICTED = -24        /* a reliable subscriber was evicted (the lag bound) */
};

/* shmring_strerror returns a name and short description of an error code. */
const char *shmring_strerror(int err);

/* The header fields, validated. */
struct shmring_info {
	uint64_t capacity;
	uint32_t max_message;
	uint32_t slots;
	int multi_producer;
	uint32_t subscribers; /* fan-out rings: subscriber lines; else 0 */
	uint8_t uuid[16];
	uint32_t creator_pid;
	int64_t created_ns;
	uint64_t data_offset;
	uint64_t size;
};

/*
 * shmring_validate checks a ring's header in len bytes of memory, as an
 * opener does (FORMAT.md, "Header page", "Opening" steps 2-4), and fills in
 * info. It reads each field once. It is what shmring_open uses, and is
 * exposed so that a header image can be checked without a file.
 */
int shmring_validate(const void *mem, size_t len, struct shmring_info *info);

typedef struct shmring shmring;
typedef struct shmring_producer shmring_producer;
typedef struct shmring_consumer shmring_consumer;

/* shmring_open opens the named ring (/dev/shm/NAME), waiting up to one
 * second for its creator to finish it; shmring_open_file opens a ring file
 * at a path. The handle holds the ring's presence lock until
 * shmring_close. */
int shmring_open(const char *name, shmring **out);
int shmring_open_file(const char *path, shmring **out);
/* A new ring's shape. Zero fields take defaults: capacity 1 MiB, the
 * largest max_message the capacity allows, 64 slots, mode 0600, and for a
 * fan-out ring (subscribers > 0) a lag bound of one second (evict_after_ns
 * negative: never). */
struct shmring_config {
	uint64_t capacity;     /* a power of two, 256 to 2^40 */
	uint32_t max_message;
	uint32_t slots;        /* producer slots, at most 4096 */
	int multi_producer;
	uint32_t subscribers;  /* a fan-out ring's subscriber lines, 0 for one consumer */
	int64_t evict_after_ns;
	unsigned mode;         /* the file's permission bits */
};

/* shmring_create creates the named ring (/dev/shm/NAME), failing with
 * SHMRING_ESYS and errno EEXIST if the name is taken, and opens it;
 * shmring_create_file creates a ring file at a path. The ring is complete
 * (its init word stored last) when the call returns. */
int shmring_create(const char *name, const struct shmring_config *cfg, shmring **out);
int shmring_create_file(const char *path, const struct shmring_config *cfg, shmring **out);
/* shmring_remove marks the ring removed (its peers' calls then fail with
 * SHMRING_EREMOVED once it is drained), wakes every sleeper, and removes
 * its name (FORMAT.md, "Removal"). Close the handle afterwards. */
int shmring_remove(shmring *r);

/* shmring_info_of returns the ring's validated header. */
const struct shmring_info *shmring_info_of(const shmring *r);
/* shmring_close unmaps the ring. Close its producers and consumer first. */
int shmring_close(shmring *r);

/* shmring_producer_attach takes a producer slot (slot 0 of a
 * single-producer ring). */
int shmring_producer_attach(shmring *r, shmring_producer **out);
/* shmring_send copies n bytes into the ring as one message, waiting for room
 * up to timeout_ns. */
int shmring_send(shmring_producer *p, const void *msg, size_t n, int64_t timeout_ns);
/* shmring_send_batch sends as many of the count messages as fit in one
 * batch record (FORMAT.md, "Batches"), in order, and stores how many in
 * *sent; a first message too large for a batch is sent alone. */
struct shmring_msg {
	const void *data;
	size_t len;
};
int shmring_send_batch(shmring_producer *p, const struct shmring_msg *msgs, size_t count, size_t *sent, int64_t timeout_ns);
/* shmring_reserve reserves room for a message of n bytes and stores where
 * to write it in *buf; shmring_commit publishes it with its first n bytes
 * (at most those reserved), shmring_abort drops it. One reservation at a
 * time; the other calls of the producer fail with SHMRING_EINVAL meanwhile. */
int shmring_reserve(shmring_producer *p, size_t n, void **buf, int64_t timeout_ns);
int shmring_commit(shmring_producer *p, size_t n);
int shmring_abort(shmring_producer *p);
/* shmring_producer_close detaches the producer and frees its slot (a
 * reservation in progress is aborted). */
int shmring_producer_close(shmring_producer *p);

/* shmring_consumer_attach attaches the ring's consumer; it resumes at the
 * published head. With eof non-zero, receiving reports SHMRING_EOF once at
 * least eof_after producers (at least 1) have attached, none is attached,
 * and the ring is drained. */
int shmring_consumer_attach(shmring *r, int eof, uint64_t eof_after, shmring_consumer **out);
/* shmring_recv copies the next message into buf (cap bytes) and stores its
 * length in *n, waiting up to timeout_ns. A buffer too small gives
 * SHMRING_ESHORTBUFFER and *n the size needed; the message stays. */
int shmring_recv(shmring_consumer *c, void *buf, size_t cap, size_t *n, int64_t timeout_ns);
/* shmring_consumer_close publishes the head and detaches. */
int shmring_consumer_close(shmring_consumer *c);

/*
 * shmring_subscribe attaches a subscriber to a fan-out ring (FORMAT.md,
 * "Fan-out") and returns it as a consumer handle: shmring_recv reads every
 * message from where it starts (after the newest, or with oldest non-zero,
 * at the oldest still in the ring), and shmring_consumer_close detaches it.
 * A reliable subscriber (lossy 0) is waited for by the producers, up to the
 * ring's lag bound: once evicted, its every call returns SHMRING_EEVICTED.
 * A lossy one is never waited for: when the producers lap it, shmring_recv
 * returns SHMRING_ELOST (shmring_lost says how many messages and bytes)
 * and goes on at the oldest message left. eof and eof_after are as for
 * shmring_consumer_attach.
 */
int shmring_subscribe(shmring *r, int lossy, int oldest, int eof, uint64_t eof_after, shmring_consumer **out);
/* shmring_lost returns what the subscriber's last SHMRING_ELOST counted. */
void shmring_lost(const shmring_consumer *c, uint64_t *messages, uint64_t *bytes);

/* Counters of this library's work, for tests and tools. */
struct shmring_consumer_stats {
	uint64_t messages, bytes, recovered, reaped, parks;
	uint64_t lost, lost_bytes, laps; /* a lossy subscriber's losses */
	/* Where the consumer reads next, the ring's head word (a fan-out
	 * ring's frontier), and a subscriber's published position and line
	 * state (0 free, 1 reliable, 2 lossy, 3 evicted): for diagnostics. */
	uint64_t head, head_word, published;
	uint32_t line_state;
};
void shmring_consumer_stats_of(const shmring_consumer *c, struct shmring_consumer_stats *st);

#ifdef __cplusplus
}
#endif

#endif
