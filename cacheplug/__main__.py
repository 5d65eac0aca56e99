"""``python -m cacheplug``: the command line (see :mod:`cacheplug.cli`; needs the ``cli`` extra)."""

from __future__ import annotations

import sys


def _run() -> None:
    try:
        from .cli import main
    except ImportError as exc:
        sys.stderr.write(
            f"Error: the cacheplug command line needs its extra: pip install 'cacheplug[cli]' ({exc})\n"
        )
        raise SystemExit(1) from None
    main()


if __name__ == "__main__":
    _run()
