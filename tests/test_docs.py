"""The documentation covers every public learner and every reference.

Fast checks on the sources only (no Sphinx build): each public class has a
user-guide page named after it, and each NumPy reference module is shown on
some page, included from the file so that the page cannot drift from it.
"""

import fnmatch
import re
from pathlib import Path

import pytest

import linmetric

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
REFERENCE = ROOT / "linmetric" / "reference"

PUBLIC_CLASSES = [
    name
    for name in linmetric.__all__
    if name not in ("__version__", "MetricLearner")
    and isinstance(getattr(linmetric, name), type)
]
INCLUDE = re.compile(r"^\s*\.\.\s+literalinclude::\s+(\S+)", re.MULTILINE)


def _pages():
    return sorted(DOCS.rglob("*.rst"))


def _included_files():
    included = set()
    for page in _pages():
        for target in INCLUDE.findall(page.read_text(encoding="utf-8")):
            included.add((page.parent / target).resolve())
    return included


def test_public_classes_are_found():
    # guards the two tests below against passing on an empty list
    assert {"LMNN", "NCA", "ITML"} <= set(PUBLIC_CLASSES)


@pytest.mark.parametrize("name", PUBLIC_CLASSES)
def test_every_public_class_has_a_learner_page(name):
    page = DOCS / "learners" / f"{name.lower()}.rst"
    assert page.is_file(), f"{name} has no user-guide page {page.relative_to(ROOT)}"
    text = page.read_text(encoding="utf-8")
    assert f":class:`linmetric.{name}`" in text, (
        f"{page.relative_to(ROOT)} does not link the API of linmetric.{name}"
    )


@pytest.mark.parametrize(
    "module",
    sorted(p.name for p in REFERENCE.glob("*.py") if p.name != "__init__.py"),
)
def test_every_reference_is_included_by_a_page(module):
    assert (REFERENCE / module).resolve() in _included_files(), (
        f"linmetric/reference/{module} is not shown by any docs page "
        "(add a '.. literalinclude:: ../../linmetric/reference/"
        f"{module}' to its learner's page)"
    )


def test_literalincludes_point_at_existing_files():
    missing = sorted(str(p) for p in _included_files() if not p.is_file())
    assert not missing, f"literalinclude of missing files: {missing}"


TOCTREE = re.compile(r"^\.\. toctree::\n((?:[ \t]+.*\n|\n)*)", re.MULTILINE)


def _toctree_entries(page):
    """The entries of every toctree of ``page``, as written (globs kept)."""
    entries = []
    for body in TOCTREE.findall(page.read_text(encoding="utf-8") + "\n"):
        for line in body.splitlines():
            line = line.strip()
            if line and not line.startswith(":"):
                entries.append(line)
    return entries


def _in_toctree(name, index):
    return any(fnmatch.fnmatchcase(name, entry) for entry in _toctree_entries(index))


def _listed_pages(folder):
    """Pages of ``folder`` that must be in a toctree: not the index, and
    not those marked ``:orphan:`` (as sphinx-gallery marks its own)."""
    return sorted(
        p.stem
        for p in folder.glob("*.rst")
        if p.stem != "index"
        and not p.read_text(encoding="utf-8").lstrip().startswith(":orphan:")
    )


@pytest.mark.parametrize("page", _listed_pages(DOCS / "learners"))
def test_every_learner_page_is_in_a_group_of_the_learners_index(page):
    assert _in_toctree(page, DOCS / "learners" / "index.rst"), (
        f"docs/learners/{page}.rst is in no toctree of docs/learners/index.rst: "
        "add it to the group of what it learns from"
    )


def test_toctree_entries_are_read():
    # guards the test above against an index whose toctrees it cannot parse
    assert _in_toctree("lmnn", DOCS / "learners" / "index.rst")
    assert not _in_toctree("no-such-page", DOCS / "learners" / "index.rst")


@pytest.mark.parametrize("page", _listed_pages(DOCS))
def test_every_top_level_page_is_in_the_site_toctree(page):
    # api.rst is written by conf.py at build time
    assert _in_toctree(page, DOCS / "index.rst"), (
        f"docs/{page}.rst is in no toctree of docs/index.rst"
    )


def test_the_site_toctree_names_the_api_and_the_migration_guide():
    assert _in_toctree("api", DOCS / "index.rst")
    assert _in_toctree("migration", DOCS / "index.rst")
