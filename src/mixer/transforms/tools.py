"""``tools``: attach unrelated tool specs to chat rows, never modifying a turn.

Per row: with probability ``p``, draw a count in ``count = [lo, hi]`` and that many specs from
the catalog. Names stay unique within a row (including tools the row already had), and the
**relevance guard** skips any tool whose name or description overlaps the row's user turns,
so attached tools are never needed for the request.

Vectorized: candidates are drawn as an (rows x K) index matrix with numpy, filtered with
array masks, and the list column is built with Arrow offsets.
"""

from __future__ import annotations

import json
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa

from mixer import schema
from mixer.errors import RecipeError
from mixer.pools.catalog import Catalog, load_catalog
from mixer import rng
from mixer.transforms import hard_negatives as hn
from mixer.transforms.rows import Draws, choice, cores, distinct, empty_lists, extend_lists, note, notes, pick, probability

RENDERS = ("field", "system", "both", "user")
SLOT = "\x00"  # where a masked spec's per-row token goes (mask_names)

#: How a tools block reads when ``render`` puts it in the system prompt: (header, item, footer).
#: ``{json}`` is the spec; ``{name}`` and ``{description}`` its function's fields.
BLOCKS: tuple[tuple[str, str, str], ...] = (
    ("# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
     "You are provided with function signatures within <tools></tools> XML tags:\n<tools>", "{json}", "</tools>"),
    ("You have access to the following tools:", "- {name}: {description}\n  Parameters: {parameters}", ""),
    ("Available functions (JSON Schema):\n```json", "{json}", "```"),
    ("## Functions\n\nCall a function only when it is needed to answer the user.", "### {name}\n{description}\n{parameters}", ""),
)

_STOP = frozenset("""
the and for with that this from your you are was were have has had can will would should could what when where
which who whom whose how why not but all any each into onto over under about above below than then them they
their there here also just only very more most some such other another been being does did doing done get gets
getting got give given gives make makes made use used uses using list lists set sets new old one two three
specified specific specify based given value values data info information item items record records returns
return provide provides provided option options optional required number string type name names default field
fields object array boolean integer request response result results user users tool tools function functions
please want need know like tell think good well yes okay really would could thing things something anything
way ways time times people person someone help""".split())
_WORD = re.compile(r"[a-z][a-z0-9]{2,}")
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_STEM = 5


def _stems(text: str) -> list[str]:
    """Distinct 5-character stems of the content words, in order of first appearance."""
    text = _CAMEL.sub(" ", text).replace("_", " ").replace(".", " ").lower()
    return list(dict.fromkeys(w[:_STEM] for w in _WORD.findall(text) if w not in _STOP))


class _Guard:
    """The relevance guard: skip a tool that shares any content keyword with the row's user turns.

    Keywords are 5-character stems of content words (stop words removed) from the tool's
    name, description, parameter names, parameter descriptions and enum values. The index
    maps each stem to a bitset of the tools containing it; a row's relevant tools are the OR
    of its stems' bitsets, and each candidate is one bit lookup.
    """

    def __init__(self, catalog: Catalog) -> None:
        stems = [_stems(f"{name} {about}") for name, about in zip(catalog.names, catalog.about)]
        vocab = sorted({s for st in stems for s in st})
        self.stems = vocab
        self.words = max(1, (len(stems) + 63) // 64)
        index = {s: i for i, s in enumerate(vocab)}
        self.postings = np.zeros((max(1, len(vocab)), self.words), dtype=np.uint64)
        for t, st in enumerate(stems):
            for s in st:
                self.postings[index[s], t >> 6] |= np.uint64(1) << np.uint64(t & 63)
        # Stems are 3-5 ASCII characters, so a found stem is inlined in its Arrow string view:
        # its (lowercased) bytes read as a big-endian number identify it, in the order of vocab.
        self.codes = _codes(np.array([list(s.encode().ljust(_STEM, b"\0")) for s in vocab] or
                                     np.zeros((0, _STEM)), dtype=np.uint8))
        assert all(len(s) <= _STEM for s in vocab) and bool(np.all(np.diff(self.codes) > 0))
        self.mult, self.shift, self.slots = _perfect_hash(self.codes)

    def row_sets(self, user_text: pl.Series) -> np.ndarray:
        """Per text (a row's user turns, or one turn), the bitset of catalog tools relevant to it.

        The text's stems (all ASCII) are found with one case-insensitive Aho-Corasick pass
        (``str.extract_many``): a stem counts wherever it occurs, which can only flag more
        tools, never fewer, than matching word starts.
        """
        found = user_text.str.extract_many(self.stems, overlapping=True, ascii_case_insensitive=True)
        lengths = found.list.len().fill_null(0).to_numpy().astype(np.int64)
        ids = self._ids(found)
        rel = np.zeros((len(user_text), self.words), dtype=np.uint64)
        if len(ids):
            rows = np.flatnonzero(lengths)
            starts = np.concatenate(([0], np.cumsum(lengths[rows])[:-1])).astype(np.int64)
            rel[rows] = _or_segments(self.postings, ids, starts)
        return rel

    def _ids(self, found: pl.Series) -> np.ndarray:
        """The vocab index of every found stem (rows in order): read from the inline bytes of
        the Arrow string views, ASCII-lowercased, instead of lowercasing and hashing strings."""
        values = found.to_arrow(compat_level=pl.CompatLevel.newest()).flatten()
        if not len(values):
            return np.zeros(0, dtype=np.int64)
        if values.type != pa.string_view():
            values = values.cast(pa.string_view())
        views = np.frombuffer(values.buffers()[1], dtype=np.uint8).reshape(-1, 16)[values.offset:values.offset + len(values)]
        if views[:, :4].view(np.uint32).max() > _STEM:
            raise AssertionError("internal: a found stem longer than a stem")
        text = views[:, 4:4 + _STEM]
        text = text | (((text - np.uint8(65)) < 26).view(np.uint8) << 5)  # ASCII case folding: A-Z only
        codes = _codes(text)
        with np.errstate(over="ignore"):
            ids = self.slots[(codes * self.mult) >> self.shift].astype(np.int64)
        if not np.array_equal(self.codes[ids], codes):
            raise AssertionError("internal: a found stem is not in the guard's vocabulary")
        return ids


def _perfect_hash(codes: np.ndarray) -> tuple[np.uint64, np.uint64, np.ndarray]:
    """A multiplier and table size under which ``(code * mult) >> shift`` is distinct for every
    code: the table maps a found stem to its vocab index in one gather (no search, no hash map)."""
    for bits in range(max(10, 2 * int(len(codes)).bit_length()), 31):
        for attempt in range(32):
            mult = rng.splitmix64(np.array([attempt], dtype=np.uint64))[0] | np.uint64(1)
            shift = np.uint64(64 - bits)
            with np.errstate(over="ignore"):
                slot = (codes * mult) >> shift
            if len(np.unique(slot)) == len(codes):
                slots = np.zeros(1 << bits, dtype=np.int32)
                slots[slot] = np.arange(len(codes), dtype=np.int32)
                return mult, shift, slots
    raise AssertionError("internal: no collision-free table for the guard's stems")


def _codes(text: np.ndarray) -> np.ndarray:
    """Rows of ``_STEM`` zero-padded bytes as big-endian uint64 numbers (ordered like the strings)."""
    wide = np.zeros((len(text), 8), dtype=np.uint8)
    wide[:, 8 - text.shape[1]:] = text
    return wide.view(">u8").reshape(-1).astype(np.uint64)


def _or_segments(table: np.ndarray, index: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Bitsets OR-ed per segment: row k is the OR of ``table[index[i]]`` for i from ``starts[k]``
    to the next start. One bitset word at a time, on contiguous columns: ``reduceat`` along the
    rows of a 2-D array is several times slower."""
    out = np.empty((len(starts), table.shape[1]), dtype=table.dtype)
    for w in range(table.shape[1]):
        out[:, w] = np.bitwise_or.reduceat(np.ascontiguousarray(table[:, w])[index], starts)
    return out


def _lookup(rel: np.ndarray, row: np.ndarray, cand: np.ndarray) -> np.ndarray:
    """Bit ``cand`` of ``rel[row]``, elementwise (row broadcast against cand's columns)."""
    return ((rel[row, cand >> 6] >> (cand & 63).astype(np.uint64)) & np.uint64(1)).astype(bool)


class _Picker:
    """Draws each row's tools: candidates in draw order, filtered, first ``want`` kept.

    Rows left short after the filters (the guard skipped many candidates) get further rounds
    of fresh draws, so counts stay within ``count`` whenever the catalog allows.
    """

    def __init__(self, cdf: np.ndarray, name_of: np.ndarray, n_names: int, taken: np.ndarray,
                 seed: int, position: int) -> None:
        self.cdf, self.name_of, self.n_names, self.taken = cdf, name_of, n_names, taken
        self.seed, self.position = seed, position

    def _draw(self, keys: np.ndarray, reps: np.ndarray, first: int, width: int) -> np.ndarray:
        cand = np.empty((len(keys), width), dtype=np.int64)
        for j in range(width):
            salt = rng.salt(self.seed, self.position, "tools.pick", first + j)
            cand[:, j] = pick(self.cdf, rng.uniform(rng.draw(keys, salt, reps)))
        return cand

    def _keep(self, cand: np.ndarray, local: np.ndarray, offset: int, want: np.ndarray,
              rel: np.ndarray | None) -> np.ndarray:
        nid = self.name_of[cand]
        keep = np.ones(cand.shape, dtype=bool)
        if rel is not None:
            keep &= ~_lookup(rel, local[:, None], cand)
        if len(self.taken):  # rows that already carry tools: never a second tool of the same name
            codes = (local[:, None] + offset) * self.n_names + nid
            keep &= ~np.isin(codes, self.taken)
        # A name may appear once per row: the first surviving slot wins.
        width = cand.shape[1]
        if width <= 16:  # each slot against the kept ones before it: few slots cost less than a sort a row
            for j in range(1, width):
                keep[:, j] &= ~((nid[:, :j] == nid[:, j:j + 1]) & keep[:, :j]).any(axis=1)
        else:  # dropped slots get names that match nothing; a stable sort puts equal names together in slot order
            live = np.where(keep, nid, -1 - np.arange(width))
            order = np.argsort(live, axis=1, kind="stable")
            ordered = np.take_along_axis(live, order, axis=1)
            repeat = np.zeros_like(keep)
            repeat[:, 1:] = ordered[:, 1:] == ordered[:, :-1]
            np.put_along_axis(keep, order, np.take_along_axis(keep, order, axis=1) & ~repeat, axis=1)
        return keep & (np.cumsum(keep, axis=1) <= want[:, None])

    def rows(self, keys: np.ndarray, reps: np.ndarray, want: np.ndarray, offset: int,
             rel: np.ndarray | None, width: int, budget: int) -> tuple[np.ndarray, np.ndarray]:
        """Flat picked catalog indices (rows in order, draw order within a row) and counts.

        Each row sees the same sequence of candidates whatever ``width``; rows left short draw
        ``width`` more at a time, up to ``budget`` candidates in all.
        """
        local = np.arange(len(keys))
        first = self._draw(keys, reps, 0, width)
        first_keep = self._keep(first, local, offset, want, rel)
        counts = first_keep.sum(axis=1)
        extended = np.flatnonzero(counts < want)
        if not len(extended) or width >= budget:
            return first[first_keep], counts
        # Rows left short: their candidates so far plus ``width`` more, re-filtered (a row's
        # earlier picks stay as they were); only those rows are touched per round.
        cand = np.empty((len(extended), budget), dtype=np.int64)
        keep = np.zeros((len(extended), budget), dtype=bool)
        cand[:, :width], keep[:, :width] = first[extended], first_keep[extended]
        short = np.arange(len(extended))  # into extended
        drawn = width
        while drawn < budget and len(short):
            rows = extended[short]
            step = min(width, budget - drawn)
            more = np.concatenate([cand[short, :drawn], self._draw(keys[rows], reps[rows], drawn, step)], axis=1)
            more_keep = self._keep(more, rows, offset, want[rows], rel)
            cand[short, :drawn + step], keep[short, :drawn + step] = more, more_keep
            counts[rows] = more_keep.sum(axis=1)
            drawn += step
            short = short[counts[rows] < want[rows]]
        # rows in order: the extended rows' picks replace their first-round picks
        first_keep[extended] = False
        owner = np.concatenate([np.repeat(local, first_keep.sum(axis=1)), np.repeat(extended, keep.sum(axis=1))])
        picks = np.concatenate([first[first_keep], cand[keep]])
        return picks[np.argsort(owner, kind="stable")], counts


def _count_option(count: Any) -> tuple[int, int]:
    if isinstance(count, int) and not isinstance(count, bool):
        count = (count, count)
    if (not isinstance(count, (list, tuple)) or len(count) != 2
            or not all(isinstance(c, int) and not isinstance(c, bool) for c in count)
            or not 0 <= count[0] <= count[1]):
        raise RecipeError(f"count: expected [lo, hi] with 0 <= lo <= hi, got {count!r}")
    return int(count[0]), int(count[1])


def _user_turns(frame: pl.DataFrame, rows: np.ndarray) -> tuple[pl.Series, np.ndarray]:
    """The user turns of ``rows`` one by one (contents, string views) and each one's index into
    ``rows`` (non-decreasing): no per-row join of the turns.

    The turns are read from the Arrow arrays under ``messages`` (zero copy: a null list or
    message has no turn), not with a Polars ``list.eval`` (about ten times slower)."""
    local = np.full(frame.height, -1, dtype=np.int64)
    local[rows] = np.arange(len(rows))
    contents, owners = [], []
    start = 0
    for chunk in frame.get_column("messages").get_chunks():
        lists = chunk.to_arrow(compat_level=pl.CompatLevel.newest())
        width = np.int64 if pa.types.is_large_list(lists.type) else np.int32
        offsets = np.frombuffer(lists.buffers()[1], dtype=width)[lists.offset:lists.offset + len(lists) + 1]
        lengths = np.diff(offsets)
        if lists.null_count:  # a null list has no turn (flatten skips what backs it)
            lengths[lists.is_null().to_numpy(zero_copy_only=False)] = 0
        messages = lists.flatten()
        fields = messages.flatten()  # each field with the message's own nulls applied
        role = fields[messages.type.get_field_index("role")]
        content = fields[messages.type.get_field_index("content")]
        owner = np.repeat(local[start:start + len(lists)], lengths)
        keep = (pl.Series(role) == "user").fill_null(False).to_numpy() & (owner >= 0)
        contents.append(pl.Series(content).cast(pl.String).filter(pl.Series(keep)))
        owners.append(owner[keep])
        start += len(lists)
    if not contents:
        return pl.Series("content", [], dtype=pl.String), np.zeros(0, dtype=np.int64)
    return pl.concat(contents, rechunk=False).alias("content"), np.concatenate(owners)


def _user_text(frame: pl.DataFrame) -> pl.Series:
    return frame.select(
        pl.col("messages").list.eval(
            pl.element().filter(pl.element().struct.field("role") == "user").struct.field("content")
        ).list.join("\n")
    ).to_series()


def _existing_names(frame: pl.DataFrame, name_ids: dict[str, int]) -> pl.DataFrame:
    """(row, name id) pairs for tools rows already carry, restricted to catalog names."""
    return (
        frame.select(pl.col("tools")).with_row_index("row")
        .filter(pl.col("tools").list.len() > 0)
        .explode("tools")
        .select("row", pl.col("tools").str.json_path_match("$.function.name").alias("name"))
        .join(pl.DataFrame({"name": list(name_ids), "nid": list(name_ids.values())},
                           schema={"name": pl.String, "nid": pl.Int64}), on="name", how="inner")
    )


@dataclass(frozen=True)
class PreparedTools:
    """The catalog, the guard index and the sampling tables, built once per build;
    :meth:`apply` is row-local."""

    catalog: Catalog
    p: float
    lo: int
    hi: int
    render: str
    block: int | None
    seed: int
    position: int
    guard: _Guard | None = field(repr=False)
    _names_unique: dict[str, int] = field(repr=False)
    _name_of: np.ndarray = field(repr=False)
    _cdf: np.ndarray = field(repr=False)
    _specs: pl.Series = field(repr=False)
    _ids: pl.Series = field(repr=False)
    _rendered: pl.Series | None = field(repr=False)  # every spec in every BLOCKS item layout
    _chunk: int = 65_536
    mask_names: bool = False
    _maps: pl.Series | None = field(default=None, repr=False)  # masked specs: {"old": "new"} with SLOT
    hard_negatives: float = 0.0
    _fits: hn.Fits | None = field(default=None, repr=False)

    @property
    def info(self) -> dict[str, Any]:
        info = {"catalog": self.catalog.report, "tools": len(self.catalog), "render": self.render,
                "mask_names": self.mask_names}
        if self._fits is not None:
            info["hard_negatives"] = {"p": self.hard_negatives, "fitting_tools": self._fits.count}
        return info

    def apply(self, frame: pl.DataFrame) -> pl.DataFrame:
        if frame.is_empty() or self.hi == 0:
            return frame
        frame = schema.aligned(frame)  # see there: new columns are cut like the frame's
        n = frame.height
        draws = Draws(frame, self.seed, self.position)
        chosen = (frame.get_column("kind") == "chat").to_numpy() & (draws.uniform("tools.apply") < self.p)
        rows = np.flatnonzero(chosen)
        m = len(rows)
        keys, reps = draws.keys[rows], draws.reps[rows]
        u_count = draws.uniform("tools.count", rows=rows)
        lo, hi = self.lo, self.hi
        want = np.minimum(lo + np.floor(u_count * (hi - lo + 1)).astype(np.int64), hi)

        g = self.guard
        relevant = self._relevant(frame, rows) if g is not None else None
        taken = np.zeros(0, dtype=np.int64)
        if frame.get_column("tools").list.len().max():  # rows that already carry tools: skip their names
            existing = _existing_names(pl.DataFrame({"tools": frame.get_column("tools").gather(rows)}),
                                       self._names_unique)
            taken = np.sort(existing.get_column("row").to_numpy().astype(np.int64) * len(self._names_unique)
                            + existing.get_column("nid").to_numpy())
        pick_from = _Picker(self._cdf, self._name_of, len(self._names_unique), taken, self.seed, self.position)

        def pick_slice(sl: slice) -> tuple[np.ndarray, np.ndarray]:
            rel = relevant[sl] if relevant is not None else None
            return pick_from.rows(keys[sl], reps[sl], want[sl], sl.start, rel, width=hi + 4, budget=8 * hi + 24)

        # Slices bound memory and run on all cores (Polars and numpy release the GIL); results do
        # not depend on the slicing.
        slices = [slice(start, min(start + self._chunk, m)) for start in range(0, m, self._chunk)]
        with ThreadPoolExecutor(max_workers=min(len(slices), cores()) or 1) as pool:
            results = list(pool.map(pick_slice, slices))
        counts = np.zeros(n, dtype=np.int64)
        for sl, (_, counts_slice) in zip(slices, results):
            counts[rows[sl]] = counts_slice
        picked = np.concatenate([r[0] for r in results]) if results else np.zeros(0, dtype=np.int64)

        hard_notes = None
        if self._fits is not None and self.hard_negatives > 0:
            picked, counts, hard_notes = self._hard(frame, draws, counts, picked, None)
        tokens = self._tokens(draws, counts) if self.mask_names else None
        specs = _fill(self._specs.gather(picked), tokens)
        out = frame
        if self.render in ("field", "both"):
            out = schema.with_columns(out, extend_lists(frame.get_column("tools"), counts, specs))
        if self.render in ("system", "both", "user"):
            assert self._rendered is not None
            block = _block_text(picked, counts, len(self.catalog), self._rendered, draws, self.block, tokens)
            out = schema.with_columns(out, _place_block(frame, block, counts, self.render))
        id_lists = extend_lists(empty_lists(n), counts, self._ids.gather(picked))
        ids_note = pl.concat_str([pl.lit("["), pl.lit(id_lists).list.join(", "), pl.lit("]")])
        out = notes(out, counts > 0, [(f"aug.{self.position}.tools", ids_note),
                                      (f"aug.{self.position}.behaviour", behaviour(frame, np.flatnonzero(counts > 0)))])
        if hard_notes is not None:
            got = hard_notes.is_not_null().to_numpy()
            out = note(out, got, f"aug.{self.position}.hard_negatives", hard_notes.fill_null("[]"))
        if self.render == "user":  # the one documented change to a turn: recorded on the row
            out = note(out, counts > 0, f"aug.{self.position}.tools_in_user_turn", pl.repeat("true", n, eager=True))
        if self.mask_names:
            assert self._maps is not None
            maps = extend_lists(empty_lists(n), counts, _fill(self._maps.gather(picked), tokens))
            mapped = pl.select(pl.concat_str([pl.lit("["), pl.lit(maps).list.join(", "), pl.lit("]")])).to_series()
            out = note(out, counts > 0, f"aug.{self.position}.mask_names", mapped)
        return out

    def _relevant(self, frame: pl.DataFrame, rows: np.ndarray) -> np.ndarray:
        """Per row of ``rows``, the bitset of catalog tools its user turns make relevant.

        Each user turn is scanned once (each distinct one, when turns repeat), in slices on all
        cores; a row's set is the union of its turns' sets, the same as scanning its turns
        joined, since a stem never spans two turns."""
        assert self.guard is not None
        g = self.guard
        turns, turn_row = _user_turns(frame, rows)
        texts, inverse = distinct(turns)
        slices = [slice(start, min(start + self._chunk, len(texts))) for start in range(0, len(texts), self._chunk)]
        with ThreadPoolExecutor(max_workers=min(len(slices), cores()) or 1) as pool:
            sets = list(pool.map(lambda sl: g.row_sets(texts[sl]), slices))
        per_text = np.concatenate(sets) if sets else np.zeros((0, g.words), dtype=np.uint64)
        rel = np.zeros((len(rows), g.words), dtype=np.uint64)
        if len(turn_row):
            starts = np.flatnonzero(np.concatenate(([True], turn_row[1:] != turn_row[:-1])))
            rel[turn_row[starts]] = _or_segments(per_text, inverse, starts)
        return rel

    def _hard(self, frame: pl.DataFrame, draws: Draws, counts: np.ndarray, picked: np.ndarray,
              user: pl.Series | None) -> tuple[np.ndarray, np.ndarray, pl.Series]:
        """One more tool for a ``hard_negatives`` share of tooled rows whose request has an
        intent cue: a tool that fits it (see :mod:`mixer.transforms.hard_negatives`)."""
        assert self._fits is not None
        n = frame.height
        text = user if user is not None else _user_text(frame)
        found = hn.detect(text)
        intents = list(hn.INTENTS)
        usable = np.array([len(self._fits.tools[i]) > 0 for i in intents])
        eligible = (counts > 0) & (found & usable).any(axis=1) & (draws.uniform("tools.hard") < self.hard_negatives)
        rows = np.flatnonzero(eligible)
        u_intent = draws.uniform("tools.hard.intent", rows=rows)
        u_tool = draws.uniform("tools.hard.tool", rows=rows)
        ends = np.cumsum(counts)
        own = frame.get_column("tools").gather(rows).list.join("\n").to_list() if len(rows) else []
        texts = text.gather(rows).to_list() if len(rows) else []
        notes: list[str | None] = [None] * n
        at, values = [], []
        counts = counts.copy()
        for k, i in enumerate(rows.tolist()):
            options = [j for j in range(len(intents)) if found[i, j] and usable[j]]
            intent = intents[options[min(int(u_intent[k] * len(options)), len(options) - 1)]]
            cands = self._fits.tools[intent]
            taken = set(self._name_of[picked[ends[i] - counts[i]:ends[i]]].tolist())
            start = min(int(u_tool[k] * len(cands)), len(cands) - 1)
            for step in range(len(cands)):  # the drawn tool, or the next that the row does not have yet
                pos = (start + step) % len(cands)
                c = int(cands[pos])
                name = self.catalog.names[c]
                if self._name_of[c] not in taken and f'"name": "{name}"' not in own[k]:
                    break
            else:
                continue
            at.append(ends[i])
            values.append(c)
            counts[i] += 1
            notes[i] = json.dumps([{"tool": self.catalog.ids[c], "intent": intent,
                                    "cue": hn.cue_in(texts[k], intent), "slot": self._fits.slots[intent][pos]}],
                                  ensure_ascii=False)
        picked = np.insert(picked, np.array(at, dtype=np.int64), np.array(values, dtype=np.int64)) if at else picked
        return picked, counts, pl.Series(notes, dtype=pl.String)

    def _tokens(self, draws: Draws, counts: np.ndarray) -> pl.Series:
        """One opaque token per attached tool (row, slot), from the row's draws: names become
        ``f_<token>`` and ``p<j>_<token>``, so they carry no keyword a model could key on."""
        rows = np.repeat(np.arange(len(counts)), counts)
        slot = np.arange(len(rows)) - np.repeat(np.cumsum(counts) - counts, counts)
        values = rng.draw(draws.keys[rows], rng.salt(self.seed, self.position, "tools.mask"),
                          draws.reps[rows].astype(np.uint64) * np.uint64(1024) + slot.astype(np.uint64))
        return pl.Series(values % np.uint64(1_000_000), dtype=pl.UInt64).cast(pl.String).str.zfill(6)


def prepare_tools(*, catalog: Any = "builtin", p: float = 0.5, count: Any = (1, 3), render: str = "field",
                  block: int | None = None, guard: bool = True, mask_names: bool = False,
                  hard_negatives: float = 0.0, locale: str = "en_US",
                  seed: int = 0, position: int = 0, base_dir: Path | None = None,
                  _chunk: int = 65_536) -> PreparedTools:
    """With probability ``p``, attach ``count = [lo, hi]`` tool specs from ``catalog`` to chat rows.

    ``render``: ``field`` (the ``tools`` column), ``system`` (a tools block appended to the
    system prompt; ``block`` picks one of ``BLOCKS``, default a per-row draw), ``both``, or
    ``user`` (the block prepended to the first user turn, as some model families render tools:
    the one documented change to a turn, noted in meta, for placement ablations).
    ``hard_negatives``: the share of tooled rows whose request has an intent cue that also get
    one tool whose parameters *fit* the request (:mod:`mixer.transforms.hard_negatives`).
    ``mask_names``: attached tools get opaque names (``f_<token>``, parameters ``p<j>_<token>``,
    a per-row token; descriptions kept), so a model cannot key on names; the map is in meta.
    ``guard``: skip tools sharing a content keyword (stems of name, description, parameters)
    with the row's user turns, so attached tools are never needed; ``false`` turns it off.
    """
    p = probability(p)
    lo, hi = _count_option(count)
    render = choice(render, "render", RENDERS)
    if not isinstance(guard, bool):
        raise RecipeError(f"guard: expected true or false, got {guard!r}")
    if not isinstance(mask_names, bool):
        raise RecipeError(f"mask_names: expected true or false, got {mask_names!r}")
    hard = probability(hard_negatives, "hard_negatives")
    if block is not None and (isinstance(block, bool) or not isinstance(block, int) or not 0 <= block < len(BLOCKS)):
        raise RecipeError(f"block: expected 0..{len(BLOCKS) - 1}, got {block!r}")
    cat = load_catalog(catalog, seed=seed, locale=locale, base_dir=base_dir)
    names_unique = {name: i for i, name in enumerate(dict.fromkeys(cat.names))}
    specs, maps = cat.specs, None
    if mask_names:
        masked = [_masked(spec) for spec in cat.specs]
        specs, maps = [m[0] for m in masked], pl.Series([m[1] for m in masked], dtype=pl.String)
    rendered = None
    if render in ("system", "both", "user"):
        rendered = pl.Series([text for _, item, _ in BLOCKS for text in _render_items(specs, item)], dtype=pl.String)
    return PreparedTools(
        cat, p, lo, hi, render, block, seed, position,
        guard=_Guard(cat) if guard else None,
        _names_unique=names_unique,
        _name_of=np.array([names_unique[name] for name in cat.names], dtype=np.int64),
        _cdf=np.cumsum(cat.probs),
        _specs=pl.Series(specs, dtype=pl.String),
        _ids=pl.Series([json.dumps(i) for i in cat.ids], dtype=pl.String),
        _rendered=rendered,
        _chunk=_chunk,
        mask_names=mask_names,
        _maps=maps,
        hard_negatives=hard,
        _fits=hn.fits(cat) if hard > 0 else None,
    )


def _masked(spec: str) -> tuple[str, str]:
    """A spec with its function and parameter names replaced by slots for a per-row token, and
    the ``{"name": {old: new}, "parameters": {old: new}}`` map (both with ``SLOT``)."""
    obj = json.loads(spec)
    fn = obj["function"]
    name_map = {fn["name"]: f"f_{SLOT}"}
    fn["name"] = name_map[fn["name"]]
    params = fn.get("parameters")
    param_map: dict[str, str] = {}
    if isinstance(params, dict) and isinstance(params.get("properties"), dict):
        props = params["properties"]
        param_map = {old: f"p{j}_{SLOT}" for j, old in enumerate(props)}
        params["properties"] = {param_map[k]: v for k, v in props.items()}
        if isinstance(params.get("required"), list):
            params["required"] = [param_map.get(r, r) for r in params["required"]]
    return (json.dumps(obj, ensure_ascii=False),
            json.dumps({"name": name_map, "parameters": param_map}, ensure_ascii=False))


BEHAVIOURS = ("answers despite tools", "refuses despite tools", "calls a tool", "asks a follow-up", "prompt only")
_A = "['\u2019]"  # HH-RLHF writes apostrophes both ways
_REFUSAL = (rf"(?i)^\W*(?:i{_A}m sorry|i am sorry|sorry|i apologi[sz]e)?[^.!?]{{0,40}}?\b(?:i can(?:no|{_A})t|"
            rf"i (?:will not|won{_A}t|must decline|have to decline|refuse)|i{_A}m (?:not able|unable)|"
            rf"i am (?:not able|unable)|i{_A}m not (?:going|willing) to|i am not (?:going|willing) to|"
            rf"i don{_A}t (?:feel comfortable|think i (?:can|should)))\b")


_BY_CODE = ("prompt only", "calls a tool", "refuses despite tools", "asks a follow-up", "answers despite tools")


def behaviour(frame: pl.DataFrame, rows: np.ndarray | None = None) -> pl.Series:
    """What each row's kept answer demonstrates next to the attached tools, as a JSON string:
    the final assistant turn calls a tool; else it refuses (it opens with a refusal phrase, e.g.
    "I can't help with that", "Sorry, but I won't"); else it asks a follow-up (ends with "?");
    else it answers directly. Rows without a final assistant turn are prompts. A heuristic on
    the text, documented so a recipe can balance the counts, not a classifier.

    With ``rows``, only those rows are labelled (the others are null)."""
    last = pl.col("messages").list.last()
    parts = frame.select(prompt=(last.struct.field("role") != "assistant").fill_null(False),
                         calls=last.struct.field("tool_calls").is_not_null(),
                         content=last.struct.field("content").fill_null(""))
    code = np.where(parts.get_column("prompt").to_numpy(), 0, np.where(parts.get_column("calls").to_numpy(), 1, -1))
    wanted = code < 0
    if rows is not None:
        chosen = np.zeros(frame.height, dtype=bool)
        chosen[rows] = True
        wanted &= chosen
    # the rest depends on the answer alone: the refusal pattern (the costly test) and the
    # follow-up test run once per distinct answer of the rows that need them
    answers, inverse = distinct(parts.get_column("content"))
    needed = np.flatnonzero(np.bincount(inverse[wanted], minlength=len(answers)))
    text = answers.gather(needed)
    by_answer = np.full(len(answers), -1, dtype=np.int64)
    by_answer[needed] = np.where(text.str.contains(_REFUSAL).to_numpy(), 2,
                                 np.where(text.str.strip_chars().str.ends_with("?").to_numpy(), 3, 4))
    code = np.where(wanted, by_answer[inverse], code)
    labels = pl.Series([json.dumps(b) for b in _BY_CODE]).gather(np.maximum(code, 0))
    if rows is None:
        return labels
    return labels.set(pl.Series(~chosen), None)


def _fill(values: pl.Series, tokens: pl.Series | None) -> pl.Series:
    """Masked specs (or their renderings, or name maps) with each attached tool's token in its slots."""
    if tokens is None:
        return values
    # in JSON text the slot is escaped (\\u0000); in a rendered name it is the character itself
    return pl.DataFrame({"v": values, "t": tokens}).select(
        pl.col("v").str.replace_all("\\u0000", pl.col("t"), literal=True)
        .str.replace_all(SLOT, pl.col("t"), literal=True)).to_series()


def _block_text(picked: np.ndarray, counts: np.ndarray, n_specs: int, rendered: pl.Series, draws: Draws,
                block: int | None, tokens: pl.Series | None) -> pl.Series:
    """The tools block of each row that got tools (one of ``BLOCKS``, a per-row draw unless ``block``)."""
    n = len(counts)
    which = (np.full(n, block, dtype=np.int64) if block is not None
             else np.floor(draws.uniform("tools.block") * len(BLOCKS)).astype(np.int64))
    item_text = _fill(rendered.gather(np.repeat(which, counts) * n_specs + picked), tokens)
    item_lists = extend_lists(empty_lists(n), counts, item_text)
    header = pl.Series([h for h, _, _ in BLOCKS]).gather(which)
    footer = pl.Series([f for _, _, f in BLOCKS]).gather(which)
    body = pl.concat_str([pl.lit(header), pl.lit(item_lists).list.join("\n"), pl.lit(footer)], separator="\n")
    return pl.select(body.str.strip_chars_end("\n")).to_series()


def _place_block(frame: pl.DataFrame, block: pl.Series, counts: np.ndarray, render: str) -> pl.Series:
    """The system column with the block appended (``system``/``both``), or the messages with the
    block prepended to the first user turn (``user``: how some model families render tools)."""
    got = pl.Series(counts > 0)
    if render != "user":
        old = pl.col("system")
        combined = pl.when(old.is_null()).then(pl.lit(block)).otherwise(old + "\n\n" + pl.lit(block))
        return frame.select(pl.when(got).then(combined).otherwise(old).alias("system")).to_series()
    turns = (frame.select(pl.col("messages"), _block=block, _got=got).with_row_index("_row")
             .explode("messages").unnest("messages")
             .with_columns(_first=(pl.col("role") == "user").cum_sum().over("_row") == 1))
    first_user = pl.col("_first") & (pl.col("role") == "user") & pl.col("_got")
    turns = turns.with_columns(content=pl.when(first_user).then(pl.col("_block") + "\n\n" + pl.col("content"))
                               .otherwise(pl.col("content")))
    rebuilt = (turns.group_by("_row", maintain_order=True)
               .agg(messages=pl.struct("role", "content", "tool_calls", "tool_call_id", "name")
                    .filter(pl.col("role").is_not_null())))
    return (frame.select(pl.int_range(pl.len(), dtype=pl.UInt32).alias("_row"))
            .join(rebuilt, on="_row", how="left", maintain_order="left").get_column("messages")
            .cast(frame.schema["messages"]))


def _render_items(specs: list[str], item: str) -> list[str]:
    out = []
    for spec in specs:
        fn = json.loads(spec)["function"]
        out.append(item.replace("{json}", spec).replace("{name}", fn["name"])
                   .replace("{description}", str(fn.get("description") or ""))
                   .replace("{parameters}", json.dumps(fn.get("parameters") or {}, ensure_ascii=False)))
    return out


TRANSFORMS = {"tools": prepare_tools}  # recipe name -> prepare step (found by mixer.transforms)
