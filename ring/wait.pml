/*
 * A model of the doorbell wake-up protocol between one producer and the
 * consumer of a ring (ring/wait.go, ring/producer.go, ring/consumer.go),
 * checked by spin in .ci/run. It shows that the consumer never sleeps
 * forever on a committed message (no lost wake-up), with the producer's
 * commit being a plain release store that x86 may keep in its store buffer
 * while it loads the waiter count (total store order).
 *
 * Process producer models Producer.commit followed by doorbell.ring(): the
 * stamp store enters the store buffer; the waiter count is loaded from
 * memory; a non-zero count, with the doorbell still at its armed value, bumps
 * the doorbell (a locked instruction, which drains the buffer) and wakes
 * sleepers.
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
 * A waker makes the wake call only if the doorbell still holds the value the
 * waiter armed it at (doorbell.ring), and bumps it by compare-and-swap, so
 * that commits made while the consumer is on its way to sleep do not each
 * make a wake call.
 *
 * Build with -DNO_BARRIER to drop the fence, -DLATE_READ to read the doorbell
 * after the last look, or -DARM_LATE to arm the doorbell after the last look
 * instead of before the fence: spin must then find a lost wake-up (an invalid end state), which
 * shows that the model can fail.
 */

#define N 3              /* messages */

byte visible = 0;        /* committed messages the consumer can see */
byte buffered = 0;       /* committed messages in the producer's program order */
byte waiters = 0;        /* the waiter count */
byte bell = 0;           /* the doorbell */
byte armed = 0;          /* the doorbell value the waiter armed it at */
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
	byte i, b;
	bool woke;
	for (i : 1 .. N) {
		buffered++;                   /* storeRelease64 of the stamp */
		if                            /* doorbell.ring(): load waiters from memory */
		:: waiters > 0 ->
			b = bell;
			if
			:: b == armed ->          /* not rung since it was armed */
				atomic {              /* compare-and-swap b to b+1 (drains the buffer) */
					flush();
					woke = (bell == b);
					if
					:: woke -> bell++
					:: else
					fi
				};
				if
				:: woke -> atomic { asleep = false }  /* futex.Wake */
				:: else
				fi
			:: else -> skip
			fi
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
#ifndef ARM_LATE
		armed = v;                                    /* doorbell.arm */
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
#ifdef ARM_LATE
			armed = v;
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
