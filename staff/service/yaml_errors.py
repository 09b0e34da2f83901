"""What is wrong with a YAML file staff edited, in their words: the line and the likely cause.

PyYAML says `expected <block end>, but found '<scalar>'`; staff need "a quote is not closed on
line 12: ...". Used by `make validate` (domain/, data/, tests/, clinic.yml) and the console.
"""

from __future__ import annotations

from dataclasses import dataclass

import yaml

TAB = "a tab at the start of the line: use spaces (the Tab key makes tabs)"
QUOTE = (
    "a quote mark is not closed, or the text contains the quote mark it is written in: write the "
    "text in double quotes, with no other double quote inside it"
)
COLON = "a colon (:) inside a text: put the whole text in double quotes"
INDENT = (
    "this line is not lined up with the lines around it: start it with the same number of spaces "
    "as the line it belongs with (the line above, or the other items of its list)"
)
MISSING_COLON = "a line is missing its colon (:) after the name, or a quote mark is not closed"
UNKNOWN = "the file cannot be read here: check the spaces at the start of the lines and the quote marks"


@dataclass(frozen=True)
class YamlProblem:
    """Where a YAML file cannot be read (1-based line) and the likely cause, in plain words."""

    line: int
    cause: str


def _unbalanced_quote(lines: list[str], first: int, last: int) -> int | None:
    """The first line (0-based) from first to last whose text has an unclosed quote mark."""
    for number in range(first, min(last, len(lines) - 1) + 1):
        text = lines[number].split(": ", 1)[-1].strip()
        for quote in ('"', "'"):
            inner = text.replace("\\" + quote, "") if quote == '"' else text.replace("''", "")
            if inner.startswith(quote) and (inner.count(quote) % 2 == 1 or not inner.endswith(quote)):
                return number
    return None


def explain(error: yaml.YAMLError, text: str) -> YamlProblem:
    """The line and likely cause of a YAML syntax error in `text`."""
    problem = str(getattr(error, "problem", "") or "")
    mark = getattr(error, "problem_mark", None)
    context = getattr(error, "context_mark", None)
    line = mark.line if mark else 0
    lines = text.splitlines()
    if "\t" in problem or (
        0 <= line < len(lines) and lines[line][: len(lines[line]) - len(lines[line].lstrip())].count("\t")
    ):
        return YamlProblem(line + 1, TAB)
    start = context.line if context else line
    quoted = _unbalanced_quote(lines, start, line)
    if quoted is not None and ("scalar" in problem or "end of stream" in problem or "expected" in problem):
        return YamlProblem(quoted + 1, QUOTE)
    if "mapping values are not allowed" in problem:
        return YamlProblem(line + 1, COLON)
    if "expected <block end>" in problem or "did not find expected" in problem:
        return YamlProblem(line + 1, INDENT)
    if "could not find expected ':'" in problem:
        return YamlProblem(line + 1, MISSING_COLON)
    return YamlProblem(line + 1, UNKNOWN)
