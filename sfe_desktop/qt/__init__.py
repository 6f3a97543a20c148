"""PySide6 desktop layer: the only package that imports Qt. It calls the core and shows what it returns."""
