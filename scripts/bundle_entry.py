"""PyInstaller entry point of build.spec: ``sfe_desktop.cli.main`` (cli.py itself uses relative imports)."""
import sys

from sfe_desktop.cli import main

if __name__ == "__main__":
    sys.exit(main())
