"""Are SynthFACS AUs learnable? Train a small CNN on renders, report ROC-AUC per AU on new people.

    .venv/bin/python benchmarks/synth_learnability.py [--train 6000] [--test 1500] [--size 96] [--epochs 12]

Faces have random identities, poses, lights, backgrounds and noise, and spontaneous AU sets
(intensities A-E; an AU counts as present from A). Test faces are different people. Target
(issue 3): mean ROC-AUC >= 0.9 over the rendered AUs and every AU >= 0.75. A linear probe on raw
pixels is printed as the baseline.
"""

import argparse
import time

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from torch import nn

from facecap_lib.data.synth.actions import RENDERED_AUS
from facecap_lib.data.synth.batch import FaceSpec, render_arrays
from facecap_lib.data.synth.render import Scene
from facecap_lib.data.synth.sampling import spontaneous_aus


def dataset(n: int, seed: int, size: int, first_identity: int):
    rng = np.random.default_rng(seed)
    specs, labels = [], np.zeros((n, len(RENDERED_AUS)), dtype=np.float32)
    for i in range(n):
        action = spontaneous_aus(rng)
        specs.append(
            FaceSpec(action.intensities, first_identity + i, Scene.sample(rng), action.sides)
        )
        labels[i] = [au in action.present for au in RENDERED_AUS]
    images = render_arrays(specs, size=size, progress=True)
    return images, labels


def network(n_out: int) -> nn.Module:
    def block(i, o):
        return nn.Sequential(
            nn.Conv2d(i, o, 3, padding=1),
            nn.BatchNorm2d(o),
            nn.ReLU(),
            nn.Conv2d(o, o, 3, padding=1),
            nn.BatchNorm2d(o),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )

    return nn.Sequential(
        block(3, 24),
        block(24, 48),
        block(48, 96),
        block(96, 128),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Dropout(0.2),
        nn.Linear(128, n_out),
    )


def to_tensor(images: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(images).permute(0, 3, 1, 2).float().div(255.0).sub(0.5)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--train", type=int, default=6000)
    parser.add_argument("--test", type=int, default=1500)
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument("--epochs", type=int, default=12)
    args = parser.parse_args()
    torch.manual_seed(0)
    start = time.perf_counter()
    x_train, y_train = dataset(args.train, 1, args.size, 0)
    x_test, y_test = dataset(args.test, 2, args.size, 10**6)
    print(f"rendered {args.train + args.test} faces in {time.perf_counter() - start:.0f} s")

    flat = lambda x: x[:, ::4, ::4].reshape(len(x), -1) / 255.0  # noqa: E731
    pixel_auc = []
    for k in range(len(RENDERED_AUS)):
        probe = LogisticRegression(max_iter=300, C=0.1).fit(flat(x_train[:3000]), y_train[:3000, k])
        pixel_auc.append(roc_auc_score(y_test[:, k], probe.predict_proba(flat(x_test))[:, 1]))

    model = network(len(RENDERED_AUS))
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=1e-4)
    steps = args.epochs * (args.train // 64)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=steps)
    xt, yt = to_tensor(x_train), torch.from_numpy(y_train)
    start = time.perf_counter()
    for epoch in range(args.epochs):
        model.train()
        order = torch.randperm(len(xt))
        for i in range(0, len(xt) - 63, 64):
            idx = order[i : i + 64]
            batch = xt[idx]
            if torch.rand(()) < 0.5:
                batch = batch.flip(3)  # mirror: left and right AUs alike
            loss = nn.functional.binary_cross_entropy_with_logits(model(batch), yt[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
        print(
            f"epoch {epoch + 1}/{args.epochs} loss {loss.item():.3f} ({time.perf_counter() - start:.0f} s)"
        )
    model.eval()
    with torch.no_grad():
        scores = torch.cat(
            [model(to_tensor(x_test[i : i + 256])) for i in range(0, len(x_test), 256)]
        ).numpy()
    cnn_auc = [roc_auc_score(y_test[:, k], scores[:, k]) for k in range(len(RENDERED_AUS))]
    print(f"\n{'AU':>5} {'positives':>9} {'pixels AUC':>10} {'CNN AUC':>8}")
    for k, au in enumerate(RENDERED_AUS):
        print(
            f"{'AU' + str(au):>5} {int(y_test[:, k].sum()):>9} {pixel_auc[k]:>10.3f} {cnn_auc[k]:>8.3f}"
        )
    print(f"{'mean':>5} {'':>9} {np.mean(pixel_auc):>10.3f} {np.mean(cnn_auc):>8.3f}")
    print(
        f"worst CNN AU: AU{RENDERED_AUS[int(np.argmin(cnn_auc))]} {min(cnn_auc):.3f}; "
        f"target mean >= 0.9 and every AU >= 0.75: {'met' if np.mean(cnn_auc) >= 0.9 and min(cnn_auc) >= 0.75 else 'NOT met'}"
    )


if __name__ == "__main__":
    main()
