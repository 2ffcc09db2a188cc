"""Links: byte pipes to a device (read, write, close, a timeout), and the serial ports here.

- ``transport``: ``open_url`` opens a serial port, ``socket://``, ``rfc2217://`` or a pty through
  pyserial's ``serial_for_url``; ``PipeLink`` talks to an agent process on its pipes.  Nothing
  about frames or CBOR lives here: the client frames above the link.
- ``ports``: the serial ports of this machine, the catalog board each looks like, and whether a
  kpdev agent answers there.

A new kind of link is a class with ``read(n)``, ``write(data)``, ``close()`` and a timeout, opened
by ``open_url`` for its URL scheme.
"""
