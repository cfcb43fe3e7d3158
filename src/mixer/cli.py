"""The ``mixer`` command line: a thin layer over :mod:`mixer.build`.

Exit codes: 0 success, 1 a data or output problem, 2 a bad recipe or bad usage. Errors are
printed as one message, never as a traceback.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Any

import click

from mixer import pipeline
from mixer.cache import ENV as CACHE_ENV
from mixer.cache import Cache, default_root
from mixer.manifest import table as manifest_table
from mixer.manifest import unrendered_warnings
from mixer import recipe as recipe_mod
from mixer.executors import CHUNK_ROWS
from mixer.errors import MixerError, RecipeError
from mixer.progress import Progress

_SET_HELP = ("Override a recipe key, e.g. --set sources.hh.weight=0.2, --set total=1e6, or a transform's "
             "option by its position from 0: --set sources.hh.transforms[1].p=0.3. Values are TOML; paths "
             "(path, pool, catalog, against, chat_template, a tokenizer file, output.dir) are relative to "
             "the current folder. Repeatable.")


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def _friendly(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn MixerError into 'error: ...' and its exit code; Ctrl-C into exit 130."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        signal.signal(signal.SIGTERM, _interrupt)  # run cleanups on `kill` as on Ctrl-C
        try:
            return fn(*args, **kwargs)
        except MixerError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.echo("interrupted: nothing was written", err=True)
            # The build has removed its staging and spill folders as the interrupt unwound. Exit
            # now, not through the interpreter's shutdown: a signal that lands while this thread
            # holds a thread pool's lock leaves that pool's workers waiting for it, and the
            # shutdown would wait for them forever (seen in CI: SIGTERM during the write).
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(130)

    return wrapper


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="mixer")
def main() -> None:
    """Build reproducible, trainer-ready data mixtures for LLM safety post-training.

    Write a TOML recipe naming your sources and their weights, then run
    `mixer build recipe.toml`. See recipes/quickstart.toml for an example.
    """


def _engine(engine: str | None, stream: bool, address: str | None) -> str:
    """The engine of ``--engine``/``--stream``/``--address``, or a usage error when they disagree."""
    if stream and engine not in (None, "stream"):
        raise RecipeError(f"--stream is --engine stream; it cannot be combined with --engine {engine}")
    engine = engine or ("stream" if stream else "memory")
    if address and engine != "ray":
        raise RecipeError("--address is the Ray cluster of --engine ray; add --engine ray or drop --address")
    return engine


_ENGINE = click.option("--engine", type=click.Choice(["memory", "stream", "ray"]), default=None,
                       help="Where rows live while building (same output with each): memory (default); stream: one "
                            "chunk at a time through the output's staging folder (sources larger than memory); ray: "
                            "as stream, row-local steps as Ray tasks (needs pip install 'mixer[ray]').")
_ADDRESS = click.option("--address", metavar="ADDR",
                        help="With --engine ray: the running Ray cluster to use (e.g. auto, ray://HEAD:10001); by "
                             "default a local Ray runtime with this machine's cores starts and stops with the build. "
                             "The output folder must be on storage every node sees.")


@main.command()
@click.argument("recipe", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--out", type=click.Path(file_okay=False, path_type=Path),
              help="Output folder (default: output.dir from the recipe, else ./out/NAME).")
@click.option("--force", is_flag=True, help="Replace the output folder if a previous mixer build wrote it (never any other folder).")
@click.option("--dry-run", is_flag=True, help="Read, count and plan; print the table; write nothing.")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help=_SET_HELP)
@click.option("--only", multiple=True, metavar="NAME", help="Staged recipes: build only these mixtures. Repeatable.")
@click.option("--weights", "weights_file", metavar="FILE[:ROW]",
              help="Source weights from a JSON object or a sweep's ratios.csv row (fitted weights fed back).")
@click.option("--strict", is_flag=True, help="Fail (and write nothing) if the output format cannot carry a row.")
@_ENGINE
@click.option("--stream", is_flag=True, help="Same as --engine stream.")
@_ADDRESS
@click.option("--chunk-rows", type=click.IntRange(min=1), default=CHUNK_ROWS, show_default=True,
              help="Rows per chunk with --engine stream or ray; memory grows with it.")
@click.option("-q", "--quiet", is_flag=True,
              help="No progress on stderr (otherwise: a live bar per stage on a terminal, timestamped lines elsewhere).")
@click.option("--cache-dir", type=click.Path(file_okay=False, path_type=Path),
              help="Keep each preparation here (default: $MIXER_CACHE; unset: no cache), so a re-mix (other "
                   "weights, budgets, output) skips reading and tokenizing.")
@click.option("--no-cache", is_flag=True, help="Ignore the cache for this build.")
@_friendly
def build(recipe: Path, out: Path | None, force: bool, dry_run: bool, sets: tuple[str, ...], only: tuple[str, ...],
          weights_file: str | None, strict: bool, engine: str | None, stream: bool, address: str | None,
          chunk_rows: int, quiet: bool, cache_dir: Path | None, no_cache: bool) -> None:
    """Build the mixture described by RECIPE and write it with a manifest.

    The output folder holds data/train-*.parquet (and validation), manifest.json
    and, when rows were skipped, rejects.jsonl. It opens with
    datasets.load_dataset(OUT). Nothing is written if any step fails.

    A staged recipe ([mixtures.NAME] tables) builds every mixture into its own
    folder under OUT, each with its own manifest, plus a top-level manifest.json
    that links them.
    """
    engine = _engine(engine, stream, address)

    def show(built: pipeline.Built) -> None:
        if built.staged:
            click.echo(f"\n[{built.name}]  format: {built.recipe.output.format}")
        click.echo(manifest_table(built.manifest))
        if built.manifest.get("audit"):
            from mixer.audit import summary

            click.echo(summary(built.manifest["audit"]))
        cached = (built.manifest.get("run") or {}).get("cache")
        if cached:
            click.echo(f"cache: {'hit, read/dedup/prepare skipped' if cached['hit'] else 'stored'} "
                       f"({cached['dir']}/{cached['key']})")
        _warn_notes(built.manifest)
        click.echo(f"dry run: nothing written (would write {built.target})" if dry_run else f"wrote {built.target}")

    result = pipeline.build_all(recipe, list(sets) + (["output.strict=true"] if strict else []), only=only, out=out,
                                weights=weights_file, force=force, dry_run=dry_run,
                                executor=engine, address=address, chunk_rows=chunk_rows,
                                progress=Progress("quiet" if quiet else "auto").on_stage, on_built=show,
                                cache_dir=cache_dir, cache=not no_cache)
    if result.index is not None:
        click.echo(f"wrote {result.index}")


@main.command()
@click.argument("recipe", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help=_SET_HELP)
@_friendly
def validate(recipe: Path, sets: tuple[str, ...]) -> None:
    """Check RECIPE without reading any data: keys, types, budgets, paths, and every transform
    prepared as a build prepares it (option values, pool and catalog files and columns)."""
    from mixer import tokens, transforms
    from mixer.sources.files import locate

    stages = recipe_mod.load_all(recipe, list(sets))
    for parsed in stages.values():
        for src in parsed.sources:
            if not src.is_hub:
                locate(src)
        base_dir = parsed.path.resolve().parent if parsed.path else Path.cwd()
        encoding = tokens.encoding(parsed.tokenizer)  # a missing tokenizer.json fails here too
        if parsed.output.audit:
            from mixer.audit import check_template

            check_template(parsed.output.audit)  # the template loads, or says why
        if parsed.chat_template:
            from mixer import template_tokens

            template_tokens.load(parsed.chat_template, parsed.tokenizer)
        for src in parsed.sources:
            try:
                transforms.prepare(src.transforms, seed=parsed.seed, source=src.name, base_dir=base_dir,
                                   encoding=encoding)
            except RecipeError as exc:
                raise RecipeError(f"{recipe}: {exc}") from None
    for name, parsed in stages.items():
        label = f"{recipe} [{name}]" if parsed.staged else str(recipe)
        click.echo(f"{label}: ok ({len(parsed.sources)} sources, unit = {parsed.unit}, sha256 {parsed.sha256[:12]})")


@main.command()
@click.argument("source", metavar="IN")
@click.argument("out", metavar="OUT", type=click.Path(file_okay=False, path_type=Path))
@click.option("--to", "to", required=True, type=click.Choice(recipe_mod.OUTPUT_FORMATS), help="Target format.")
@click.option("--from", "from_format", default="auto", show_default=True, type=click.Choice(recipe_mod.FORMATS),
              help="Input format (auto-detected from the columns by default).")
@click.option("--kind", type=click.Choice(["chat", "document"]), help="Force chat or document rows.")
@click.option("--skip-bad", is_flag=True, help="Skip and count unreadable records instead of failing.")
@click.option("--chat-template", help="For --to text: chatml, a .jinja file or a tokenizer_config.json.")
@click.option("--strict", is_flag=True, help="Fail if the target format cannot carry a row.")
@click.option("--rename-tools", is_flag=True,
              help="Rename tools whose names break the target's rule (openai) instead of rejecting the rows.")
@click.option("--force", is_flag=True, help="Replace OUT if a previous mixer build or conversion wrote it.")
@_friendly
def convert(source: str, out: Path, to: str, from_format: str, kind: str | None, skip_bad: bool,
            chat_template: str | None, strict: bool, rename_tools: bool, force: bool) -> None:
    """Convert IN (file, folder, glob or hf://id) to a trainer format in OUT.

    Same adapters and per-format rules as a build; rows the target cannot carry
    are counted in OUT/manifest.json and written to OUT/rejects.jsonl.
    """
    written, manifest = pipeline.convert(source, out, to, from_format=from_format, kind=kind,
                                         on_error="skip" if skip_bad else "fail", force=force, strict=strict,
                                         chat_template=chat_template, rename_tools=rename_tools)
    export = manifest.get("export") or {}
    for split, counts in manifest["splits"].items():
        rows = export.get("rows", {}).get(split, counts["rows_read"] - counts["rows_rejected"])
        rejected = sum(export.get("rejected", {}).get(split, {}).values())
        click.echo(f"{split}: {manifest['converted']['from']} -> {manifest['converted']['to']}: "
                   f"{counts['rows_read']:,} read, {counts['rows_rejected']:,} unreadable, {rejected:,} not "
                   f"representable, {rows:,} written")
        if export.get("tools_renamed", {}).get(split):
            click.echo(f"{split}: {export['tools_renamed'][split]:,} rows had tool names renamed to fit {to}'s rule")
    click.echo(f"wrote {written}")
    for line in unrendered_warnings(export):
        click.echo(line, err=True)
    _warn_notes(manifest)


def _warn_notes(manifest: dict[str, Any]) -> None:
    """What reading noticed but did not stop for (files skipped for their extension)."""
    notes = list(manifest.get("notes") or [])
    for entry in (manifest.get("sources") or {}).values():
        notes += entry.get("notes") or []
    for note in notes:
        click.echo(f"warning: {note}", err=True)


@main.command()
@click.option("--sizes", default="10k,100k", show_default=True, help="Comma-separated row counts (k, M suffixes).")
@click.option("--hh", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="An HH-RLHF folder to scale (default: mixer's example chats).")
@click.option("--cache", type=click.Path(file_okay=False, path_type=Path), default=Path(".mixer-bench"),
              show_default=True, help="Where generated workloads are kept.")
@click.option("--no-baselines", is_flag=True, help="Measure mixer only.")
@_friendly
def bench(sizes: str, hh: Path | None, cache: Path, no_baselines: bool) -> None:
    """Measure augmentation, token counting and a full build on this machine, side by side
    with a plain Python loop, datasets.map, tiktoken and the pyarrow I/O floor."""
    from mixer import bench as bench_mod

    def size(text: str) -> int:
        text = text.strip().lower()
        scale = {"k": 1_000, "m": 1_000_000}.get(text[-1:], 1)
        return int(float(text[:-1] if scale > 1 else text) * scale)

    results = bench_mod.suite([size(s) for s in sizes.split(",")], cache, hh, baselines=not no_baselines,
                              log=lambda msg: click.echo(msg, err=True))
    click.echo(f"{bench_mod.machine()}\n\n{bench_mod.table(results)}")


_POOLS = ("system_prompts", "tools", "requests", "generated-tools")


@main.command()
@click.argument("recipe", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Sweep folder: one subfolder per variant, plus manifest.json and ratios.csv.")
@click.option("--force", is_flag=True, help="Replace a previous sweep's folders (never any other folder).")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help=_SET_HELP)
@click.option("--dry-run", is_flag=True, help="List the variants and their overrides; build nothing.")
@_ENGINE
@click.option("--stream", is_flag=True, help="Same as --engine stream.")
@_ADDRESS
@click.option("--chunk-rows", type=click.IntRange(min=1), default=CHUNK_ROWS, show_default=True,
              help="Rows per chunk with --engine stream or ray.")
@click.option("--cache-dir", type=click.Path(file_okay=False, path_type=Path),
              help="Prepared-source cache shared by the variants (default: $MIXER_CACHE, else a temporary one).")
@click.option("-q", "--quiet", is_flag=True, help="No per-stage progress on stderr.")
@_friendly
def sweep(recipe: Path, out: Path, force: bool, sets: tuple[str, ...], dry_run: bool, engine: str | None,
          stream: bool, address: str | None, chunk_rows: int, cache_dir: Path | None, quiet: bool) -> None:
    """Build every variant of RECIPE's [sweep] table (grid, ablations, dropped
    transforms, Dirichlet swarm over source weights) from one preparation.

    Writes OUT/NAME/ per variant (a full build each), OUT/ratios.csv (realised
    shares per variant, for mixture fitting; feed a row back with
    mixer build --weights OUT/ratios.csv:NAME) and OUT/manifest.json.
    Infeasible variants are listed with the reason.
    """
    from mixer import sweep as sweep_mod

    engine = _engine(engine, stream, address)
    base, _, found = sweep_mod.plan(recipe, list(sets))
    if dry_run:
        for v in found:
            shown = ", ".join(f"{k}={json.dumps(val)}" for k, val in v.overrides.items()) or "(the recipe as it is)"
            click.echo(f"{v.index:>3}  {v.name}  [{v.kind}]  {shown}")
        click.echo(f"dry run: {len(found)} variants, nothing built")
        return

    def show(outcome: Any) -> None:
        status = "infeasible" if not outcome.built else (
            "built (cache hit)" if outcome.manifest["run"].get("cache", {}).get("hit") else "built")
        click.echo(f"[{outcome.variant.index + 1}/{len(found)}] {outcome.variant.name}: {status}, "
                   f"{outcome.seconds:.1f} s", err=True)

    outcomes = sweep_mod.run(recipe, out, list(sets), force=force, executor=engine, address=address,
                             chunk_rows=chunk_rows, cache_dir=cache_dir,
                             progress=Progress("quiet" if quiet else "auto").on_stage, on_variant=show)
    click.echo(sweep_mod.table(outcomes, [s.name for s in base.sources]))
    built = sum(o.built for o in outcomes)
    click.echo(f"wrote {out.resolve()}: {built} of {len(outcomes)} variants built; ratios.csv, manifest.json")
    if not built:
        raise SystemExit(1)


@main.group()
def cache() -> None:
    """The prepared-source cache ($MIXER_CACHE or --cache-dir): list or empty it."""


def _cache_root(cache_dir: Path | None) -> Path:
    root = cache_dir or default_root()
    if root is None:
        raise RecipeError(f"no cache folder: pass --cache-dir DIR or set {CACHE_ENV}")
    return root


@cache.command("ls")
@click.option("--cache-dir", type=click.Path(file_okay=False, path_type=Path), help="Default: $MIXER_CACHE.")
@_friendly
def cache_ls(cache_dir: Path | None) -> None:
    """List cached preparations: key, size, recipe, sources, last used."""
    store = Cache(_cache_root(cache_dir))
    items = store.entries()
    for item in sorted(items, key=lambda i: -i.last_used):
        used = time.strftime("%Y-%m-%d %H:%M", time.localtime(item.last_used))
        click.echo(f"{item.key}  {_size(item.bytes):>9}  {used}  {item.recipe}: {', '.join(item.sources)}")
    click.echo(f"{len(items)} entries, {_size(sum(i.bytes for i in items))} in {store.root}")


@cache.command("clear")
@click.option("--cache-dir", type=click.Path(file_okay=False, path_type=Path), help="Default: $MIXER_CACHE.")
@_friendly
def cache_clear(cache_dir: Path | None) -> None:
    """Remove every cached preparation."""
    store = Cache(_cache_root(cache_dir))
    n, size = store.clear()
    click.echo(f"removed {n} entries, {_size(size)} from {store.root}")


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


@main.group(invoke_without_command=True)
@click.pass_context
def pools(ctx: click.Context) -> None:
    """List the built-in augmentation pools, or show entries with `pools show NAME`."""
    if ctx.invoked_subcommand is not None:
        return
    from mixer.pools import builtin_records, version

    tools = builtin_records("tools")
    styles = sorted({r["style"] for r in builtin_records("system_prompts")})
    domains = sorted({r["domain"] for r in tools})
    click.echo(f"built-in pools (sha256 {version()}):")
    click.echo(f"  system_prompts   {len(builtin_records('system_prompts')):>4} templates, styles: {', '.join(styles)}")
    click.echo(f"  tools            {len(tools):>4} tool specs across {len(domains)} domains: {', '.join(domains)}")
    click.echo(f"  requests         {len(builtin_records('requests')):>4} document requests (documents_to_chat)")
    click.echo("  generated-tools     * procedurally generated specs (catalog = \"generated\")")
    from mixer.pools.loading import MAX_CHARS
    from mixer.pools.tags import TAGS

    prompts = builtin_records("system_prompts")
    counts: dict[str, int] = {}
    for record in prompts:
        for tag in record["tags"]:
            key = tag if tag in TAGS else tag.split(":")[0] + ":" + tag.split(":")[1].split("<=")[0] + "<=N"
            counts[key] = counts.get(key, 0) + 1
    tagged = sum(bool(r["tags"]) for r in prompts)
    click.echo(f"\nsystem-prompt constraint tags ({tagged} of {len(prompts)} built-in prompts carry one):")
    click.echo("  what a prompt demands of the answer. By default (system_prompt constraints = \"compatible\")")
    click.echo("  a row whose final assistant turn is kept gets only prompts whose every tag its answer meets;")
    click.echo("  rows without a final assistant turn (after to_prompt) may get any prompt. constraints = \"any\"")
    click.echo("  turns the check off. Choose entries with styles / exclude_styles and tags / exclude_tags (a tag,")
    click.echo("  or a kind: format, language, length). Your own pool files may carry a tags column.")
    for tag, meaning in TAGS.items():
        click.echo(f"  {tag:<22} {counts.get(tag, 0):>3}  {meaning}")
    click.echo(f"\npool entries longer than {MAX_CHARS:,} characters are skipped and counted (set max_chars per pool,")
    click.echo("  0 for no cap); include/exclude = {column = value} keep or drop a pool file's rows by a column.")


@pools.command("show")
@click.argument("name", type=click.Choice(_POOLS))
@click.option("-n", "count", default=5, show_default=True, help="How many entries to print.")
@click.option("--seed", default=0, show_default=True, help="Seed for filled templates and generated tools.")
@_friendly
def pools_show(name: str, count: int, seed: int) -> None:
    """Print the first entries of a built-in pool (templates filled with Faker)."""
    from mixer.pools import builtin_records
    from mixer.pools.catalog import generated_entries
    from mixer.pools.templates import faker, fill

    if name == "generated-tools":
        for ident, _, spec, _ in generated_entries(count, seed):
            click.echo(f"{ident}\n  {spec}")
        return
    fake = faker("en_US", seed)
    for record in builtin_records(name)[:count]:
        if name == "tools":
            fn = record["function"]
            click.echo(f"{record['id']}  ({record['domain']})\n  {fn['description']}\n  "
                       f"parameters: {', '.join(fn['parameters'].get('properties', {}))}")
        else:
            text = fill(record["text"], fake)
            style = f"  [{record['style']}]" if "style" in record else ""
            style += f"  tags: {', '.join(record['tags'])}" if record.get("tags") else ""
            click.echo(f"{record['id']}{style}\n  {text}" + ("" if text == record["text"] else f"\n  template: {record['text']}"))


@pools.command("import")
@click.argument("source", metavar="IN", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--from", "from_format", required=True,
              type=click.Choice(["openai", "anthropic", "bfcl", "xlam", "toolace", "glaive"]),
              help="How IN holds its tools: OpenAI or Anthropic tool JSON, BFCL function docs, APIGen/xLAM rows "
                   "(tools as a JSON string), ToolACE or glaive rows (tools inside the system prompt).")
@click.option("-o", "--out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="The catalog to write (JSON Lines, one OpenAI tool spec a line).")
@click.option("--force", is_flag=True, help="Replace OUT if it exists.")
@_friendly
def pools_import(source: Path, from_format: str, out: Path, force: bool) -> None:
    """Import tool specs from IN into a catalog file for the tools transform
    (catalog = "OUT"), each checked as JSON Schema; skipped specs are counted by reason."""
    from mixer import formats
    from mixer.errors import DataError
    from mixer.pools.importers import import_specs, write_catalog

    if out.exists() and not force:
        raise DataError(f"{out} already exists; pass --force to replace it")
    result = import_specs(source, from_format)
    if not result.specs:
        raise DataError(f"{source}: no usable {from_format} tool specs ({result.read:,} found, all skipped"
                        + (f": {result.skipped.most_common(1)[0][0]}" if result.skipped else "") + ")")
    write_catalog(result.specs, out)
    click.echo(f"{source}: {result.read:,} specs found, {len(result.specs):,} written to {out}, "
               f"{sum(result.skipped.values()):,} skipped")
    for reason, n in result.skipped.most_common():
        click.echo(f"  skipped {n:,}: {reason} (first at {result.example[reason]})")
    for fmt in formats.FORMATS.values():  # kept: other configurations of that trainer render them
        if fmt.tool_problem is None:
            continue
        found: dict[str, list[str]] = {}
        for spec in result.specs:
            if reason := fmt.tool_problem(json.dumps(spec, ensure_ascii=False)):
                found.setdefault(reason, []).append(spec["function"]["name"])
        for reason, names in found.items():
            click.echo(f"  note: {len(names):,} written specs are {reason} (first: {names[0]}; a {fmt.name} build "
                       "counts and names the rows that carry them)")


@main.command()
@click.argument("recipe", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--source", "source_name", required=True, help="Which recipe source to preview.")
@click.option("-n", "count", default=3, show_default=True, help="How many rows to show.")
@click.option("--width", default=300, show_default=True, help="Truncate long texts to this many characters.")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help=_SET_HELP)
@_friendly
def preview(recipe: Path, source_name: str, count: int, width: int, sets: tuple[str, ...]) -> None:
    """Show rows of one source before and after its transforms."""
    from mixer.preview import render_preview

    click.echo(render_preview(recipe_mod.load(recipe, list(sets)), source_name, count, width))


@main.command()
@click.argument("a", type=click.Path(exists=True, path_type=Path))
@click.argument("b", type=click.Path(exists=True, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the comparison as JSON.")
@_friendly
def diff(a: Path, b: Path, as_json: bool) -> None:
    """Compare two built mixtures (output folders or their manifest.json): per source rows,
    tokens and shares, rows added and removed, changed inputs, transforms and settings.
    Exits 0 when both wrote identical files, 1 when they differ."""
    import dataclasses
    import json

    from mixer import diff as diff_mod

    result = diff_mod.diff(a, b)
    if as_json:
        click.echo(json.dumps({"identical": result.identical, "files_differ": result.files_differ,
                               "settings": result.settings,
                               "sources": [dataclasses.asdict(s) for s in result.sources]}, indent=2, default=str))
    else:
        click.echo(diff_mod.table(result))
    sys.exit(0 if result.identical else 1)


@main.command()
@click.argument("out", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("-t", "--template", required=True,
              help="A .jinja file, a tokenizer_config.json, a tokenizer folder, or chatml.")
@click.option("-n", "sample", type=click.IntRange(min=1), help="Audit a seeded sample of N rows (default: all).")
@click.option("--split", default="train", show_default=True, help="Which split to audit.")
@click.option("--seed", default=0, show_default=True, help="Seed of the sample.")
@click.option("--json", "as_json", is_flag=True, help="Print the findings as JSON.")
@click.option("--strict", is_flag=True, help="Exit 1 if any row would train differently from what the recipe asked.")
@_friendly
def audit(out: Path, template: str, sample: int | None, split: str, seed: int, as_json: bool, strict: bool) -> None:
    """Render OUT's rows with a chat template, as the trainer will, and report where system
    prompts and tools land, text the template injects, double-encoded tool-call arguments,
    template errors, and rendered/trainable tokens, per source."""
    import json

    from mixer import audit as audit_mod

    manifest_path = out / "manifest.json"
    manifest = json.loads(manifest_path.read_text(encoding="utf-8")) if manifest_path.is_file() else {}
    result = audit_mod.audit(out, template, split=split, sample=sample, seed=seed,
                             encoding=audit_mod.build_encoding(manifest))
    found = result.as_dict()
    audit_mod.compare(found, manifest)  # beside mixer's estimate when every written train row was audited
    click.echo(json.dumps(found, indent=2) if as_json else audit_mod.table(result, found))
    if strict and result.total.problems:
        click.echo(f"error: --strict: {result.total.problems:,} rows would train differently from what the "
                   "recipe asked", err=True)
        sys.exit(1)


@main.command()
@click.argument("out", metavar="OUT", type=click.Path(file_okay=False, path_type=Path))
@click.option("--open", "open_it", is_flag=True, help="Open the report in the default web browser.")
@_friendly
def report(out: Path, open_it: bool) -> None:
    """(Re)write OUT/report.html for an existing output folder.

    One self-contained HTML file (no scripts, no network): shares, row accounting, token
    lengths, augmentation, repeats, validation, timings and example rows. For a staged
    build's top folder, one part per stage.
    """
    from mixer.report import write_report

    written = write_report(out)
    click.echo(f"wrote {written}")
    if open_it:
        import webbrowser

        if not webbrowser.open(written.resolve().as_uri()):
            click.echo(f"no web browser found here: copy {written} to a machine with one and open it there", err=True)


if __name__ == "__main__":
    main()
