"""A card's architecture at another image size (``zoo train NAME --data-shape C,H,W``).

The card's components are built again for the new ``data_shape`` (plugins receive it, so an MLP or a fully
convolutional network adapts) and run once on a trial batch of that shape (zoo.byo.trial_forward); where they do
not adapt, a ShapeError names the model, the shape and the component's error, and points at a card that
``extends`` this one and sets its architecture's arguments for the new size.
"""
from __future__ import annotations

from typing import Any

from zoo.cards import Card
from zoo.errors import ShapeError, ZooError


def parse_shape(text: str) -> tuple[int, ...]:
    """``"1,28,28"`` -> (1, 28, 28): positive integers (channels, height, width)."""
    try:
        shape = tuple(int(part) for part in str(text).replace("x", ",").split(","))
    except ValueError:
        raise ShapeError(f"--data-shape: expected C,H,W (e.g. 1,28,28), got {text!r}") from None
    if len(shape) != 3 or min(shape) < 1:
        raise ShapeError(f"--data-shape: expected three positive integers C,H,W (e.g. 1,28,28), got {text!r}")
    return shape


def with_data_shape(card: Card, data_shape: Any) -> Card:
    """``card`` with ``zoo.data.shape`` set to ``data_shape``, after checking that its architecture builds and runs at
    that size (ShapeError naming the model and pointing at ``extends`` otherwise)."""
    shape = parse_shape(data_shape) if isinstance(data_shape, str) else tuple(int(s) for s in data_shape)
    if len(shape) != 3 or min(shape) < 1:
        raise ShapeError(f"data_shape: expected three positive integers (C, H, W), got {data_shape!r}")
    if shape == tuple(card.data_shape):
        return card
    fields = {"data.shape": list(shape)}
    if tuple(card.latent_shape) == tuple(card.data_shape):  # a pixel-space latent (diffusion) follows the data
        fields["latent.shape"] = list(shape)
    new = card.with_fields(fields)
    from zoo.assemble import build_model
    from zoo.byo import trial_forward

    try:
        model = build_model(new)
        trial_forward(model)
    except ZooError as e:
        raise ShapeError(f"model {card.name!r}: its architecture does not adapt to images of shape {list(shape)} "
                         f"(it was made for {list(card.data_shape)}): {e}. Write a card with `extends: {card.name}` "
                         f"that sets `data: {{shape: {list(shape)}}}` and the components' arguments for that size, "
                         f"and train that card (zoo train path/to/CARD.md)") from None
    return new
