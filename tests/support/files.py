"""Files as the upload and import tests hand them to the lab, made in memory."""

from __future__ import annotations

import io
import stat
import zipfile


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
