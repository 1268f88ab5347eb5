/*
 * cscan: for tests. For each ring file named on the command line (images a
 * test wrote, with hostile positions, slots and records), attaches the
 * consumer and receives until an error, then attaches a producer and sends
 * a few messages, without waiting, and prints the codes. Whatever the bytes,
 * it must finish without a crash (the tests run it under ASan and UBSan).
 * On a fan-out ring it subscribes instead (lossy or reliable, at the oldest
 * message or the newest, by the file's place in the list).
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <string.h>

#include "../shmring.h"

int main(int argc, char **argv) {
	static unsigned char buf[1 << 16], msg[300];
	for (int i = 1; i < argc; i++) {
		shmring *r;
		int rc = shmring_open_file(argv[i], &r), recv_rc = 0, send_rc = 0, n = 0;
		if (rc == SHMRING_OK) {
			shmring_consumer *c;
			recv_rc = shmring_consumer_attach(r, 1, 1, &c);
			if (recv_rc == SHMRING_EFANOUT) recv_rc = shmring_subscribe(r, i % 2, i % 3 == 0, 1, 1, &c);
			if (recv_rc == SHMRING_OK) {
				for (n = 0; n < 200; n++) {
					size_t got;
					recv_rc = shmring_recv(c, buf, sizeof buf, &got, 0);
					if (recv_rc != SHMRING_OK && recv_rc != SHMRING_ESHORTBUFFER && recv_rc != SHMRING_ELOST) break;
				}
				shmring_consumer_close(c);
			}
			shmring_producer *p;
			if ((send_rc = shmring_producer_attach(r, &p)) == SHMRING_OK) {
				for (size_t k = 0; k < 20 && send_rc == SHMRING_OK; k++) {
					memset(msg, (int)k, sizeof msg);
					send_rc = shmring_send(p, msg, k * 13, 0);
				}
				shmring_producer_close(p);
			}
			shmring_close(r);
		}
		printf("%d %d %d %d %s\n", rc, recv_rc, n, send_rc, argv[i]);
	}
	return 0;
}
