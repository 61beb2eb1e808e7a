"""Graded exercises of notebook 06 (textual inversion): the pseudo-word injection step, and LinCIR's keyword masking.

Inputs derive only from the variant seed; the expected values come from cirlib's tested code at check time
(``cirlib.inversion.inject.encode_with_pseudo_words`` on a text tower reduced to its token embeddings, and
``cirlib.inversion.concepts.mask_keywords``), so no answer is stored here. Hidden cases add several placeholders
in one row, the placeholder first and last, captions without keywords, capitals, a comma between two runs, a
placeholder already in the caption and another placeholder character.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from cirlib.assignment.checks import Case, Exercise, register
from cirlib.inversion.concepts import KEYWORDS, mask_keywords
from cirlib.inversion.inject import encode_with_pseudo_words


class _Unchanged(nn.Module):
    """A transformer that returns its input: the tower's output is then the injected token sequence."""

    def __init__(self, dtype: torch.dtype) -> None:
        super().__init__()
        self.dtype = dtype

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None = None) -> torch.Tensor:
        return x

    def get_cast_dtype(self) -> torch.dtype:
        return self.dtype


class _EmbeddingOnlyTower(nn.Module):
    """An open_clip-style text tower with only the token embeddings doing anything: zero positional embedding, no
    causal mask, no final norm, no pooling ("none" keeps every position), no projection."""

    def __init__(self, table: torch.Tensor, length: int) -> None:
        super().__init__()
        self.token_embedding = nn.Embedding.from_pretrained(table)
        self.positional_embedding = torch.zeros(length, table.shape[1], dtype=table.dtype)
        self.transformer, self.attn_mask, self.ln_final = _Unchanged(table.dtype), None, nn.Identity()
        self.text_projection, self.text_pool_type, self.text_eos_id = None, "none", None


def injected_embeddings(table: torch.Tensor, tokens: torch.Tensor, pseudo_words: torch.Tensor,
                        placeholder_id: int) -> torch.Tensor:
    """(B, L, width): ``encode_with_pseudo_words``'s injection step, the rest of the tower made transparent."""
    return encode_with_pseudo_words(_EmbeddingOnlyTower(table, tokens.shape[1]), tokens, pseudo_words, placeholder_id)


def _token_rows(rng: np.random.Generator, b: int, length: int, vocab: int, placeholder_id: int,
                slots: int) -> torch.Tensor:
    """(B, L) token ids, each row with ``slots`` placeholders at random positions and none elsewhere."""
    others = np.array([i for i in range(vocab) if i != placeholder_id])
    tokens = rng.choice(others, (b, length))
    for row in tokens:
        row[rng.choice(length, slots, replace=False)] = placeholder_id
    return torch.from_numpy(tokens)


def _inject_case(rng: np.random.Generator, b: int, length: int, vocab: int, width: int, placeholder_id: int,
                 slots: int = 1, tokens: torch.Tensor | None = None) -> tuple:
    table = torch.from_numpy(rng.standard_normal((vocab, width))).float()
    tokens = _token_rows(rng, b, length, vocab, placeholder_id, slots) if tokens is None else tokens
    return table, tokens, torch.from_numpy(rng.standard_normal((len(tokens), width))).float(), placeholder_id


def _inject_cases(seed: int, hidden: bool) -> list[Case]:
    rng = np.random.default_rng([seed, 6, 1, int(hidden)])
    if not hidden:
        return [Case(_inject_case(rng, 3, 6, 20, 4, placeholder_id=7), "3 prompts of 6 tokens, one placeholder each"),
                Case(_inject_case(rng, 2, 8, 30, 5, placeholder_id=11, slots=2), "2 prompts, two placeholders each")]
    ends = torch.tensor([[5, 1, 2, 3], [2, 3, 1, 5], [5, 5, 5, 5]])
    return [Case(_inject_case(rng, 3, 4, 6, 3, placeholder_id=5, tokens=ends),
                 "the placeholder first, last, and everywhere"),
            Case(_inject_case(rng, 4, 10, 40, 6, placeholder_id=0, slots=3), "placeholder id 0, three per prompt"),
            Case(_inject_case(rng, 1, 5, 12, 8, placeholder_id=3), "one prompt")]


_FILLERS = ("that", "is", "with", "and", "on", "in", "has", "make", "it", ",", "more", "instead")


def _caption(rng: np.random.Generator, words: int) -> str:
    """``words`` words drawn from the keywords and a few linking words, about half of each."""
    keywords = sorted(KEYWORDS)
    picks = [keywords[int(rng.integers(len(keywords)))] if rng.random() < 0.5 else
             _FILLERS[int(rng.integers(len(_FILLERS)))] for _ in range(words)]
    return " ".join(picks).replace(" ,", ",")


def _mask_cases(seed: int, hidden: bool) -> list[Case]:
    rng = np.random.default_rng([seed, 6, 2, int(hidden)])
    if not hidden:
        return [Case((_caption(rng, 9), "$"), "a caption of 9 words"), Case((_caption(rng, 12), "$"), "12 words"),
                Case(("a big red square in the top left", "$"), "a synthetic caption")]
    return [Case(("is shorter and has more flair", "$"), "no keyword"),
            Case(("A RED Dress with Long Sleeves.", "$"), "capitals and a full stop"),
            Case(("make it blue, a v-neck t-shirt", "$"), "a comma between two runs, hyphenated words"),
            Case(("put $ on the left", "$"), "the placeholder already in the caption"),
            Case((_caption(rng, 10), "*"), "another placeholder"),
            Case(("", "$"), "an empty caption")]


INJECT_PSEUDO_WORDS = register(Exercise("inject_pseudo_words", _inject_cases, injected_embeddings))
MASKED_CAPTION = register(Exercise("masked_caption", _mask_cases, mask_keywords))
