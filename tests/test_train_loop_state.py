"""TrainLoop keeps its state in one place: every attribute is set in ``__init__`` (the set-up, in its order), the
methods only update them, and nothing outside the class adds one; "objective" names only the card's objective."""
from __future__ import annotations

import ast
import inspect

import zoo.training.loop as loop_module
from zoo.training.loop import LossModule, TrainLoop, train

from make_cards import make_card


def _self_targets(fn: ast.AST, name: str = "self") -> set[str]:
    """The attributes of ``name`` that ``fn`` assigns (tools/trainloop_state.py's counter)."""
    from tools.trainloop_state import assigned

    return assigned(fn, name)


def test_every_attribute_of_the_loop_is_first_set_in_init():
    tree = ast.parse(inspect.getsource(loop_module))
    cls = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "TrainLoop")
    methods = [f for f in cls.body if isinstance(f, ast.FunctionDef)]
    declared = _self_targets(next(f for f in methods if f.name == "__init__"))
    later = {f.name: sorted(_self_targets(f) - declared) for f in methods if f.name != "__init__"}
    assert {k: v for k, v in later.items() if v} == {}, "attributes first set outside TrainLoop.__init__"
    # train() hands everything to the constructor: it sets nothing on the loop afterwards
    fn = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "train")
    assert _self_targets(fn, "loop") == set()
    assert len(declared) > 40  # the state is really declared there (not hidden in a dict or a helper)


def test_a_run_adds_no_attribute_to_the_loop_after_its_set_up(tmp_path):
    """At the "start" event the set-up is done; training, evaluating (EMA, keep_best on a validation draw),
    checkpointing and writing the run folder add no attribute; the same on a resume."""
    seen = {}

    def record(event, loop, **info):
        if event in ("start", "end"):
            seen.setdefault(event, []).append(set(vars(loop)))

    card = make_card("tiny", train={"steps": 6, "batch_size": 32, "seed": 0, "ema": 0.9, "eval_every": 3,
                                    "keep_best": True, "validation": 64, "eval_points": 64, "eval_iwae_k": 1,
                                    "sample_every": 0, "num_samples": 4, "checkpoint_every": 3, "log_every": 3})
    train(card, out=tmp_path / "run", progress=False, callbacks=[record])
    train(card, out=tmp_path / "run", progress=False, callbacks=[record], resume=True, steps=8)
    assert len(seen["start"]) == len(seen["end"]) == 2
    for start, end in zip(seen["start"], seen["end"]):
        assert end - start == set()
        assert {"model", "loss_module", "optimizer", "scheduler", "ema", "batches", "step", "best"} <= start
    assert "objective" not in seen["start"][0]  # the loss module is not called an objective


def test_the_loss_module_returns_the_card_objectives_training_loss():
    """LossModule(model)(x) is LatentModel.objective's loss (the card objective's training loss), with the ELBO."""
    import torch

    from zoo.assemble import build_model

    torch.manual_seed(0)
    model = build_model(make_card("tiny"))
    x = torch.randint(0, 256, (8, 1, 8, 8), dtype=torch.uint8)
    torch.manual_seed(1)
    loss, elbo = LossModule(model, 1.0)(x)
    torch.manual_seed(1)
    expected, terms = model.objective(x, 1.0)
    assert torch.equal(loss, expected) and torch.equal(elbo, terms.elbo.detach().mean())
    assert not hasattr(loop_module, "Objective")  # zoo.contracts.Objective is the only Objective
    assert TrainLoop.__init__.__doc__ and "in this order" in TrainLoop.__init__.__doc__
