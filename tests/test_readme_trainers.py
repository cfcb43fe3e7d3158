"""The README's trainer snippets are the code of the passing trainer tests, word for word.

Each block between ``# README: TITLE -- begin`` and ``# README: TITLE -- end`` in tests/trainers
must appear, dedented, in README.md; editing either side alone fails here (no trainer needed).
"""

from __future__ import annotations

import re
import textwrap

from conftest import REPO

BLOCK = re.compile(r"^[ \t]*# README: (?P<title>.+?) -- begin\n(?P<body>.*?)^[ \t]*# README: (?P=title) -- end$",
                   re.S | re.M)


def snippets() -> dict[str, str]:
    found = {}
    for path in sorted((REPO / "tests" / "trainers").glob("*.py")):
        for m in BLOCK.finditer(path.read_text(encoding="utf-8")):
            found[f"{path.name}: {m['title']}"] = textwrap.dedent(m["body"]).strip("\n")
    return found


def test_every_trainer_snippet_in_the_readme_is_copied_from_a_test() -> None:
    found = snippets()
    assert len(found) >= 7  # TRL SFT data + trainer, GRPO data + reward + trainer, LLaMA-Factory, torchtune
    readme = REPO.joinpath("README.md").read_text(encoding="utf-8")
    missing = [name for name, body in found.items() if body not in readme]
    assert not missing, f"README.md lacks these test snippets verbatim: {missing}"
