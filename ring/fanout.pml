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
 *     place, and never past the reliable subscriber's position (rhead)
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
 * producer waits for ever) or -DNO_EVICT_CHECK (the reliable subscriber
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
	byte m, p;
	for (m : 0 .. N - 1) {
		p = m % C;
		if
		:: m >= C && head < m - C + 1 ->
			/* no room: the place's previous record (m - C) must be
			 * behind the frontier, which may not pass a reliable
			 * subscriber; a stalled one is evicted (the lag bound) */
#ifndef IGNORE_RELIABLE
			if
			:: rstate == RELIABLE && rhead > m - C -> skip
			:: rstate == EVICTED -> skip
#ifndef NO_EVICT
			:: rstate == RELIABLE -> rstate = EVICTED
#endif
			fi;
#endif
#ifndef HEAD_LATE
			update(m - C + 1);
#endif
			skip
		:: else -> skip
		fi;
		a[p] = m;
		b[p] = m;
#ifdef HEAD_LATE
		if
		:: m >= C && head < m - C + 1 -> update(m - C + 1)
		:: else -> skip
		fi;
#endif
		stamp[p] = m       /* commit */
	};
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
		rhead++
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
