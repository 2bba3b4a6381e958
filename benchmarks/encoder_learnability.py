"""Can a preset's image encoder learn AUs from SynthFACS on its own? A supervised probe.

    .venv/bin/python benchmarks/encoder_learnability.py [--preset tiny] [--train 4000] [--steps 1500]
        [--patch N] [--size N]

Trains the preset's BLIP-2 vision encoder from scratch (its CLS output and a linear head, binary
cross-entropy on the 20 rendered AUs) and, in the same run with the same renders, steps, batch
and schedule, the small CNN of ``synth_learnability.py`` as the baseline. Prints ROC-AUC per AU on
new people. A captioner cannot mention the right AUs if its encoder cannot see them, so this
bounds chapter 4's "learning is real" check from above.
"""

import argparse
import tempfile
import time
from dataclasses import replace

import numpy as np
import torch
from PIL import Image
from sklearn.metrics import roc_auc_score
from synth_learnability import dataset, network, to_tensor

from facecap_lib.data.synth.actions import RENDERED_AUS
from facecap_lib.models.mae import install_mae_encoder
from facecap_lib.models.presets import build_model, preset
from facecap_lib.models.stem import install_conv_stem
from facecap_lib.models.tokenizer import train_tokenizer
from facecap_lib.training.pretrain import MAEConfig, pretrain_mae


class ViTProbe(torch.nn.Module):
    """The encoder and a linear head on its CLS output or on the mean of its patch outputs (what
    the Q-Former reads is every output, so ``mean`` is the closer probe of what it can see)."""

    def __init__(self, vision, n_out, pool="cls"):
        super().__init__()
        self.vision, self.pool = vision, pool
        self.head = torch.nn.Linear(vision.config.hidden_size, n_out)

    def forward(self, x):
        out = self.vision(pixel_values=x)
        pooled = out.pooler_output if self.pool == "cls" else out.last_hidden_state[:, 1:].mean(1)
        return self.head(pooled)


def train(model, x, y, steps, lr, seed=0):
    head = model.head if isinstance(model, ViTProbe) else list(model.modules())[-1]
    rate = y.float().mean(0).clamp(0.01, 0.99)
    with torch.no_grad():  # start at the label frequencies: nothing to gain by collapsing features
        head.bias.copy_(torch.log(rate / (1 - rate)))
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.05)
    rng = np.random.default_rng(seed)
    start = time.perf_counter()
    for step in range(steps):
        for group in opt.param_groups:
            group["lr"] = lr * min(1.0, (step + 1) / 100) * 0.5 * (1 + np.cos(np.pi * step / steps))
        idx = rng.integers(0, len(x), 32)
        batch = x[idx]
        if rng.random() < 0.5:
            batch = batch.flip(3)
        loss = torch.nn.functional.binary_cross_entropy_with_logits(model(batch), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return loss.item(), time.perf_counter() - start


def aucs(model, x, y):
    model.eval()
    with torch.no_grad():
        scores = torch.cat([model(x[i : i + 200]) for i in range(0, len(x), 200)]).numpy()
    return [roc_auc_score(y[:, k], scores[:, k]) for k in range(y.shape[1])]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--train", type=int, default=4000)
    parser.add_argument("--test", type=int, default=800)
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--size", type=int, help="image size (default: the preset's)")
    parser.add_argument("--patch", type=int, help="patch size (default: the preset's)")
    parser.add_argument("--mae-steps", type=int, default=0, help="MAE pre-training first")
    parser.add_argument("--pool", choices=["cls", "mean"], default="cls")
    parser.add_argument("--stem", default="", help="conv stem channels, e.g. 32,64,128")
    parser.add_argument("--no-baseline", action="store_true", help="skip the CNN (sweeps only)")
    args = parser.parse_args()
    torch.manual_seed(0)
    spec = preset(args.preset)
    vision = replace(
        spec.vision,
        image_size=args.size or spec.vision.image_size,
        patch_size=args.patch or spec.vision.patch_size,
    )
    spec = replace(spec, vision=vision)
    x_train, y_train = dataset(args.train, 1, vision.image_size, 0)
    x_test, y_test = dataset(args.test, 2, vision.image_size, 10**6)
    xt, yt, xe = to_tensor(x_train) / 0.27, torch.from_numpy(y_train), to_tensor(x_test) / 0.27
    tokenizer = train_tokenizer(["a b c"] * 3, vocab_size=300, min_frequency=1)
    captioner = build_model(spec, tokenizer)
    if args.stem:
        captioner.config.vision_config.conv_stem = [int(c) for c in args.stem.split(",")]
        install_conv_stem(captioner)
    mae_s = 0.0
    if args.mae_steps:
        start = time.perf_counter()
        faces = [Image.fromarray(image) for image in x_train]
        fit = replace(
            MAEConfig().fit, max_steps=args.mae_steps, lr=1.5e-3,
            warmup_steps=max(1, args.mae_steps // 20),
        )  # fmt: skip
        with tempfile.TemporaryDirectory() as run:
            mae = pretrain_mae(spec, faces, run, MAEConfig(fit=fit), progress=True)
        install_mae_encoder(captioner, mae)
        mae_s = time.perf_counter() - start
    vit = ViTProbe(captioner.vision_model, len(RENDERED_AUS), args.pool)
    vit_loss, vit_s = train(vit, xt, yt, args.steps, args.lr)
    vit_auc = aucs(vit, xe, y_test)
    cnn_loss, cnn_s, cnn_auc = float("nan"), 0.0, [float("nan")] * len(RENDERED_AUS)
    if not args.no_baseline:
        cnn = network(len(RENDERED_AUS))
        cnn_loss, cnn_s = train(cnn, xt, yt, args.steps, 3e-3)
        cnn_auc = aucs(cnn, xe, y_test)
    print(
        f"{args.preset} ViT {vision.image_size}px/{vision.patch_size}, MAE {args.mae_steps} steps "
        f"({mae_s:.0f} s), lr {args.lr}, {args.pool} pooling: {args.steps} steps in {vit_s:.0f} s, final loss "
        f"{vit_loss:.3f}; CNN baseline {cnn_s:.0f} s, loss {cnn_loss:.3f}"
    )
    print(f"{'AU':>5} {'positives':>9} {'ViT AUC':>8} {'CNN AUC':>8}")
    for k, au in enumerate(RENDERED_AUS):
        print(
            f"{'AU' + str(au):>5} {int(y_test[:, k].sum()):>9} {vit_auc[k]:>8.3f} {cnn_auc[k]:>8.3f}"
        )
    print(f"{'mean':>5} {'':>9} {np.mean(vit_auc):>8.3f} {np.mean(cnn_auc):>8.3f}")


if __name__ == "__main__":
    main()
