"""Train the feature networks shipped for the embedded data sets and write their safetensors.

    python tools/train_features.py                 # both: zoo:digits and zoo:mnist-5k
    python tools/train_features.py --data zoo:digits
    python tools/train_features.py --check         # the shipped files: accuracy, FID test-vs-train vs noise

A small classifier CNN (zoo.quality.features.FeatureCNN) is trained on the embedded *training*
split only (seeded, Adam, one torch thread); its pooled last conv layer gives the features of
``zoo evaluate``'s FID/KID/precision-recall on these data sets.  Prints the test-split accuracy and
the sha256 to pin in plugins/data/feature_nets.py.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
import torch  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
RECIPES = {  # data -> (shape, output file, epochs)
    "zoo:digits": ((1, 8, 8), "digits-features.safetensors", 60),
    "zoo:mnist-5k": ((1, 28, 28), "mnist-5k-features.safetensors", 15),
}


def labelled(spec: str, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Images in [0, 1] and labels of an embedded split."""
    import numpy as np

    from zoo.data import load_dataset, load_tensors

    x = load_tensors(spec, split).float() / 255.0
    y = torch.from_numpy(np.asarray(load_dataset(spec, split)["label"], dtype=np.int64))
    return x, y


def train_one(spec: str, out: Path, *, seed: int = 0) -> dict:
    from safetensors.torch import save_file

    from zoo.quality.features import FeatureCNN, sha256_of

    shape, _, epochs = RECIPES[spec]
    torch.manual_seed(seed)
    x, y = labelled(spec, "train")
    xt, yt = labelled(spec, "test")
    net = FeatureCNN(shape)
    opt = torch.optim.Adam(net.parameters(), lr=2e-3)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs)
    g = torch.Generator().manual_seed(seed)
    start = time.time()
    for _ in range(epochs):
        net.train()
        for idx in torch.randperm(len(x), generator=g).split(64):
            loss = torch.nn.functional.cross_entropy(net(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        sched.step()
    net.eval()
    with torch.no_grad():
        acc = float((net(xt).argmax(1) == yt).float().mean())
    out.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(out),
              metadata={"data": spec, "recipe": f"Adam 2e-3 cosine, {epochs} epochs, batch 64, seed {seed}, "
                                                f"train split", "test_accuracy": f"{acc:.4f}"})
    return {"data": spec, "file": str(out), "bytes": out.stat().st_size, "sha256": sha256_of(out),
            "test_accuracy": acc, "epochs": epochs, "seconds": round(time.time() - start, 1)}


def check(spec: str) -> dict:
    """The shipped (sha256-pinned) network of ``spec``: test accuracy, and FID / precision / recall of the test
    split against the training split, beside pixel-shuffled test images and uniform noise."""
    from zoo.data import load_tensors
    from zoo.quality.features import feature_network_for
    from zoo.quality.fidelity import fidelity_metrics

    net = feature_network_for(spec)
    x, y = labelled(spec, "test")
    with torch.no_grad():
        acc = float((net.load()(x).argmax(1) == y).float().mean())
    train, test = load_tensors(spec, "train"), load_tensors(spec, "test")
    g = torch.Generator().manual_seed(0)
    d = test[0].numel()
    shuffled = torch.stack([t.flatten()[torch.randperm(d, generator=g)].view(t.shape) for t in test])
    noise = torch.randint(0, 256, test.shape, generator=g, dtype=torch.uint8)
    info = {"data": spec, "network": net.name, "test_accuracy": round(acc, 4)}
    for label, imgs in (("test", test), ("shuffled", shuffled), ("noise", noise)):
        m = fidelity_metrics(imgs, train, features=net, metrics=("fid", "prc"))
        info.update({f"fid_{label}": round(m["fid"], 2), f"precision_{label}": round(m["precision"], 3),
                     f"recall_{label}": round(m["recall"], 3)})
    return info


def main(argv: list[str] | None = None) -> int:
    torch.set_num_threads(1)
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", choices=sorted(RECIPES), action="append", help="which (default: all)")
    p.add_argument("--out-dir", type=Path, default=ROOT / "plugins" / "data" / "weights")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--check", action="store_true", help="measure the shipped networks instead of training")
    args = p.parse_args(argv)
    if args.check:
        for spec in args.data or sorted(RECIPES):
            print(" ".join(f"{k}={v}" for k, v in check(spec).items()))
        return 0
    for spec in args.data or sorted(RECIPES):
        info = train_one(spec, args.out_dir / RECIPES[spec][1], seed=args.seed)
        print(" ".join(f"{k}={v}" for k, v in info.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
