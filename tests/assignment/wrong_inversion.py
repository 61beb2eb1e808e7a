"""Known-wrong answers to notebook 06's graded exercises: the checks must catch every one (issue 17, item 7)."""

from __future__ import annotations

import re

import torch

from cirlib.inversion.concepts import KEYWORDS


def inject_first_slot_only(table, tokens, pseudo_words, placeholder_id):
    x = table[tokens].clone()
    first = (tokens == placeholder_id).int().argmax(1)
    x[torch.arange(len(tokens)), first] = pseudo_words
    return x


def inject_first_pseudo_word_everywhere(table, tokens, pseudo_words, placeholder_id):
    return torch.where((tokens == placeholder_id)[..., None], pseudo_words[:1, None, :], table[tokens])


def inject_added_to_the_placeholder(table, tokens, pseudo_words, placeholder_id):
    slots = (tokens == placeholder_id)[..., None]
    return table[tokens] + slots * pseudo_words[:, None, :]


def inject_one_position_late(table, tokens, pseudo_words, placeholder_id):
    slots = (tokens == placeholder_id).roll(1, dims=1)[..., None]
    return torch.where(slots, pseudo_words[:, None, :], table[tokens])


def _mask(caption, placeholder, per_word=False, lower=True, fallback=True, comma_fix=True):
    """LinCIR's masking with one step switched off or done per word."""
    text = caption.replace(placeholder, " ")
    out, in_run = [], False
    for token in re.findall(r"[\w-]+|[^\w\s]", text.lower() if lower else text):
        keyword = token in KEYWORDS
        if not (keyword and in_run and not per_word):
            out.append(placeholder if keyword else token)
        in_run = keyword
    if fallback and placeholder not in out:
        return f"a photo of {placeholder} that {caption}"
    joined = " ".join(out)
    return joined.replace(" ,", ",") if comma_fix else joined


def mask_every_keyword(caption, placeholder):
    return _mask(caption, placeholder, per_word=True)


def mask_case_sensitive(caption, placeholder):
    return _mask(caption, placeholder, lower=False)


def mask_without_fallback(caption, placeholder):
    return _mask(caption, placeholder, fallback=False)


def mask_space_before_comma(caption, placeholder):
    return _mask(caption, placeholder, comma_fix=False)


WRONG = {"inject_pseudo_words": [inject_first_slot_only, inject_first_pseudo_word_everywhere,
                                 inject_added_to_the_placeholder, inject_one_position_late],
         "masked_caption": [mask_every_keyword, mask_case_sensitive, mask_without_fallback, mask_space_before_comma]}
