"""Reads include/cebra.h (as cbindgen writes it) into a list of declarations.

Shared by gen_libcebra.py (which writes the Julia low-level module from it) and check_julia.py (which
checks the Julia sources against it). Every line of the header must be understood: anything this
parser does not recognise is an error, so a new kind of declaration cannot be skipped silently.
"""

import re
from dataclasses import dataclass, field


@dataclass
class Param:
    ctype: str  # normalised C type, e.g. "const float *", "struct CebraModel **", "int64_t"
    name: str


@dataclass
class Decl:
    kind: str  # "define" | "opaque" | "alias" | "callback" | "function"
    name: str
    doc: str = ""
    value: str = ""  # define: the value; alias: the aliased C type
    ret: str = ""  # function / callback: normalised return type
    params: list = field(default_factory=list)  # function / callback: [Param]


class HeaderError(Exception):
    pass


# Lines that carry no declaration: include guard, includes, the extern "C" wrapper, blank lines.
_SKIP = [
    re.compile(r"^#ifndef CEBRA_H$"),
    re.compile(r"^#define CEBRA_H$"),
    re.compile(r"^#endif\s*(/\*.*\*/)?$"),
    re.compile(r"^#include <[a-z]+\.h>$"),
    re.compile(r"^#ifdef __cplusplus$"),
    re.compile(r'^extern "C" \{$'),
    re.compile(r"^\}\s*//\s*extern \"C\"$"),
    re.compile(r"^#endif\s*//\s*__cplusplus$"),
    re.compile(r"^$"),
]


def normalise_type(text):
    """One spelling per C type: single spaces, '*' separated ("const float *", "struct X **")."""
    text = re.sub(r"\s*\*\s*", " * ", text.strip())
    text = re.sub(r"\s+", " ", text).strip()
    return text.replace("* *", "**").replace("* *", "**")


def _split_param(text):
    m = re.match(r"^(.*?[\s\*])([A-Za-z_][A-Za-z0-9_]*)$", text.strip())
    if not m:
        raise HeaderError(f"cannot read the parameter '{text}'")
    return Param(normalise_type(m.group(1)), m.group(2))


def _params(text):
    text = text.strip()
    if text == "void" or text == "":
        return []
    return [_split_param(p) for p in text.split(",")]


def _doc(comment_lines):
    """The text of a /** ... */ comment, without the comment markers."""
    out = []
    for line in comment_lines:
        line = line.strip()
        if line in ("/**", "*/"):
            continue
        line = re.sub(r"^\*\s?", "", line)
        out.append(line)
    return "\n".join(out).strip()


def parse(text):
    """The declarations of the header, in header order."""
    lines = text.splitlines()
    decls = []
    doc = ""
    i = 0
    # The file-level comments at the top (before the first declaration) are not documentation of a
    # declaration: a /* ... */ block (not /**) is skipped.
    while i < len(lines):
        raw = lines[i]
        line = raw.strip()
        if line.startswith("/**"):
            block = [line]
            while not line.endswith("*/"):
                i += 1
                line = lines[i].strip()
                block.append(line)
            doc = _doc(block)
            i += 1
            continue
        if line.startswith("/*"):
            while not line.endswith("*/"):
                i += 1
                line = lines[i].strip()
            i += 1
            continue
        if any(p.match(line) for p in _SKIP):
            i += 1
            continue
        m = re.match(r"^#define (CEBRA_[A-Z0-9_]+) (-?[0-9]+)$", line)
        if m:
            decls.append(Decl("define", m.group(1), doc, value=m.group(2)))
            doc = ""
            i += 1
            continue
        if line.startswith("#"):
            raise HeaderError(f"line {i + 1}: unrecognised preprocessor line '{line}'")
        # A C declaration, possibly over several lines, up to ';'.
        stmt = line
        start = i
        while not stmt.endswith(";"):
            i += 1
            if i >= len(lines):
                raise HeaderError(f"line {start + 1}: declaration without ';'")
            stmt += " " + lines[i].strip()
        i += 1
        stmt = re.sub(r"\s+", " ", stmt[:-1]).strip()
        decls.append(_declaration(stmt, doc, start + 1))
        doc = ""
    return decls


def _declaration(stmt, doc, lineno):
    m = re.match(r"^typedef struct ([A-Za-z_]\w*) ([A-Za-z_]\w*)$", stmt)
    if m:
        if m.group(1) != m.group(2):
            raise HeaderError(f"line {lineno}: struct typedef with two names: '{stmt}'")
        return Decl("opaque", m.group(1), doc)
    m = re.match(r"^typedef (.+?) \(\*([A-Za-z_]\w*)\)\((.*)\)$", stmt)
    if m:
        return Decl("callback", m.group(2), doc, ret=normalise_type(m.group(1)), params=_params(m.group(3)))
    m = re.match(r"^typedef ([A-Za-z_][\w ]*?) ([A-Za-z_]\w*)$", stmt)
    if m:
        return Decl("alias", m.group(2), doc, value=normalise_type(m.group(1)))
    m = re.match(r"^(.+?[\s\*])(cebra_\w+)\((.*)\)$", stmt)
    if m:
        return Decl("function", m.group(2), doc, ret=normalise_type(m.group(1)), params=_params(m.group(3)))
    raise HeaderError(f"line {lineno}: unrecognised declaration '{stmt}'")


def parse_file(path):
    with open(path, encoding="utf-8") as f:
        return parse(f.read())


def functions(decls):
    return [d for d in decls if d.kind == "function"]
