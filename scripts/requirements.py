"""Print the project's requirements (runtime plus the named extras) from pyproject.toml.

Used by the Makefile to install dependencies without building the package twice:
the extension itself is built by ``maturin develop``.
"""

import sys
import tomllib
from pathlib import Path


def main(extras: list[str]) -> None:
    project = tomllib.loads(Path("pyproject.toml").read_text())["project"]
    requirements = list(project["dependencies"])
    for extra in extras:
        requirements += project["optional-dependencies"][extra]
    print("\n".join(dict.fromkeys(requirements)))


if __name__ == "__main__":
    main(sys.argv[1:])
