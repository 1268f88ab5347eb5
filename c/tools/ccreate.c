/*
 * ccreate: creates a ring with the C library (-name NAME or -path FILE,
 * -capacity, -slots, -multi 1, -subscribers N, -lag-bound-ns, -max-message),
 * prints "created", and when its standard input ends, removes the ring
 * (shmring_remove) and exits. For tests: the Go side opens and uses what
 * the C side created.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../shmring.h"

static int usage(void) {
	fprintf(stderr, "usage: ccreate (-name NAME | -path FILE) [-capacity B] [-slots N] [-multi 1] [-subscribers N] [-lag-bound-ns NS] [-max-message B]\n");
	return 2;
}

int main(int argc, char **argv) {
	const char *name = NULL, *path = NULL;
	struct shmring_config cfg = {0};
	for (int i = 1; i < argc; i++) {
		if (i + 1 >= argc) return usage();
		const char *f = argv[i], *v = argv[++i];
		if (!strcmp(f, "-name")) name = v;
		else if (!strcmp(f, "-path")) path = v;
		else if (!strcmp(f, "-capacity")) cfg.capacity = strtoull(v, NULL, 10);
		else if (!strcmp(f, "-slots")) cfg.slots = (uint32_t)strtoul(v, NULL, 10);
		else if (!strcmp(f, "-multi")) cfg.multi_producer = atoi(v);
		else if (!strcmp(f, "-subscribers")) cfg.subscribers = (uint32_t)strtoul(v, NULL, 10);
		else if (!strcmp(f, "-lag-bound-ns")) cfg.evict_after_ns = strtoll(v, NULL, 10);
		else if (!strcmp(f, "-max-message")) cfg.max_message = (uint32_t)strtoul(v, NULL, 10);
		else return usage();
	}
	if ((!name) == (!path)) return usage();
	shmring *r;
	int rc = name ? shmring_create(name, &cfg, &r) : shmring_create_file(path, &cfg, &r);
	if (rc != SHMRING_OK) {
		fprintf(stderr, "ccreate: %s%s%s\n", shmring_strerror(rc), rc == SHMRING_ESYS ? ": " : "", rc == SHMRING_ESYS ? strerror(errno) : "");
		return rc == SHMRING_EINVAL ? 2 : 1;
	}
	printf("created\n");
	fflush(stdout);
	while (getchar() != EOF) {
	}
	rc = shmring_remove(r);
	shmring_close(r);
	if (rc != SHMRING_OK) {
		fprintf(stderr, "ccreate: remove: %s\n", shmring_strerror(rc));
		return 1;
	}
	return 0;
}
