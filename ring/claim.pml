/*
 * A model of the multi-producer claim, commit and recovery protocol
 * (ring/claim_multi.go, ring/recover.go, ring/consumer.go), checked by spin
 * in .ci/run. Two producers send two messages and one; a killer may kill either
 * or both at any instant, and a live producer may be delayed forever (spin
 * tries every interleaving). The model checks that
 *   - the consumer never reads a torn record (its payload is written before
 *     its stamp) and never delivers a record twice;
 *   - it never recovers over a live producer's claim;
 *   - recovery moves the head to a record or claim boundary, never inside;
 *   - when the producers have all finished or died, the consumer reaches the
 *     tail (no stall) having delivered every committed message (no loss).
 *
 * Process producer models Producer.claimMulti (record the claim in the slot,
 * then compare-and-swap the tail) and commitMulti (payload, then the
 * record's stamp, then the padding before it, if any, last), and Close
 * (unmark the slot, then drop its lock). Its death, modelled by the unless
 * clause, drops the lock and nothing else, as the kernel does.
 * Process consumer models Consumer.next (padding and messages at the head)
 * and Consumer.recoverHead: a dead slot is one marked attached whose lock is
 * free; a live slot that records a claim at the head blocks recovery; among
 * dead slots recording a claim at the head, the shortest claim whose end is
 * a boundary (the tail, a position a slot records, a committed record, looked
 * at in that order) is skipped.
 * Memory is sequentially consistent here: on x86 stores are not reordered
 * with stores nor loads with loads, and the compare-and-swap is a full fence.
 * The doorbell, where the store buffer matters, is modelled in wait.pml.
 *
 * Build with -DNO_LIVE_CHECK (recover without looking for a live claimant),
 * -DSHORTEST (skip the shortest dead claim without the boundary test),
 * -DINTENT_AFTER_CAS (record the claim after making it) or -DNO_PAD_CHECK
 * (skip a whole claim whose record was committed but not the padding before
 * it): spin must then find a violation, which shows that the model can fail.
 */

#define NP 2          /* producers */
#define MAXPOS 16
#define PAD 9         /* stamp of a padding record */
#define NONE 255      /* no claim recorded */
#define W 4           /* the data area: a record never crosses a multiple of W */

byte tail = 0;
byte head = 0;
byte stamp[MAXPOS];      /* 0 nothing committed, p+1 message of producer p, PAD */
byte rlen[MAXPOS];       /* length of the record committed at a position */
bool written[MAXPOS];    /* the payload at a position is complete */
bool delivered[MAXPOS];

/* Ghosts: what really happened, for the assertions only. */
byte owner[MAXPOS];      /* producer+1 whose compare-and-swap claimed here */
bool boundary[MAXPOS];   /* a claim or a record starts here */

bool attached[NP];       /* slot_state */
bool locked[NP];         /* the slot's liveness lock is held */
bool die[NP];
byte claimPos[NP];
byte claimLen[NP];
byte done = 0;           /* producers finished or dead */
byte kills = 2;

active proctype killer() {
end:
	do
	:: kills > 0 -> atomic { kills--; die[0] = true }
	:: kills > 0 -> atomic { kills--; die[1] = true }
	od
}

proctype producer(byte me; byte m) {
	byte k, t, ln, pad;
	bool ok;
	{
		for (k : 1 .. m) {
			if
			:: ln = 1
			:: ln = 2
			fi;
retry:
			t = tail;
			pad = 0;
			if
			:: W - t % W < ln -> pad = W - t % W  /* room skipped at the end of the data area */
			:: else
			fi;
#ifndef INTENT_AFTER_CAS
			claimPos[me] = t;
			claimLen[me] = pad + ln;
#endif
			atomic {
				if
				:: tail == t ->
					tail = t + pad + ln;
					ok = true;
					owner[t] = me + 1;
					boundary[t] = true;
					boundary[t + pad] = true;
					boundary[t + pad + ln] = true
				:: else -> ok = false
				fi
			}
			if
			:: !ok -> goto retry
			:: else
			fi;
#ifdef INTENT_AFTER_CAS
			claimPos[me] = t;
			claimLen[me] = pad + ln;
#endif
			written[t + pad] = true;
			rlen[t + pad] = ln;
			stamp[t + pad] = me + 1;
			if
			:: pad > 0 -> rlen[t] = pad; stamp[t] = PAD
			:: else
			fi
		}
		attached[me] = false;
		locked[me] = false;
		done++
	} unless {
		die[me] -> atomic { locked[me] = false; done++ }
	}
}

init {
	atomic {
		attached[0] = true; locked[0] = true; claimPos[0] = NONE;
		attached[1] = true; locked[1] = true; claimPos[1] = NONE;
		run producer(0, 2);  /* messages: two, then one, to keep */
		run producer(1, 1);  /* the search small enough for CI */
		run consumer()
	}
}

proctype consumer() {
	byte i, h, e, best, bestLen;
	bool live, isb, cand[NP];
	byte clen[NP];
	do
	:: done == NP && head == tail -> break
	:: stamp[head] != 0 && stamp[head] != PAD ->
		assert(written[head]);            /* not torn */
		assert(!delivered[head]);         /* not twice */
		delivered[head] = true;
		head = head + rlen[head]
	:: stamp[head] == PAD ->
		head = head + rlen[head]
	:: stamp[head] == 0 && tail > head -> /* recoverHead */
		h = head;
		live = false;
		for (i : 0 .. NP - 1) {
			cand[i] = false;
			if
			:: attached[i] && claimPos[i] == h ->
				if
#ifndef NO_LIVE_CHECK
				:: locked[i] -> live = true   /* TryLock fails: alive */
#endif
				:: !locked[i] ->               /* TryLock succeeds: dead */
					if
					:: attached[i] && claimPos[i] == h ->
						cand[i] = true;
						clen[i] = claimLen[i]
					:: else
					fi
#ifdef NO_LIVE_CHECK
				:: locked[i] -> cand[i] = true; clen[i] = claimLen[i]
#endif
				fi
			:: else
			fi
		}
		if
		:: live || stamp[h] != 0 -> skip     /* wait, or it landed */
		:: else ->
			best = NONE;
			bestLen = NONE;
			for (i : 0 .. NP - 1) {
				if
				:: cand[i] && clen[i] > 0 && h + clen[i] <= tail && clen[i] < bestLen ->
					e = h + clen[i];
#ifdef SHORTEST
					isb = true;
#else
					isb = (tail == e);
					isb = isb || claimPos[0] == e || claimPos[1] == e;
					isb = isb || stamp[e] != 0;
#endif
					if
					:: isb -> best = i; bestLen = clen[i]
					:: else
					fi
				:: else
				fi
			}
			if
			:: best != NONE ->
				assert(owner[h] != 0 && !locked[owner[h] - 1]); /* never over a live producer */
				e = W - h % W;
				if
#ifndef NO_PAD_CHECK
				:: bestLen > e && stamp[h + e] != 0 ->
					/* died between its record and the padding */
					assert(boundary[h + e]);
					head = h + e
#endif
				:: else ->
					assert(boundary[h + bestLen]);    /* never into a record */
					head = h + bestLen
				fi
			:: else
			fi
		fi
	od;
	/* Nothing committed is lost. */
	for (i : 0 .. MAXPOS - 1) {
		assert(stamp[i] == 0 || stamp[i] == PAD || delivered[i])
	}
}
