"""PyTorch side of SynthScope's CycleGAN import (tests/cyclegan_import.rs) and of its
"pretrained non-medical generator" (README, CycleGAN section).

The ResNet generator is built here layer by layer in the order of the reference
implementation (pytorch-CycleGAN-and-pix2pix, `ResnetGenerator` with `InstanceNorm2d` without
affine parameters), so `state_dict()` has its exact keys: model.1 (7x7 stem), model.4/7
(downsamplings), model.10.. (blocks: conv_block.1 and conv_block.5, or .6 with dropout),
model.19/22 (transposed convolutions) and model.26 (7x7 head) for 9 blocks.

  forward  --out DIR [--ngf 64 --blocks 9 --dropout --size 64 --seed 0]
      random weights (N(0, 0.02), biases N(0, 0.05)), DIR/net_G.pth and DIR/net_G.safetensors,
      DIR/input.f32 ([1, 3, size, size]) and DIR/output.f32 (the generator's output), raw
      little-endian float32.
  pretrain --out FILE.pth [--ngf 16 --blocks 4 --steps 600 --size 64 --seed 0]
      trains the generator for a photo -> photo task on the natural images that ship inside
      scikit-image (astronaut, coffee, chelsea, rocket, ...: no download): restoring a blurred,
      noisy, contrast-reduced photo to the original (L1 loss, Adam 2e-4, beta1 0.5), and saves
      its state dict with the reference keys.
"""
import argparse
import json
import os
import time

import numpy as np
import torch
import torch.nn as nn


class Block(nn.Module):
    def __init__(self, dim, dropout):
        super().__init__()
        layers = [nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3, bias=True),
                  nn.InstanceNorm2d(dim), nn.ReLU(True)]
        if dropout:
            layers.append(nn.Dropout(0.5))
        layers += [nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3, bias=True),
                   nn.InstanceNorm2d(dim)]
        self.conv_block = nn.Sequential(*layers)

    def forward(self, x):
        return x + self.conv_block(x)


class Generator(nn.Module):
    def __init__(self, cin=3, cout=3, ngf=64, blocks=9, dropout=False):
        super().__init__()
        m = [nn.ReflectionPad2d(3), nn.Conv2d(cin, ngf, 7, bias=True),
             nn.InstanceNorm2d(ngf), nn.ReLU(True)]
        for i in range(2):
            w = ngf * 2 ** i
            m += [nn.Conv2d(w, w * 2, 3, stride=2, padding=1, bias=True),
                  nn.InstanceNorm2d(w * 2), nn.ReLU(True)]
        for _ in range(blocks):
            m.append(Block(ngf * 4, dropout))
        for i in range(2):
            w = ngf * 2 ** (2 - i)
            m += [nn.ConvTranspose2d(w, w // 2, 3, stride=2, padding=1, output_padding=1,
                                     bias=True),
                  nn.InstanceNorm2d(w // 2), nn.ReLU(True)]
        m += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, cout, 7), nn.Tanh()]
        self.model = nn.Sequential(*m)

    def forward(self, x):
        return self.model(x)


def init(net, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in net.named_parameters():
            std = 0.02 if name.endswith("weight") else 0.05
            p.copy_(torch.randn(p.shape, generator=g) * std)


def forward(a):
    os.makedirs(a.out, exist_ok=True)
    net = Generator(3, 3, a.ngf, a.blocks, a.dropout).eval()
    init(net, a.seed)
    sd = net.state_dict()
    torch.save(sd, os.path.join(a.out, "net_G.pth"))
    from safetensors.torch import save_file
    save_file({k: v.contiguous() for k, v in sd.items()}, os.path.join(a.out, "net_G.safetensors"))
    g = torch.Generator().manual_seed(a.seed + 1)
    x = torch.rand((1, 3, a.size, a.size), generator=g) * 2 - 1
    with torch.no_grad():
        y = net(x)
    x.numpy().astype("<f4").tofile(os.path.join(a.out, "input.f32"))
    y.numpy().astype("<f4").tofile(os.path.join(a.out, "output.f32"))
    print(json.dumps({"params": sum(p.numel() for p in net.parameters()),
                      "keys": len(sd), "first": list(sd)[:2], "last": list(sd)[-1]}))


def photos():
    from skimage import data
    out = []
    for name in ["astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field",
                 "immunohistochemistry", "retina", "colorwheel", "cat"]:
        try:
            img = getattr(data, name)()
        except Exception:
            continue
        if img.ndim == 3 and img.shape[2] >= 3:
            out.append(torch.from_numpy(img[:, :, :3].astype(np.float32) / 127.5 - 1.0)
                       .permute(2, 0, 1))
    return out


def degrade(x, g):
    # Blur (3x3 box twice), lower the contrast, add noise: the generator learns to undo it.
    k = torch.ones(3, 1, 3, 3) / 9.0
    y = torch.nn.functional.conv2d(torch.nn.functional.pad(x, (1, 1, 1, 1), mode="reflect"), k,
                                   groups=3)
    y = torch.nn.functional.conv2d(torch.nn.functional.pad(y, (1, 1, 1, 1), mode="reflect"), k,
                                   groups=3)
    y = y * 0.6 + torch.randn(y.shape, generator=g) * 0.05
    return y.clamp(-1, 1)


def pretrain(a):
    torch.manual_seed(a.seed)
    torch.set_num_threads(max(1, a.threads))
    imgs = photos()
    net = Generator(3, 3, a.ngf, a.blocks)
    with torch.no_grad():
        for name, p in net.named_parameters():
            if name.endswith("weight"):
                p.normal_(0.0, 0.02)
            else:
                p.zero_()
    opt = torch.optim.Adam(net.parameters(), lr=2e-4, betas=(0.5, 0.999))
    g = torch.Generator().manual_seed(a.seed)
    t = time.time()
    first = None
    for step in range(a.steps):
        batch = []
        for _ in range(a.batch):
            img = imgs[int(torch.randint(len(imgs), (1,), generator=g))]
            _, h, w = img.shape
            y0 = int(torch.randint(h - a.size + 1, (1,), generator=g))
            x0 = int(torch.randint(w - a.size + 1, (1,), generator=g))
            batch.append(img[:, y0:y0 + a.size, x0:x0 + a.size])
        target = torch.stack(batch)
        loss = (net(degrade(target, g)) - target).abs().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        if first is None:
            first = loss.item()
        if step % 100 == 0 or step + 1 == a.steps:
            print(f"step {step + 1}/{a.steps} L1 {loss.item():.4f} ({time.time() - t:.0f} s)",
                  flush=True)
    # Held-out check on a photo's full frame: restored vs degraded, against the original.
    with torch.no_grad():
        img = imgs[0][:, :256, :256].unsqueeze(0)
        deg = degrade(img, g)
        restored = (net.eval()(deg) - img).abs().mean().item()
        degraded = (deg - img).abs().mean().item()
    torch.save(net.state_dict(), a.out)
    print(json.dumps({"out": a.out, "steps": a.steps, "first_l1": first, "last_l1": loss.item(),
                      "photos": len(imgs), "astronaut_l1_degraded": degraded,
                      "astronaut_l1_restored": restored, "seconds": time.time() - t}))


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    f = sub.add_parser("forward")
    f.add_argument("--out", required=True)
    f.add_argument("--ngf", type=int, default=64)
    f.add_argument("--blocks", type=int, default=9)
    f.add_argument("--dropout", action="store_true")
    f.add_argument("--size", type=int, default=64)
    f.add_argument("--seed", type=int, default=0)
    t = sub.add_parser("pretrain")
    t.add_argument("--out", required=True)
    t.add_argument("--ngf", type=int, default=16)
    t.add_argument("--blocks", type=int, default=4)
    t.add_argument("--steps", type=int, default=600)
    t.add_argument("--size", type=int, default=64)
    t.add_argument("--batch", type=int, default=4)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--threads", type=int, default=1)
    a = p.parse_args()
    forward(a) if a.cmd == "forward" else pretrain(a)


if __name__ == "__main__":
    main()
