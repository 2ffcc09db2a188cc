"""Measuring a pack or a model on a device, and reporting it.

- ``evaluate``: a test split streamed through the device (batched, pipelined) with its timings
  and energy; ``test_split`` and ``put_on_device`` prepare the run; ``profile_pack`` times each
  stage.
- ``recognize``: per-window classes of a raw recording, from the device or the host's emulation.
- ``metrics``: accuracy, per-class scores, latency figures and the measurements document.
- ``report``: ``kpdev report``: reads and checks its inputs (measurements documents,
  recognitions, learning sessions; a profile attached to its run) and writes the report.
  It is built from ``report_blocks`` (headings, paragraphs, tables, figures, rendered as
  Markdown and HTML), ``report_text`` (figures and facts as cell text) and ``report_figures``
  (the PNG figures; matplotlib is imported only when one is drawn), one section an input:
  ``report_runs`` (a run; its models in ``report_models``, its profile in ``report_profile``),
  ``report_recognition``, ``report_session``, ``report_fleet`` (a fleet run: the table across
  boards, then its runs), and ``report_comparison`` for several runs.

A new figure is computed in ``metrics`` (tested against an independent computation), carried in
the measurements document and shown by ``report_runs``.
"""
