"""The README stays short and every relative link in it and in docs/ leads to a file."""
import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _pages():
    yield os.path.join(ROOT, "README.md")
    docs = os.path.join(ROOT, "docs")
    for name in sorted(os.listdir(docs)):
        if name.endswith(".md"):
            yield os.path.join(docs, name)


def test_readme_is_short():
    assert len(open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()) <= 7000


def test_relative_links_resolve():
    broken = []
    for page in _pages():
        text = open(page, encoding="utf-8").read()
        for target in re.findall(r"\]\(([^)#\s]+)\)", text):
            if "://" in target:
                continue
            if not os.path.exists(os.path.join(os.path.dirname(page), target)):
                broken.append(f"{os.path.relpath(page, ROOT)}: {target}")
    assert not broken, broken
