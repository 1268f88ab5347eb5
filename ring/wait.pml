/*
 * A model of the doorbell wake-up protocol between one producer and the
 * consumer of a ring (ring/wait.go, ring/producer.go, ring/consumer.go),
 * checked by spin in .ci/run. It shows that the consumer never sleeps
 * forever on a committed message (no lost wake-up), with the producer's
 * commit being a plain release store that x86 may keep in its store buffer
 * while it loads the waiter count (total store order).
 *
 * Process producer models Producer.commit followed by ring(): the stamp store
 * enters the store buffer; the waiter count is loaded from memory; a non-zero
 * count bumps the doorbell (a locked instruction, which drains the buffer)
 * and wakes sleepers.
 * Process consumer models Consumer.Peek through waiter.wait and waiter.park:
 * read the doorbell, count itself a waiter, fence (futex.Barrier, that is
 * membarrier(2), which drains the producer's store buffer), look again, and
 * only then sleep on the value read first (futex: sleeps only if the word
 * still holds it).
 * Process drain models the CPU retiring the producer's buffered stores.
 *
 * The space doorbell (a producer waiting for room, the consumer publishing
 * its head) follows the same steps with the roles swapped.
 *
 * Build with -DNO_BARRIER to drop the fence, or -DLATE_READ to read the
 * doorbell after the last look: spin must then find a lost wake-up (an
 * invalid end state), which shows that the model can fail.
 */

#define N 3              /* messages */

byte visible = 0;        /* committed messages the consumer can see */
byte buffered = 0;       /* committed messages in the producer's program order */
byte waiters = 0;        /* the waiter count */
byte bell = 0;           /* the doorbell */
bool asleep = false;     /* the consumer is asleep in futex_wait */

/* A locked instruction or membarrier: the buffered stores reach memory. */
inline flush() { visible = buffered }

active proctype drain() {
end:
	do
	:: atomic { visible < buffered -> visible++ }
	od
}

active proctype producer() {
	byte i;
	for (i : 1 .. N) {
		buffered++;                   /* storeRelease64 of the stamp */
		if                            /* ring(): load waiters from memory */
		:: waiters > 0 ->
			atomic { flush(); bell++ };       /* atomic.AddUint32(bell, 1) */
			atomic { asleep = false }         /* futex.Wake */
		:: else -> skip
		fi
	}
}

active proctype consumer() {
	byte got = 0;
	byte v;
	do
	:: got == N -> break
	:: got < N && visible > got -> got++              /* spin: the stamp is there */
	:: got < N && visible == got ->                   /* nothing: park */
#ifndef LATE_READ
		v = bell;
#endif
		waiters++;
#ifndef NO_BARRIER
		atomic { flush() };                           /* futex.Barrier */
#endif
		if
		:: visible > got -> waiters--                 /* the last look found it */
		:: else ->
#ifdef LATE_READ
			v = bell;
#endif
			atomic {                              /* futex.Wait(bell, v) */
				if
				:: bell == v -> asleep = true
				:: else -> skip
				fi
			};
			(!asleep);                            /* blocks until woken */
			waiters--
		fi
	od;
	assert(visible >= N)
}
