"""A token-counting worker process: ``python -m mixer.token_worker ENCODING``.

Reads pickled lists of strings from stdin and writes back the token count of each (a uint32
array), until stdin closes. Started by :mod:`mixer.tokens` as a plain subprocess, not through
``multiprocessing``: a spawned child would re-run a user's script that lacks the
``if __name__ == "__main__"`` guard, and a forked one would inherit Polars' busy thread pool.
Imports only tiktoken and numpy, so it starts fast.
"""

from __future__ import annotations

import pickle
import sys

import numpy as np
import tiktoken


def main() -> None:
    enc = tiktoken.get_encoding(sys.argv[1])
    inp, out = sys.stdin.buffer, sys.stdout.buffer
    while True:
        try:
            texts = pickle.load(inp)
        except EOFError:
            return
        counts = np.fromiter((len(enc.encode_ordinary(t)) for t in texts), dtype=np.uint32, count=len(texts))
        pickle.dump(counts, out, protocol=pickle.HIGHEST_PROTOCOL)
        out.flush()


if __name__ == "__main__":
    main()
