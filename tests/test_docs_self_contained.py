"""The repository explains itself: no file points at documents outside it, and every relative link resolves."""
import os
import re
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Built from pieces so this file does not match itself.
OUTSIDE = [re.compile(p) for p in (r"\.\./" + "shared", r"\b" + "DESIGN" + r"(\.md| §)",
                                   r"\b" + "CONVENTIONS" + r"(\.md|:| §)", "feasibility" + " experiment")]
TEXT_EXT = (".py", ".md", ".yaml", ".yml", ".sh", ".cfg", ".toml", ".txt", ".json", "Makefile", "run")


def repo_files():
    out = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                         capture_output=True, text=True, check=True).stdout.split()
    me = os.path.relpath(__file__, ROOT)
    return [f for f in out if f.endswith(TEXT_EXT) and f != me and os.path.isfile(os.path.join(ROOT, f))]


def test_no_reference_outside_the_repository():
    offenders = []
    for f in repo_files():
        with open(os.path.join(ROOT, f), encoding="utf-8", errors="replace") as fh:
            for n, line in enumerate(fh, 1):
                if any(p.search(line) for p in OUTSIDE):
                    offenders.append(f"{f}:{n}: {line.strip()[:100]}")
    assert not offenders, "references to documents outside the repository:\n" + "\n".join(offenders)


LINK = re.compile(r"\]\(([^)#\s]+)(#[^)]*)?\)")


@pytest.mark.parametrize("md", [f for f in repo_files() if f.endswith(".md")] or ["README.md"])
def test_markdown_links_resolve_inside_the_repository(md):
    base = os.path.dirname(os.path.join(ROOT, md))
    with open(os.path.join(ROOT, md), encoding="utf-8") as fh:
        text = fh.read()
    for target, _ in LINK.findall(text):
        if re.match(r"[a-z]+://", target) or target.startswith("mailto:"):
            continue
        path = os.path.normpath(os.path.join(base, target))
        assert path.startswith(ROOT + os.sep), f"{md} links outside the repository: {target}"
        assert os.path.exists(path), f"{md} links to a missing file: {target}"
