"""Change a YAML file of the project and keep every other byte of it: comments, quotes, layout.

Developers and staff edit the same files (domain/, data/, clinic.yml), so a change made in
the console must look as if a careful person had typed it: only the changed lines differ.
ruamel.yaml's round trip (already installed with Rasa) keeps comments, quotes and block
styles; where it would still re-write an untouched line its own way (it writes the flow
list `[{type: custom}]` as `[type: custom]`), `splice` puts the original line back: the
file is dumped once unchanged and once changed, and only the lines that differ between
those two dumps are taken from the change.
"""

from __future__ import annotations

import difflib
import io
import os
import tempfile
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError
from ruamel.yaml.scalarstring import DoubleQuotedScalarString, FoldedScalarString, LiteralScalarString

# Indentation of the project's files: domain/ and clinic.yml indent list items under their key
# (mapping 2, sequence 4, offset 2); data/ writes the top-level list flush left (2, 2, 0).
LAYOUTS = ((2, 4, 2), (2, 2, 0))
FOLD_AT = 80  # a folded answer's lines (`text: >-`) are at most this long, as in domain/faq.yml


def plain_part(name: str) -> str:
    """Which part of the assistant a file holds, in staff's words (never the file's name)."""
    from staff.service.plain import part  # here: plain reads common.names (Rasa), yamlfile need not

    return part(name)


class LayoutError(ValueError):
    """A file cannot be changed without re-writing lines staff did not change; says which file."""


def _yaml(layout: tuple[int, int, int]) -> YAML:
    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    yaml.width = 4096  # never wrap a long line the file keeps on one line
    yaml.indent(mapping=layout[0], sequence=layout[1], offset=layout[2])
    return yaml


def _dump(yaml: YAML, data: Any) -> str:
    out = io.StringIO()
    yaml.dump(data, out)
    return out.getvalue()


@dataclass
class YamlFile:
    """One YAML file opened for a change: `data` is changed in place, then `text()` is written."""

    path: Path
    name: str  # as staff see it, e.g. domain/faq.yml
    original: str
    data: Any
    yaml: YAML
    normal: str  # ruamel's dump of the unchanged file

    def text(self) -> str:
        """The file's new text: the original, with only the changed lines replaced."""
        return splice(self.original, self.normal, _dump(self.yaml, self.data))


# The layout each recently opened text is re-written in most faithfully, and ruamel's dump of it
# in that layout (both depend on the text alone): a save opens every file of a topic, the
# round trip is slow (about 0.1 s a file), and most files are opened again unchanged.
_LAYOUTS_KEPT = 32
_layouts: dict[str, tuple[tuple[int, int, int], str]] = {}


def open_yaml(path: Path, name: str) -> YamlFile:
    """Read a YAML file for a change, in the layout (indentation) that re-writes it most faithfully."""
    original = path.read_text(encoding="utf-8")
    best: YamlFile | None = None
    best_changes, best_layout = -1, LAYOUTS[0]
    known = _layouts.get(original)
    for layout in [known[0]] if known else LAYOUTS:
        yaml = _yaml(layout)
        try:
            data = yaml.load(original)
        except YAMLError as error:
            raise LayoutError(
                f"The files behind {plain_part(name)} cannot be read just now (a developer's edit left "
                "one the console cannot read). Nothing was changed: tell a developer."
            ) from error
        normal = known[1] if known else _dump(yaml, data)
        changes = sum(a != b for a, b in zip(original.splitlines(), normal.splitlines()))
        changes += abs(len(original.splitlines()) - len(normal.splitlines())) * 1000
        if best is None or changes < best_changes:
            best, best_changes = YamlFile(path, name, original, data, yaml, normal), changes
            best_layout = layout
    assert best is not None
    if known is None:
        if len(_layouts) >= _LAYOUTS_KEPT:
            _layouts.clear()
        _layouts[original] = (best_layout, best.normal)
    if len(best.original.splitlines()) != len(best.normal.splitlines()):
        raise LayoutError(
            f"The files behind {plain_part(name)} are laid out in a way the console cannot keep (some "
            "lines would be re-written): ask a developer to make this change"
        )
    return best


def splice(original: str, normal: str, changed: str) -> str:
    """`original` with the lines that differ between `normal` and `changed` replaced.

    `normal` is the round-trip dump of `original` without the change; it has the same number
    of lines (open_yaml checks), so its lines and the original's correspond one to one.
    """
    before = original.splitlines(keepends=True)
    same = normal.splitlines(keepends=True)
    after = changed.splitlines(keepends=True)
    result: list[str] = []
    matcher = difflib.SequenceMatcher(None, same, after, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            result.extend(before[i1:i2])
        else:
            result.extend(after[j1:j2])
    text = "".join(result)
    if original.endswith("\n") and not text.endswith("\n"):
        text += "\n"
    return text


def write_atomically(path: Path, text: str) -> None:
    """Replace a file's text in one step (a reader never sees half a file), keeping its mode."""
    mode = path.stat().st_mode if path.exists() else 0o644
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="") as file:
            file.write(text)
        os.chmod(temporary, mode & 0o777)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def one_line(text: str) -> str:
    """Text with every run of spaces and line breaks made one space."""
    return " ".join(text.split())


def answer_text(text: str) -> Any:
    r"""An answer as the project writes it: a folded block (`>-`), or a quoted string.

    An answer of several lines (a list of bullets) is written in double quotes, its line breaks as \n.
    """
    lines = [one_line(line) for line in text.replace("\r\n", "\n").split("\n")]
    lines = [line for line in lines if line]
    if len(lines) > 1:
        return DoubleQuotedScalarString("\n".join(lines))
    value = FoldedScalarString(lines[0] if lines else "")
    wrapped = textwrap.wrap(value, FOLD_AT, break_long_words=False, break_on_hyphens=False)
    # The space between wrapped line k and k+1 is where the block folds.
    value.fold_pos = [sum(len(line) for line in wrapped[: k + 1]) + k for k in range(len(wrapped) - 1)]  # type: ignore[attr-defined]
    return value


def quoted(text: str) -> DoubleQuotedScalarString:
    """A one-line string in double quotes, as titles, sources and quotes are written."""
    return DoubleQuotedScalarString(one_line(text))


def examples_block(examples: list[str]) -> LiteralScalarString:
    """An NLU `examples: |` block: one `- example` per line."""
    return LiteralScalarString("".join(f"- {one_line(example)}\n" for example in examples))
