"""Compile the decision path's modules (metamon_sp/compiled.py)."""

from __future__ import annotations

import sys

from metamon_sp import compiled


def main() -> None:
    if not compiled.enabled():
        print("METAMON_SP_COMPILED=0: nothing compiled, every module runs from its source")
        return
    try:
        built = compiled.build()
    except (compiled.BuildError, ValueError) as e:
        sys.exit(f"metamon_sp.compile: {e}")
    names = ", ".join(p.name for p in built)
    print(f"compiled {len(built)} module(s): {names}" if built else
          "compiled modules up to date")


if __name__ == "__main__":
    main()
