"""A command group that imports a command's module only when that command is run (or its help is
asked for), so that ``kpdev --help`` or ``kpdev boards`` does not import what ``kpdev eval`` or
``kpdev pack`` needs.

The root app names each command in a mount table: its help panel, ``"module:attribute"`` (a
command function or a sub-app; the module named within ``kpdev.host.cli``) and the one line its
panel shows.  The group lists commands from that table and draws the root help from it; the
module is imported, and the command built by Typer's own ``typer.main.get_command`` exactly as
if it had been mounted with ``app.command``/``app.add_typer``, the first time a command is
looked up by name.
tests/cli/test_cli_startup.py checks that each one-line help matches the command's own.
"""

from __future__ import annotations

from collections.abc import Iterator, MutableMapping
from importlib import import_module
from typing import Any

import typer
import typer.main
from typer.core import TyperGroup

# (help panel, ((name, "module:attribute", one-line help), ...)), in the order the help shows.
Mounts = tuple[tuple[str, tuple[tuple[str, str, str], ...]], ...]


def build_command(name: str, target: Any, panel: str | None, markup: Any) -> Any:
    """The click command Typer makes of ``target`` (a command function or a sub-app) mounted as
    ``name`` under help panel ``panel``."""
    holder = typer.Typer(add_completion=False, rich_markup_mode=markup)
    if isinstance(target, typer.Typer):
        holder.add_typer(target, name=name, rich_help_panel=panel)
    else:
        holder.command(name=name, rich_help_panel=panel)(target)
    command = typer.main.get_command(holder)
    # One command alone comes back as that command; a sub-app inside its holder group.
    return command.commands[name] if isinstance(command, TyperGroup) else command


class LazyCommands(MutableMapping):
    """A group's commands by name: those mounted eagerly, and the mount table's, each built on
    first lookup.  Iterating gives the names without importing anything."""

    def __init__(self, eager: MutableMapping, mounts: Mounts, markup: Any) -> None:
        self._built = dict(eager)
        self._table = {name: (panel, target) for panel, rows in mounts for name, target, _ in rows}
        self._markup = markup

    def __getitem__(self, name: str) -> Any:
        if name not in self._built:
            panel, target = self._table[name]  # KeyError for an unknown name, as a dict
            module, _, attribute = target.partition(":")
            obj = getattr(import_module("." + module, __package__), attribute)
            self._built[name] = build_command(name, obj, panel, self._markup)
        return self._built[name]

    def __setitem__(self, name: str, command: Any) -> None:
        self._built[name] = command

    def __delitem__(self, name: str) -> None:
        self._built.pop(name)
        self._table.pop(name, None)

    def __iter__(self) -> Iterator[str]:
        yield from self._built
        yield from (name for name in self._table if name not in self._built)

    def __len__(self) -> int:
        return len(self._built.keys() | self._table.keys())

    def __contains__(self, name: object) -> bool:
        return name in self._built or name in self._table


class LazyGroup(TyperGroup):
    """A Typer group whose commands come from ``mounts`` (set by a subclass) and are imported on
    first use; its help lists them by panel from the table, importing none."""

    mounts: Mounts = ()

    def __init__(self, **attrs: Any) -> None:
        super().__init__(**attrs)
        self.commands = LazyCommands(self.commands, self.mounts, self.rich_markup_mode)

    def list_commands(self, ctx: Any) -> list[str]:
        """Command names in the table's order (TyperGroup's own would build every command)."""
        table = [name for _, rows in self.mounts for name, _, _ in rows]
        return [*(name for name in self.commands if name not in table), *table]

    def format_commands(self, ctx: Any, formatter: Any) -> None:
        """One section per help panel, each command with its one line from the table (names
        padded to one width, so that every panel's lines start in the same column)."""
        width = max((len(name) for _, rows in self.mounts for name, _, _ in rows), default=0)
        for panel, rows in self.mounts:
            with formatter.section(panel):
                formatter.write_dl([(name.ljust(width), text) for name, _, text in rows])
