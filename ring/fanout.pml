/*
 * A model of the fan-out protocol (FORMAT.md, "Fan-out"; fanout.go and
 * subscriber.go). Checked by spin in .ci/run.
 *
 * One producer writes messages 0 .. N-1, one record each, into a ring of C
 * record places (place of message m: m % C). A reliable subscriber reads
 * every message and holds the producer back, unless it is evicted; it may
 * stall for ever (a stopped process), and then the producer evicts it. A
 * lossy subscriber never holds the producer back, must never deliver a
 * record that was overwritten while it read it (a torn record), and must
 * account exactly for what it lost when it was lapped.
 *
 * The shared words:
 *   - stamp[place]: the message whose record is committed there, stored
 *     last;
 *   - a[place], b[place]: the record's payload, written in two stores, so
 *     that a reader can see one old and one new;
 *   - head: the frontier. Every record before it may be overwritten at any
 *     time; the producer moves it (an update) before it writes over a
 *     place, and never past the position the reliable subscriber published
 *     (rpub, which it stores now and then, at most its position rhead)
 *     while that one is not evicted;
 *   - fpos[2], fcnt[2], fseq: the frontier's two copies (its position and
 *     the messages before it) and the word whose low bit names the current
 *     one. With one record per message the count equals the position, so a
 *     copy read half-updated shows as fcnt != fpos, and as a wrong loss;
 *   - rstate: the reliable subscriber's line, RELIABLE or EVICTED.
 *
 * The lossy reader: load the stamp at its position; if it is the message
 * expected, copy the payload, then load head; if head has passed the
 * position, the copy may be torn: drop it, read the current copy of the
 * frontier (fseq, the copy, fseq again), count the messages between its
 * position and the copy's as lost, and resume there. The reliable reader
 * makes the same check after its copy: head past it means it was evicted.
 *
 * A producer with no room waits while the reliable subscriber's published
 * position is short of what it needs. If that position is ahead of the
 * frontier, the frontier moves up to it; once the subscriber holds the
 * frontier (its published position is not past it), the lag bound evicts
 * it (any time later: the model has no clock). A subscriber that is
 * reading ahead of the frontier is never evicted.
 *
 * Spin runs the processes sequentially consistent. The orders the protocol
 * needs are store to store (the copy, fseq, head, then the payload, then the
 * stamp) and load to load (the stamp, the payload, then head; fseq, the copy,
 * fseq), which x86 keeps and other processors keep with release stores and
 * acquire loads (or fences). Not modelled: several producers (their walk
 * stops at a claim in flight, and updates hold a lock), and an updater's
 * death (the other copy stays current until fseq moves).
 *
 * Build with -DHEAD_LATE (the producer moves head after it wrote the
 * payload), -DNO_HEAD_CHECK (the lossy reader delivers without looking at
 * head), -DHEAD_FIRST (it looks at head before the copy instead of after),
 * -DIGNORE_RELIABLE (the producer does not wait for the reliable
 * subscriber), -DONE_COPY (the frontier kept in one copy, updated in
 * place), -DNO_EVICT (a stalled reliable subscriber is never evicted: the
 * producer waits for ever), -DQUICK_EXIT (the producer leaves the frontier
 * where it is when the published position is short of its need, so a
 * subscriber that stalls ahead of the frontier is never evicted either) or
 * -DNO_EVICT_CHECK (the reliable subscriber
 * delivers without looking at head): spin must then find a violation,
 * which shows that the model can fail.
 */

#define N 5      /* messages */
#define C 2      /* record places */
#define RELIABLE 1
#define EVICTED 3

byte stamp[C];
byte a[C];
byte b[C];
byte head = 0;   /* the frontier */
byte rhead = 0;  /* the reliable subscriber's position */
byte rpub = 0;   /* the position it published (sub_position), at most rhead */
byte rstate = RELIABLE;
byte fpos[2];
byte fcnt[2];
byte fseq = 0;
bool done = false;

init {
	byte i;
	for (i : 0 .. C - 1) {
		stamp[i] = 255   /* nothing committed yet */
	}
	atomic {
		run producer();
		run reliable();
		run lossy()
	}
}

/* update moves the frontier to h: the other copy (position, then count),
 * then fseq, then head. */
inline update(h) {
#ifdef ONE_COPY
	fpos[0] = h;
	fcnt[0] = h;
#else
	fpos[(fseq + 1) % 2] = h;
	fcnt[(fseq + 1) % 2] = h;
	fseq++;
#endif
	head = h
}

proctype producer() {
	byte m = 0, k, j, need, lim;
	do
	:: m >= N -> break
	:: m < N ->
		/* A claim of one record, or of two (a batch, or a message
		 * that needs more room): what it needs may jump past a
		 * published position that is ahead of the frontier. */
		if
		:: k = 1
		:: m + 1 < N -> k = 2
		fi;
		need = 0;
		if
		:: m + k > C -> need = m + k - C
		:: else -> skip
		fi;
		if
		:: head < need ->
			/* no room: the places' previous records must be
			 * behind the frontier, which may not pass a reliable
			 * subscriber's published position; a stalled one is
			 * evicted (the lag bound) */
#ifndef IGNORE_RELIABLE
			do
			:: rstate == EVICTED -> break
			:: rstate == RELIABLE && rpub >= need -> break
#ifndef QUICK_EXIT
			:: rstate == RELIABLE && rpub < need && rpub > head ->
				/* short of the need, but ahead of the frontier:
				 * the frontier moves up to it (loaded once, as
				 * the limit of the update's walk) */
				lim = rpub;
				update(lim)
#endif
#ifndef NO_EVICT
			:: rstate == RELIABLE && rpub <= head ->
				/* it holds the frontier: the bound evicts it */
				rstate = EVICTED
#endif
			od;
#endif
#ifndef HEAD_LATE
			update(need);
#endif
			skip
		:: else -> skip
		fi;
		for (j : m .. m + k - 1) {
			a[j % C] = j;
			b[j % C] = j
		};
#ifdef HEAD_LATE
		if
		:: head < need -> update(need)
		:: else -> skip
		fi;
#endif
		for (j : m .. m + k - 1) {
			stamp[j % C] = j       /* commit */
		};
		m = m + k
	od;
	done = true
}

proctype reliable() {
	byte p, x, y;
	do
	:: rhead == N -> break
	:: rhead < N && stamp[rhead % C] == rhead ->
		p = rhead % C;
		x = a[p];
		y = b[p];
#ifndef NO_EVICT_CHECK
		if
		:: head > rhead ->     /* passed: evicted, stop */
			assert(rstate == EVICTED);
			break
		:: else -> skip
		fi;
#endif
		assert(x == rhead && y == rhead);
		rhead++;
		if
		:: rpub = rhead   /* it publishes its position, now and then */
		:: skip
		fi
	:: rhead < N ->            /* a stopped process: it may stall for ever */
end_stalled:
		(false)
	od
}

proctype lossy() {
	byte pos = 0, p, s, x, y, h, got = 0, lost = 0, q, fp, fc;
	do
	:: pos >= N -> break
	:: pos < N ->
		p = pos % C;
		s = stamp[p];
		if
		:: s == pos ->
#ifdef HEAD_FIRST
			h = head;
#endif
			x = a[p];
			y = b[p];
#if !defined(HEAD_FIRST)
			h = head;
#endif
#ifdef NO_HEAD_CHECK
			h = 0;
#endif
			if
			:: h > pos -> goto lapped
			:: else ->
				assert(x == pos && y == pos);   /* never a torn record */
				got++;
				pos++
			fi
		:: s != 255 && s != pos && head > pos -> goto lapped   /* overwritten */
		:: else ->                        /* not yet written: wait */
			if
			:: done && stamp[p] != pos && (stamp[p] == 255 || stamp[p] < pos) -> break
			:: else -> (stamp[p] != s || head > pos || done)
			fi
		fi;
		goto next;
lapped:
		/* read the current copy of the frontier */
#ifdef ONE_COPY
		fp = fpos[0];
		fc = fcnt[0];
#else
		do
		:: q = fseq;
		   fp = fpos[q % 2];
		   fc = fcnt[q % 2];
		   if
		   :: q == fseq -> break
		   :: else -> skip
		   fi
		od;
#endif
		assert(fp > pos);
		lost = lost + fc - pos;   /* the copy's count, less what was before pos */
		pos = fp;
next:
		skip
	od;
	/* every message was delivered or counted lost, exactly */
	assert(pos != N || got + lost == N)
}
