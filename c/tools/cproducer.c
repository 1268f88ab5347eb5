/*
 * cproducer: the C counterpart of cmd/producer. Opens a ring (-name NAME or
 * -path FILE) and sends -count messages of the verifiable stream (-size
 * bytes, or sizes varying up to -max-size), -batch at a time, as producer
 * -id, then the final message. Exit status 0 when all were committed, 1 when
 * sending failed, 2 for usage or setup errors.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../shmring.h"
#include "stream.h"

static int usage(void) {
	fprintf(stderr, "usage: cproducer (-name NAME | -path FILE) [-count N] [-size B] [-max-size B] [-batch N] [-id ID] [-hang-after N]\n");
	return 2;
}

int main(int argc, char **argv) {
	const char *name = NULL, *path = NULL;
	unsigned long long count = 100000, size = 64, max_size = 0, batch = 1, id = 0;
	long long hang = -1; /* for tests: after this many messages, claim one more, say so, and stop */
	for (int i = 1; i < argc; i++) {
		if (i + 1 >= argc) return usage();
		const char *f = argv[i], *v = argv[++i];
		if (!strcmp(f, "-name")) name = v;
		else if (!strcmp(f, "-path")) path = v;
		else if (!strcmp(f, "-count")) count = strtoull(v, NULL, 10);
		else if (!strcmp(f, "-size")) size = strtoull(v, NULL, 10);
		else if (!strcmp(f, "-max-size")) max_size = strtoull(v, NULL, 10);
		else if (!strcmp(f, "-batch")) batch = strtoull(v, NULL, 10);
		else if (!strcmp(f, "-id")) id = strtoull(v, NULL, 10);
		else if (!strcmp(f, "-hang-after")) hang = strtoll(v, NULL, 10);
		else return usage();
	}
	if ((!name) == (!path) || size < STREAM_MIN || (max_size && max_size < size) || batch < 1 || batch > 4096 || id > 65535) return usage();
	if (max_size < size) max_size = size;
	crc32c_init();
	shmring *r;
	int rc = name ? shmring_open(name, &r) : shmring_open_file(path, &r);
	if (rc != SHMRING_OK) {
		fprintf(stderr, "cproducer: open: %s\n", shmring_strerror(rc));
		return 2;
	}
	if (max_size > shmring_info_of(r)->max_message) {
		fprintf(stderr, "cproducer: messages of %llu bytes exceed the ring's maximum\n", max_size);
		return 2;
	}
	shmring_producer *p;
	if ((rc = shmring_producer_attach(r, &p)) != SHMRING_OK) {
		fprintf(stderr, "cproducer: attach: %s\n", shmring_strerror(rc));
		return 2;
	}
	uint8_t *arena = malloc(batch * max_size);
	struct shmring_msg *msgs = calloc(batch, sizeof *msgs);
	if (!arena || !msgs) return 2;
	uint64_t span = max_size - size + 1;
	int64_t ts = 0;
	uint32_t flags = 0;
	for (uint64_t seq = 0; seq < count;) {
		if (hang >= 0 && seq >= (uint64_t)hang) {
			void *buf;
			if ((rc = shmring_reserve(p, (size_t)size, &buf, 30000000000LL)) != SHMRING_OK) {
				fprintf(stderr, "cproducer: reserve: %s\n", shmring_strerror(rc));
				return 1;
			}
			printf("claimed\n");
			fflush(stdout);
			for (;;) pause(); /* killed here, the claim in flight */
		}
		if (batch == 1) {
			/* One by one: written in place (shmring_reserve). */
			size_t n = (size_t)(size + (seq * 2654435761ULL) % span);
			if (seq % 64 == 0) {
				ts = stream_now();
				flags = STREAM_TIMED;
			}
			void *buf;
			if ((rc = shmring_reserve(p, n, &buf, 30000000000LL)) != SHMRING_OK) {
				fprintf(stderr, "cproducer: message %llu: %s\n", (unsigned long long)seq, shmring_strerror(rc));
				return 1;
			}
			stream_encode(buf, n, (uint32_t)id, seq, ts, flags);
			flags = 0;
			shmring_commit(p, n);
			seq++;
			continue;
		}
		size_t k = 0;
		for (; k < batch && seq + k < count; k++) {
			uint64_t s = seq + k;
			size_t n = (size_t)(size + (s * 2654435761ULL) % span);
			/* Reading the clock costs about what sending a small
			 * message does: one message in 64 is timed, as by
			 * cmd/producer. */
			if (s % 64 == 0) {
				ts = stream_now();
				flags = STREAM_TIMED;
			}
			stream_encode(arena + k * max_size, n, (uint32_t)id, s, ts, flags);
			flags = 0;
			msgs[k].data = arena + k * max_size;
			msgs[k].len = n;
		}
		size_t off = 0;
		while (off < k) {
			size_t sent = 1;
			rc = shmring_send_batch(p, msgs + off, k - off, &sent, 30000000000LL);
			if (rc != SHMRING_OK) {
				fprintf(stderr, "cproducer: message %llu: %s\n", (unsigned long long)(seq + off), shmring_strerror(rc));
				return 1;
			}
			off += sent;
		}
		seq += k;
	}
	uint8_t final[STREAM_MIN];
	stream_encode(final, sizeof final, (uint32_t)id, count, stream_now(), STREAM_FINAL);
	if ((rc = shmring_send(p, final, sizeof final, 30000000000LL)) != SHMRING_OK) {
		fprintf(stderr, "cproducer: final message: %s\n", shmring_strerror(rc));
		return 1;
	}
	shmring_producer_close(p);
	shmring_close(r);
	free(arena);
	free(msgs);
	return 0;
}
