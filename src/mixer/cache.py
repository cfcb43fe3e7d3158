"""Prepared-source cache: re-mix without re-reading, re-cleaning or re-tokenizing.

Everything a build does before selection (read, dedup, decontaminate, transforms, token
counts, split) depends only on the recipe's *preparation* keys, never on weights, budgets,
``total``, ``temperature``, ``rebalance``, ``max_epochs`` or the output settings. So the
state after the ``prepare`` stage is stored under a key of exactly those inputs:

- mixer's version and the cache layout version, the built-in pools' fingerprint;
- the seed, tokenizer (a model tokenizer by its file's sha256), ``token_budget``, ``validation``,
  ``dedup`` and ``decontaminate`` settings;
- each source in order: every option but its budget, the sha256 of every file it reads, and the
  sha256 of every file its transforms or decontamination name (pools, catalogs, eval sets);
- the executor and its chunk size (chunked state is stored as chunks).

A build whose recipe differs only in the re-mix keys finds the entry and runs only select,
order, gather and export: the same rows, files and manifest (but its ``run`` section) as a
cold build. Content, not timestamps, is the key: touching a file without changing it still
hits; changing one byte misses. File hashes are memoised by (path, size, mtime) so a hit does
not re-read the inputs.

An entry is a folder ``ROOT/KEY/`` written under a temporary name and renamed when complete,
so a crashed build never leaves a half entry. ``MIXER_CACHE`` (or ``--cache-dir``) turns the
cache on; ``mixer cache ls`` / ``mixer cache clear`` show and empty it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from mixer import pools
from mixer.recipe import Recipe
from mixer.sources.files import fingerprint, locate

LAYOUT = 1
_REMIX_KEYS = {"weight", "tokens", "examples", "max_epochs"}  # per source: selection only
ENV = "MIXER_CACHE"


def default_root() -> Path | None:
    """The cache folder named by ``MIXER_CACHE``, or None (no caching)."""
    raw = os.environ.get(ENV, "").strip()
    return Path(raw).expanduser() if raw else None


@dataclass(frozen=True)
class EntryInfo:
    """One cached preparation, as ``mixer cache ls`` lists it."""

    key: str
    path: Path
    bytes: int
    recipe: str
    sources: list[str]
    created: float
    last_used: float


class Cache:
    """A folder of prepared-build entries, one subfolder per key."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root).expanduser().resolve()

    # -- keys
    def key(self, recipe: Recipe, encoding_name: str, executor: str, chunk_rows: int | None) -> str | None:
        """The preparation key of ``recipe``, or None when it cannot be keyed safely (a Hub
        source without a pinned ``revision``: its content can change under the same name)."""
        base = recipe.path.resolve().parent if recipe.path else Path.cwd()
        sources = []
        for src in recipe.sources:
            if src.is_hub and not src.revision:
                return None
            options = {k: v for k, v in dataclasses.asdict(src).items() if k not in _REMIX_KEYS}
            files = [] if src.is_hub else [self._sha(p) for p in locate(src)]
            sources.append({"options": options, "inputs": files,
                            "referenced": self._referenced(src.transforms, base)})
        decon = dataclasses.asdict(recipe.decontaminate) if recipe.decontaminate is not None else None
        blob = {
            "layout": LAYOUT, "mixer": _version(), "pools": pools.version(),
            "seed": recipe.seed, "tokenizer": encoding_name, "token_budget": recipe.token_budget,
            "chat_template": [recipe.chat_template, self._referenced(recipe.chat_template, base)],
            "validation": recipe.validation, "dedup": dataclasses.asdict(recipe.dedup),
            "decontaminate": decon, "decontaminate_files": self._referenced(decon, base),
            "sources": sources, "executor": executor, "chunk_rows": chunk_rows,
        }
        text = json.dumps(blob, sort_keys=True, ensure_ascii=False, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:32]

    def _referenced(self, value: Any, base: Path) -> list[list[str]]:
        """sha256 of every existing file a value names (pool, catalog, eval set paths)."""
        found: dict[str, str] = {}

        def walk(v: Any) -> None:
            if isinstance(v, dict):
                for item in v.values():
                    walk(item)
            elif isinstance(v, (list, tuple)):
                for item in v:
                    walk(item)
            elif isinstance(v, str) and v and len(v) < 4096 and "\n" not in v:
                p = Path(v).expanduser()
                p = p if p.is_absolute() else base / p
                try:
                    if p.is_file():
                        found[str(p)] = self._sha(p)[2]
                    elif p.is_dir():
                        for f in sorted(q for q in p.rglob("*") if q.is_file()):
                            found[str(f)] = self._sha(f)[2]
                except OSError:
                    return

        walk(value)
        return [[k, v] for k, v in sorted(found.items())]

    def _sha(self, path: Path) -> tuple[str, int, str]:
        """(path, size, sha256) of a file, memoised by its size and modification time."""
        st = path.stat()
        memo_key = f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}"
        memo = self.root / "hashes.jsonl"
        table = self._memo()
        if memo_key not in table:
            table[memo_key] = fingerprint(path).sha256
            self.root.mkdir(parents=True, exist_ok=True)
            with memo.open("a", encoding="utf-8") as fh:
                fh.write(json.dumps([memo_key, table[memo_key]]) + "\n")
        return str(path), st.st_size, table[memo_key]

    def _memo(self) -> dict[str, str]:
        if not hasattr(self, "_hashes"):
            self._hashes: dict[str, str] = {}
            memo = self.root / "hashes.jsonl"
            if memo.is_file():
                for line in memo.read_text(encoding="utf-8").splitlines():
                    try:
                        k, v = json.loads(line)
                    except (ValueError, TypeError):
                        continue  # a line cut by a crash: that file is hashed again
                    self._hashes[k] = v
        return self._hashes

    # -- entries
    def open(self, key: str) -> Entry | None:
        """The complete entry for ``key``, or None."""
        folder = self.root / key
        if not (folder / "state.json").is_file():
            return None
        entry = Entry(folder, json.loads((folder / "state.json").read_text(encoding="utf-8")))
        os.utime(folder / "state.json")  # last used, for ls
        return entry

    def writer(self, key: str) -> EntryWriter:
        self.root.mkdir(parents=True, exist_ok=True)
        return EntryWriter(self.root, key)

    def entries(self) -> list[EntryInfo]:
        out = []
        if not self.root.is_dir():
            return out
        for folder in sorted(p for p in self.root.iterdir() if p.is_dir() and not p.name.startswith(".")):
            state_file = folder / "state.json"
            if not state_file.is_file():
                continue
            state = json.loads(state_file.read_text(encoding="utf-8"))
            size = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
            out.append(EntryInfo(folder.name, folder, size, state.get("recipe", ""),
                                 [s["name"] for s in state.get("sources", [])], state.get("created", 0.0),
                                 state_file.stat().st_mtime))
        return out

    def clear(self) -> tuple[int, int]:
        """Remove every entry (and the hash memo); returns (entries, bytes) removed."""
        items = self.entries()
        for item in items:
            shutil.rmtree(item.path)
        if self.root.is_dir():
            for leftover in self.root.iterdir():  # unfinished entries of crashed builds, the memo
                if leftover.name.startswith(".tmp-") and leftover.is_dir():
                    shutil.rmtree(leftover)
            (self.root / "hashes.jsonl").unlink(missing_ok=True)
        return len(items), sum(i.bytes for i in items)


class Entry:
    """A stored preparation: ``state`` (JSON) and frames by name."""

    def __init__(self, folder: Path, state: dict[str, Any]) -> None:
        self.folder = folder
        self.state = state

    def frame(self, name: str) -> pl.DataFrame:
        return pl.read_parquet(self.path(name))

    def path(self, name: str) -> Path:
        return self.folder / f"{name}.parquet"


class EntryWriter:
    """Writes an entry under a temporary folder; :meth:`commit` makes it visible at once."""

    def __init__(self, root: Path, key: str) -> None:
        self.root, self.key = root, key
        self.folder = Path(tempfile.mkdtemp(prefix=".tmp-", dir=root))

    def frame(self, name: str, frame: pl.DataFrame) -> None:
        frame.write_parquet(self.folder / f"{name}.parquet", compression="zstd", compression_level=1,
                            statistics=False)

    def file(self, name: str, path: Path) -> None:
        """A frame already written as Parquet (a streaming build's spilled chunk): its bytes are
        copied, not decoded and encoded again. Copied, never linked: a later write to the spill
        path must not change a stored entry."""
        shutil.copyfile(path, self.folder / f"{name}.parquet")

    def commit(self, state: dict[str, Any]) -> None:
        state = dict(state, created=time.time())
        (self.folder / "state.json").write_text(json.dumps(state, ensure_ascii=False), encoding="utf-8")
        target = self.root / self.key
        try:
            os.rename(self.folder, target)
        except OSError:  # another build stored the same key first: theirs is as good
            shutil.rmtree(self.folder, ignore_errors=True)

    def abandon(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


def _version() -> str:
    from importlib import metadata

    try:
        return metadata.version("mixer")
    except metadata.PackageNotFoundError:
        return "unknown"


__all__ = ["Cache", "Entry", "EntryInfo", "EntryWriter", "default_root", "ENV"]
