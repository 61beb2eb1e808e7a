"""Pseudo-word injection: encode text whose placeholder token is replaced by a given embedding.

Every textual-inversion method (Pic2Word, SEARLE, LinCIR) reduces to one operation: tokenise a
template that holds a placeholder ("a photo of $ that is red"), look up the token embeddings,
put a *pseudo-word* vector (one per row, from a mapping network or an optimiser) wherever the
placeholder token sits, and run the rest of the frozen text tower. :func:`encode_with_pseudo_words`
mirrors open_clip's ``CLIP.encode_text`` / ``TextTransformer.forward`` step by step (token
embedding, positional embedding, transformer with the causal mask, ``ln_final``, EOT pooling,
projection), so with the real token's embedding as the pseudo-word it returns exactly what
``encode_text`` returns (a test checks this). It is batched and differentiable in the pseudo-words.

One optimisation that does not change the result: with a causal mask and EOT pooling, positions
after the last EOT of the batch cannot influence the output, so the sequence is cut there (a
prompt like "a photo of $" runs over 6 positions instead of the context length).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import torch
from open_clip.transformer import text_global_pool
from torch import nn

PLACEHOLDER = "$"


@dataclass
class TextTower:
    """The parts of an open_clip text tower that ``encode_text`` uses, whatever class holds them."""

    token_embedding: nn.Embedding
    positional_embedding: torch.Tensor
    transformer: nn.Module
    attn_mask: torch.Tensor | None
    ln_final: nn.Module
    text_projection: torch.Tensor | nn.Module | None
    pool_type: str
    eos_id: int | None


def text_tower(model: nn.Module) -> TextTower:
    """The text tower of an open_clip ``CLIP`` (attributes on the model) or ``CustomTextCLIP`` whose
    ``.text`` is a ``TextTransformer``. Hugging Face text towers and CoCa's class token are refused."""
    if hasattr(model, "token_embedding") and hasattr(model, "text_pool_type"):
        return TextTower(model.token_embedding, model.positional_embedding, model.transformer, model.attn_mask,
                         model.ln_final, model.text_projection, model.text_pool_type,
                         getattr(model, "text_eos_id", None))
    text = getattr(model, "text", None)
    if text is not None and hasattr(text, "token_embedding") and hasattr(text, "pool_type"):
        if getattr(text, "cls_emb", None) is not None or getattr(text, "use_pad_mask", False):
            raise NotImplementedError("text towers with a class token or a padding mask (CoCa-style) are not "
                                      "supported by pseudo-word injection; use a CLIP-style text tower")
        return TextTower(text.token_embedding, text.positional_embedding, text.transformer, text.attn_mask,
                         text.ln_final, text.text_projection, text.pool_type, getattr(text, "eos_id", None))
    raise NotImplementedError(f"{type(model).__name__} has no open_clip TextTransformer-style text tower "
                              "(token_embedding, positional_embedding, transformer, ln_final); Hugging Face "
                              "text towers are not supported by pseudo-word injection")


def token_embeddings(model: nn.Module) -> torch.Tensor:
    """The (vocab, width) token-embedding table: pseudo-words live in this space."""
    return text_tower(model).token_embedding.weight


def placeholder_token_id(tokenizer, placeholder: str = PLACEHOLDER) -> int:
    """The single token id the tokenizer gives ``placeholder`` as a separate word."""
    ids = tokenizer.encode(f" {placeholder} ") if hasattr(tokenizer, "encode") else None
    if not ids or len(ids) != 1:
        raise ValueError(f"placeholder {placeholder!r} is not a single token for this tokenizer (got {ids}); "
                         "choose a placeholder such as '$' or '*' that tokenises to one id")
    return int(ids[0])


def freeze(model: nn.Module) -> nn.Module:
    """Eval mode and no gradients for every weight: only the pseudo-words are trained."""
    return model.eval().requires_grad_(False)


def _causal_cut(tower: TextTower, tokens: torch.Tensor) -> int:
    """How many leading positions determine the output (all of them without a causal mask)."""
    if tower.attn_mask is None or tower.pool_type not in ("argmax", "eos"):
        return tokens.shape[1]
    if tower.pool_type == "argmax":
        last = tokens.argmax(dim=-1)
    else:
        last = (tokens == tower.eos_id).int().argmax(dim=-1)
    return int(last.max()) + 1


def encode_with_pseudo_words(model: nn.Module, tokens: torch.Tensor, pseudo_words: torch.Tensor,
                             placeholder_id: int, normalize: bool = False) -> torch.Tensor:
    """(B, D) text features of ``tokens`` (B, L) with every ``placeholder_id`` position of row ``b``
    replaced by ``pseudo_words[b]`` (B, width). Differentiable in ``pseudo_words``."""
    if tokens.ndim != 2 or pseudo_words.ndim != 2 or tokens.shape[0] != pseudo_words.shape[0]:
        raise ValueError(f"tokens must be (B, L) and pseudo_words (B, width) with the same B; got "
                         f"{tuple(tokens.shape)} and {tuple(pseudo_words.shape)}")
    slots = tokens == placeholder_id
    missing = (~slots.any(dim=1)).nonzero().flatten().tolist()
    if missing:
        raise ValueError(f"rows {missing[:10]} hold no placeholder token (id {placeholder_id}); write the "
                         "placeholder as a separate word in the template, early enough to survive truncation")
    tower = text_tower(model)
    if pseudo_words.shape[1] != tower.token_embedding.embedding_dim:
        raise ValueError(f"pseudo-words have width {pseudo_words.shape[1]}, the text tower's token embedding "
                         f"{tower.token_embedding.embedding_dim}")
    length = _causal_cut(tower, tokens)
    tokens, slots = tokens[:, :length], slots[:, :length]
    cast_dtype = tower.transformer.get_cast_dtype()
    x = tower.token_embedding(tokens).to(cast_dtype)
    x = torch.where(slots.unsqueeze(-1), pseudo_words.to(cast_dtype).unsqueeze(1), x)
    x = x + tower.positional_embedding[:length].to(cast_dtype)
    mask = None if tower.attn_mask is None else tower.attn_mask[:length, :length]
    x = tower.transformer(x, attn_mask=mask)
    x = tower.ln_final(x)
    x = text_global_pool(x, tokens, tower.pool_type, eos_token_id=tower.eos_id)
    if tower.text_projection is not None:
        x = tower.text_projection(x) if isinstance(tower.text_projection, nn.Linear) else x @ tower.text_projection
    return nn.functional.normalize(x, dim=-1) if normalize else x


class PromptEncoder:
    """A frozen text tower plus its tokenizer and placeholder: texts in, features out.

    ``tokenize`` once, then call with pseudo-words (training loops do this every step);
    :meth:`compose` fills "a photo of $ that {modification}"-style templates in batches without
    gradients (query building at evaluation time).
    """

    def __init__(self, model: nn.Module, tokenizer, device: torch.device, placeholder: str = PLACEHOLDER) -> None:
        self.model, self.tokenizer, self.device, self.placeholder = model, tokenizer, device, placeholder
        self.placeholder_id = placeholder_token_id(tokenizer, placeholder)
        self.width = token_embeddings(model).shape[1]

    @classmethod
    def from_encoder(cls, encoder, placeholder: str = PLACEHOLDER) -> PromptEncoder:
        """The prompt encoder of a ``cirlib.encoders.Encoder``, whose model it freezes."""
        return cls(freeze(encoder.model), encoder.tokenizer, encoder.device, placeholder)

    def tokenize(self, texts: Sequence[str]) -> torch.Tensor:
        """(N, L) token ids on the device; every text must hold the placeholder as a separate word."""
        tokens = self.tokenizer(list(texts)).to(self.device)
        missing = (~(tokens == self.placeholder_id).any(dim=1)).nonzero().flatten().tolist()
        if missing:
            raise ValueError(f"texts {[texts[i] for i in missing[:3]]} hold no separate {self.placeholder!r} "
                             "(or it was cut by the context length)")
        return tokens

    def __call__(self, tokens: torch.Tensor, pseudo_words: torch.Tensor, normalize: bool = False) -> torch.Tensor:
        return encode_with_pseudo_words(self.model, tokens, pseudo_words, self.placeholder_id, normalize)

    @torch.no_grad()
    def encode_texts(self, texts: Sequence[str], batch_size: int = 1024) -> torch.Tensor:
        """(N, D) plain text features (no placeholder), float32 on the device."""
        chunks = [self.model.encode_text(self.tokenizer(list(texts[i:i + batch_size])).to(self.device)).float()
                  for i in range(0, len(texts), batch_size)]
        return torch.cat(chunks) if chunks else torch.empty(0, device=self.device)

    def word_ids(self, words: Iterable[str]) -> dict[str, int]:
        """{word: token id} for the ``words`` that the tokenizer keeps as one token (others are left out)."""
        ids = {word: self.tokenizer.encode(f" {word} ") for word in words}
        return {word: found[0] for word, found in ids.items() if len(found) == 1}

    @torch.no_grad()
    def nearest_tokens(self, pseudo_words: torch.Tensor, k: int = 8,
                       words: Iterable[str] | None = None) -> list[list[str]]:
        """Per pseudo-word (row), the ``k`` tokens whose embeddings are nearest in cosine, nearest first: what
        the pseudo-word "means". Searched in the whole vocabulary, or only among ``words`` (one token each)."""
        table = token_embeddings(self.model).detach().float()
        if words is None:
            ids, names = torch.arange(len(table)), None
        else:
            found = self.word_ids(words)
            ids, names = torch.tensor(list(found.values()), dtype=torch.int64), list(found)
        similarity = (nn.functional.normalize(pseudo_words.float().to(table.device), dim=-1)
                      @ nn.functional.normalize(table[ids.to(table.device)], dim=-1).T)
        nearest = similarity.topk(min(k, len(ids)), dim=1).indices.tolist()
        if names is not None:
            return [[names[i] for i in row] for row in nearest]
        return [[self.tokenizer.decode([int(ids[i])]).strip() for i in row] for row in nearest]

    @torch.no_grad()
    def compose(self, pseudo_words: torch.Tensor, texts: Sequence[str], template: str,
                batch_size: int = 512) -> torch.Tensor:
        """(N, D) normalised features of ``template.format(texts[i])`` with ``pseudo_words[i]`` in the
        placeholder; float32 on the CPU."""
        if len(texts) != len(pseudo_words):
            raise ValueError(f"{len(texts)} texts but {len(pseudo_words)} pseudo-words")
        out = []
        for start in range(0, len(texts), batch_size):
            tokens = self.tokenize([template.format(t) for t in texts[start:start + batch_size]])
            words = pseudo_words[start:start + batch_size].to(self.device)
            out.append(self(tokens, words, normalize=True).float().cpu())
        return torch.cat(out) if out else torch.empty(0)
