"""How easily generated tool specs are told apart from real ones: a simple, reproducible proxy.

    python benchmarks/tool_realism.py [--other old_generated.jsonl]

Real specs: BFCL and Seal-Tools from ../shared/data/tool_specs. Generated: mixer's `generated`
catalog (seed 0), as many as there are real ones. Each spec becomes the words of its name,
description, parameter names and parameter descriptions; a multinomial naive Bayes classifier
over word unigrams and bigrams is trained on a random half of each set and scored on the other
half. Accuracy 0.5 means indistinguishable; 1.0 means trivially separable. Also reported: the
share of the generated specs' description words that never occur in any real description
(vocabulary a reader would notice). ``--other FILE`` scores another set of specs (one JSON spec
per line) the same way, e.g. an earlier generator's output, in the same run.
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import random
import re
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
SPECS = HERE.parent.parent / "shared" / "data" / "tool_specs"


def description_words(spec: dict) -> list[str]:
    """Unigrams of the description alone: what a reader skimming the spec sees first."""
    return re.findall(r"[a-z]+", str(spec.get("function", spec).get("description") or "").lower())


def words(spec: dict) -> list[str]:
    fn = spec.get("function", spec)
    parts = [re.sub(r"(?<=[a-z])(?=[A-Z])", " ", fn.get("name", "")).replace("_", " "), fn.get("description") or ""]
    props = ((fn.get("parameters") or {}).get("properties") or {})
    for name, sub in props.items():
        parts.append(name.replace("_", " "))
        if isinstance(sub, dict):
            parts.append(str(sub.get("description") or ""))
    tokens = re.findall(r"[a-z]+", " ".join(parts).lower())
    return tokens + [f"{a}_{b}" for a, b in zip(tokens, tokens[1:])]


def real_specs() -> list[dict]:
    out = []
    for name in ("bfcl_tools.jsonl.gz", "seal_tools.jsonl.gz"):
        with gzip.open(SPECS / name, "rt", encoding="utf-8") as fh:
            out += [json.loads(line) for line in fh if line.strip()]
    return out


def separability(real: list[dict], fake: list[dict], seed: int = 0, features=words) -> float:
    """Held-out accuracy of naive Bayes telling ``fake`` from ``real`` (balanced halves)."""
    rnd = random.Random(seed)
    n = min(len(real), len(fake))
    a, b = rnd.sample(real, n), rnd.sample(fake, n)
    train = [(features(s), 0) for s in a[: n // 2]] + [(features(s), 1) for s in b[: n // 2]]
    test = [(features(s), 0) for s in a[n // 2:]] + [(features(s), 1) for s in b[n // 2:]]
    counts = [Counter(), Counter()]
    for ws, y in train:
        counts[y].update(ws)
    vocab = set(counts[0]) | set(counts[1])
    totals = [sum(c.values()) + len(vocab) for c in counts]
    right = 0
    for ws, y in test:
        score = [sum(math.log((counts[k][w] + 1) / totals[k]) for w in ws if w in vocab) for k in (0, 1)]
        right += int((score[1] > score[0]) == bool(y))
    return right / len(test)


def unseen_share(real: list[dict], fake: list[dict]) -> float:
    seen = {w for s in real for w in re.findall(r"[a-z]+", str(s.get("function", s).get("description") or "").lower())}
    fake_words = [w for s in fake for w in re.findall(r"[a-z]+", str(s.get("function", s).get("description") or "").lower())]
    return sum(w not in seen for w in fake_words) / max(len(fake_words), 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--other", type=Path, help="another set of specs (JSONL) to score the same way")
    args = parser.parse_args()
    from mixer.pools.catalog import generated_entries

    real = real_specs()
    sets = {"mixer generated": [json.loads(e[2]) for e in generated_entries(len(real), 0)]}
    if args.other:
        sets[args.other.name] = [json.loads(line) for line in args.other.read_text().splitlines() if line.strip()]
    print(f"real specs: {len(real):,} (BFCL + Seal-Tools)")
    print("| specs | naive Bayes accuracy: whole spec, uni+bigrams | description unigrams only | "
          "description words never in a real spec |")
    print("|---|---:|---:|---:|")
    for name, fake in sets.items():
        print(f"| {name} ({len(fake):,}) | {separability(real, fake):.3f} | "
              f"{separability(real, fake, features=description_words):.3f} | {unseen_share(real, fake):.1%} |")


if __name__ == "__main__":
    main()
