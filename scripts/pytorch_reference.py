#!/usr/bin/env python3
"""PyTorch reference for `synthscope bench models|train --against-pytorch`.

The same networks as src/model/unet.rs, src/model/drunet.rs and src/model/blocks.rs, layer for
layer: ConvBn = k x k convolution without bias ("same" padding, stride s) + batch norm;
DoubleConv = (ConvBn 3x3 + ReLU) x 2; Up = nearest x2 + ConvBn 1x1 + ReLU; skips concatenated
[up, skip] on channels; 1x1 head with bias. DRUNet: 7x7/2 stem, four ResNet stages (each starting
with stride 2), a mirrored ResNet decoder and a final Up + 1x1 head.

It times inference (eval mode, no_grad) in slices/s and training steps (MSE, Adam) in steps/s and
prints one JSON object. A benchmark reference only: SynthScope never needs it to run.

  python scripts/pytorch_reference.py infer --models unet:32:4,drunet:34 --size 256 --batch 4
  python scripts/pytorch_reference.py train --models unet:16:4 --size 128 --batch 4 --steps 3
  python scripts/pytorch_reference.py train-ops --base-width 16 --levels 4 --size 128 --batch 4

Make a Python with torch: python3 -m venv DIR && DIR/bin/pip install torch
"""

import argparse
import json
import sys
import time

import torch
from torch import nn
import torch.nn.functional as F


class ConvBn(nn.Module):
    """k x k convolution (no bias, padding k // 2) + batch norm."""

    def __init__(self, cin, cout, k, stride=1):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, k, stride=stride, padding=k // 2, bias=False)
        self.bn = nn.BatchNorm2d(cout)

    def forward(self, x):
        return self.bn(self.conv(x))


class DoubleConv(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.a = ConvBn(cin, cout, 3)
        self.b = ConvBn(cout, cout, 3)

    def forward(self, x):
        return F.relu(self.b(F.relu(self.a(x))))


class Up(nn.Module):
    """Nearest x2 then 1x1 ConvBn + ReLU; `conv_first` does the (equivalent) 1x1 first."""

    def __init__(self, cin, cout, conv_first=False):
        super().__init__()
        self.conv = ConvBn(cin, cout, 1)
        self.conv_first = conv_first

    def forward(self, x):
        if self.conv_first:
            return F.interpolate(F.relu(self.conv(x)), scale_factor=2, mode="nearest")
        return F.relu(self.conv(F.interpolate(x, scale_factor=2, mode="nearest")))


class Unet(nn.Module):
    def __init__(self, base_width=32, levels=4, cin=1, cout=1, conv_first=False):
        super().__init__()
        w = [base_width << i for i in range(levels + 1)]
        self.down = nn.ModuleList([DoubleConv(cin, w[0])] + [DoubleConv(w[i - 1], w[i]) for i in range(1, levels + 1)])
        self.ups = nn.ModuleList([Up(w[i + 1], w[i], conv_first) for i in reversed(range(levels))])
        self.up_convs = nn.ModuleList([DoubleConv(2 * w[i], w[i]) for i in reversed(range(levels))])
        self.head = nn.Conv2d(w[0], cout, 1)

    def forward(self, x):
        skips = []
        y = x
        for i, d in enumerate(self.down):
            if i > 0:
                y = F.max_pool2d(y, 2, 2)
            y = d(y)
            skips.append(y)
        skips.pop()
        for up, conv in zip(self.ups, self.up_convs):
            y = conv(torch.cat([up(y), skips.pop()], 1))
        return self.head(y)


class ResBlock(nn.Module):
    """Basic (two 3x3) or bottleneck (1x1, 3x3, 1x1 x4) block; stride in the 3x3 and shortcut."""

    def __init__(self, kind, cin, cout, stride):
        super().__init__()
        self.shortcut = ConvBn(cin, cout, 1, stride) if (stride != 1 or cin != cout) else None
        if kind == "basic":
            self.c1 = ConvBn(cin, cout, 3, stride)
            self.c2 = ConvBn(cout, cout, 3)
            self.c3 = None
        else:
            w = max(cout // 4, 1)
            self.c1 = ConvBn(cin, w, 1)
            self.c2 = ConvBn(w, w, 3, stride)
            self.c3 = ConvBn(w, cout, 1)

    def forward(self, x):
        identity = self.shortcut(x) if self.shortcut is not None else x
        y = self.c2(F.relu(self.c1(x)))
        if self.c3 is not None:
            y = self.c3(F.relu(y))
        return F.relu(y + identity)


def stage(kind, depth, cin, cout, stride):
    return nn.Sequential(*[ResBlock(kind, cin if i == 0 else cout, cout, stride if i == 0 else 1) for i in range(max(depth, 1))])


LAYOUTS = {18: ("basic", [2, 2, 2, 2]), 34: ("basic", [3, 4, 6, 3]), 50: ("bottleneck", [3, 4, 6, 3]), 101: ("bottleneck", [3, 4, 23, 3])}


class Drunet(nn.Module):
    def __init__(self, depth=34, cin=3, cout=1, base_width=64, conv_first=False):
        super().__init__()
        kind, depths = LAYOUTS[depth]
        b = base_width
        e = 4 if kind == "bottleneck" else 1
        widths = [b * e, 2 * b * e, 4 * b * e, 8 * b * e]
        self.stem = ConvBn(cin, b, 7, 2)
        enc, c = [], b
        for i, w in enumerate(widths):
            enc.append(stage(kind, depths[i], c, w, 2))
            c = w
        self.encoder = nn.ModuleList(enc)
        skips = [widths[2], widths[1], widths[0], b]
        ups, dec, c = [], [], widths[3]
        for i, s in enumerate(skips):
            ups.append(Up(c, s, conv_first))
            dec.append(stage(kind, depths[3 - i], 2 * s, s, 1))
            c = s
        self.ups = nn.ModuleList(ups)
        self.decoder = nn.ModuleList(dec)
        self.final_up = Up(b, b // 2, conv_first)
        self.head = nn.Conv2d(b // 2, cout, 1)

    def forward(self, x):
        enc = [F.relu(self.stem(x))]
        for s in self.encoder:
            enc.append(s(enc[-1]))
        y = enc[4]
        for i, (up, st) in enumerate(zip(self.ups, self.decoder)):
            y = st(torch.cat([up(y), enc[3 - i]], 1))
        return self.head(self.final_up(y))


def build(spec, conv_first):
    """unet:BASE:LEVELS or drunet:DEPTH -> (name, module, input channels)."""
    parts = spec.split(":")
    if parts[0] == "unet":
        base = int(parts[1]) if len(parts) > 1 else 32
        levels = int(parts[2]) if len(parts) > 2 else 4
        return f"U-Net {base}/{levels}", Unet(base, levels, conv_first=conv_first), 1
    if parts[0] == "drunet":
        depth = int(parts[1]) if len(parts) > 1 else 34
        return f"DRUNet-{depth}", Drunet(depth, conv_first=conv_first), 3
    raise SystemExit(f"unknown model {spec}: unet:BASE:LEVELS or drunet:DEPTH")


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def time_infer(net, cin, size, batch, repeat, device):
    net = net.to(device).eval()
    x = torch.randn(batch, cin, size, size, device=device)
    with torch.no_grad():
        t = time.perf_counter()
        net(x).cpu()
        first = time.perf_counter() - t
        t = time.perf_counter()
        for _ in range(max(repeat, 1)):
            net(x).cpu()
        s = (time.perf_counter() - t) / max(repeat, 1)
    return {"slices_per_s": batch / s, "ms_per_batch": s * 1e3, "first_s": first}


def time_train(net, cin, size, batch, steps, device):
    net = net.to(device).train()
    x = torch.rand(batch, cin, size, size, device=device)
    y = torch.rand(batch, 1, size, size, device=device)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)

    def step():
        opt.zero_grad(set_to_none=True)
        loss = F.mse_loss(net(x), y)
        loss.backward()
        opt.step()
        return loss.item()

    t = time.perf_counter()
    step()
    first = time.perf_counter() - t
    t = time.perf_counter()
    for _ in range(max(steps, 1)):
        step()
    sync(device)
    s = (time.perf_counter() - t) / max(steps, 1)
    return {"steps_per_s": 1.0 / s, "images_per_s": batch / s, "ms_per_step": s * 1e3, "first_s": first}


def unet_ops(base, levels, size, folded):
    """The ops of a U-Net's eval forward (as src/cli/bench/ops.rs lists them): [(name, fn)]."""
    w = [base << i for i in range(levels + 1)]
    s = [size >> i for i in range(levels + 1)]
    ops = []

    def cbr(k, a, b, side):
        ops.append(("conv", k, a, b, side, folded))
        if not folded:
            ops.append(("bn", b, side))
        ops.append(("relu", b, side))

    for lv in range(levels + 1):
        cin = 1 if lv == 0 else w[lv - 1]
        if lv > 0:
            ops.append(("pool", w[lv - 1], s[lv - 1]))
        cbr(3, cin, w[lv], s[lv])
        cbr(3, w[lv], w[lv], s[lv])
    for lv in reversed(range(levels)):
        cbr(1, w[lv + 1], w[lv], s[lv + 1])
        ops.append(("up", w[lv], s[lv + 1]))
        ops.append(("cat", w[lv], w[lv], s[lv]))
        cbr(3, 2 * w[lv], w[lv], s[lv])
        cbr(3, w[lv], w[lv], s[lv])
    ops.append(("conv", 1, w[0], 1, s[0], True))
    seen = []
    for o in ops:
        if o not in seen:
            seen.append(o)
    return seen


def op_name(o):
    kind = o[0]
    if kind == "conv":
        _, k, a, b, side, bias = o
        return f"conv{k}x{k} {a}->{b} @{side}" + (" +bias" if bias else "")
    names = {"bn": "batchnorm", "relu": "relu", "pool": "maxpool", "up": "upsample"}
    if kind == "cat":
        return f"cat {o[1]}+{o[2]} @{o[3]}"
    return f"{names[kind]} {o[1]} @{o[2]}"


def time_ops(a, device):
    results = []
    with torch.no_grad():
        for o in unet_ops(a.base_width, a.levels, a.size, a.folded):
            kind, B = o[0], a.batch
            if kind == "conv":
                _, k, ci, co, side, bias = o
                x, w = torch.randn(B, ci, side, side, device=device), torch.randn(co, ci, k, k, device=device)
                b = torch.randn(co, device=device) if bias else None
                fn = lambda x=x, w=w, b=b, p=k // 2: F.conv2d(x, w, b, padding=p)
            elif kind == "bn":
                _, c, side = o
                x = torch.randn(B, c, side, side, device=device)
                g, be, m, v = (torch.rand(c, device=device) + 0.5 for _ in range(4))
                fn = lambda x=x, g=g, be=be, m=m, v=v: F.batch_norm(x, m, v, g, be, False, 0.1, 1e-5)
            elif kind == "relu":
                x = torch.randn(B, o[1], o[2], o[2], device=device)
                fn = lambda x=x: F.relu(x)
            elif kind == "pool":
                x = torch.randn(B, o[1], o[2], o[2], device=device)
                fn = lambda x=x: F.max_pool2d(x, 2, 2)
            elif kind == "up":
                x = torch.randn(B, o[1], o[2], o[2], device=device)
                fn = lambda x=x: F.interpolate(x, scale_factor=2, mode="nearest")
            else:
                x, y = torch.randn(B, o[1], o[3], o[3], device=device), torch.randn(B, o[2], o[3], o[3], device=device)
                fn = lambda x=x, y=y: torch.cat([x, y], 1)
            fn()
            best = float("inf")
            for _ in range(max(a.repeat, 1)):
                t = time.perf_counter()
                fn()
                sync(device)
                best = min(best, time.perf_counter() - t)
            results.append({"name": op_name(o), "ms": best * 1e3})
    return results


def time_train_ops(a, device):
    """Each op of a U-Net training step alone: forward, and forward + backward seeded through
    sum(y * g) (as `bench ops --train` does), batch norms in training mode; best of a.repeat."""
    results = []
    for o in unet_ops(a.base_width, a.levels, a.size, False):
        kind, B = o[0], a.batch
        leaf = lambda *shape: torch.randn(*shape, device=device, requires_grad=True)
        if kind == "conv":
            _, k, ci, co, side, bias = o
            x, w = leaf(B, ci, side, side), leaf(co, ci, k, k)
            b = (torch.rand(co, device=device) + 0.5).requires_grad_() if bias else None
            leaves = [t for t in (x, w, b) if t is not None]
            fn = lambda x=x, w=w, b=b, p=k // 2: F.conv2d(x, w, b, padding=p)
        elif kind == "bn":
            _, c, side = o
            x = leaf(B, c, side, side)
            g, be = ((torch.rand(c, device=device) + 0.5).requires_grad_() for _ in range(2))
            leaves = [x, g, be]
            fn = lambda x=x, g=g, be=be: F.batch_norm(x, None, None, g, be, True, 0.1, 1e-5)
        elif kind in ("relu", "pool", "up"):
            x = leaf(B, o[1], o[2], o[2])
            leaves = [x]
            fn = {
                "relu": lambda x=x: F.relu(x),
                "pool": lambda x=x: F.max_pool2d(x, 2, 2),
                "up": lambda x=x: F.interpolate(x, scale_factor=2, mode="nearest"),
            }[kind]
        else:
            x, y = leaf(B, o[1], o[3], o[3]), leaf(B, o[2], o[3], o[3])
            leaves = [x, y]
            fn = lambda x=x, y=y: torch.cat([x, y], 1)
        g = torch.randn_like(fn().detach())

        def both(fn=fn, g=g, leaves=leaves):
            for t in leaves:
                t.grad = None
            (fn() * g).sum().backward()

        def best(f):
            f()
            sync(device)
            out = float("inf")
            for _ in range(max(a.repeat, 1)):
                t = time.perf_counter()
                f()
                sync(device)
                out = min(out, time.perf_counter() - t)
            return out * 1e3

        results.append({"name": op_name(o), "fwd_ms": best(fn), "fwd_bwd_ms": best(both)})
    return results


def time_train_phases(a, device):
    """The whole U-Net's step taken apart: forward + loss, + backward, + Adam (best of a.repeat, ms)."""
    net = Unet(a.base_width, a.levels, conv_first=a.conv_before_up).to(device).train()
    x = torch.rand(a.batch, 1, a.size, a.size, device=device)
    y = torch.rand(a.batch, 1, a.size, a.size, device=device)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    best = [float("inf")] * 3
    for _ in range(max(a.repeat, 1) + 1):
        for phase in range(3):
            opt.zero_grad(set_to_none=True)
            t = time.perf_counter()
            loss = F.mse_loss(net(x), y)
            loss.item()
            if phase >= 1:
                loss.backward()
            if phase == 2:
                opt.step()
            sync(device)
            best[phase] = min(best[phase], (time.perf_counter() - t) * 1e3)
    return best


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("mode", choices=["infer", "train", "ops", "train-ops"])
    p.add_argument("--models", default="unet:32:4,drunet:34", help="comma-separated unet:BASE:LEVELS / drunet:DEPTH")
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--repeat", type=int, default=3, help="timed batches (infer) or steps (train) after one warm-up")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--conv-before-up", action="store_true", help="Up as 1x1 ConvBn + ReLU then nearest x2 (equivalent, 4x fewer 1x1 FLOPs)")
    p.add_argument("--base-width", type=int, default=32, help="ops: U-Net base width")
    p.add_argument("--levels", type=int, default=4, help="ops: U-Net levels")
    p.add_argument("--folded", action="store_true", help="ops: batch norms folded into the convolutions")
    a = p.parse_args()
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    device = torch.device(a.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("torch sees no CUDA device")
    torch.manual_seed(0)
    if a.mode == "train-ops":
        out = {"torch": torch.__version__, "threads": torch.get_num_threads(), "ops": time_train_ops(a, device), "phases": time_train_phases(a, device)}
        json.dump(out, sys.stdout)
        print()
        return
    if a.mode == "ops":
        out = {"torch": torch.__version__, "threads": torch.get_num_threads(), "ops": time_ops(a, device)}
        json.dump(out, sys.stdout)
        print()
        return
    results = []
    for spec in a.models.split(","):
        name, net, cin = build(spec.strip(), a.conv_before_up)
        r = (time_infer if a.mode == "infer" else time_train)(net, cin, a.size, a.batch, a.repeat, device)
        # Counted as burn counts them: batch-norm running statistics included.
        params = sum(t.numel() for t in net.parameters()) + sum(b.numel() for n, b in net.named_buffers() if "running" in n)
        r.update({"model": name, "spec": spec.strip(), "params": params})
        results.append(r)
    out = {
        "torch": torch.__version__,
        "device": str(device) if device.type != "cuda" else torch.cuda.get_device_name(device),
        "threads": torch.get_num_threads(),
        "mode": a.mode,
        "size": a.size,
        "batch": a.batch,
        "conv_before_up": a.conv_before_up,
        "results": results,
    }
    json.dump(out, sys.stdout)
    print()


if __name__ == "__main__":
    main()
