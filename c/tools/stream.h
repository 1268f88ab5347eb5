/*
 * stream.h: the verifiable message stream of cmd/producer and
 * cmd/consumer (README, "The demo commands"), for the C tools. Little-endian:
 * producer id (4), flags (4: bit 0 final, bit 1 timed), sequence (8), send
 * time (8), CRC-32C of bytes 0-23 and 28-end (4), total size (4), then the
 * payload pattern.
 */
#ifndef SHMRING_STREAM_H
#define SHMRING_STREAM_H

#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif

#include <stdint.h>
#include <string.h>
#include <time.h>

#define STREAM_MIN 32
#define STREAM_FINAL 1u
#define STREAM_TIMED 2u
#define STREAM_PERIOD 251

/* CRC-32C (Castagnoli), sliced by 8: a table-driven byte loop would cost
 * the C tools more than sending the message. */
static uint32_t crc32c_table[8][256];

static inline void crc32c_init(void) {
	for (uint32_t i = 0; i < 256; i++) {
		uint32_t c = i;
		for (int k = 0; k < 8; k++) c = c & 1 ? (c >> 1) ^ 0x82f63b78u : c >> 1;
		crc32c_table[0][i] = c;
	}
	for (uint32_t i = 0; i < 256; i++)
		for (int t = 1; t < 8; t++) crc32c_table[t][i] = (crc32c_table[t - 1][i] >> 8) ^ crc32c_table[0][crc32c_table[t - 1][i] & 0xff];
}

static inline uint32_t crc32c_update(uint32_t crc, const uint8_t *p, size_t n) {
	crc = ~crc;
	while (n >= 8) {
		uint32_t lo = crc ^ ((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24);
		uint32_t hi = (uint32_t)p[4] | (uint32_t)p[5] << 8 | (uint32_t)p[6] << 16 | (uint32_t)p[7] << 24;
		crc = crc32c_table[7][lo & 0xff] ^ crc32c_table[6][(lo >> 8) & 0xff] ^ crc32c_table[5][(lo >> 16) & 0xff] ^ crc32c_table[4][lo >> 24] ^
		      crc32c_table[3][hi & 0xff] ^ crc32c_table[2][(hi >> 8) & 0xff] ^ crc32c_table[1][(hi >> 16) & 0xff] ^ crc32c_table[0][hi >> 24];
		p += 8;
		n -= 8;
	}
	while (n--) crc = crc32c_table[0][(crc ^ *p++) & 0xff] ^ (crc >> 8);
	return ~crc;
}

static inline void put32(uint8_t *p, uint32_t v) {
	for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static inline void put64(uint8_t *p, uint64_t v) {
	for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static inline uint32_t get32(const uint8_t *p) {
	uint32_t v = 0;
	for (int i = 3; i >= 0; i--) v = v << 8 | p[i];
	return v;
}
static inline uint64_t get64(const uint8_t *p) {
	uint64_t v = 0;
	for (int i = 7; i >= 0; i--) v = v << 8 | p[i];
	return v;
}

static inline uint32_t stream_checksum(const uint8_t *m, size_t n) {
	return crc32c_update(crc32c_update(0, m, 24), m + 28, n - 28);
}

static inline int64_t stream_now(void) {
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* stream_encode fills m (n bytes, at least STREAM_MIN) with message seq of
 * producer id, sent at sent_ns. */
static inline void stream_encode(uint8_t *m, size_t n, uint32_t id, uint64_t seq, int64_t sent_ns, uint32_t flags) {
	put32(m, id);
	put32(m + 4, flags);
	put64(m + 8, seq);
	put64(m + 16, (uint64_t)sent_ns);
	put32(m + 28, (uint32_t)n);
	uint64_t shift = seq % STREAM_PERIOD;
	for (size_t i = STREAM_MIN; i < n; i++) m[i] = (uint8_t)((uint32_t)(i - STREAM_MIN + shift) * 7u + id * 131u + 1u);
	put32(m + 24, stream_checksum(m, n));
}

/* stream_decode checks m: 0 and the header fields, or -1 if corrupt. */
static inline int stream_decode(const uint8_t *m, size_t n, uint32_t *id, uint32_t *flags, uint64_t *seq) {
	if (n < STREAM_MIN || get32(m + 28) != n || get32(m + 24) != stream_checksum(m, n)) return -1;
	*id = get32(m);
	*flags = get32(m + 4);
	*seq = get64(m + 8);
	return 0;
}

#endif
