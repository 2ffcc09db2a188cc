"""Measuring a pack or a model on a device, and reporting it.

- ``evaluate``: a test split streamed through the device (batched, pipelined) with its timings
  and energy; ``test_split`` and ``put_on_device`` prepare the run; ``profile_pack`` times each
  stage.
- ``recognize``: per-window classes of a raw recording, from the device or the host's emulation.
- ``metrics``: accuracy, per-class scores, latency figures and the measurements document.
- ``report``: Markdown and HTML reports with figures, from measurements documents.

A new figure is computed in ``metrics`` (tested against an independent computation), carried in
the measurements document and shown by ``report``.
"""
