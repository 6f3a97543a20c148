"""What the app checks before it creates its ``QApplication`` (this module imports no Qt).

Qt's X11 platform plugin (``libqxcb.so``) needs a dozen ``libxcb-*`` libraries that a full desktop brings and a
minimal install does not. When one is missing, Qt aborts the process with a long message that names the plugin,
not the libraries. :func:`platform_problem` finds the missing libraries first (``ldd`` on the plugin, and
``libxcb-cursor``, which Qt loads at run time) and says in one line which packages to install.
"""
from __future__ import annotations

import ctypes
import importlib.util
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

# soname -> (Debian/Ubuntu package, Fedora package)
PACKAGES: dict[str, tuple[str, str]] = {
    "libxcb.so.1": ("libxcb1", "libxcb"),
    "libX11-xcb.so.1": ("libx11-xcb1", "libX11-xcb"),
    "libX11.so.6": ("libx11-6", "libX11"),
    "libxcb-cursor.so.0": ("libxcb-cursor0", "xcb-util-cursor"),
    "libxcb-icccm.so.4": ("libxcb-icccm4", "xcb-util-wm"),
    "libxcb-keysyms.so.1": ("libxcb-keysyms1", "xcb-util-keysyms"),
    "libxcb-image.so.0": ("libxcb-image0", "xcb-util-image"),
    "libxcb-render-util.so.0": ("libxcb-render-util0", "xcb-util-renderutil"),
    "libxcb-util.so.1": ("libxcb-util1", "xcb-util"),
    "libxcb-randr.so.0": ("libxcb-randr0", "libxcb"),
    "libxcb-render.so.0": ("libxcb-render0", "libxcb"),
    "libxcb-shape.so.0": ("libxcb-shape0", "libxcb"),
    "libxcb-shm.so.0": ("libxcb-shm0", "libxcb"),
    "libxcb-sync.so.1": ("libxcb-sync1", "libxcb"),
    "libxcb-xfixes.so.0": ("libxcb-xfixes0", "libxcb"),
    "libxcb-xinerama.so.0": ("libxcb-xinerama0", "libxcb"),
    "libxcb-xinput.so.0": ("libxcb-xinput0", "libxcb"),
    "libxcb-xkb.so.1": ("libxcb-xkb1", "libxcb"),
    "libxcb-glx.so.0": ("libxcb-glx0", "libxcb"),
    "libxkbcommon.so.0": ("libxkbcommon0", "libxkbcommon"),
    "libxkbcommon-x11.so.0": ("libxkbcommon-x11-0", "libxkbcommon-x11"),
    "libSM.so.6": ("libsm6", "libSM"),
    "libICE.so.6": ("libice6", "libICE"),
    "libfontconfig.so.1": ("libfontconfig1", "fontconfig"),
    "libfreetype.so.6": ("libfreetype6", "freetype"),
    "libglib-2.0.so.0": ("libglib2.0-0", "glib2"),
    "libdbus-1.so.3": ("libdbus-1-3", "dbus-libs"),
    "libEGL.so.1": ("libegl1", "libglvnd-egl"),
    "libGL.so.1": ("libgl1", "libglvnd-glx"),
    "libOpenGL.so.0": ("libopengl0", "libglvnd-opengl"),
}
RUNTIME_LOADED = ("libxcb-cursor.so.0",)  # dlopen()ed by the plugin (Qt 6.5+), so ldd does not list it


def folder_problem(folder: str) -> str | None:
    """A one-line reason why ``folder`` cannot be opened, or None when it looks readable."""
    path = Path(folder)
    if not path.exists():
        return f"The folder “{folder}” does not exist."
    if not path.is_dir():
        return f"“{folder}” is not a folder. Choose a folder of photos."
    try:
        with os.scandir(path) as it:
            next(it, None)
    except PermissionError:
        return f"The folder “{folder}” cannot be read: permission denied."
    except OSError as exc:
        return f"The folder “{folder}” cannot be read: {exc.strerror or exc}."
    return None


def qt_plugin(name: str = "libqxcb.so") -> Path | None:
    """The file of one of PySide6's platform plugins, found without importing PySide6."""
    spec = importlib.util.find_spec("PySide6")
    if spec is None or not spec.origin:
        return None
    path = Path(spec.origin).parent / "Qt" / "plugins" / "platforms" / name
    return path if path.is_file() else None


def missing_libraries(binary: Path) -> list[str]:
    """Shared libraries that ``binary`` needs and the dynamic loader cannot find (``ldd``; [] without it)."""
    try:
        out = subprocess.run(["ldd", str(binary)], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    missing = []
    for line in out.splitlines():
        name, sep, where = line.strip().partition("=>")
        if sep and where.strip().startswith("not found") and name.strip() not in missing:
            missing.append(name.strip())
    return missing


def loadable(soname: str) -> bool:
    try:
        ctypes.CDLL(soname)
    except OSError:
        return False
    return True


def install_hint(missing: list[str]) -> str:
    """One line naming the missing libraries and the packages that hold them."""
    known = [PACKAGES[m] for m in missing if m in PACKAGES]
    others = [m for m in missing if m not in PACKAGES]
    text = f"Qt's X11 platform plugin (xcb) needs {', '.join(missing)}, not installed here."
    if known:
        debian = " ".join(dict.fromkeys(d for d, _ in known))
        fedora = " ".join(dict.fromkeys(f for _, f in known))
        text += f" Install: sudo apt-get install {debian} (Debian/Ubuntu) or sudo dnf install {fedora} (Fedora)."
    if any(o.startswith("libQt6") for o in others):
        text += " PySide6's own Qt libraries are missing: reinstall it (pip install --force-reinstall PySide6)."
    elif others:
        text += f" Find the package of {', '.join(others)} with apt-file search or dnf provides."
    return text


def uses_xcb(environ: Mapping[str, str]) -> bool:
    """Whether Qt will load its X11 platform plugin: ``QT_QPA_PLATFORM`` names it first, or names nothing
    outside a Wayland session."""
    platform = environ.get("QT_QPA_PLATFORM", "").replace(";", ":").split(":")[0].strip()
    if platform:
        return platform == "xcb"
    return not (environ.get("WAYLAND_DISPLAY") and environ.get("XDG_SESSION_TYPE", "") == "wayland")


def platform_problem(environ: Mapping[str, str] | None = None, plugin: Path | None = None) -> str | None:
    """Why the app's window cannot open here, in one line, or None. Only the X11 plugin is checked (Linux)."""
    environ = os.environ if environ is None else environ
    if not sys.platform.startswith("linux") or not uses_xcb(environ):
        return None
    plugin = plugin or qt_plugin()
    if plugin is None:
        return None
    missing = missing_libraries(plugin) + [lib for lib in RUNTIME_LOADED if not loadable(lib)]
    if missing:
        return install_hint(missing)
    if not environ.get("DISPLAY"):
        return "No X display to show the window on (DISPLAY is not set): start it from a desktop session, " \
               "or under xvfb-run."
    return None
