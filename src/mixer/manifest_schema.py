"""The manifest's one typed definition: every key mixer writes to a ``manifest.json``, and its type.

The manifest is a published artifact that users, ``mixer diff``, ``mixer report`` and scripts
read; its parts are filled in by the stage that knows them (reading, selection, export, the
audit, the writer), so its shape is declared here once, and :func:`conform` checks every
manifest against it just before it is written. A key written but not declared, a declared key
missing, or a value of another type fails the build as a bug in mixer, never as a surprise for
the reader. Keys named by data (sources, splits, reasons) are ``dict[str, ...]``.
"""


import types
import typing
from typing import Any, Literal, NotRequired, TypedDict, Union


class InputFileEntry(TypedDict):
    path: str
    bytes: int
    sha256: str


class OutputFileEntry(TypedDict):
    path: str
    split: str
    rows: int
    bytes: int
    sha256: str


class TransformEntry(TypedDict):
    position: int
    type: str
    rows_in: int
    rows_out: int
    augmented: int
    augmented_selected: int
    prepared: NotRequired[dict[str, Any]]  # pool entries used and skipped
    behaviours_selected: NotRequired[dict[str, int]]


class Measures(TypedDict):
    rendered: int
    content: int
    assistant: int


class TokenCounts(TypedDict):
    available: Measures
    selected: Measures


class Split(TypedDict):
    train: int
    validation: int


class SourceEntry(TypedDict):
    """One source: read, removed (by why), available, targeted and selected."""

    format: str
    inputs: list[InputFileEntry]
    rows_read: int
    rows_rejected: int
    rejected_reasons: dict[str, int]
    repairs: dict[str, int]
    formats: NotRequired[dict[str, str]]  # per file, when a source's files differ
    notes: NotRequired[list[str]]
    read_paths: NotRequired[dict[str, int]]  # rows per reading path (batch, per record)
    rows_deduplicated: int
    rows_decontaminated: int
    rows_flagged_contaminated: NotRequired[int]  # decontaminate.action = "tag"
    rows_filtered: int
    filtered_by: dict[str, int]
    rows_available: int
    tokens_available: int
    token_counts: TokenCounts
    split: Split
    transforms: list[TransformEntry]
    unit: Literal["tokens", "examples"]
    target: float
    target_share: float
    realized_share: float
    max_epochs: float
    rebalanced: bool
    rows_selected: int
    tokens_selected: int
    largest_row_selected: int
    repeat_factor: float
    validation_rows_selected: int
    validation_tokens_selected: int
    validation_rows_not_written: int


class Amount(TypedDict):
    rows: int
    tokens: int


class ExportSource(TypedDict):
    rows_written: Split
    rejected: dict[str, dict[str, int]]  # split -> reason -> rows
    realized_share_written: float
    tools_renamed: NotRequired[dict[str, int]]
    tools_unrendered: NotRequired[dict[str, dict[str, int]]]  # split -> reason -> rows


class UnrenderedTools(TypedDict):
    """Rows written with a tool spec a configuration of the trainer cannot render."""

    rows: dict[str, dict[str, int]]  # split -> reason -> rows
    tools: dict[str, dict[str, list[str]]]  # split -> reason -> the names of those rows' tools


class Export(TypedDict):
    """What a trainer format wrote and could not write."""

    format: str
    rows: dict[str, int]
    rejected: dict[str, dict[str, int]]
    sources: NotRequired[dict[str, ExportSource]]  # builds (a conversion has one source)
    tools_renamed: NotRequired[dict[str, int]]
    tools_unrendered: NotRequired[UnrenderedTools]


class Phase(TypedDict):
    phase: str
    seconds: float
    rows: int


class CacheUse(TypedDict):
    key: str
    hit: bool
    dir: str


class Cluster(TypedDict):
    """Where a Ray build's tasks ran (``--engine ray``)."""

    cpus: int
    nodes: int
    started: bool  # a runtime of the build's own, not a running one it joined
    startup_seconds: float


class Run(TypedDict):
    """The one part that differs between runs of the same recipe."""

    executor: str
    seconds: float
    phases: list[Phase]
    cache: NotRequired[CacheUse]
    cluster: NotRequired[Cluster]


class RecipeEntry(TypedDict):
    path: str | None
    sha256: str
    resolved: dict[str, Any]  # the recipe as built, every default filled in


class Measured(TypedDict):
    rendered: str
    content: str
    assistant: str


class Tokenizer(TypedDict):
    name: str
    resolved: str
    counting: str
    chat_template: NotRequired[str]  # counts rendered with it (mixer.template_tokens)
    measures: Measured


class Decontamination(TypedDict):
    against: list[InputFileEntry]
    eval_texts: int
    eval_ngrams: int


class Pools(TypedDict):
    builtin_sha256: str


Manifest = TypedDict("Manifest", {
    "mixer": str,  # mixer's version; also the mark that mixer wrote the folder
    "name": str,
    "recipe": RecipeEntry,
    "seed": int,
    "unit": Literal["tokens", "examples"],
    "token_budget": Literal["content", "assistant", "rendered"],
    "total": float | None,  # None: every available row (no budget)
    "validation": float,
    "validation_rule": str | None,
    "pools": Pools,
    "tokenizer": Tokenizer,
    "versions": dict[str, str],
    "sources": dict[str, SourceEntry],
    "totals": dict[str, Amount],
    "decontamination": NotRequired[Decontamination],
    "export": NotRequired[Export],
    "run": Run,
    "audit": NotRequired[dict[str, Any]],  # mixer.audit.Audit.as_dict()
    "outputs": list[OutputFileEntry],
    "provenance_file": NotRequired[str],
    "rejects_file": str | None,
    "removed_file": str | None,
})
Manifest.__doc__ = "A build's manifest (one mixture folder)."


class SplitRead(TypedDict):
    rows_read: int
    rows_rejected: int


ConvertManifest = TypedDict("ConvertManifest", {
    "mixer": str,
    "converted": TypedDict("ConvertedFormats", {"from": str, "to": str}),
    "inputs": list[InputFileEntry],
    "rows_read": int,
    "rows_rejected": int,
    "rejected_reasons": dict[str, int],
    "repairs": dict[str, int],
    "splits": dict[str, SplitRead],
    "versions": dict[str, str],
    "notes": NotRequired[list[str]],
    "export": NotRequired[Export],
    "outputs": list[OutputFileEntry],
    "provenance_file": NotRequired[str],
    "rejects_file": str | None,
    "removed_file": NotRequired[str],
    "audit": NotRequired[dict[str, Any]],
})
ConvertManifest.__doc__ = "What ``mixer convert`` wrote."


def conform(value: Any, shape: Any = Manifest, where: str = "manifest") -> None:
    """Raise AssertionError naming the first key whose presence or type differs from ``shape``."""
    origin = typing.get_origin(shape)
    if shape is Any:
        return
    if typing.is_typeddict(shape):
        if not isinstance(value, dict):
            raise AssertionError(f"{where}: expected an object, got {type(value).__name__}")
        hints = typing.get_type_hints(shape)
        missing = shape.__required_keys__ - set(value)
        unknown = set(value) - set(hints)
        if missing or unknown:
            raise AssertionError(f"{where}: keys missing {sorted(missing)}, not declared {sorted(unknown)} "
                                 "(declare them in mixer.manifest_schema)")
        for key, item in value.items():
            conform(item, _required(hints[key]), f"{where}.{key}")
        return
    if origin in (Union, types.UnionType):
        errors = []
        for option in typing.get_args(shape):
            try:
                conform(value, option, where)
                return
            except AssertionError as exc:
                errors.append(str(exc))
        raise AssertionError(" / ".join(errors))
    if origin is Literal:
        if value not in typing.get_args(shape):
            raise AssertionError(f"{where}: {value!r} is not one of {typing.get_args(shape)}")
        return
    if origin is dict:
        key_type, item_type = typing.get_args(shape)
        if not isinstance(value, dict):
            raise AssertionError(f"{where}: expected an object, got {type(value).__name__}")
        for key, item in value.items():
            conform(key, key_type, f"{where} key")
            conform(item, item_type, f"{where}.{key}")
        return
    if origin is list:
        (item_type,) = typing.get_args(shape)
        if not isinstance(value, list):
            raise AssertionError(f"{where}: expected a list, got {type(value).__name__}")
        for i, item in enumerate(value):
            conform(item, item_type, f"{where}[{i}]")
        return
    if shape in (None, type(None)):
        if value is not None:
            raise AssertionError(f"{where}: expected null, got {value!r}")
        return
    if shape is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    elif shape is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    else:
        ok = isinstance(value, shape)
    if not ok:
        raise AssertionError(f"{where}: expected {getattr(shape, '__name__', shape)}, got {type(value).__name__} "
                             f"{value!r:.80}")


def _required(hint: Any) -> Any:
    """``NotRequired[X]`` -> ``X`` (presence was checked with the required keys)."""
    return typing.get_args(hint)[0] if typing.get_origin(hint) is NotRequired else hint
