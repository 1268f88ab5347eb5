/*
 * cvalidate: prints, for each file named on the command line, the code
 * shmring_validate returns for its bytes as a header image (one line each:
 * the code, a space, the file). The tests hand it the malformed headers the
 * Go side refuses, to check that the C side refuses the same ones with the
 * same error.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>

#include "../shmring.h"

int main(int argc, char **argv) {
	for (int i = 1; i < argc; i++) {
		FILE *f = fopen(argv[i], "rb");
		if (!f) {
			perror(argv[i]);
			return 2;
		}
		fseek(f, 0, SEEK_END);
		long n = ftell(f);
		fseek(f, 0, SEEK_SET);
		/* 8-byte aligned, as a mapping is */
		uint64_t *mem = n < 0 ? NULL : malloc(((size_t)n + 7) / 8 * 8 + 8);
		if (!mem || fread(mem, 1, (size_t)n, f) != (size_t)n) {
			fprintf(stderr, "%s: read failed\n", argv[i]);
			return 2;
		}
		fclose(f);
		printf("%d %s\n", shmring_validate(mem, (size_t)n, NULL), argv[i]);
		free(mem);
	}
	return 0;
}
