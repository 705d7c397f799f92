"""Benchmarks: scripts that print tables and JSON (``make bench``), never timed tests."""

import argparse


def sweep_parser(doc: str, *, runs: int, seed: int) -> argparse.ArgumentParser:
    """The options every benchmark over the envelope sweep takes: ``--runs N --seed S --jobs J``
    (its first paragraph of ``doc`` as the description); the caller may add its own."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=runs)
    parser.add_argument("--seed", type=int, default=seed)
    parser.add_argument("--jobs", type=int, default=2)
    return parser
