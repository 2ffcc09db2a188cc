"""The host companion: the ``kpdev`` CLI and the library it calls.

Folders are the layers and the nouns a user knows (docs/architecture.md):

    cli/         the Typer app, one module per noun; only it prints or uses Rich
    link/        byte pipes to a device; serial ports
    client/      the protocol client, and opening one for a board
    boards/      the board catalog; simulated boards
    agent/       the agent's files for a MicroPython board, ROMFS, the MicroPython tools
    packs/       Knowledge Pack format, building, deploy policy
    features/    the feature pipeline (numpy twin of the device's)
    datasets/    dataset loaders, one module per format
    evaluation/  eval, profile, recognize, metrics, reports
    learning/    edge-learning sessions, learner models
    runtime/     the host reference runtime, pack emulation, model generation

At the top: ``errors`` (the host's errors), ``config`` (the user's settings), ``atomic`` (files
replaced whole), ``extras`` (which pip extra brings what), ``plain`` (JSON-ready values, byte
sizes), ``doctor`` (checks of this machine).
"""
