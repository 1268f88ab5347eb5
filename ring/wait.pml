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
 * Fenced commits (ring/fenced.go): the producer may switch, before any
 * commit, between fenced (a full fence after each commit, counted in the
 * fenced word) and unfenced; the consumer skips the barrier when the fenced
 * word says every producer fences (here, the one producer).
 *
 * Bells (FORMAT.md, "Connections", bells): with -DBELL, each sleep of the
 * consumer is either on the futex, counted as 1 waiter, or on the bell (a
 * FIFO the consumer reads through the poller), counted as BW waiters; the
 * producer, after its compare-and-swap, loads the count again and makes a
 * futex wake if its remainder modulo BW is not zero, and writes a byte
 * into the bell if it is BW or more. A sleep on the bell ends at once if
 * the word no longer holds v, leaving the FIFO as it is (the byte that woke
 * it is emptied by the next sleep); otherwise it empties the FIFO, then
 * sleeps only if the word still holds v, until a byte is there.
 * -DBELL -DBELL_CHECK_FIRST looks at the word only before emptying the
 * FIFO, -DBELL -DNO_BELL_CHECK never looks after emptying, -DBELL -DFUTEX_WAKE_ONLY
 * has the producer wake the futex only: each must lose a wake-up.
 *
 * Build with -DNO_BARRIER to drop the fence, -DLATE_READ to read the doorbell
 * after the last look, or -DARM_LATE to arm the doorbell after the last look
 * instead of before the fence; -DNO_COMMIT_FENCE for a fenced producer that
 * does not fence, -DPLAIN_UNFENCE for a decrement of the fenced word by a
 * plain store, -DUNFENCE_LATE for a producer that commits without the fence
 * before it decrements the word: spin must then find a lost wake-up (an
 * invalid end state), which shows that the model can fail.
 */

#define N 3              /* messages */

byte visible = 0;        /* committed messages the consumer can see */
byte buffered = 0;       /* committed messages in the producer's program order */
byte waiters = 0;        /* the waiter count */
byte bell = 0;           /* the doorbell */
byte armed = 0;          /* the doorbell value the waiter armed it at */
bool asleep = false;     /* the consumer is asleep in futex_wait */

#define BW 4             /* what a sleeper on the bell adds to the waiter count */
byte fifo = 0;           /* bytes in the bell's FIFO */
bool onbell = false;     /* the consumer is asleep on the bell */

byte fencedw = 1;        /* the fenced word: producers that fence each commit (it starts fenced) */
byte pendF = 0;          /* PLAIN_UNFENCE: a decrement of fencedw still in the store buffer */

/* A locked instruction or membarrier: the buffered stores reach memory. */
inline flush() { fencedw = fencedw - pendF; pendF = 0; visible = buffered }

/* The CPU retires buffered stores in program order (a decrement of the
 * fenced word is older than the commits after it). */
active proctype drain() {
end:
	do
	:: atomic { pendF > 0 -> fencedw = fencedw - pendF; pendF = 0 }
	:: atomic { pendF == 0 && visible < buffered -> visible++ }
	od
}

active proctype producer() {
	byte i, b;
	bool woke;
	bool fenced = true;
	bool late = false;
	for (i : 1 .. N) {
		if                            /* fenced.go: the mode may change before any commit */
		:: fenced ->
#ifdef PLAIN_UNFENCE
			pendF++;                  /* a plain decrement: it waits in the buffer */
#elif defined(UNFENCE_LATE)
			late = true;              /* decremented only after the next commit */
#else
			atomic { flush(); fencedw-- };   /* a locked decrement */
#endif
			fenced = false
		:: !fenced && !late -> atomic { flush(); fencedw++ }; fenced = true
		:: skip
		fi;
		buffered++;                   /* storeRelease64 of the stamp */
		if
		:: fenced ->
#ifndef NO_COMMIT_FENCE
			atomic { flush() }        /* the full fence of a fenced producer */
#else
			skip
#endif
		:: else -> skip
		fi;
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
#ifndef BELL
				:: woke -> atomic { asleep = false }  /* futex.Wake */
#else
				:: woke ->                /* doorbell.wake: the count again */
#ifndef FUTEX_WAKE_ONLY
					if
					:: waiters >= BW -> atomic { fifo++; onbell = false }  /* a byte: the poller wakes the sleeper */
					:: else -> skip
					fi;
#endif
					if
					:: waiters % BW != 0 -> atomic { asleep = false }
#ifdef FUTEX_WAKE_ONLY
					:: waiters >= BW -> atomic { asleep = false }
#endif
					:: else -> skip
					fi
#endif
				:: else
				fi
			:: else -> skip
			fi
		:: else -> skip
		fi;
		if
		:: late -> atomic { flush(); fencedw-- }; late = false
		:: else -> skip
		fi
	}
}

active proctype consumer() {
	byte got = 0;
	byte v;
	byte inc = 1;
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
#ifdef BELL
		if                                            /* doorbell.count: futex or bell */
		:: inc = 1
		:: inc = BW
		fi;
#endif
		waiters = waiters + inc;
#ifndef NO_BARRIER
		if
		:: fencedw == 1 -> skip                       /* every producer fences: no barrier */
		:: else -> atomic { flush() }                 /* futex.Barrier */
		fi;
#endif
		if
		:: visible > got -> waiters = waiters - inc  /* the last look found it */
		:: else ->
#ifdef LATE_READ
			v = bell;
#endif
#ifdef ARM_LATE
			armed = v;
#endif
			if
			:: inc == 1 ->
				atomic {                      /* futex.Wait(bell, v) */
					if
					:: bell == v -> asleep = true
					:: else -> skip
					fi
				};
				(!asleep)                     /* blocks until woken */
			:: else ->                            /* Bell.Sleep */
#ifdef BELL_CHECK_FIRST
				if
				:: bell == v ->
					fifo = 0;             /* empties the FIFO after the look */
					atomic {
						if
						:: fifo == 0 -> onbell = true
						:: else -> skip
						fi
					};
					(!onbell)
				:: else -> skip
				fi
#else
				if
				:: bell != v -> skip          /* over at the first look: the FIFO is left as it is */
				:: else ->
				fifo = 0;                     /* empty the FIFO */
#ifndef NO_BELL_CHECK
				if
				:: bell == v ->
#endif
					atomic {              /* park until a byte is there */
						if
						:: fifo == 0 -> onbell = true
						:: else -> skip
						fi
					};
					(!onbell)
#ifndef NO_BELL_CHECK
				:: else -> skip
				fi
#endif
				fi
#endif
			fi;
			waiters = waiters - inc
		fi
	od;
	assert(visible >= N)
}
