"""Knowledge Packs (``.kp``): the file format, building one, and deploying one.

- ``pack``: read and check a pack, write one, describe it for a device (``Pack``,
  ``read_pack``, ``write_pack``, ``new_manifest``).
- ``build``: models, pipeline and dataset in, a checked pack out (test vectors, accuracy, cost).
- ``learner``: packs whose classifier is a learner the device trains.
- ``fit``: the dry run of a deploy (``fit_pack``, ``fit_model``): every limit the deploy meets,
  checked against the device's own report or the catalog, without sending anything.
- ``deploy``: the deploy policies: ``deploy_pack`` (every check before the first byte, upload
  without activating, test vectors, then the atomic switch) and ``deploy_model`` (store, check
  the load, then activate).
"""
