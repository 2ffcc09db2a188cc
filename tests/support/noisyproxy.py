"""A noisy line for tests and benches: a loopback TCP proxy that damages what it forwards.

``NoisyProxy(target_port, flip=N, drop=M, seed=S)`` listens on 127.0.0.1 (``.port``) and
forwards each connection to 127.0.0.1:target_port.  In both directions it flips one byte in N
(XOR with a random non-zero value) and drops one byte in M, at random places drawn from a
seeded generator per connection and direction: a run is repeatable as far as the timing of
TCP reads allows.  0 turns a kind of damage off.  ``counts`` says how many bytes went through
and how many were flipped and dropped.  Run it by hand::

    python tests/support/noisyproxy.py TARGET_PORT --flip 10000 --drop 100000 [--port P]
"""

import math
import random
import select
import socket
import threading


class _Damage:
    """Where the next flip and drop fall in one direction's byte stream (geometric gaps)."""

    def __init__(self, rng, flip, drop):
        self.rng = rng
        self.flip_p = 1.0 / flip if flip else 0.0
        self.drop_p = 1.0 / drop if drop else 0.0
        self.to_flip = self._gap(self.flip_p)
        self.to_drop = self._gap(self.drop_p)

    def _gap(self, p):
        # Bytes until the next event of probability p per byte (None: never).
        if not p:
            return None
        if p >= 1:
            return 0
        return int(math.log(1.0 - self.rng.random()) / math.log(1.0 - p))

    def apply(self, data, counts):
        """``data`` with this stretch's flips and drops done; counts them."""
        out = bytearray(data)
        n = len(out)
        flips = []
        while self.to_flip is not None and self.to_flip < n:
            flips.append(self.to_flip)
            self.to_flip += 1 + self._gap(self.flip_p)
        for i in flips:
            out[i] ^= self.rng.randrange(1, 256)
        counts["flipped"] += len(flips)
        if self.to_flip is not None:
            self.to_flip -= n
        drops = []
        while self.to_drop is not None and self.to_drop < n:
            drops.append(self.to_drop)
            self.to_drop += 1 + self._gap(self.drop_p)
        for i in reversed(drops):
            del out[i]
        counts["dropped"] += len(drops)
        if self.to_drop is not None:
            self.to_drop -= n
        counts["bytes"] += n
        return bytes(out)


class NoisyProxy:
    """Forwards 127.0.0.1:port to 127.0.0.1:target, flipping and dropping bytes both ways."""

    def __init__(self, target, flip=0, drop=0, seed=0, port=0):
        self.target = target
        self.flip = flip
        self.drop = drop
        self.seed = seed
        self.counts = {"bytes": 0, "flipped": 0, "dropped": 0, "connections": 0}
        self._lock = threading.Lock()
        self._server = socket.socket()
        self._server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._server.bind(("127.0.0.1", port))
        self._server.listen(8)
        self.port = self._server.getsockname()[1]
        self.url = "socket://127.0.0.1:%d" % self.port
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _serve(self):
        while not self._stop.is_set():
            ready, _, _ = select.select([self._server], [], [], 0.1)
            if not ready:
                continue
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            n = self.counts["connections"]
            self.counts["connections"] += 1
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target), timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            for s in (client, upstream):
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            for i, (src, dst) in enumerate(((client, upstream), (upstream, client))):
                rng = random.Random("%s/%d/%d" % (self.seed, n, i))
                damage = _Damage(rng, self.flip, self.drop)
                threading.Thread(target=self._pump, args=(src, dst, damage), daemon=True).start()

    def _pump(self, src, dst, damage):
        try:
            while not self._stop.is_set():
                ready, _, _ = select.select([src], [], [], 0.1)
                if not ready:
                    continue
                data = src.recv(65536)
                if not data:
                    break
                with self._lock:
                    data = damage.apply(data, self.counts)
                if data:
                    dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def close(self):
        """Stop accepting and forwarding."""
        self._stop.set()
        self._server.close()
        self._thread.join(2)


if __name__ == "__main__":
    import argparse
    import time

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("target", type=int, help="the agent's TCP port on 127.0.0.1")
    ap.add_argument("--flip", type=int, default=10000, help="flip one byte in N (0: none)")
    ap.add_argument("--drop", type=int, default=100000, help="drop one byte in M (0: none)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--port", type=int, default=0, help="port to listen on (0: any free one)")
    args = ap.parse_args()
    proxy = NoisyProxy(args.target, args.flip, args.drop, args.seed, args.port)
    print("forwarding", proxy.url, "-> 127.0.0.1:%d" % args.target, flush=True)
    try:
        while True:
            time.sleep(5)
            print(proxy.counts, flush=True)
    except KeyboardInterrupt:
        proxy.close()
