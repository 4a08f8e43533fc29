"""User-facing demo messages: one line each, written through tqdm so they never garble the progress bar."""
import sys

__all__ = ["say"]


def say(msg: str, err: bool = False) -> None:
    """Print ``msg`` on stdout (or stderr with ``err``) above the progress bar."""
    from tqdm import tqdm

    tqdm.write(msg, file=sys.stderr if err else sys.stdout)
