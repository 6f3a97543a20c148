"""``python -m sfe_desktop.cli``: the same as ``sfe-desktop``."""
import sys

from .main import main

sys.exit(main())
