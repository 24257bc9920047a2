"""Check that every internal link of the built site points somewhere.

Usage: ``python docs/check_links.py docs/_build/html``. Every ``href`` and
``src`` of every HTML page that is not an external URL must name a file of
the build, and its ``#fragment``, if any, an ``id`` (or ``name``) in that
file; no page may hold markup that docutils left unresolved ("problematic"). Prints each broken link and exits with status 1 if there is one.
"""

import sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit


class _Page(HTMLParser):
    def __init__(self):
        super().__init__()
        self.links = []
        self.anchors = set()
        self.problematic = 0

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if "problematic" in (attrs.get("class") or "").split():
            self.problematic += 1  # markup docutils could not resolve
        for key in ("id", "name"):
            if attrs.get(key):
                self.anchors.add(attrs[key])
        for key in ("href", "src"):
            if attrs.get(key):
                self.links.append(attrs[key])


def _parse(path):
    page = _Page()
    page.feed(path.read_text(encoding="utf-8", errors="replace"))
    return page


def broken_links(root):
    root = Path(root).resolve()
    # _static holds the theme's Jinja macros, not pages
    pages = {
        path: _parse(path)
        for path in root.rglob("*.html")
        if "_static" not in path.relative_to(root).parts
    }
    broken = []
    for path, page in pages.items():
        if page.problematic:
            broken.append(f"{path.relative_to(root)}: unresolved markup")
        for link in page.links:
            parts = urlsplit(link)
            if parts.scheme or parts.netloc or link.startswith(("mailto:", "data:")):
                continue
            target = (
                (path.parent / unquote(parts.path)).resolve() if parts.path else path
            )
            if target.is_dir():
                target = target / "index.html"
            if not target.exists():
                broken.append(f"{path.relative_to(root)}: {link} (no such file)")
                continue
            if parts.fragment and target.suffix == ".html":
                anchors = (pages.get(target) or _parse(target)).anchors
                if unquote(parts.fragment) not in anchors:
                    broken.append(f"{path.relative_to(root)}: {link} (no such anchor)")
    return len(pages), broken


if __name__ == "__main__":
    n_pages, broken = broken_links(
        sys.argv[1] if len(sys.argv) > 1 else "docs/_build/html"
    )
    for line in broken:
        print(line)
    print(f"{n_pages} pages checked, {len(broken)} broken internal links or markup")
    sys.exit(1 if broken else 0)
