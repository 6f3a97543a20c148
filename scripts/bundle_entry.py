"""PyInstaller entry point of build.spec: ``sfe_desktop.cli.main`` (cli.py itself uses relative imports)."""
import multiprocessing
import sys

from sfe_desktop.cli import main

if __name__ == "__main__":
    multiprocessing.freeze_support()  # the explanation plots are drawn in a child process
    sys.exit(main())
