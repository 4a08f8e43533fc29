"""Config text a user hands over, read safely: ``merge_config_file(cfg, path)`` and ``merge_config_overrides``.

yacs and Detectron2 read YAML with ``yaml.unsafe_load`` when a file holds a Python tag, so a config file (or its
``_BASE_``, or a hand detector's config) could run code on load. Every config the plugin reads goes through
:func:`merge_config_file` instead: a safe loader that also refuses duplicate keys and alias bombs, ``_BASE_``
resolved the way Detectron2 does (relative to the file; later bases override earlier ones and the file overrides
its bases) but with loops, URLs and anything that is not a file refused, then Detectron2's merge and version
upgrade. Every problem is one :class:`ConfigFileError` line naming the file.
"""
import os
from typing import Dict, List, Sequence, Tuple

import yaml


BASE_KEY = "_BASE_"
MAX_FILE_BYTES = 1 << 20  # a config is a few KB; a larger file is not one (and parsing it would take seconds)
MAX_NODES = 100_000  # YAML nodes after alias expansion: a config has hundreds, a "billion laughs" file billions
MAX_DEPTH = 64  # nesting levels: a config has fewer than ten; deeper input would exhaust the parser's recursion
MAX_FILES = 64  # files read for one config, bases included (a fan-out of repeated bases grows exponentially)


class ConfigError(ValueError):
    """One or more config values are invalid; the message names each key, its value and the allowed values."""


class ConfigFileError(ConfigError):
    """A config file (or a ``_BASE_`` of it, or a command-line override) cannot be used; the message names it."""


class StrictSafeLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` (no Python tags) that refuses duplicate keys, where the last would silently win,
    nesting past :data:`MAX_DEPTH` levels, and documents whose aliases expand past :data:`MAX_NODES` nodes or refer
    to themselves."""

    def compose_node(self, parent, index):
        self._depth = getattr(self, "_depth", 0) + 1
        try:
            if self._depth > MAX_DEPTH:
                raise yaml.composer.ComposerError(None, None, f"nested deeper than {MAX_DEPTH} levels",
                                                  self.peek_event().start_mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def get_single_node(self):
        node = super().get_single_node()
        if node is not None:
            _check_expanded_size(node)
        return node

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            seen = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":  # "<<: *base" may repeat keys by design
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    first = seen.setdefault(key, key_node.start_mark)
                except TypeError:  # unhashable key: SafeLoader's own error follows
                    break
                if first is not key_node.start_mark:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"duplicate key {key!r} (first at line {first.line + 1})", key_node.start_mark)
        return super().construct_mapping(node, deep=deep)


def _children(node) -> List:
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def _check_expanded_size(root) -> None:
    """Count the nodes of the document with every alias expanded, without expanding it (shared nodes are sized
    once); refuse a recursive alias or more than :data:`MAX_NODES` nodes."""
    sizes: Dict[int, int] = {}
    on_path = set()
    stack = [(root, False)]
    while stack:
        node, finished = stack.pop()
        key = id(node)
        if finished:
            on_path.discard(key)
            sizes[key] = 1 + sum(sizes[id(c)] for c in _children(node))
            if sizes[key] > MAX_NODES:
                raise yaml.composer.ComposerError(
                    None, None, f"aliases expand to more than {MAX_NODES} nodes (an alias bomb?)", node.start_mark)
            continue
        if key in sizes:
            continue
        if key in on_path:
            raise yaml.composer.ComposerError(None, None, "an alias refers to a node that contains it",
                                              node.start_mark)
        on_path.add(key)
        stack.append((node, True))
        stack.extend((c, False) for c in _children(node) if id(c) not in sizes)


def _yaml_problem(e: yaml.YAMLError) -> str:
    mark = getattr(e, "problem_mark", None)
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    problem = ", ".join(filter(None, [getattr(e, "context", None), getattr(e, "problem", None)])) or str(e)
    if "could not determine a constructor for the tag" in problem:
        problem = problem.replace("could not determine a constructor for the tag", "the tag") + \
            " is not allowed (configs are read with a safe YAML loader: no Python objects)"
    return where + " ".join(problem.split())


def _check_keys(data, path: str, prefix: str = "") -> None:
    for k, v in data.items():
        if not isinstance(k, str):
            raise ConfigFileError(f"{path}: key {k!r} under {prefix or 'the top level'} is not a string")
        if isinstance(v, dict):
            _check_keys(v, path, f"{prefix}{k}.")


def read_config_mapping(path: str) -> Dict:
    """The mapping of one YAML file (its ``_BASE_`` not resolved), read with :class:`StrictSafeLoader`."""
    if not isinstance(path, str) or not path:
        raise ConfigFileError(f"config file {path!r}: expected a file path")
    if not os.path.exists(path):
        raise ConfigFileError(f"{path}: config file not found")
    if os.path.isdir(path):
        raise ConfigFileError(f"{path}: is a directory, not a config file")
    if not os.path.isfile(path):
        raise ConfigFileError(f"{path}: is not a regular file")
    try:
        size = os.path.getsize(path)
        if size > MAX_FILE_BYTES:
            raise ConfigFileError(f"{path}: {size} bytes is too large for a config file (at most {MAX_FILE_BYTES})")
        with open(path, "rb") as f:
            data = yaml.load(f.read(), Loader=StrictSafeLoader)  # noqa: S506  the loader is a SafeLoader
    except OSError as e:
        raise ConfigFileError(f"{path}: cannot read the config file ({e.strerror or e})") from None
    except yaml.YAMLError as e:
        raise ConfigFileError(f"{path}: {_yaml_problem(e)}") from None
    except RecursionError:
        raise ConfigFileError(f"{path}: nested too deeply to be a config file") from None
    if data is None:
        raise ConfigFileError(f"{path}: the config file is empty")
    if not isinstance(data, dict):
        raise ConfigFileError(f"{path}: the top level is a {type(data).__name__}, not a mapping of config keys")
    _check_keys(data, path)
    return data


def _merge_a_into_b(a: Dict, b: Dict, path: str, prefix: str = "") -> None:
    """Detectron2's ``_BASE_`` merge (fvcore ``load_yaml_with_base``): values of ``a`` override ``b``, mappings
    merge key by key."""
    for k, v in a.items():
        if isinstance(v, dict) and k in b:
            if not isinstance(b[k], dict):
                raise ConfigFileError(f"{path}: {prefix}{k} is a mapping, but its base sets it to {_short(b[k])}")
            _merge_a_into_b(v, b[k], path, f"{prefix}{k}.")
        else:
            b[k] = v


def _base_path(base, path: str) -> str:
    if not isinstance(base, str) or not base.strip():
        raise ConfigFileError(f"{path}: {BASE_KEY} must be a file path or a list of file paths, got {base!r}")
    if "://" in base:
        raise ConfigFileError(f"{path}: {BASE_KEY} {base!r} is a URL; only local files are read")
    base = os.path.expanduser(base)
    return base if os.path.isabs(base) else os.path.join(os.path.dirname(path), base)


def load_config_dict(path: str) -> Dict:
    """The plain dict of ``path`` with its ``_BASE_`` chain merged in, checked for loops."""
    budget = [MAX_FILES]

    def load(p: str, chain: Sequence[Tuple[str, str]]) -> Dict:
        real = os.path.realpath(p)
        reals = [r for r, _ in chain]
        if real in reals:
            loop = [shown for _, shown in chain[reals.index(real):]] + [p]
            raise ConfigFileError(f"{path}: {BASE_KEY} loop: {' -> '.join(loop)}")
        budget[0] -= 1
        if budget[0] < 0:
            raise ConfigFileError(f"{path}: its {BASE_KEY} chain reads more than {MAX_FILES} files")
        data = read_config_mapping(p)
        if BASE_KEY not in data:
            return data
        bases = data.pop(BASE_KEY)
        merged: Dict = {}
        for base in bases if isinstance(bases, list) else [bases]:
            base_file = _base_path(base, p)
            if not os.path.isfile(base_file):
                what = "is a directory" if os.path.isdir(base_file) else "not found"
                raise ConfigFileError(f"{p}: {BASE_KEY} {base!r} {what} ({base_file})")
            try:
                base_data = load(base_file, list(chain) + [(real, p)])
            except ConfigFileError as e:
                if f"(a {BASE_KEY} of " in str(e):  # the innermost including file is already named
                    raise
                raise ConfigFileError(f"{e} (a {BASE_KEY} of {p})") from None
            _merge_a_into_b(base_data, merged, p)
        _merge_a_into_b(data, merged, p)
        return merged

    return load(path, [])


def _check_sections(data: Dict, cfg, path: str, prefix: str = "") -> None:
    """A value where ``cfg`` has a section of keys (``MODEL: 3``) is named here; yacs would fail obscurely."""
    for k, v in data.items():
        node = cfg.get(k) if hasattr(cfg, "get") else None
        if isinstance(node, dict):
            if not isinstance(v, dict):
                raise ConfigFileError(f"{path}: {prefix}{k} is a section of config keys, got {_short(v)}")
            _check_sections(v, node, path, f"{prefix}{k}.")


def _short(value, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + f"... ({len(text)} characters)"


# what yacs and Detectron2 raise for a key or value they cannot merge (messages name the key)
_MERGE_ERRORS = (KeyError, ValueError, TypeError, AssertionError, RecursionError, MemoryError)


def _message(e: BaseException, limit: int = 300) -> str:
    text = e.args[0] if isinstance(e, KeyError) and e.args else str(e)
    text = " ".join(str(text).split()) or type(e).__name__
    return text if len(text) <= limit else text[:limit] + "..."


def merge_config_file(cfg, path: str, name: str = "") -> None:
    """Merge the YAML config ``path`` (and its ``_BASE_`` chain) into ``cfg`` with Detectron2's semantics, read
    safely. ``name`` (a flag or config key) prefixes every error, so the user knows which input was wrong."""
    from detectron2.config import CfgNode
    from detectron2.config.compat import downgrade_config, guess_version, upgrade_config

    where = f"{name}: {path}" if name else str(path)
    try:
        data = load_config_dict(path)
        _check_sections(data, cfg, path)
        loaded = CfgNode(data)
        version = loaded.get("VERSION", None)
        if version is None:
            version = guess_version(loaded, path)
        current = cfg.get("VERSION", version)
        if not isinstance(version, int) or isinstance(version, bool) or version > current:
            raise ConfigFileError(f"{where}: VERSION {version!r} is not a config version up to {current}")
        if version == current:
            cfg.merge_from_other_cfg(loaded)
        else:  # an old Detectron2 config: upgraded the way CfgNode.merge_from_file does
            old = downgrade_config(cfg, to_version=version)
            old.merge_from_other_cfg(loaded)
            new = upgrade_config(old)
            cfg.clear()
            cfg.update(new)
    except ConfigFileError as e:
        if name and not str(e).startswith(f"{name}: "):
            raise ConfigFileError(f"{name}: {e}") from None
        raise
    except _MERGE_ERRORS as e:
        raise ConfigFileError(f"{where}: {_message(e)}") from None


def merge_config_overrides(cfg, opts: Sequence[str]) -> None:
    """``cfg.merge_from_list(opts)`` with an unknown key, a wrong type or an odd count named in one line."""
    opts = list(opts)
    if len(opts) % 2:
        raise ConfigFileError(f"config overrides come in KEY VALUE pairs; got {len(opts)} words: {opts}")
    for key, value in zip(opts[::2], opts[1::2]):
        try:
            cfg.merge_from_list([key, value])
        except _MERGE_ERRORS as e:
            raise ConfigFileError(f"config override {key} {_short(value)}: {_message(e)}") from None
