/*
 * cconsumer: the C counterpart of cmd/consumer, on a ring another process
 * created. Attaches as the consumer of -name NAME or -path FILE, receives
 * the verifiable streams of -producers N producers until the end of the
 * stream (N came and all went), checks every message, and prints a JSON
 * summary. With -subscribe reliable or -subscribe lossy it joins a fan-out
 * ring as a subscriber instead (a lossy one passes when the messages missing
 * are exactly those the ring reported lost). Exit status 0 when every message
 * committed arrived once, in order and intact; 1 otherwise; 2 for usage or
 * setup errors.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../shmring.h"
#include "stream.h"

#define MAX_IDS 1024

static int usage(void) {
	fprintf(stderr, "usage: cconsumer (-name NAME | -path FILE) [-producers N] [-idle SECONDS] [-subscribe reliable|lossy] [-oldest 1] [-count N]\n");
	return 2;
}

int main(int argc, char **argv) {
	const char *name = NULL, *path = NULL, *subscribe = NULL;
	unsigned long long producers = 1, idle = 30, oldest = 0, expect = 0;
	for (int i = 1; i < argc; i++) {
		if (i + 1 >= argc) return usage();
		const char *f = argv[i], *v = argv[++i];
		if (!strcmp(f, "-name")) name = v;
		else if (!strcmp(f, "-path")) path = v;
		else if (!strcmp(f, "-producers")) producers = strtoull(v, NULL, 10);
		else if (!strcmp(f, "-idle")) idle = strtoull(v, NULL, 10);
		else if (!strcmp(f, "-subscribe")) subscribe = v;
		else if (!strcmp(f, "-oldest")) oldest = strtoull(v, NULL, 10);
		else if (!strcmp(f, "-count")) expect = strtoull(v, NULL, 10);
		else return usage();
	}
	if ((!name) == (!path) || producers < 1 || (subscribe && strcmp(subscribe, "reliable") && strcmp(subscribe, "lossy"))) return usage();
	int lossy = subscribe && !strcmp(subscribe, "lossy");
	crc32c_init();
	shmring *r;
	int rc = name ? shmring_open(name, &r) : shmring_open_file(path, &r);
	if (rc != SHMRING_OK) {
		fprintf(stderr, "cconsumer: open: %s\n", shmring_strerror(rc));
		return 2;
	}
	shmring_consumer *c;
	rc = subscribe ? shmring_subscribe(r, lossy, (int)oldest, 1, producers, &c) : shmring_consumer_attach(r, 1, producers, &c);
	if (rc != SHMRING_OK) {
		fprintf(stderr, "cconsumer: attach: %s\n", shmring_strerror(rc));
		return 2;
	}
	size_t cap = shmring_info_of(r)->max_message;
	uint8_t *buf = malloc(cap ? cap : 1);
	static uint64_t next[MAX_IDS], total[MAX_IDS], missing[MAX_IDS];
	static int finished[MAX_IDS], seen[MAX_IDS];
	uint64_t messages = 0, corrupt = 0, out_of_order = 0, lost_reported = 0, laps = 0;
	int end = 0, evicted = 0;
	int64_t end_ns = 0; /* CLOCK_MONOTONIC when the end of the stream came */
	for (;;) {
		size_t n;
		rc = shmring_recv(c, buf, cap, &n, (int64_t)idle * 1000000000LL);
		if (rc == SHMRING_EOF) {
			end = 1;
			end_ns = stream_now();
			break;
		}
		if (rc == SHMRING_ELOST) {
			uint64_t m, b;
			shmring_lost(c, &m, &b);
			lost_reported += m;
			laps++;
			continue;
		}
		if (rc == SHMRING_EEVICTED) evicted = 1;
		if (rc != SHMRING_OK) {
			fprintf(stderr, "cconsumer: after %llu messages: %s\n", (unsigned long long)messages, shmring_strerror(rc));
			break;
		}
		uint32_t id, flags;
		uint64_t seq;
		if (stream_decode(buf, n, &id, &flags, &seq) != 0 || id >= MAX_IDS) {
			corrupt++;
			continue;
		}
		seen[id] = 1;
		if (flags & STREAM_FINAL) {
			finished[id] = 1;
			total[id] = seq;
			continue;
		}
		if (seq < next[id]) {
			out_of_order++; /* a duplicate, or out of order */
			continue;
		}
		missing[id] += seq - next[id];
		next[id] = seq + 1;
		messages++;
	}
	uint64_t lost = 0;
	int nprod = 0, all_finished = 1;
	for (int id = 0; id < MAX_IDS; id++) {
		if (!seen[id]) continue;
		nprod++;
		lost += missing[id];
		if (!finished[id]) all_finished = 0;
		else if (next[id] != total[id]) lost += total[id] > next[id] ? total[id] - next[id] : 1;
	}
	/* A lossy subscriber passes when what is missing is exactly what the
	 * ring reported lost. A producer whose final message was lost did not
	 * say how many it sent: with -count N (each of the producers sent N
	 * and a final message) the count is exact all the same. */
	if (lossy && expect) {
		uint64_t received = 0, finals = 0;
		for (int id = 0; id < MAX_IDS; id++) finals += (uint64_t)finished[id];
		received = messages + finals;
		lost = producers * (expect + 1) > received ? producers * (expect + 1) - received : 0;
	}
	int lost_ok = lossy ? lost == lost_reported : lost == 0;
	struct shmring_consumer_stats st;
	shmring_consumer_stats_of(c, &st);
	printf("{\"messages\":%llu,\"producers\":%d,\"lost\":%llu,\"out_of_order\":%llu,\"corrupt\":%llu,\"finished\":%s,\"end\":%s,\"recovered\":%llu,\"dead_producers\":%llu,"
	       "\"lost_reported\":%llu,\"laps\":%llu,\"evicted\":%s,\"end_ns\":%lld,\"head\":%llu,\"head_word\":%llu,\"published\":%llu,\"line_state\":%u}\n",
	       (unsigned long long)messages, nprod, (unsigned long long)lost, (unsigned long long)out_of_order, (unsigned long long)corrupt,
	       all_finished ? "true" : "false", end ? "true" : "false", (unsigned long long)st.recovered, (unsigned long long)st.reaped,
	       (unsigned long long)lost_reported, (unsigned long long)laps, evicted ? "true" : "false", (long long)end_ns,
	       (unsigned long long)st.head, (unsigned long long)st.head_word, (unsigned long long)st.published, (unsigned)st.line_state);
	shmring_consumer_close(c);
	shmring_close(r);
	free(buf);
	return end && lost_ok && out_of_order == 0 && corrupt == 0 ? 0 : 1;
}
