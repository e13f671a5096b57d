"""Issue 14.8: `pip install ./api/python` works offline on a stock Debian.

Each test makes a fresh venv in a temporary directory and installs the
package with pip's index turned off (--no-index), so nothing can come from
the network: the build must need nothing that is not already there. Skipped
when this interpreter cannot make a venv with pip (Debian: python3-venv).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import unittest
import zipfile

import _fixture

try:
    import tomllib
except ImportError:  # Python < 3.11
    tomllib = None  # type: ignore[assignment]

import sandboxd

PIP_ENV = {
    **os.environ,
    "PIP_NO_INDEX": "1",
    "PIP_DISABLE_PIP_VERSION_CHECK": "1",
    "PIP_NO_CACHE_DIR": "1",
    "PIP_CONFIG_FILE": os.devnull,
    "PYTHONDONTWRITEBYTECODE": "1",
}


def _can_make_venvs() -> str:
    """Why venvs with pip cannot be made here ("" when they can)."""
    for mod in ("venv", "ensurepip", "pip"):
        r = subprocess.run([sys.executable, "-c", "import " + mod], capture_output=True)
        if r.returncode != 0:
            return "%s -m %s is not available (Debian: apt-get install python3-venv)" % (sys.executable, mod)
    return ""


class InstallTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        why = _can_make_venvs()
        if why:
            raise unittest.SkipTest(why)

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="sandboxd-pip-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        # pip builds in a copy of the source tree: nothing is written to it.
        self.src = os.path.join(self.tmp, "src")
        shutil.copytree(_fixture.PYROOT, self.src, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))

    def run_ok(self, argv, cwd=None):
        r = subprocess.run(argv, cwd=cwd or self.tmp, env=PIP_ENV, capture_output=True, text=True, timeout=300)
        self.assertEqual(r.returncode, 0, "%s failed:\n%s\n%s" % (" ".join(argv), r.stdout[-3000:], r.stderr[-3000:]))
        return r.stdout

    def venv(self, system_site_packages: bool) -> str:
        env = os.path.join(self.tmp, "venv")
        argv = [sys.executable, "-m", "venv", env]
        if system_site_packages:
            # This interpreter's pip serves the venv (faster than ensurepip).
            argv[3:3] = ["--system-site-packages", "--without-pip"]
        self.run_ok(argv)
        return os.path.join(env, "bin", "python")

    def check_installed(self, python: str) -> None:
        # Imported from the venv (cwd elsewhere, so not from the source tree).
        out = self.run_ok([python, "-c", (
            "import os, sandboxd, sandboxd.miniagent, sandboxd.client;"
            "d = os.path.dirname(sandboxd.__file__);"
            "print(d); print(sandboxd.__version__); print(os.path.exists(os.path.join(d, 'py.typed')))"
        )])
        where, version, typed = out.split()
        self.assertTrue(where.startswith(os.path.join(self.tmp, "venv")), where)
        self.assertEqual((version, typed), (sandboxd.__version__, "True"))
        self.assertIn("Version: " + sandboxd.__version__, self.run_ok([python, "-m", "pip", "show", "sandboxd"]))

    def test_pip_install_with_build_isolation_offline(self):
        # The documented install, as on Debian (PEP 668: in a venv).
        python = self.venv(system_site_packages=True)
        self.run_ok([python, "-m", "pip", "install", self.src])
        self.check_installed(python)

    def test_pip_install_in_a_plain_venv_without_build_isolation(self):
        # No setuptools or wheel needed: this failed with "invalid command
        # 'bdist_wheel'" when the build was setuptools'.
        python = self.venv(system_site_packages=False)
        self.run_ok([python, "-m", "pip", "install", "--no-build-isolation", self.src])
        self.check_installed(python)
        self.run_ok([python, "-m", "pip", "uninstall", "-y", "sandboxd"])
        # Editable (PEP 660): the venv imports the source tree itself.
        self.run_ok([python, "-m", "pip", "install", "-e", self.src])
        out = self.run_ok([python, "-c", "import sandboxd; print(sandboxd.__file__)"])
        self.assertEqual(out.strip(), os.path.join(self.src, "sandboxd", "__init__.py"))

    def test_wheel_contents(self):
        python = self.venv(system_site_packages=True)
        dist = os.path.join(self.tmp, "dist")
        self.run_ok([python, "-m", "pip", "wheel", "--no-deps", "-w", dist, self.src])
        (whl,) = os.listdir(dist)
        self.assertEqual(whl, "sandboxd-%s-py3-none-any.whl" % sandboxd.__version__)
        with zipfile.ZipFile(os.path.join(dist, whl)) as z:
            names = set(z.namelist())
            info = "sandboxd-%s.dist-info/" % sandboxd.__version__
            meta = z.read(info + "METADATA").decode()
        for f in ("__init__.py", "client.py", "errors.py", "types.py", "miniagent.py", "py.typed"):
            self.assertIn("sandboxd/" + f, names)
        self.assertEqual({n for n in names if not n.startswith(("sandboxd/", info))}, set())
        self.assertIn("Name: sandboxd\n", meta)
        self.assertIn("Requires-Python: >=3.9\n", meta)
        self.assertIn("# sandboxd for Python", meta)  # the README as the description


class SdistTest(unittest.TestCase):
    def test_sdist_builds_again(self):
        # The sdist holds what a build needs: building from it gives the
        # same wheel contents.
        import importlib.util
        import tarfile

        spec = importlib.util.spec_from_file_location("_pep517_under_test", os.path.join(_fixture.PYROOT, "_pep517.py"))
        backend = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(backend)
        with tempfile.TemporaryDirectory() as tmp:
            name = backend.build_sdist(tmp)
            self.assertEqual(name, "sandboxd-%s.tar.gz" % sandboxd.__version__)
            with tarfile.open(os.path.join(tmp, name)) as tar:
                members = set(tar.getnames())
                safe = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
                tar.extractall(tmp, **safe)
            top = "sandboxd-%s/" % sandboxd.__version__
            for f in ("PKG-INFO", "pyproject.toml", "README.md", "_pep517.py", "sandboxd/__init__.py", "sandboxd/py.typed"):
                self.assertIn(top + f, members)
            self.assertFalse([m for m in members if "__pycache__" in m])
            spec = importlib.util.spec_from_file_location("_pep517_from_sdist", os.path.join(tmp, top, "_pep517.py"))
            again = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(again)
            os.mkdir(os.path.join(tmp, "w1"))
            os.mkdir(os.path.join(tmp, "w2"))
            w1 = backend.build_wheel(os.path.join(tmp, "w1"))
            w2 = again.build_wheel(os.path.join(tmp, "w2"))
            with zipfile.ZipFile(os.path.join(tmp, "w1", w1)) as a, zipfile.ZipFile(os.path.join(tmp, "w2", w2)) as b:
                self.assertEqual(sorted(a.namelist()), sorted(b.namelist()))
                self.assertEqual(a.read(w1.split("-py3")[0] + ".dist-info/RECORD"), b.read(w2.split("-py3")[0] + ".dist-info/RECORD"))


class VersionTest(unittest.TestCase):
    def test_one_version(self):
        if tomllib is None:
            self.skipTest("tomllib needs Python 3.11")
        with open(os.path.join(_fixture.PYROOT, "pyproject.toml"), "rb") as f:
            project = tomllib.load(f)["project"]
        self.assertEqual(project["version"], sandboxd.__version__)


if __name__ == "__main__":
    unittest.main()
