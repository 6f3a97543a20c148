"""Draw the application icon (a photo frame with a magnifier) into resources/icon.png, .ico and .svg."""
from __future__ import annotations

from pathlib import Path

from matplotlib.figure import Figure
from matplotlib.patches import Circle, FancyBboxPatch, Polygon
from PIL import Image

OUT = Path(__file__).resolve().parents[1] / "resources"


def draw() -> Figure:
    fig = Figure(figsize=(2.56, 2.56), dpi=100)
    fig.patch.set_alpha(0)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.axis("off")
    ax.add_patch(FancyBboxPatch((0.06, 0.16), 0.72, 0.66, boxstyle="round,pad=0,rounding_size=0.08",
                                fc="#2f6fb5", ec="none"))
    ax.add_patch(FancyBboxPatch((0.12, 0.22), 0.60, 0.54, boxstyle="round,pad=0,rounding_size=0.04",
                                fc="#dff0ff", ec="none"))
    ax.add_patch(Polygon([(0.14, 0.24), (0.34, 0.52), (0.46, 0.38), (0.56, 0.48), (0.70, 0.24)],
                         fc="#4c9a57", ec="none"))
    ax.add_patch(Circle((0.56, 0.64), 0.06, fc="#f2b134", ec="none"))
    ax.plot([0.74, 0.90], [0.32, 0.14], color="#1d1d1d", lw=16, solid_capstyle="round")
    ax.add_patch(Circle((0.62, 0.44), 0.17, fc=(1, 1, 1, 0.35), ec="#1d1d1d", lw=9))
    return fig


def main() -> None:
    OUT.mkdir(exist_ok=True)
    fig = draw()
    fig.savefig(OUT / "icon.png", dpi=100, transparent=True)
    fig.savefig(OUT / "icon.svg", transparent=True)
    Image.open(OUT / "icon.png").save(OUT / "icon.ico", sizes=[(16, 16), (32, 32), (48, 48), (64, 64), (128, 128),
                                                             (256, 256)])


if __name__ == "__main__":
    main()
