"""Reading YAML as `yaml.safe_load` does, with libyaml's parser where PyYAML has it.

Every process reads the project's YAML, many times over in the console (each page of stories
and answers, each save's checks). libyaml (PyYAML's C extension) parses it about ten times
faster; the values are the same, built by the same safe constructors.
"""

from __future__ import annotations

from typing import Any

import yaml

# libyaml's parser with PyYAML's safe constructors, when this PyYAML was built with it.
_LIBYAML = getattr(yaml, "CSafeLoader", None)


def load(text: str | bytes) -> Any:
    """`yaml.safe_load(text)`, parsed by libyaml where PyYAML has it.

    A text libyaml refuses is read again by PyYAML's own parser, so the error raised (which
    staff/service/yaml_errors.py turns into words) stays PyYAML's. libyaml accepts a few texts
    PyYAML refuses (a tab after a colon, as in "a:<tab>b"); Rasa's own reader accepts them too.
    """
    if _LIBYAML is not None:
        try:
            return yaml.load(text, Loader=_LIBYAML)  # a safe loader: no Python objects
        except yaml.YAMLError:
            pass
    return yaml.safe_load(text)
