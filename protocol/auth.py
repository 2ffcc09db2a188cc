"""Frame authentication: HMAC-SHA256 with a pre-shared key (MicroPython has no hmac module).

Loaded by the framing only when a key is given.
"""

import hashlib

from kpdev.protocol.framing import TAG_SIZE


class Authenticator:
    """HMAC-SHA256 with a pre-shared key, pads computed once."""

    def __init__(self, key):
        if len(key) > 64:
            key = hashlib.sha256(key).digest()
        key = key + bytes(64 - len(key))
        self._ipad = bytes([b ^ 0x36 for b in key])
        self._opad = bytes([b ^ 0x5C for b in key])

    def tag(self, nonce, header, payload, counter):
        """First 16 bytes of HMAC-SHA256 over the session nonce, header, payload and the packed
        counter."""
        inner = hashlib.sha256(self._ipad)
        inner.update(nonce)
        inner.update(header)
        inner.update(payload)
        inner.update(counter)
        outer = hashlib.sha256(self._opad)
        outer.update(inner.digest())
        return outer.digest()[:TAG_SIZE]

    def check(self, nonce, header, payload, counter, tag):
        """True when ``tag`` is the tag of nonce, header, payload and counter."""
        want = self.tag(nonce, header, payload, counter)
        # Compare without an early exit, so timing does not tell how much matched.
        if len(want) != len(tag):
            return False
        diff = 0
        for i in range(len(want)):
            diff |= want[i] ^ tag[i]
        return diff == 0
