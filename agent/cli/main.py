"""The `watchstander` command line. Its surface is a contract other tools rely on."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from watchstander.connectors.errors import ConnectorError

from ..errors import EXIT_FAILURE, ConfigError, Exit, WatchstanderError
from . import (
    audit,
    collect,
    config,
    control,
    demo,
    devices,
    guidance,
    incidents,
    playbooks,
    replay,
    run,
    runs,
    store,
    suggestions,
)
from .context import Context
from .logs import configure_logging, stderr_is_journal
from .output import printable

log = logging.getLogger(__name__)

# Every command group, in the order `--help` lists them: one module each, with a register().
COMMANDS = (config, replay, incidents, run, demo, suggestions, playbooks, runs, devices, collect, guidance, audit,
            control, store)

Handler = Callable[[argparse.Namespace, Context], int]


def common_parent(suppress: bool = True) -> argparse.ArgumentParser:
    """Options every command accepts, before or after the command name."""
    # Subcommands must not reset an option given before the command name to its default,
    # so only the top-level parser carries real defaults.
    default = argparse.SUPPRESS if suppress else None
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument("--config", type=Path, metavar="PATH", default=default,
                        help="config file (default /etc/watchstander/watchstander.toml, plus its conf.d/)")
    parent.add_argument("-v", "--verbose", action="store_true",
                        default=argparse.SUPPRESS if suppress else False, help="log at DEBUG level")
    return parent


def build_parser() -> argparse.ArgumentParser:
    """The whole command tree."""
    parent = common_parent()
    parser = argparse.ArgumentParser(
        prog="watchstander",
        description="Watchstander: telemetry in, triaged incidents out, approved playbooks only.",
        parents=[common_parent(suppress=False)],
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for command in COMMANDS:
        command.register(sub, parent)
    return parser


def _err(text: str) -> None:
    # Under systemd, `<3>` makes the journal file the line at error priority (sd-daemon(3)).
    print(f"{'<3>' if stderr_is_journal() else ''}{text}", file=sys.stderr)


def print_problems(err: ConfigError) -> None:
    """Print every config problem with its key path."""
    _err(f"error: {printable(str(err))}")
    for key, msg in err.problems:
        _err(f"  {printable(str(key))}: {printable(str(msg))}")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    ctx = Context(config_path=args.config)
    handler: Handler = args.handler
    try:
        level = "DEBUG" if args.verbose else (ctx.config.logging.level if args.command != "config" else "WARNING")
        configure_logging(level)
        return handler(args, ctx)
    except ConfigError as err:
        print_problems(err)
        return err.exit_status
    except WatchstanderError as err:
        _err(f"error: {printable(str(err))}")
        return err.exit_status
    except ConnectorError as err:  # a source or device that cannot be used names itself
        _err(f"error: {printable(str(err))}")
        return EXIT_FAILURE
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return Exit.INTERRUPTED
    except BrokenPipeError:
        return EXIT_FAILURE
    finally:
        ctx.close()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
