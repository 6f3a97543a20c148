import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture(autouse=True)
def _isolated_data_dir(tmp_path_factory, monkeypatch):
    """Every test gets its own app data dir, so no test reads or writes the user's."""
    if "SFE_DATA_DIR" not in os.environ or os.environ["SFE_DATA_DIR"].startswith(str(tmp_path_factory.getbasetemp())):
        monkeypatch.setenv("SFE_DATA_DIR", str(tmp_path_factory.mktemp("sfe-data")))
