"""Entry point of the PyInstaller app (packaging/studio.spec): the same as the `studio` command."""

import multiprocessing
import sys

from studio.cli import main

if __name__ == "__main__":
    multiprocessing.freeze_support()
    sys.exit(main())
