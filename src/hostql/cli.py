"""The ``hostql`` command: a thin dispatcher to lazily imported subcommands.

A subcommand is a ``"module:function"`` string; the function takes the
arguments after the subcommand's name and returns the exit code.  Only the
chosen subcommand's module is imported, so ``hostql shell`` does not pay for
the agent or the server.  Argument parsing here is by hand: importing click
costs more on this path (tens of milliseconds, measured with
``python -X importtime``) than the whole shell query should take.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Sequence

# name -> "module:function"; other parts of hostql add theirs here.
SUBCOMMANDS: dict[str, str] = {
    "shell": "hostql.shell.main:run",
    "agent": "hostql.agent.main:run",
    "server": "hostql.server.main:run",
    "sim": "hostql.sim.main:run",
}

# One-line summaries for ``hostql --help``.
SUMMARIES: dict[str, str] = {
    "shell": "Query this host with SQL (osqueryi-compatible shell)",
    "agent": "Run the agent daemon (osqueryd-compatible): schedule, logs, TLS remote",
    "server": "Run the management server (Fleet-compatible API); prepare-db migrates its database",
    "sim": "Simulate many osquery agents against a server (load testing, like Fleet's osquery-perf)",
}

Command = Callable[[Sequence[str]], int]


def load_command(name: str) -> Command:
    module_name, _, func_name = SUBCOMMANDS[name].partition(":")
    func: Command = getattr(importlib.import_module(module_name), func_name)
    return func


def usage() -> str:
    """``hostql --help``, laid out by click's formatter (imported only here)."""
    import click

    import hostql

    formatter = click.HelpFormatter(max_width=100)
    formatter.write_usage("hostql", "[--version] [--help] COMMAND [ARGS]...")
    formatter.write_paragraph()
    formatter.write_text(f"hostql {hostql.__version__}: the operating system as SQL, "
                         f"compatible with osquery {hostql.OSQUERY_VERSION}.")
    with formatter.section("Commands"):
        formatter.write_dl([(name, SUMMARIES.get(name, "")) for name in sorted(SUBCOMMANDS)])
    formatter.write_paragraph()
    formatter.write_text("Run 'hostql COMMAND --help' for a command's options.")
    return formatter.getvalue()


def main(argv: Sequence[str] | None = None) -> int:
    """Console-script entry point; returns the process exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        if not args or args[0] in ("-h", "--help", "help"):
            if len(args) > 1 and args[0] == "help" and args[1] in SUBCOMMANDS:
                return load_command(args[1])(["--help"])
            sys.stdout.write(usage())
            return 0
        if args[0] == "--version":
            import hostql

            sys.stdout.write(f"hostql {hostql.__version__} (osquery {hostql.OSQUERY_VERSION})\n")
            return 0
        name = args[0]
        if name not in SUBCOMMANDS:
            sys.stderr.write(f"Error: no such command '{name}'. Commands: {', '.join(sorted(SUBCOMMANDS))}\n")
            return 2
        return load_command(name)(args[1:])
    except BrokenPipeError:
        # `hostql shell ... | head`: the reader left; exit quietly as
        # osqueryi does, pointing stdout at devnull so the final flush at
        # interpreter exit does not raise again.
        import os

        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1
    except KeyboardInterrupt:
        return 130


def entry() -> None:
    sys.exit(main())


if __name__ == "__main__":
    entry()
