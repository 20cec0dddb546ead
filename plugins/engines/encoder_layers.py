"""The harness' inference form of BERT-style encoder layers: fused projections, and a last layer for one token.

Two savings over the layers transformers builds, neither of which changes
what the model computes:

- The query, key and value projections read the same input, so they run as
  one linear layer three times as wide: one matrix product (and, under int8
  dynamic quantization, one quantization of the input) instead of three.
- The classification heads of DistilBERT, BERT (MiniLM) and ELECTRA read the
  final hidden state of the first token (``[CLS]``) and nothing else, so the
  last layer computes keys and values for every token but its query,
  attention, output projection and feed-forward for the first token alone: a
  sixth of a six-layer model's work.

In float32 the logits equal the stock model's up to rounding. Under int8
dynamic quantization the fused projection shares one weight scale and the
last layer's activation scales come from one row, which moves probabilities
slightly; ``harness bench`` reports the agreement. Only model classes whose
head is known to read position 0 are changed, and only post-LayerNorm layers
with absolute positions; anything else is left as loaded.
"""

from __future__ import annotations

from typing import Any

HEAD_READS_FIRST_TOKEN = (
    "DistilBertForSequenceClassification",
    "BertForSequenceClassification",
    "ElectraForSequenceClassification",
)


def use_inference_layers(model: Any) -> bool:
    """Replace `model`'s encoder layers by their inference form; False (model untouched) when unsupported."""
    if type(model).__name__ not in HEAD_READS_FIRST_TOKEN:
        return False
    config = model.config
    if (
        getattr(config, "is_decoder", False)
        or getattr(config, "position_embedding_type", "absolute") != "absolute"
    ):
        return False
    base = model.base_model
    if hasattr(base, "transformer"):
        layers, parts, heads = base.transformer.layer, _distilbert_parts, config.n_heads
    elif hasattr(base, "encoder"):
        layers, parts, heads = base.encoder.layer, _bert_parts, config.num_attention_heads
    else:
        return False
    layer_class = _layer_class()
    last = len(layers) - 1
    for index in range(len(layers)):
        layers[index] = layer_class(parts(layers[index]), heads, first_token=index == last)
    return True


def _fused(linears: list[Any]) -> Any:
    """One linear layer computing `linears` side by side: their weights and biases stacked by output."""
    import torch

    first = linears[0]
    fused = torch.nn.Linear(
        first.in_features,
        sum(linear.out_features for linear in linears),
        device=first.weight.device,
        dtype=first.weight.dtype,
    )
    with torch.no_grad():
        fused.weight.copy_(torch.cat([linear.weight for linear in linears]))
        fused.bias.copy_(
            torch.cat(
                [
                    linear.bias if linear.bias is not None else torch.zeros_like(linear.weight[:, 0])
                    for linear in linears
                ]
            )
        )
    return fused


def _layer_class() -> type:
    """The layer module's class, defined on first use so that importing this file never imports torch."""
    import torch
    import torch.nn.functional as functional

    class InferenceEncoderLayer(torch.nn.Module):
        """A post-LayerNorm encoder layer; with `first_token`, its output is the first token's state, [b, 1, d]."""

        def __init__(self, parts: dict[str, Any], heads: int, first_token: bool) -> None:
            super().__init__()
            projections = [parts["query"], parts["key"], parts["value"]]
            self.first_token = first_token
            self.query: Any = parts["query"] if first_token else None
            self.projection = _fused(projections[1:] if first_token else projections)
            self.attention_output, self.attention_norm = parts["attention_output"], parts["attention_norm"]
            self.intermediate, self.activation = parts["intermediate"], parts["activation"]
            self.output, self.output_norm = parts["output"], parts["output_norm"]
            self.heads = heads

        def forward(self, hidden_states: Any, attention_mask: Any = None, *args: Any, **kwargs: Any) -> Any:
            batch, length, width = hidden_states.shape
            size = width // self.heads
            # [b, L, parts * d] -> parts x [b, heads, L, size]
            projected = self.projection(hidden_states).view(batch, length, -1, self.heads, size)
            projected = projected.permute(2, 0, 3, 1, 4)
            mask = attention_mask
            if self.first_token:
                residual = hidden_states[:, :1]
                key, value = projected
                query = self.query(residual).view(batch, 1, self.heads, size).transpose(1, 2)
                if mask is not None and mask.dim() == 4 and mask.shape[-2] > 1:
                    mask = mask[..., :1, :]
            else:
                residual = hidden_states
                query, key, value = projected
            attended = functional.scaled_dot_product_attention(query, key, value, attn_mask=mask)
            attended = attended.transpose(1, 2).reshape(batch, residual.shape[1], width)
            hidden = self.attention_norm(self.attention_output(attended) + residual)
            return self.output_norm(self.output(self.activation(self.intermediate(hidden))) + hidden)

    return InferenceEncoderLayer


def _distilbert_parts(layer: Any) -> dict[str, Any]:
    attention = layer.attention
    return {
        "query": attention.q_lin,
        "key": attention.k_lin,
        "value": attention.v_lin,
        "attention_output": attention.out_lin,
        "attention_norm": layer.sa_layer_norm,
        "intermediate": layer.ffn.lin1,
        "activation": layer.ffn.activation,
        "output": layer.ffn.lin2,
        "output_norm": layer.output_layer_norm,
    }


def _bert_parts(layer: Any) -> dict[str, Any]:
    attention = layer.attention
    return {
        "query": attention.self.query,
        "key": attention.self.key,
        "value": attention.self.value,
        "attention_output": attention.output.dense,
        "attention_norm": attention.output.LayerNorm,
        "intermediate": layer.intermediate.dense,
        "activation": layer.intermediate.intermediate_act_fn,
        "output": layer.output.dense,
        "output_norm": layer.output.LayerNorm,
    }
