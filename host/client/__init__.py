"""The protocol client: requests and replies over a link, and opening one for a board.

- ``client``: ``Client``, one connected agent: HELLO, requests with ids, pipelining within the
  agent's window, authenticated frames, uploads; one method per operation.
- ``session``: ``open_session(board, port, key)``: the link for a catalog board or a URL, a
  simulated board started in the background when one is asked for; ``resolve_board``.
- ``tensors``: numpy arrays to and from the wire's RFC 8746 tensors.
"""
