"""`python -m aggregator.indicators`: regenerate the README.md indicator table from the YAML definitions."""

from aggregator.indicators import load, write_readme

if __name__ == "__main__":
    print(f"wrote {write_readme()} ({len(load())} indicators)")
