"""Retrieval: the last K turns, plus the top-k older turns most relevant to them and to the task,
in chronological order, with placeholders for the gaps.

Relevance is BM25 (rank-bm25's BM25Plus, whose idf stays positive on the small corpora an episode
makes) over the text of each past turn; the query is the text of the last K turns plus the task
statement. `scorer` is the extension point for other relevance functions (e.g. embeddings): a
callable (documents: list[str], query: str) -> list[float], or "module:function" naming one
(importable, so a preset can choose it); the default "bm25" needs no model download.
"""
from __future__ import annotations

import importlib
import json
import re
from collections import Counter
from typing import Any, Callable

from .base import KIND_SYSTEM, KIND_TASK, BuiltContext, Message, PolicyInput
from .common import ParameterError, ParametrizedPolicy, check_int
from .fitting import Layout, fit_layout, history_turns
from .full_history import built

Scorer = Callable[[list[str], str], list[float]]
_WORD = re.compile(r"[a-z0-9]+(?:[_.\-/][a-z0-9]+)*")
_PART = re.compile(r"[a-z0-9]+")
WINDOW_PRIORITY = 1e9  # the last K turns outrank every retrieved one when the budget bites


def tokenize(text: str) -> list[str]:
    """Lowercase words; compound identifiers ("val_loss", "CUDA_ERROR_7") count whole and by part
    (numbers such as "0.125" only whole)."""
    tokens: list[str] = []
    for word in _WORD.findall(text.lower()):
        tokens.append(word)
        if not word[0].isdigit():
            parts = _PART.findall(word)
            if len(parts) > 1:
                tokens.extend(parts)
    return tokens


def _bm25_class():
    from rank_bm25 import BM25Plus

    class CountedBM25Plus(BM25Plus):
        """rank-bm25's BM25Plus, indexing documents given as term counts (cached per turn) instead
        of token lists, so rebuilding the index as the episode grows does not recount every token.
        Fills exactly the attributes `BM25._initialize` fills (pinned: rank-bm25 0.2.x)."""

        def _initialize(self, corpus):
            nd: Counter[str] = Counter()
            total = 0
            for counts, length in corpus:
                self.doc_len.append(length)
                self.doc_freqs.append(counts)
                nd.update(counts.keys())
                total += length
                self.corpus_size += 1
            self.avgdl = total / self.corpus_size
            return nd

    return CountedBM25Plus


class BM25Scorer:
    """BM25Plus scores of each document for the query (0 for a document sharing no query term).
    Term counts of documents are cached (an episode's past turns do not change between calls)."""

    def __init__(self, max_cached: int = 4096):
        self.max_cached = max_cached
        self._counts: dict[str, tuple[dict[str, int], int]] = {}

    def counts(self, text: str) -> tuple[dict[str, int], int]:
        found = self._counts.get(text)
        if found is None:
            if len(self._counts) >= self.max_cached:
                self._counts.clear()
            tokens = tokenize(text) or ["\x00"]
            found = self._counts[text] = (dict(Counter(tokens)), len(tokens))
        return found

    def __call__(self, documents: list[str], query: str) -> list[float]:
        if not documents:
            return []
        corpus = [self.counts(d) for d in documents]
        index = _bm25_class()(corpus)
        terms = [t for t in sorted(set(tokenize(query))) if t in index.idf]  # the others score 0 everywhere
        if not terms:
            return [0.0] * len(documents)
        scores = index.get_scores(terms)
        # BM25Plus gives every document a floor (delta * idf) for each query term in the corpus;
        # a document without a single query term is not relevant at all
        return [float(s) if any(t in counts for t in terms) else 0.0 for s, (counts, _) in zip(scores, corpus)]


def bm25_scores(documents: list[str], query: str) -> list[float]:
    """The default scorer, uncached."""
    return BM25Scorer()(documents, query)


def turn_text(turn: list[Message]) -> str:
    parts = []
    for m in turn:
        parts.append(m.content)
        for call in m.tool_calls:
            args = call.arguments if isinstance(call.arguments, str) else json.dumps(call.arguments, sort_keys=True)
            parts.append(f"{call.name} {args}")
        if m.name:
            parts.append(m.name)
    return "\n".join(parts)


def resolve_scorer(scorer: str | Scorer) -> Scorer:
    if callable(scorer):
        return scorer
    if scorer == "bm25":
        return BM25Scorer()
    if isinstance(scorer, str) and ":" in scorer:
        module, _, attr = scorer.partition(":")
        try:
            found = getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError, ValueError, TypeError) as exc:  # e.g. '' or '..' as module
            raise ParameterError("scorer", f"cannot import {scorer!r}: {exc}") from None
        if callable(found):
            return found
    raise ParameterError("scorer", f'must be "bm25", "module:function" or a callable, got {scorer!r}')


class Retrieval(ParametrizedPolicy):
    name = "retrieval"
    description = "the last keep_last turns plus the top_k older turns most relevant to them and the task (BM25)"

    def __init__(self, top_k: int = 4, keep_last: int = 1, scorer: str | Scorer = "bm25"):
        self.top_k = check_int("top_k", top_k, minimum=0)
        self.keep_last = check_int("keep_last", keep_last, minimum=0)
        self.scorer = scorer
        self._score = resolve_scorer(scorer)

    def params(self) -> dict[str, Any]:
        scorer = self.scorer if isinstance(self.scorer, str) else \
            f"{getattr(self.scorer, '__module__', '?')}:{getattr(self.scorer, '__qualname__', repr(self.scorer))}"
        return {"top_k": self.top_k, "keep_last": self.keep_last, "scorer": scorer}

    @staticmethod
    def query(request: PolicyInput, recent: list[list[Message]]) -> str:
        task = [m.content for m in request.preamble if m.kind == KIND_TASK] or \
               [m.content for m in request.preamble if m.role != "system" and m.kind != KIND_SYSTEM]
        return "\n".join([*task, *(turn_text(t) for t in recent)])

    def rank(self, request: PolicyInput, turns: list[list[Message]]) -> list[tuple[int, float]]:
        """(turn index, score) of the retrieved older turns, best first."""
        first_recent = max(0, len(turns) - self.keep_last)
        if self.top_k == 0 or first_recent == 0:
            return []
        scores = self._score([turn_text(t) for t in turns[:first_recent]], self.query(request, turns[first_recent:]))
        ranked = sorted(((i, float(s)) for i, s in enumerate(scores) if s > 0), key=lambda p: (-p[1], -p[0]))
        return ranked[:self.top_k]

    def select(self, request: PolicyInput) -> BuiltContext:
        turns = history_turns(request.history)
        first_recent = max(0, len(turns) - self.keep_last)
        ranked = self.rank(request, turns)
        shown = {i: turns[i] for i in range(first_recent, len(turns))}
        priority = {i: WINDOW_PRIORITY + i for i in shown}
        for position, (index, _) in enumerate(ranked):
            shown[index] = turns[index]
            priority[index] = float(len(ranked) - position)  # the best retrieved turn goes last
        layout = Layout(request.preamble, turns, shown, request.counter, priority=priority)
        return built(fit_layout(layout, request.budget_tokens))
