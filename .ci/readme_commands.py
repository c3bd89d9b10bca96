"""Print the README's set-up commands, one a line: the command lines of the first ```bash
block of its "Quick start" section (comment lines skipped). CI runs exactly these."""

from __future__ import annotations

import sys
from pathlib import Path


def readme_commands(readme: str) -> list[str]:
    """The command lines of the first bash block after the ``## Quick start`` heading."""
    text = readme.split("## Quick start", 1)[-1]
    block = text.split("```bash", 1)[1].split("```", 1)[0]
    return [line.strip() for line in block.splitlines()
            if line.strip() and not line.strip().startswith("#")]


if __name__ == "__main__":
    for command in readme_commands(Path(sys.argv[1]).read_text()):
        print(command)
