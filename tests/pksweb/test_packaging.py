"""An installed pksweb needs nothing from the checkout or the working directory: its templates, static files
and the sandbox's protobuf schema travel in the wheel, and a copy started from another folder serves its pages
from its own files (`pip install .` once left templates/ and static/ out: TemplateDoesNotExist)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from django.test import Client

ROOT = Path(__file__).resolve().parents[2]
LEFT_OUT = shutil.ignore_patterns(".git", ".venv", "var", "build", "*.egg-info", "__pycache__", "staticfiles", "node_modules")

CHECK = """
import django, pathlib, sys
django.setup()
from django.contrib.staticfiles import finders
from django.template.loader import get_template
import pksweb, sandbox
site = pathlib.Path(sys.argv[1])
assert pathlib.Path(pksweb.__file__).is_relative_to(site), pksweb.__file__
for name in ("base.html", "registration/login.html", "clusters/detail.html", "pksweb/_activity.html"):
    assert pathlib.Path(get_template(name).origin.name).is_relative_to(site), name
for name in ("pksweb/app.css", "pksweb/live.js", "pksweb/favicon.svg"):
    assert pathlib.Path(finders.find(name)).is_relative_to(site), name
from sandbox import protobuf_schema
assert (pathlib.Path(sandbox.__file__).parent / "protobuf_schema.json.gz").is_file()
print("ok")
"""


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel `pip install .` would install, built from a copy of the checkout (the checkout stays as it was)."""
    folder = tmp_path_factory.mktemp("wheel")
    source = folder / "source"
    shutil.copytree(ROOT, source, ignore=LEFT_OUT)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--quiet", "-w", str(folder), str(source)],
                   check=True, capture_output=True, timeout=300)
    return next(folder.glob("pksweb-*.whl"))


def test_the_wheel_carries_templates_static_files_and_the_schema(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = {"pksweb/templates/base.html", "pksweb/templates/registration/login.html", "pksweb/static/pksweb/app.css",
                "pksweb/static/pksweb/favicon.svg", "sandbox/protobuf_schema.json.gz"}
    assert expected <= names, expected - names


def test_an_installed_copy_started_elsewhere_uses_its_own_files(wheel, tmp_path):
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {**{k: v for k, v in os.environ.items() if not k.startswith(("PKSWEB_", "DATABASE_URL", "REDIS_URL"))},
           "PYTHONPATH": str(site), "DJANGO_SETTINGS_MODULE": "pksweb.settings", "PKSWEB_DATA_DIR": str(tmp_path / "data")}
    done = subprocess.run([sys.executable, "-c", CHECK, str(site)], cwd=elsewhere, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-3000:]
    # The README's production commands run from any folder: `python -m django <command> --settings pksweb.settings`.
    check = subprocess.run([sys.executable, "-m", "django", "check", "--settings", "pksweb.settings"], cwd=elsewhere, env=env,
                           capture_output=True, text=True, timeout=120)
    assert check.returncode == 0 and "no issues" in check.stdout, check.stderr[-3000:]
    assert not any(elsewhere.iterdir())  # nothing written where it was started


def test_an_installed_copy_writes_in_the_users_data_folder_never_beside_its_code(wheel, tmp_path):
    """Without PKSWEB_DATA_DIR an installed copy keeps its keys, database and beat schedule in the user's data folder
    ($XDG_DATA_HOME/pksweb), and collectstatic writes there too: never into site-packages (seen: var/ and staticfiles/
    appeared beside the installed code)."""
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    before = sorted(path.relative_to(site) for path in site.rglob("*"))
    env = {**{k: v for k, v in os.environ.items() if not k.startswith(("PKSWEB_", "DATABASE_URL", "REDIS_URL"))},
           "PYTHONPATH": str(site), "XDG_DATA_HOME": str(tmp_path / "xdg")}
    show = "import pksweb.settings as s; print(s.DATA_DIR); print(s.STATIC_ROOT)"
    embedded = subprocess.run([sys.executable, "-c", show], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert embedded.stdout.split() == [str(tmp_path / "xdg" / "pksweb"), "None"], embedded.stderr[-2000:]
    production = {**env, "PKSWEB_MODE": "production", "PKSWEB_SECRET_KEY": "x" * 50, "ALLOWED_HOSTS": "localhost",
                  "PKSWEB_CREDENTIAL_KEYS": "Y3JlZGVudGlhbC1rZXktZm9yLXRlc3RzLW9ubHktMDE=",
                  "DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none", "REDIS_URL": "redis://127.0.0.1:1/0"}
    shown = subprocess.run([sys.executable, "-c", show], cwd=tmp_path, env=production, capture_output=True, text=True,
                           timeout=120)
    assert shown.stdout.split()[1] == str(tmp_path / "xdg" / "pksweb" / "staticfiles"), shown.stderr[-2000:]
    assert sorted(path.relative_to(site) for path in site.rglob("*") if "__pycache__" not in path.parts) == \
        [path for path in before if "__pycache__" not in path.parts]


@pytest.mark.django_db
def test_favicon_is_linked_and_asked_for_paths_lead_to_it(operator):
    client = Client()
    assert 'rel="icon"' in client.get("/accounts/login/").content.decode()
    answer = client.get("/favicon.ico")
    assert answer.status_code == 301 and answer["Location"].endswith("pksweb/favicon.svg")


def test_beat_keeps_its_schedule_in_the_data_folder(tmp_path):
    """Under a read-only root filesystem only the data volume is writable: beat must not write where it starts."""
    import time

    elsewhere, data = tmp_path / "elsewhere", tmp_path / "data" / "not-yet"
    elsewhere.mkdir()
    env = {**{k: v for k, v in os.environ.items() if not k.startswith(("PKSWEB_", "DATABASE_URL", "REDIS_URL"))},
           "PYTHONPATH": str(ROOT), "PKSWEB_DATA_DIR": str(data)}
    beat = subprocess.Popen([str(Path(sys.executable).parent / "celery"), "-A", "pksweb", "beat", "--loglevel", "WARNING"],
                            cwd=elsewhere, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not list(data.glob("celerybeat-schedule*")) and beat.poll() is None:
            time.sleep(0.2)
        assert list(data.glob("celerybeat-schedule*")), beat.stdout.read().decode()[-2000:] if beat.poll() is not None else "no schedule"
    finally:
        beat.terminate()
        beat.wait(15)
    assert not any(elsewhere.iterdir()), list(elsewhere.iterdir())


def test_the_image_build_context_holds_every_package_the_wheel_does():
    """The Containerfile's context is an allow-list: a new app left out of it built an image whose settings named
    an app it lacked (ModuleNotFoundError at collectstatic)."""
    import tomllib

    packages = {name.rstrip("*") for name in tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
                ["packages"]["find"]["include"]}
    allowed = {line[1:] for line in (ROOT / ".containerignore").read_text().splitlines() if line.startswith("!")}
    assert packages <= allowed, packages - allowed
    assert "pyproject.toml" in allowed and "README.md" in allowed
