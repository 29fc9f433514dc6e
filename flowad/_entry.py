"""The ``flowad`` console script: the command line, or one line on what to install for it."""

from __future__ import annotations

import sys

#: Packages of the ``cli`` extra that the command line cannot start without.
CLI_PACKAGES = ("typer", "pandas")


def main() -> None:
    """Run :func:`flowad.cli.main`; without the ``cli`` extra, say how to get it (exit code 2)."""
    try:
        from flowad.cli import main as cli_main
    except ModuleNotFoundError as err:
        if err.name not in CLI_PACKAGES:
            raise
        sys.stderr.write(
            f"flowad: error: the command line needs the 'cli' extra ({err.name} is not installed); "
            "install it with: pip install 'flowad[cli]'\n"
        )
        raise SystemExit(2) from None
    cli_main()
