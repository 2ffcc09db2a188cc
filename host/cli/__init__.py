"""The ``kpdev`` command line: the Typer app, one module per noun or group of verbs.

Only this package prints or uses Rich.  A command module parses its options, calls the library
(``kpdev.host.*``) and renders what comes back; policy lives in the library.

- ``app``: the root app, the table of the commands and sub-apps mounted on it (``COMMANDS``:
  panel, ``module:attribute``, the line the help shows), ``main()`` and the one place errors are
  caught and turned into a line on stderr and an exit code.  ``lazy``: mounting, so that a
  command's module is imported only when that command runs or its help is asked for.
- ``options``: the shared ``Annotated`` option types, the consoles, ``emit``/``out``/``err``,
  the sub-app factory, ``session``.  ``render``: the one progress-bar factory, error names.
- One module per noun: ``device`` (info, ping, stats, reboot, repl, infer), ``model`` (deploy,
  models, model info|activate|delete), ``boards`` (boards, ports), ``sim``, ``agent``, ``pack``,
  ``learn``, ``power`` (power, clock), ``evaluate`` (eval, recognize, profile), ``report``,
  ``demo``, ``config``, ``doctor``, ``firmware`` (the emulated boards' firmware build),
  ``fleet`` (fleet add|list|remove, and deploy/info/stats/profile on several boards at once),
  ``fleet_eval`` (eval on several boards: --each, --shard).

A new command goes in the module of its noun; a new noun gets a module; either is mounted by
one line in ``app.COMMANDS`` (docs/architecture.md, "A CLI command"), whose one-line help must
be the command's own (tests/cli/test_cli_startup.py checks it).
"""


def main(argv=None):
    """The ``kpdev`` entry point; the app is imported only when it runs."""
    from kpdev.host.cli.app import main as run

    run(argv)
