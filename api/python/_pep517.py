"""The package's PEP 517 build backend, standard library only.

pip builds a project in an isolated environment holding only what
``[build-system] requires`` names, fetched from the package index; with
setuptools named there, ``pip install ./api/python`` failed offline, and
``--no-build-isolation`` failed wherever the ``wheel`` package was missing.
This backend needs nothing (``requires = []``) but ``tomllib`` (Python 3.11;
``tomli`` is asked for on older Pythons), so the install works offline in any
venv, isolated or not.

It builds what a pure-Python package needs and nothing more: a
``py3-none-any`` wheel of the ``sandboxd`` directory with the metadata of
``[project]`` in pyproject.toml (PEP 621, static fields only), an sdist, and an
editable wheel (PEP 660) that puts this directory on ``sys.path``.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import io
import os
import tarfile
import time
import zipfile
from typing import Any, Dict, List, Optional, Tuple

HERE = os.path.dirname(os.path.abspath(__file__))
PACKAGE = "sandboxd"
#: What an sdist holds besides the package.
SDIST_FILES = ("pyproject.toml", "README.md", "_pep517.py")
#: Zip timestamps: the earliest a zip can say, so that builds are reproducible.
_EPOCH = (1980, 1, 1, 0, 0, 0)


def _project() -> Dict[str, Any]:
    try:
        import tomllib
    except ImportError:  # Python < 3.11: get_requires_for_* asked for tomli
        import tomli as tomllib  # type: ignore[no-redef]
    with open(os.path.join(HERE, "pyproject.toml"), "rb") as f:
        return tomllib.load(f)["project"]


def _needs() -> List[str]:
    return [] if importlib.util.find_spec("tomllib") else ["tomli>=1.1"]


def _dist_name(project: Dict[str, Any]) -> str:
    return "%s-%s" % (project["name"].replace("-", "_"), project["version"])


def _metadata(project: Dict[str, Any]) -> str:
    """Core metadata 2.1 of the static [project] fields this package uses."""
    lines = [
        "Metadata-Version: 2.1",
        "Name: " + project["name"],
        "Version: " + project["version"],
    ]
    if project.get("description"):
        lines.append("Summary: " + project["description"])
    if project.get("requires-python"):
        lines.append("Requires-Python: " + project["requires-python"])
    lic = project.get("license") or {}
    if lic.get("text"):
        lines.append("License: " + lic["text"])
    lines += ["Classifier: " + c for c in project.get("classifiers", [])]
    lines += ["Requires-Dist: " + d for d in project.get("dependencies", [])]
    body = ""
    readme = project.get("readme")
    if readme:
        lines.append("Description-Content-Type: text/markdown")
        with open(os.path.join(HERE, readme), encoding="utf-8") as f:
            body = f.read()
    return "\n".join(lines) + "\n\n" + body


def _package_files() -> List[Tuple[str, str]]:
    """(archive name, path) of every file of the package, sorted."""
    out = []
    top = os.path.join(HERE, PACKAGE)
    for d, dirs, files in os.walk(top):
        dirs[:] = sorted(x for x in dirs if x != "__pycache__")
        for name in sorted(files):
            if name.endswith((".pyc", ".pyo")):
                continue
            path = os.path.join(d, name)
            out.append((os.path.relpath(path, HERE).replace(os.sep, "/"), path))
    return out


def _record_line(name: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return "%s,sha256=%s,%d" % (name, digest, len(data))


def _write_wheel(directory: str, entries: List[Tuple[str, bytes]]) -> str:
    project = _project()
    dist = _dist_name(project)
    info = dist + ".dist-info/"
    wheel_meta = "Wheel-Version: 1.0\nGenerator: sandboxd _pep517\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    entries = entries + [
        (info + "METADATA", _metadata(project).encode("utf-8")),
        (info + "WHEEL", wheel_meta.encode()),
    ]
    record = "".join(_record_line(n, d) + "\n" for n, d in entries) + info + "RECORD,,\n"
    entries.append((info + "RECORD", record.encode()))
    filename = dist + "-py3-none-any.whl"
    with zipfile.ZipFile(os.path.join(directory, filename), "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in entries:
            zi = zipfile.ZipInfo(name, _EPOCH)
            zi.external_attr = 0o644 << 16
            zi.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(zi, data)
    return filename


def _read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


# -- the PEP 517 / PEP 660 hooks ---------------------------------------------


def get_requires_for_build_wheel(config_settings: Optional[Dict[str, Any]] = None) -> List[str]:
    return _needs()


def get_requires_for_build_sdist(config_settings: Optional[Dict[str, Any]] = None) -> List[str]:
    return _needs()


def get_requires_for_build_editable(config_settings: Optional[Dict[str, Any]] = None) -> List[str]:
    return _needs()


def build_wheel(
    wheel_directory: str,
    config_settings: Optional[Dict[str, Any]] = None,
    metadata_directory: Optional[str] = None,
) -> str:
    return _write_wheel(wheel_directory, [(name, _read(path)) for name, path in _package_files()])


def build_editable(
    wheel_directory: str,
    config_settings: Optional[Dict[str, Any]] = None,
    metadata_directory: Optional[str] = None,
) -> str:
    pth = (HERE + "\n").encode("utf-8")
    return _write_wheel(wheel_directory, [("__editable__.%s.pth" % PACKAGE, pth)])


def build_sdist(sdist_directory: str, config_settings: Optional[Dict[str, Any]] = None) -> str:
    project = _project()
    dist = _dist_name(project)
    files = [(f, os.path.join(HERE, f)) for f in SDIST_FILES] + _package_files()
    filename = dist + ".tar.gz"
    mtime = int(os.environ.get("SOURCE_DATE_EPOCH", time.time()))

    def add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
        ti = tarfile.TarInfo(dist + "/" + name)
        ti.size, ti.mtime, ti.mode = len(data), mtime, 0o644
        tar.addfile(ti, io.BytesIO(data))

    with tarfile.open(os.path.join(sdist_directory, filename), "w:gz", format=tarfile.PAX_FORMAT) as tar:
        add(tar, "PKG-INFO", _metadata(project).encode("utf-8"))
        for name, path in files:
            add(tar, name, _read(path))
    return filename
