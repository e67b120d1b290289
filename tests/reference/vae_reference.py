#!/usr/bin/env python3
"""PyTorch mirror of melfuse's VAE (models/src: encoder.rs, decoder.rs, block.rs),
used only as the reference side of tests/bench/train_vs_pytorch.

Same layers, widths, strides, head and loss as the burn model for the `tiny`
and `paper` presets (models/src/vae.rs); times forward + backward + Adam on
random inputs and prints one JSON line with samples per second.
"""

import argparse
import json
import time

import torch
from torch import nn
import torch.nn.functional as F

PRESETS = {
    "tiny": dict(n_mels=64, frames=320, latent_dim=64, widths=[16, 32, 64, 128], blocks=[2, 2, 2, 2],
                 stem="narrow", head_channels=16, decoder_base_channels=128, decoder_widths=[64, 32, 32, 16, 8]),
    "paper": dict(n_mels=128, frames=1280, latent_dim=256, widths=[64, 128, 256, 512], blocks=[2, 2, 2, 2],
                  stem="wide", head_channels=32, decoder_base_channels=512, decoder_widths=[256, 128, 64, 32, 32]),
}
DOWNSAMPLING = 32
LOGVAR_RANGE = (-10.0, 10.0)


def conv3x3(cin, cout, stride=1):
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)


class Projection(nn.Module):
    def __init__(self, cin, cout, stride=1):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 1, stride=stride, bias=False)
        self.norm = nn.BatchNorm2d(cout)

    def forward(self, x):
        return self.norm(self.conv(x))


class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1, self.norm1 = conv3x3(cin, cout, stride), nn.BatchNorm2d(cout)
        self.conv2, self.norm2 = conv3x3(cout, cout), nn.BatchNorm2d(cout)
        self.shortcut = Projection(cin, cout, stride) if stride != 1 or cin != cout else None

    def forward(self, x):
        skip = self.shortcut(x) if self.shortcut is not None else x
        h = F.relu(self.norm1(self.conv1(x)))
        return F.relu(self.norm2(self.conv2(h)) + skip)


class UpBlock(nn.Module):
    def __init__(self, cin, cout, n_genres):
        super().__init__()
        self.conv1, self.norm1 = conv3x3(cin, cout), nn.BatchNorm2d(cout)
        self.genre_bias = nn.Linear(n_genres, cout)
        self.conv2, self.norm2 = conv3x3(cout, cout), nn.BatchNorm2d(cout)
        self.shortcut = Projection(cin, cout) if cin != cout else None

    def forward(self, x, genre):
        up = F.interpolate(x, scale_factor=2, mode="nearest")
        skip = self.shortcut(up) if self.shortcut is not None else up
        h = F.relu(self.norm1(self.conv1(up)) + self.genre_bias(genre)[:, :, None, None])
        return F.relu(self.norm2(self.conv2(h)) + skip)


class Encoder(nn.Module):
    def __init__(self, p):
        super().__init__()
        w0 = p["widths"][0]
        if p["stem"] == "wide":
            self.stem = nn.Sequential(nn.Conv2d(1, w0, 7, stride=2, padding=3, bias=False), nn.BatchNorm2d(w0), nn.ReLU(),
                                      nn.MaxPool2d(3, stride=2, padding=1))
            first_stride = 1
        else:
            self.stem = nn.Sequential(conv3x3(1, w0, 2), nn.BatchNorm2d(w0), nn.ReLU())
            first_stride = 2
        blocks, cin = [], w0
        for stage, (width, count) in enumerate(zip(p["widths"], p["blocks"])):
            for i in range(count):
                stride = 1 if i > 0 else (first_stride if stage == 0 else 2)
                blocks.append(BasicBlock(cin, width, stride))
                cin = width
        self.blocks = nn.Sequential(*blocks)
        self.reduce = Projection(cin, p["head_channels"])
        features = p["head_channels"] * (p["n_mels"] // DOWNSAMPLING) * (p["frames"] // DOWNSAMPLING)
        self.mu = nn.Linear(features, p["latent_dim"])
        self.logvar = nn.Linear(features, p["latent_dim"])

    def forward(self, x):
        h = F.relu(self.reduce(self.blocks(self.stem(x)))).flatten(1)
        return self.mu(h), self.logvar(h).clamp(*LOGVAR_RANGE)


class Decoder(nn.Module):
    def __init__(self, p, n_genres):
        super().__init__()
        self.grid = (p["head_channels"], p["n_mels"] // DOWNSAMPLING, p["frames"] // DOWNSAMPLING)
        self.project = nn.Linear(p["latent_dim"] + n_genres, self.grid[0] * self.grid[1] * self.grid[2])
        self.expand = Projection(p["head_channels"], p["decoder_base_channels"])
        blocks, cin = [], p["decoder_base_channels"]
        for width in p["decoder_widths"]:
            blocks.append(UpBlock(cin, width, n_genres))
            cin = width
        self.blocks = nn.ModuleList(blocks)
        self.output = nn.Conv2d(cin, 1, 3, padding=1)

    def forward(self, z, genre):
        h = self.project(torch.cat([z, genre], 1)).reshape(z.shape[0], *self.grid)
        h = F.relu(self.expand(h))
        for block in self.blocks:
            h = block(h, genre)
        return torch.sigmoid(self.output(h))


class Vae(nn.Module):
    def __init__(self, p, n_genres):
        super().__init__()
        self.encoder, self.decoder = Encoder(p), Decoder(p, n_genres)

    def forward(self, x, genre):
        mu, logvar = self.encoder(x)
        z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
        return self.decoder(z, genre), mu, logvar


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", choices=PRESETS, default="tiny")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--genres", type=int, default=4)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    p = PRESETS[args.preset]
    model = Vae(p, args.genres)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    x = torch.rand(args.batch, 1, p["n_mels"], p["frames"])
    genre = F.one_hot(torch.arange(args.batch) % args.genres, args.genres).float()

    def step():
        optimizer.zero_grad()
        reconstruction, mu, logvar = model(x, genre)
        kl = (-0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum(1)).mean()
        loss = F.mse_loss(reconstruction, x) + 1e-4 * kl
        loss.backward()
        optimizer.step()

    for _ in range(args.warmup):
        step()
    started = time.perf_counter()
    for _ in range(args.steps):
        step()
    seconds = time.perf_counter() - started
    print(json.dumps({"implementation": "pytorch", "preset": args.preset, "batch": args.batch, "steps": args.steps,
                      "threads": torch.get_num_threads(), "parameters": sum(t.numel() for t in model.parameters()),
                      "seconds": seconds, "samples_per_second": args.batch * args.steps / seconds}))


if __name__ == "__main__":
    main()
