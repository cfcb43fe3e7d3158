"""A token-counting worker process: ``python -c "from mixer.token_worker import main; main()" ENCODING``.

Reads batches of strings from stdin and writes back the token count of each, until stdin
closes. Started by :mod:`mixer.tokens` as a plain subprocess, not through ``multiprocessing``:
a spawned child would re-run a user's script that lacks the ``if __name__ == "__main__"``
guard, and a forked one would inherit Polars' busy thread pool. Imports only tiktoken and
numpy, so it starts fast.

The wire format is plain bytes (never code): a batch is ``n`` (uint32), ``n`` UTF-8 lengths
(uint32 each), then the strings back to back; the answer is ``n`` counts (uint32 each).
"""

from __future__ import annotations

import sys
from typing import BinaryIO

import numpy as np
import tiktoken


def write_batch(out: BinaryIO, texts: list[str]) -> None:
    encoded = [t.encode("utf-8", "surrogatepass") for t in texts]
    write_encoded(out, np.fromiter((len(b) for b in encoded), dtype="<u4", count=len(encoded)), b"".join(encoded))


def write_encoded(out: BinaryIO, lengths: np.ndarray, data: bytes | memoryview) -> None:
    """A batch already in UTF-8: each string's length in bytes, and the strings back to back."""
    out.write(np.array([len(lengths)], dtype="<u4").tobytes())
    out.write(lengths.astype("<u4").tobytes())
    out.write(data)
    out.flush()


def read_exact(inp: BinaryIO, size: int) -> bytes:
    data = inp.read(size)
    if data is None or len(data) != size:
        raise EOFError("token worker: stream ended mid-batch")
    return data


def read_batch(inp: BinaryIO) -> list[str] | None:
    head = inp.read(4)
    if not head:
        return None
    n = int(np.frombuffer(read_exact(inp, 4) if len(head) < 4 else head, dtype="<u4")[0])
    lengths = np.frombuffer(read_exact(inp, 4 * n), dtype="<u4")
    blob = read_exact(inp, int(lengths.sum()))
    ends = np.cumsum(lengths)
    starts = ends - lengths
    return [blob[a:b].decode("utf-8", "surrogatepass") for a, b in zip(starts.tolist(), ends.tolist())]


def read_counts(inp: BinaryIO, n: int) -> np.ndarray:
    return np.frombuffer(read_exact(inp, 4 * n), dtype="<u4").astype(np.uint32)


def main() -> None:
    enc = tiktoken.get_encoding(sys.argv[1])
    inp, out = sys.stdin.buffer, sys.stdout.buffer
    while True:
        texts = read_batch(inp)
        if texts is None:
            return
        counts = np.fromiter((len(enc.encode_ordinary(t)) for t in texts), dtype="<u4", count=len(texts))
        out.write(counts.tobytes())
        out.flush()


if __name__ == "__main__":
    main()
