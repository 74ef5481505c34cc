"""Train the feature networks shipped for the embedded data sets and write their safetensors.

    python tools/train_features.py                 # both: zoo:digits and zoo:mnist-5k
    python tools/train_features.py --data zoo:digits

A small classifier CNN (zoo.quality.features.FeatureCNN) is trained on the embedded *training*
split only (seeded, Adam, one torch thread); its pooled last conv layer gives the features of
``zoo evaluate``'s FID/KID/precision-recall on these data sets.  Prints the test-split accuracy and
the sha256 to pin in plugins/feature_nets.py.
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


def main(argv: list[str] | None = None) -> int:
    torch.set_num_threads(1)
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", choices=sorted(RECIPES), action="append", help="which (default: all)")
    p.add_argument("--out-dir", type=Path, default=ROOT / "plugins" / "weights")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    for spec in args.data or sorted(RECIPES):
        info = train_one(spec, args.out_dir / RECIPES[spec][1], seed=args.seed)
        print(" ".join(f"{k}={v}" for k, v in info.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
