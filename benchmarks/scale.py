"""Scale-out on paper: a cluster build of mixer's Ray engine, simulated with measured costs.

    python benchmarks/scale.py --measured benchmarks/ray-1M.json --rows 1e9 --nodes 16 --cores 32

Costs come from ``benchmarks/ray.py`` (a 1M-row build on this machine): rows/s per core of each
row-local stage (a Ray task holds one core), rows/s of each global step on the driver, and bytes
per row of the key tables the driver holds. The simulation schedules every chunk's task on the
cluster's cores (a list scheduler: a task starts when a core is free and, while reading, when
the driver has read its chunk), runs the global steps on the driver one after another, and
reports each stage's time and the driver's memory. Assumed, not measured: costs per row stay
constant at scale (the global steps sort, so they grow a little faster), the shared storage
keeps up (its traffic is reported), and scheduling overhead per task is ``--task-overhead``.
"""

from __future__ import annotations

import argparse
import heapq
import json
from pathlib import Path

HERE = Path(__file__).resolve().parent
TASK_STAGES = ("prepare", "gather", "export")  # row-local, one task per chunk (export: per output shard)
DRIVER_STAGES = ("dedup", "select", "order")  # global, on key tables on the driver


def schedule(tasks: int, seconds: float, cores: int, ready: list[float] | None = None) -> float:
    """When the last of ``tasks`` equal tasks ends on ``cores`` cores, each starting no earlier
    than its ``ready`` time (default: all ready at 0)."""
    free = [0.0] * min(cores, tasks)
    heapq.heapify(free)
    end = 0.0
    for t in range(tasks):
        start = max(heapq.heappop(free), ready[t] if ready else 0.0)
        done = start + seconds
        end = max(end, done)
        heapq.heappush(free, done)
    return end


def simulate(m: dict, rows: float, cores: int, chunk_rows: int, shard_rows: int,
             task_overhead: float, partitioned: bool = False) -> dict[str, float]:
    """Seconds per stage of a ``rows`` build on ``cores`` task cores plus one driver.

    ``partitioned``: the proposed design (docs/scale.md): sources read in tasks (a file's or row
    group's rows, ids fixed afterwards by a global count of repeated content), and the global steps
    over hash-range partitions of the key tables, one task per partition, at the driver's
    measured rate per core; the driver only adds up per-partition counts."""
    n = m["rows"]
    ray_phase = {p["phase"]: p["seconds"] for p in m["ray"]["phases"]}
    stream_phase = {p["phase"]: p["seconds"] for p in m["stream"]["phases"]}
    chunks = int(-(-rows // chunk_rows))
    out: dict[str, float] = {}
    # read: the driver reads and normalises every chunk in order (its rate: Ray's read stage, keys
    # running beside it); each chunk's keys are a task once it is read (their cost:
    # the streaming build's read, which computed them on the same core, minus the driver's)
    driver = ray_phase["read"]
    per_chunk = driver / (n / chunk_rows)
    keys = max(stream_phase["read"] - driver, 0.0) / (n / chunk_rows)
    if partitioned:
        out["read (tasks)"] = schedule(chunks, per_chunk + keys + task_overhead, cores)
    else:
        out["read (driver, keys as tasks)"] = schedule(chunks, keys + task_overhead, cores,
                                                       [per_chunk * (c + 1) for c in range(chunks)])
    for stage in DRIVER_STAGES:
        if partitioned:  # the driver's rate used its cores; a partition task has one
            per_core = n / (ray_phase[stage] * m["cpus"])
            out[f"{stage} (tasks)"] = schedule(chunks, chunk_rows / per_core + task_overhead, cores)
        else:
            out[f"{stage} (driver)"] = ray_phase[stage] * rows / n
    for stage in TASK_STAGES:
        per_core = n / (ray_phase[stage] * m["cpus"])  # rows/s of one task on one core
        size = shard_rows if stage == "export" else chunk_rows
        out[f"{stage} (tasks)"] = schedule(int(-(-rows // size)), size / per_core + task_overhead, cores)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--measured", type=Path, default=HERE / "ray-1M.json")
    parser.add_argument("--rows", type=float, default=1e9)
    parser.add_argument("--nodes", type=int, default=16)
    parser.add_argument("--cores", type=int, default=32, help="cores per node")
    parser.add_argument("--chunk-rows", type=int, default=100_000)
    parser.add_argument("--shard-rows", type=int, default=250_000)
    parser.add_argument("--task-overhead", type=float, default=0.05, help="seconds of scheduling per task")
    args = parser.parse_args()
    m = json.loads(args.measured.read_text())
    cores = args.nodes * args.cores
    here = simulate(m, m["rows"], m["cpus"], args.chunk_rows, args.shard_rows, args.task_overhead)
    there = simulate(m, args.rows, cores, args.chunk_rows, args.shard_rows, args.task_overhead)
    one = simulate(m, args.rows, m["cpus"], args.chunk_rows, args.shard_rows, args.task_overhead)
    after = simulate(m, args.rows, cores, args.chunk_rows, args.shard_rows, args.task_overhead, partitioned=True)
    n = m["rows"]
    big = f"{args.rows / 1e9:g}B rows"
    lines = [f"| stage | now runs on | {n / 1e6:g}M rows, {m['cpus']} cores: measured s | model s | "
             f"{big}, {m['cpus']} cores: model s | {big}, {args.nodes} x {args.cores} cores: model s | "
             f"same, partitioned design: model s |",
             "|---|---|---:|---:|---:|---:|---:|"]
    measured = {p["phase"]: p["seconds"] for p in m["ray"]["phases"]}
    for (stage, seconds), moved in zip(there.items(), after.values()):
        name, where = stage.split(" (")
        lines.append(f"| {name} | {where.rstrip(')')} | {measured[name]:.1f} | {here[stage]:.1f} | "
                     f"{one[stage]:,.0f} | {seconds:,.0f} | {moved:,.0f} |")
    lines.append(f"| total | | {sum(measured.values()):.1f} | {sum(here.values()):.1f} | {sum(one.values()):,.0f} | "
                 f"{sum(there.values()):,.0f} | {sum(after.values()):,.0f} |")
    keys = m["key_bytes_per_row"]
    peak = max(keys["dedup keys"], keys["selection keys"] + keys["order plan"])
    gb = args.rows / 1e9
    lines += ["", f"Driver key tables at {gb:g}B rows: dedup keys {keys['dedup keys'] * gb:,.0f} GB "
              f"(read to dedup), then selection keys + order plan "
              f"{(keys['selection keys'] + keys['order plan']) * gb:,.0f} GB "
              f"(select to the end of gather): peak about {peak:.0f} B/row, {peak * args.rows / 1e9:,.0f} GB before "
              "Polars' working copies in sorts and joins.",
              f"Spill traffic on shared storage: about {m['input_bytes_per_row']:.0f} B/row per copy of the rows "
              f"(input Parquet), written 3-4 times (raw, ready, gathered pieces, output): "
              f"{4 * m['input_bytes_per_row'] * args.rows / 1e12:,.1f} TB written per build."]
    print("\n".join(lines))


if __name__ == "__main__":
    main()
