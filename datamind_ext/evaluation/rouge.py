"""ROUGE-L F-measure on word tokens: TableBench's own metric for its text answers.

Written here (a longest-common-subsequence) rather than pulling in a ROUGE package for one
number, with the tokens of the ``rouge_score`` package TableBench scores with (through
``evaluate``): lower-cased, every run of characters outside ``a-z0-9`` a separator, no stemming.
"""

from __future__ import annotations

import re

_SEPARATOR = re.compile(r"[^a-z0-9]+")


def _tokens(text: str) -> list[str]:
    return _SEPARATOR.sub(" ", text.lower()).split()


def rouge_l_f(prediction: str, reference: str) -> float:
    """ROUGE-L F1 (beta = 1) of ``prediction`` against ``reference``; 0.0 if either is empty."""
    pred, ref = _tokens(prediction), _tokens(reference)
    if not pred or not ref:
        return 0.0
    prev = [0] * (len(ref) + 1)
    for p in pred:
        cur = [0] * (len(ref) + 1)
        for j, r in enumerate(ref, start=1):
            cur[j] = prev[j - 1] + 1 if p == r else max(prev[j], cur[j - 1])
        prev = cur
    lcs = prev[-1]
    if lcs == 0:
        return 0.0
    precision, recall = lcs / len(pred), lcs / len(ref)
    return 2 * precision * recall / (precision + recall)
