"""Edge learning: sessions that teach the device's learner, and models that can learn.

- ``session``: planning and running a session (shots, rounds, new classes), keeping or
  exporting what the device learned.
- ``models``: Akida models that learn on the device, built with the ``akida`` package alone.
"""
