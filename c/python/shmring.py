"""shmring for Python: send and receive messages through a shmring ring.

A thin ctypes binding of the C library (c/shmring.c), which it loads from
the shared library named by the SHMRING_LIB environment variable, or
libshmring.so next to this file. Build that library with

    cc -std=c11 -O2 -shared -fPIC -o libshmring.so c/shmring.c

Linux only, as the C library. Standard library only.

    import shmring
    with shmring.open("orders") as r:
        with r.producer() as p:
            p.send(b"hello", timeout=1.0)
        with r.consumer() as c:
            msg = c.recv(timeout=1.0)   # bytes; shmring.EOF at the end

    with shmring.open("ticks") as r:    # a fan-out ring
        with r.subscribe(lossy=True) as s:
            for msg in s: ...           # shmring.Lost when lapped

Timeouts are in seconds: None waits for ever, 0 does not wait.
"""

import ctypes
import os

__all__ = ["open", "open_file", "Error", "Timeout", "EOF", "Full", "Empty", "Lost", "Evicted", "Ring", "Producer", "Consumer"]


class Error(Exception):
    """An error of the C library: code is its (negative) error code."""

    def __init__(self, code, what=""):
        self.code = code
        name = _lib().shmring_strerror(code).decode()
        if code == -1:
            name += ": " + os.strerror(ctypes.get_errno())
        super().__init__(f"shmring: {what}: {name}" if what else f"shmring: {name}")


class Timeout(Error):
    """The timeout passed."""


class Full(Error):
    """No room now (timeout 0)."""


class Empty(Error):
    """Nothing to receive now (timeout 0)."""


class EOF(Error):
    """The producers came and went, and the ring is drained."""


class Lost(Error):
    """A lossy subscriber was lapped: messages and nbytes say what it lost.
    The next recv returns the oldest message left."""

    messages = 0
    nbytes = 0


class Evicted(Error):
    """A reliable subscriber held the producers back past the ring's lag
    bound and was evicted: close it, and subscribe again."""


_CODES = {-15: Timeout, -9: Full, -10: Empty, -17: EOF, -23: Lost, -24: Evicted}

_library = None


def _lib():
    global _library
    if _library is None:
        path = os.environ.get("SHMRING_LIB") or os.path.join(os.path.dirname(os.path.abspath(__file__)), "libshmring.so")
        lib = ctypes.CDLL(path, use_errno=True)
        P = ctypes.c_void_p
        lib.shmring_strerror.argtypes = [ctypes.c_int]
        lib.shmring_strerror.restype = ctypes.c_char_p
        lib.shmring_open.argtypes = [ctypes.c_char_p, ctypes.POINTER(P)]
        lib.shmring_open_file.argtypes = [ctypes.c_char_p, ctypes.POINTER(P)]
        lib.shmring_close.argtypes = [P]
        lib.shmring_producer_attach.argtypes = [P, ctypes.POINTER(P)]
        lib.shmring_send.argtypes = [P, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_int64]
        lib.shmring_producer_close.argtypes = [P]
        lib.shmring_consumer_attach.argtypes = [P, ctypes.c_int, ctypes.c_uint64, ctypes.POINTER(P)]
        lib.shmring_recv.argtypes = [P, ctypes.c_void_p, ctypes.c_size_t, ctypes.POINTER(ctypes.c_size_t), ctypes.c_int64]
        lib.shmring_consumer_close.argtypes = [P]
        lib.shmring_subscribe.argtypes = [P, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_uint64, ctypes.POINTER(P)]
        lib.shmring_subscribe.restype = ctypes.c_int
        lib.shmring_lost.argtypes = [P, ctypes.POINTER(ctypes.c_uint64), ctypes.POINTER(ctypes.c_uint64)]
        lib.shmring_lost.restype = None
        for f in ("shmring_open", "shmring_open_file", "shmring_close", "shmring_producer_attach", "shmring_send",
                  "shmring_producer_close", "shmring_consumer_attach", "shmring_recv", "shmring_consumer_close"):
            getattr(lib, f).restype = ctypes.c_int
        _library = lib
    return _library


def _check(code, what):
    if code != 0:
        raise _CODES.get(code, Error)(code, what)


def _ns(timeout):
    if timeout is None:
        return -1
    if timeout < 0:
        raise ValueError("timeout must be None or at least 0")
    return int(timeout * 1e9)


class _Handle:
    _h = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass


class Ring(_Handle):
    """An open ring. Close it after its producers and consumers."""

    def __init__(self, handle):
        self._h = handle

    def producer(self):
        """Attaches a producer (a slot of the ring)."""
        h = ctypes.c_void_p()
        _check(_lib().shmring_producer_attach(self._h, ctypes.byref(h)), "producer")
        return Producer(h, self)

    def consumer(self, eof=True, eof_after=1):
        """Attaches the ring's consumer. With eof, recv raises EOF once at
        least eof_after producers came, all went, and the ring is drained."""
        h = ctypes.c_void_p()
        _check(_lib().shmring_consumer_attach(self._h, 1 if eof else 0, eof_after, ctypes.byref(h)), "consumer")
        return Consumer(h, self)

    def subscribe(self, lossy=False, oldest=False, eof=True, eof_after=1):
        """Attaches a subscriber to a fan-out ring: a Consumer that reads
        every message from after the newest (or, with oldest, from the
        oldest still in the ring). A lossy one's recv raises Lost when the
        producers lapped it; a reliable one is waited for, up to the ring's
        lag bound (then recv raises Evicted)."""
        h = ctypes.c_void_p()
        _check(_lib().shmring_subscribe(self._h, 1 if lossy else 0, 1 if oldest else 0, 1 if eof else 0, eof_after, ctypes.byref(h)), "subscribe")
        return Consumer(h, self)

    def close(self):
        if self._h:
            h, self._h = self._h, None
            _check(_lib().shmring_close(h), "close")


class Producer(_Handle):
    """Sends messages. One thread at a time."""

    def __init__(self, handle, ring):
        self._h, self._ring = handle, ring

    def send(self, msg, timeout=None):
        """Sends msg (bytes) as one message, waiting up to timeout seconds
        for room."""
        msg = bytes(msg)
        _check(_lib().shmring_send(self._h, msg, len(msg), _ns(timeout)), "send")

    def close(self):
        if self._h:
            h, self._h = self._h, None
            _check(_lib().shmring_producer_close(h), "close")


class Consumer(_Handle):
    """Receives messages. One thread at a time."""

    def __init__(self, handle, ring):
        self._h, self._ring = handle, ring
        self._buf = ctypes.create_string_buffer(64 << 10)

    def recv(self, timeout=None):
        """Returns the next message as bytes, waiting up to timeout
        seconds."""
        n = ctypes.c_size_t()
        for _ in range(2):
            rc = _lib().shmring_recv(self._h, self._buf, len(self._buf), ctypes.byref(n), _ns(timeout))
            if rc == -16:  # short buffer: n says how much it needs
                self._buf = ctypes.create_string_buffer(n.value)
                continue
            if rc == -23:
                e = Lost(rc, "recv")
                m, b = ctypes.c_uint64(), ctypes.c_uint64()
                _lib().shmring_lost(self._h, ctypes.byref(m), ctypes.byref(b))
                e.messages, e.nbytes = m.value, b.value
                raise e
            _check(rc, "recv")
            return self._buf.raw[: n.value]
        raise Error(-16, "recv")

    def __iter__(self):
        """Iterates over the messages until the end of the stream."""
        while True:
            try:
                yield self.recv()
            except EOF:
                return

    def close(self):
        if self._h:
            h, self._h = self._h, None
            _check(_lib().shmring_consumer_close(h), "close")


def open(name):
    """Opens the named ring (/dev/shm/NAME) another process created."""
    h = ctypes.c_void_p()
    _check(_lib().shmring_open(name.encode(), ctypes.byref(h)), f"open {name}")
    return Ring(h)


def open_file(path):
    """Opens a ring file at path."""
    h = ctypes.c_void_p()
    _check(_lib().shmring_open_file(os.fsencode(path), ctypes.byref(h)), f"open {path}")
    return Ring(h)
