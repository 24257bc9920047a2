"""Sphinx configuration of the linmetric documentation.

Build with ``python -m sphinx -W --keep-going -b html docs docs/_build/html``
(see README.md). Three pieces are generated at build time, so that nothing
written by hand can drift from the code:

- ``api.rst``: an autosummary of every name in ``linmetric.__all__`` and
  ``linmetric.datasets.__all__`` (one page per class and function);
- ``generated/benchmark_table.rst``: the table of the "choosing a learner"
  page, measured here by the benchmark suite's public functions;
- ``auto_examples/``: the gallery, run by sphinx-gallery.
"""

import os
import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

from numpydoc.xref import DEFAULT_LINKS as _numpydoc_default_links  # noqa: E402

import linmetric  # noqa: E402
import linmetric.datasets  # noqa: E402

project = "linmetric"
author = "linmetric developers"
copyright = "linmetric developers"
release = linmetric.__version__
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
]

templates_path = ["_templates"]
exclude_patterns = [
    "_build",
    "**.ipynb_checkpoints",
    "gallery/*.rst",
    "generated/benchmark_table.rst",  # included by choosing.rst
]
root_doc = "index"
nitpicky = True
# Names in the docstrings that point outside this site (no network at build
# time, so no intersphinx): they are rendered as code, not as links.
nitpick_ignore_regex = [
    (r"py:obj", r".*"),
    (r"py:.*", r"(sklearn|numpy|np|scipy|dask|matplotlib)(\..*)?"),
    (r"py:.*", r"(array-like|ndarray|callable|optional|default|of|shape|or)"),
    (r"py:.*", r"(int|float|str|bool|dict|list|tuple|None|object|iterable)"),
    (r"py:.*", r"(RandomState|instance|Pipeline|ConvergenceWarning|path-like)"),
]

# autodoc / autosummary / numpydoc
autosummary_generate = True
autodoc_default_options = {"members": True, "inherited-members": True}
autodoc_typehints = "none"
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
# Types such as "ndarray of shape (n_iter_,)" are rendered by numpydoc, not
# parsed as reStructuredText (where "n_iter_" would be a link target).
# With no intersphinx, numpydoc's default links (python:int, numpy:array_like)
# would point nowhere: every type word is kept as plain code instead
# (py:obj references that are not nitpicked; linmetric names still link).
numpydoc_xref_param_type = True
numpydoc_xref_ignore = {"of", "or", "shape", "default", "optional", "instance"}
numpydoc_xref_aliases = {name: name for name in _numpydoc_default_links}

# HTML
html_theme = "pydata_sphinx_theme"
html_title = f"linmetric {release}"
html_static_path = ["_static"]
html_css_files = ["linmetric.css"]
html_theme_options = {
    "navbar_align": "left",
    # a search icon, not a search field: six sections fit in one line at
    # 1280 pixels
    "navbar_persistent": ["search-button"],
    "show_toc_level": 2,
    "navigation_with_keys": False,
    # the gallery's pages and the wide table get the width of the right column
    "secondary_sidebar_items": {
        "index": ["page-toc", "sourcelink"],
        "user_guide": ["page-toc", "sourcelink"],
        "learners/*": ["page-toc", "sourcelink"],
        "api": ["page-toc", "sourcelink"],
        "generated/*": ["page-toc", "sourcelink"],
        "auto_examples/*": [],
        "choosing": [],
    },
    "footer_start": ["copyright"],
    "footer_end": ["sphinx-version"],
}
html_sidebars = {"index": [], "choosing": []}
html_show_sourcelink = True

# sphinx-gallery: every script in gallery/ named plot_*.py is run at build
# time; a failing script fails the build.
sphinx_gallery_conf = {
    "examples_dirs": ["gallery"],
    "gallery_dirs": ["auto_examples"],
    "filename_pattern": r"/plot_",
    "abort_on_example_error": True,
    "within_subsection_order": "_ext.gallery_order.ExampleOrder",
    "download_all_examples": True,
    "remove_config_comments": True,
    "image_scrapers": ("matplotlib",),
    "matplotlib_animations": False,
    "reference_url": {"linmetric": None},
    "doc_module": ("linmetric",),
    "backreferences_dir": "generated/backreferences",
    "write_computation_times": True,
}


def _local_mathjax():
    """Copy MathJax 3 (from the ``django-static-mathjax`` wheel of the docs
    extra) into ``generated/static/mathjax`` so that the formulas render when the
    site is opened from disk with no network; None when it is not installed.
    """
    import importlib.util
    import shutil

    spec = importlib.util.find_spec("mathjax")
    if spec is None or not spec.submodule_search_locations:
        return None
    es5 = Path(spec.submodule_search_locations[0]) / "static" / "mathjax" / "es5"
    if not (es5 / "tex-chtml.js").is_file():
        return None
    target = HERE / "generated" / "static" / "mathjax"
    fonts = Path("output") / "chtml" / "fonts" / "woff-v2"
    if not (target / "tex-chtml.js").is_file():
        (target / fonts).mkdir(parents=True, exist_ok=True)
        shutil.copy2(es5 / "tex-chtml.js", target / "tex-chtml.js")
        shutil.copytree(es5 / fonts, target / fonts, dirs_exist_ok=True)
        shutil.copy2(es5.parent / "LICENSE", target / "LICENSE")
    return target


if _local_mathjax() is not None:
    # relative to _static; fonts load from output/ beside the script
    html_static_path.append("generated/static")
    mathjax_path = "mathjax/tex-chtml.js"

# Keep the numerical libraries to the cores CI has.
os.environ.setdefault("OMP_NUM_THREADS", "2")


def _write_if_changed(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists() or path.read_text() != text:
        path.write_text(text)


def write_api_page():
    """``api.rst``: one autosummary entry per public class and function."""
    classes = [
        name
        for name in linmetric.__all__
        if name != "__version__" and isinstance(getattr(linmetric, name), type)
    ]
    functions = [
        n for n in linmetric.__all__ if n != "__version__" and n not in classes
    ]
    lines = [
        ".. This file is written by conf.py from linmetric.__all__; do not edit.",
        "",
        "API reference",
        "=============",
        "",
        "Every public class and function, documented from its docstring. The",
        "list is built from ``linmetric.__all__`` and",
        "``linmetric.datasets.__all__``, so a new learner appears here by itself.",
        "",
        "Learners",
        "--------",
        "",
        ".. currentmodule:: linmetric",
        "",
        ".. autosummary::",
        "   :toctree: generated",
        "   :template: class.rst",
        "",
        *(f"   {name}" for name in classes),
        "",
    ]
    if functions:
        lines += [
            "Functions",
            "---------",
            "",
            ".. autosummary::",
            "   :toctree: generated",
            "",
            *(f"   {name}" for name in functions),
            "",
        ]
    lines += [
        "Data sets",
        "---------",
        "",
        ".. automodule:: linmetric.datasets",
        "   :no-members:",
        "   :no-inherited-members:",
        "",
        ".. currentmodule:: linmetric.datasets",
        "",
        ".. autosummary::",
        "   :toctree: generated",
        "",
        *(f"   {name}" for name in linmetric.datasets.__all__),
        "",
    ]
    _write_if_changed(HERE / "api.rst", "\n".join(lines))


write_api_page()


def skip_scikit_learn_members(app, what, name, obj, skip, options):
    """Document the learners' own methods, not those inherited from sklearn.

    Those (``get_params``, ``set_output``, the metadata-routing requests)
    are documented by scikit-learn and point into its site.
    """
    module = getattr(obj, "__module__", None) or ""
    if module.startswith("sklearn"):
        return True
    return skip


_FIELD = re.compile(r"^(\s*\w+ : )(.*)$")
_FITTED_NAME = re.compile(r"(?<![`\w])([A-Za-z]\w*_)(?=[,)])")


def quote_fitted_names(app, what, name, obj, options, lines):
    """Quote names such as ``n_iter_`` in "name : type" lines.

    Docstrings write shapes as ``(n_iter_,)`` as scikit-learn does; in
    reStructuredText a word ending in ``_`` is a link, so the type of a
    parameter or attribute is quoted before numpydoc renders it.
    """
    for index, line in enumerate(lines):
        match = _FIELD.match(line)
        if match:
            lines[index] = match[1] + _FITTED_NAME.sub(r"``\1``", match[2])


def setup(app):
    from _ext.benchmark_table import write_benchmark_table

    app.connect("autodoc-skip-member", skip_scikit_learn_members)
    # before numpydoc (priority 500) turns the sections into markup
    app.connect("autodoc-process-docstring", quote_fitted_names, priority=100)
    app.connect("builder-inited", lambda app: write_benchmark_table(HERE))
