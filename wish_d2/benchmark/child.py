"""Entry point of the benchmark's child processes: ``python -m wish_d2.benchmark.child KIND SPEC_JSON``.

A fresh interpreter per measurement keeps each peak RSS its own; the result is printed as one JSON line."""
import json
import sys


def main(argv=None) -> None:
    kind, spec = (argv or sys.argv[1:])[:2]
    spec = json.loads(spec)
    import torch

    torch.set_num_threads(int(spec.get("threads", 1)))
    import wish_d2  # noqa: F401  (registers everything; Detectron2 compat shims)

    if kind == "rss":
        from .rss import rss_child as run
    elif kind == "extract_rss":
        from .extraction import extract_rss_child as run
    else:
        raise SystemExit(f"unknown benchmark child {kind!r}")
    print(json.dumps(run(spec)))


if __name__ == "__main__":
    main()
