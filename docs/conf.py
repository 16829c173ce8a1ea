"""The documentation site: ``make docs`` (Sphinx, Markdown pages through MyST, the API reference's
docstrings through autodoc), warnings as errors."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import django

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "demo_project.settings")
django.setup()  # autodoc imports sioless, which reads settings

project = "sioless"
extensions = ["myst_parser", "sphinx.ext.autodoc"]
source_suffix = {".md": "markdown"}
exclude_patterns = ["_build"]
myst_heading_anchors = 3
autodoc_member_order = "bysource"
html_theme = "alabaster"
html_title = "sioless: socket.io for Django"


def setup(app: object) -> None:
    """HAProxy's configuration, which Pygments has no lexer for, shown as plain text."""
    from pygments.lexers.special import TextLexer

    app.add_lexer("haproxy", TextLexer)  # type: ignore[attr-defined]
