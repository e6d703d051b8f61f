"""Files as the upload and import tests hand them to the lab, made in memory."""

from __future__ import annotations

import io
import stat
import zipfile

from PIL import Image


def zip_bytes(entries: dict[str, bytes], *, symlinks: dict[str, str] | None = None) -> bytes:
    """A deflated zip of ``entries`` (member name -> content), plus ``symlinks`` (member name -> target)
    as members a Unix unzip would turn into links: what a crafted upload may hold."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
        for name, target in (symlinks or {}).items():
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            archive.writestr(info, target)
    return buffer.getvalue()


def image_bytes(size: tuple[int, int] = (12, 10), mode: str = "RGB", colour=(10, 200, 30),
                fmt: str = "PNG") -> bytes:
    """One small image file of one colour, as a camera or an editor would save it."""
    img = Image.new("RGB", size, colour[:3]).convert(mode) if mode != "RGBA" else Image.new(mode, size, colour)
    buf = io.BytesIO()
    img.save(buf, format=fmt)
    return buf.getvalue()


def classes_zip(prefix: str = "", n: int = 3) -> dict[str, bytes]:
    """Zip entries for two class folders, ``cat`` (red) and ``dog`` (blue), of ``n`` PNGs each, under ``prefix``."""
    return {f"{prefix}{c}/{i}.png": image_bytes(colour=colour)
            for c, colour in (("cat", (200, 0, 0)), ("dog", (0, 0, 200))) for i in range(n)}
