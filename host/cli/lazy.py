"""Commands mounted so that a command's module is imported only when that command runs (or its
help is asked for): ``kpdev --help`` or ``kpdev boards`` does not import what ``kpdev eval`` or
``kpdev pack`` needs.  Typer's public API only.

The root app names each command in a table: its help panel, ``"module:attribute"`` (a command
function or a sub-app; the module named within ``kpdev.host.cli``) and the one line the root
help shows for it.  ``mount`` gives the root app, for each name, a hidden stand-in command that
takes whatever follows the name; when it runs, it imports the module and runs the real command
(mounted as ``app.command``/``app.add_typer`` would, with its own help, options and errors)
with those arguments.  ``epilog`` writes the commands by panel, from the table, for the root
help.  For shell completion, which walks every command's options, ``mount`` mounts the real
commands themselves.  tests/cli/test_cli_startup.py checks that each line of the table is the
command's own and that no module is imported to list them.
"""

from __future__ import annotations

import inspect
import textwrap
from importlib import import_module
from typing import Any

import typer

# (help panel, ((name, "module:attribute", one-line help), ...)), in the order the help shows.
Table = tuple[tuple[str, tuple[tuple[str, str, str], ...]], ...]

_HELP = {"help_option_names": ["-h", "--help"]}
# A stand-in parses nothing: every word after the command's name, options and --help included,
# is the real command's to parse.
_STAND_IN = {"ignore_unknown_options": True, "allow_extra_args": True, "help_option_names": []}


def target(spec: str) -> Any:
    """The command function or sub-app that ``"module:attribute"`` names."""
    module, _, attribute = spec.partition(":")
    return getattr(import_module("." + module, __package__), attribute)


def run_command(name: str, spec: str, args: list[str], prog: str = "kpdev") -> Any:
    """Run command ``name`` (``spec`` in the table) on ``args`` as ``PROG NAME ARGS``: errors
    are raised to the caller (as the root app's own are), an exit code is returned."""
    obj = target(spec)
    holder = typer.Typer(add_completion=False, context_settings=_HELP)
    if isinstance(obj, typer.Typer):
        _reflow_app(obj)
        holder.add_typer(obj, name=name)
        return holder(args=[name, *args], prog_name=prog, standalone_mode=False)
    # one command: the holder is that command
    holder.command(name=name, help=_reflowed(obj.__doc__))(obj)
    return holder(args=args, prog_name=f"{prog} {name}", standalone_mode=False)


def reflow(text: str) -> str:
    """A docstring's paragraphs as Typer's help should wrap them: Typer keeps the single line
    breaks of every paragraph after the first, so a docstring wrapped at 96 columns printed
    ragged at a terminal's 80.  The lines of a paragraph are joined, unless the paragraph has
    an indented line (an example's command lines) or starts with \\b (kept as written)."""
    paragraphs = inspect.cleandoc(text).split("\n\n")
    return "\n\n".join(
        p
        if p.startswith("\b") or any(line[:1].isspace() for line in p.split("\n"))
        else " ".join(p.split("\n"))
        for p in paragraphs
    )


def _reflowed(text: Any) -> Any:
    return reflow(text) if isinstance(text, str) else text


def _reflow_app(app: typer.Typer) -> None:
    # The help texts of a sub-app, its commands and its sub-apps, where Typer takes them from:
    # a help given when it was made, else the function's docstring.
    app.info.help = _reflowed(app.info.help)
    call = app.registered_callback
    if call is not None:
        call.help = _reflowed(call.help if isinstance(call.help, str) else call.callback.__doc__)
    for info in app.registered_commands:
        doc = info.callback.__doc__ if info.callback is not None else None
        info.help = _reflowed(info.help if isinstance(info.help, str) else doc)
    for group in app.registered_groups:
        group.help = _reflowed(group.help)
        if group.typer_instance is not None:
            _reflow_app(group.typer_instance)


_typed: list[str] | None = None  # the words of the command line, as main() was given them


def typed(args: list[str]) -> None:
    """Remember the command line as typed, for ``_tail`` (main() calls it)."""
    global _typed
    _typed = list(args)


def _tail(name: str, parsed: list[str]) -> list[str]:
    """The words after the command's name as typed.  The stand-in's parse drops a bare ``--``
    (for it, the end of its options), which the real command needs to take a value that starts
    with a dash; it is put back where the words typed show it was."""
    if _typed is None or "--" not in _typed:
        return parsed
    for i, word in enumerate(_typed):
        if word != name:
            continue
        tail = _typed[i + 1 :]
        if "--" in tail:
            j = tail.index("--")
            if tail[:j] + tail[j + 1 :] == parsed:
                return tail
    return parsed


def _stand_in(name: str, spec: str):
    def run(ctx: typer.Context) -> None:
        args = _tail(name, list(ctx.args))
        code = run_command(name, spec, args, ctx.find_root().info_name or "kpdev")
        if isinstance(code, int) and code:
            raise typer.Exit(code)

    run.__name__ = name
    return run


def mount(app: typer.Typer, table: Table, now: bool = False) -> None:
    """Mount every command of ``table`` on ``app``: a stand-in that imports its module when it
    runs, or (``now``) the command itself under its help panel, as shell completion needs."""
    for panel, rows in table:
        for name, spec, _ in rows:
            if not now:
                app.command(name=name, hidden=True, add_help_option=False,
                            context_settings=_STAND_IN)(_stand_in(name, spec))  # fmt: skip
            elif isinstance(obj := target(spec), typer.Typer):
                app.add_typer(obj, name=name, rich_help_panel=panel)
            else:
                app.command(name=name, rich_help_panel=panel)(obj)


def epilog(table: Table, width: int = 78) -> str:
    """The commands by panel, for the root help (Click prints an epilog after the options; a
    paragraph that starts with \\b keeps its lines)."""
    widest = max(len(name) for _, rows in table for name, _, _ in rows)
    blocks = []
    for panel, rows in table:
        lines = [f"{panel}:"]
        for name, _, text in rows:
            lines += textwrap.wrap(
                text,
                width - 2,
                initial_indent=f"  {name.ljust(widest)}  ",
                subsequent_indent=" " * (widest + 4),
            )
        blocks.append("\b\n" + "\n".join(lines))
    return "\n\n".join(blocks)
