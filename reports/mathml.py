"""A whitelist sanitizer for the MathML that findings carry.

The ``mathml`` string of a finding comes from our printer, but a report may have
been edited or produced by someone else, so it is treated as untrusted: it is
parsed as XML, every element and attribute is checked against a small whitelist
of presentation MathML, and the tree is written out again with every text and
attribute escaped. Anything outside the whitelist rejects the whole formula (the
caller then shows the plain expression instead): half a formula would be
misleading, and silently "repairing" markup is how sanitizers get bypassed.

Example:
    >>> sanitize_mathml('<math xmlns="http://www.w3.org/1998/Math/MathML"><mi>x</mi></math>')
    '<math xmlns="http://www.w3.org/1998/Math/MathML"><mi>x</mi></math>'
    >>> sanitize_mathml('<math><mi onclick="alert(1)">x</mi></math>') is None
    True
"""

from __future__ import annotations

import html
import xml.etree.ElementTree as ET

__all__ = ["sanitize_mathml", "MATHML_NS", "ELEMENTS"]

MATHML_NS = "http://www.w3.org/1998/Math/MathML"

# Token elements hold text only; layout elements hold elements only.
TOKENS = frozenset({"mi", "mn", "mo", "mtext"})
LAYOUT = frozenset({"math", "mrow", "msub", "msup", "mfrac", "msqrt", "mtable", "mtr", "mtd"})
EMPTY = frozenset({"mspace"})
ELEMENTS = TOKENS | LAYOUT | EMPTY

# (element, attribute) -> allowed values. ``xmlns`` never shows up as an attribute:
# ElementTree turns it into the tag's namespace, which is checked separately.
ATTRIBUTES = {("mo", "stretchy"): frozenset({"true", "false"}), ("mtable", "columnalign"): frozenset({"left"})}

MAX_CHARS = 200_000  # a shrunk expression is tiny; anything huge is not ours
MAX_DEPTH = 200  # below Python's recursion limit, far above any real formula


class _Rejected(Exception):
    """The markup leaves the whitelist."""


def sanitize_mathml(text: object) -> str | None:
    """Presentation MathML rebuilt from a whitelist, or None if ``text`` leaves it.

    Args:
        text: a ``<math>`` element as a string (untrusted).

    Returns:
        Safe markup to embed in HTML as is, or None: then show the plain expression.

    Example:
        >>> sanitize_mathml('<math><mtext>&lt;b&gt;</mtext></math>')
        '<math xmlns="http://www.w3.org/1998/Math/MathML"><mtext>&lt;b&gt;</mtext></math>'
        >>> sanitize_mathml('<math><mtext><b>x</b></mtext></math>') is None
        True
    """
    if not isinstance(text, str) or not text.strip() or len(text) > MAX_CHARS:
        return None
    # No DOCTYPE, ENTITY, comment, CDATA or processing instruction: a DTD is how
    # entity-expansion and external-entity tricks get in, and our printer never
    # writes any of these. Character references (&#x2061;) stay allowed.
    if "<!" in text or "<?" in text:
        return None
    try:
        root = ET.fromstring(text)
        out: list[str] = []
        _write(root, out, 0)
    except (ET.ParseError, _Rejected, ValueError):
        return None
    return "".join(out)


def _name(tag: str, depth: int) -> str:
    if tag.startswith("{"):
        namespace, _, name = tag[1:].partition("}")
        if namespace != MATHML_NS:
            raise _Rejected(tag)
    else:
        name = tag
    if name not in ELEMENTS or (name == "math") != (depth == 0):
        raise _Rejected(tag)
    return name


def _text(text: str | None) -> str:
    return html.escape(text or "", quote=True)


def _write(element: ET.Element, out: list[str], depth: int) -> None:
    if depth > MAX_DEPTH:
        raise _Rejected("too deep")
    name = _name(element.tag, depth)
    attributes = []
    for key, value in element.attrib.items():
        allowed = ATTRIBUTES.get((name, key))
        if allowed is None or value not in allowed:
            raise _Rejected(key)
        attributes.append(f' {key}="{_text(value)}"')
    if name == "math":
        attributes.insert(0, f' xmlns="{MATHML_NS}"')
    out.append(f"<{name}{''.join(attributes)}>")
    if name in TOKENS:
        if len(element):  # e.g. <mtext><script/></mtext>
            raise _Rejected("element inside a token")
        out.append(_text(element.text))
    else:
        if (element.text or "").strip():
            raise _Rejected("text in a layout element")
        for child in element:
            _write(child, out, depth + 1)
            if (child.tail or "").strip():
                raise _Rejected("text in a layout element")
    out.append(f"</{name}>")
