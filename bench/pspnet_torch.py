"""PyTorch twin of one pspnet_bench case: the same PSPNet, the same step, timed the same way.

    /usr/bin/python3 bench/pspnet_torch.py CASE STEPS THREADS

build/bench/pspnet_bench runs this script once per case (one process per case, so that the process's peak
resident memory is the case's) and alternates it with its own runs; it is not meant to be run by hand, but can be.
It prints one line, `result seconds=<s1,s2,...> gflop=<nominal GFLOP per step>`, which pspnet_bench reads.

The model is Strata's PSPNet (models/pspnet/pspnet.h) layer for layer: semseg's deep stem, BasicBlock (depth 18)
or Bottleneck (depth 50) stages with layer3/layer4 dilated 2/4, PPM bins (1,2,3,6), cls and aux heads whose hidden
widths scale with the width multiplier like the backbone's, x8 bilinear upsampling (align_corners), loss
CE + 0.4 CE_aux, SGD momentum 0.9, weight decay 1e-4, random weights. NCHW, oneDNN's default path.

GFLOP: 2 x the multiply-adds of every convolution (padding taps included, as an im2col GEMM executes them),
counted with forward hooks: a forward pass is one such pass, a training step three (forward, dX, dW) less the
first convolution's dX (its input needs no gradient).
"""
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

CASES = {  # name: (depth, width, batch, size, train); the same table as bench/pspnet_bench.cpp
    "psp18w32-train-8x97": (18, 0.5, 8, 97, True),
    "psp18w32-fwd-8x97": (18, 0.5, 8, 97, False),
    "psp50-train-2x225": (50, 1.0, 2, 225, True),
    "psp50-fwd-2x473": (50, 1.0, 2, 473, False),
    "psp50-train-2x473": (50, 1.0, 2, 473, True),
}


def conv_bn(cin, cout, k, stride=1, dilation=1):
    pad = dilation * (k // 2)
    return [nn.Conv2d(cin, cout, k, stride, pad, dilation, bias=False), nn.BatchNorm2d(cout)]


class Block(nn.Module):
    """BasicBlock (two 3x3) when expansion == 1, Bottleneck (1x1, 3x3 with the stride, 1x1 x4) when 4."""

    def __init__(self, cin, planes, stride, dilation, expansion):
        super().__init__()
        cout = planes * expansion
        if expansion == 1:
            self.body = nn.ModuleList([nn.Sequential(*conv_bn(cin, planes, 3, stride, dilation)),
                                       nn.Sequential(*conv_bn(planes, planes, 3, 1, dilation))])
        else:
            self.body = nn.ModuleList([nn.Sequential(*conv_bn(cin, planes, 1)),
                                       nn.Sequential(*conv_bn(planes, planes, 3, stride, dilation)),
                                       nn.Sequential(*conv_bn(planes, cout, 1))])
        self.down = nn.Sequential(*conv_bn(cin, cout, 1, stride)) if stride != 1 or cin != cout else None

    def forward(self, x):
        out = x
        for i, f in enumerate(self.body):
            out = f(out)
            if i + 1 < len(self.body):
                out = F.relu(out)
        return F.relu(out + (self.down(x) if self.down is not None else x))


def scaled(c, width):
    return max(1, round(c * width))


def head(cin, hidden, classes):
    return nn.Sequential(*conv_bn(cin, hidden, 3), nn.ReLU(), nn.Dropout2d(0.1), nn.Conv2d(hidden, classes, 1))


class PSPNet(nn.Module):
    def __init__(self, depth, width, classes=21, bins=(1, 2, 3, 6)):
        super().__init__()
        expansion, blocks = (1, [2, 2, 2, 2]) if depth == 18 else (4, [3, 4, 6, 3])
        s = scaled(64, width)
        self.layer0 = nn.Sequential(*conv_bn(3, s, 3, 2), nn.ReLU(), *conv_bn(s, s, 3), nn.ReLU(),
                                    *conv_bn(s, 2 * s, 3), nn.ReLU(), nn.MaxPool2d(3, 2, 1))
        cin, stages = 2 * s, []
        for i, (stride, dilation) in enumerate([(1, 1), (2, 1), (1, 2), (1, 4)]):
            planes = scaled(64 << i, width)
            stage = [Block(cin if b == 0 else planes * expansion, planes, stride if b == 0 else 1, dilation,
                           expansion) for b in range(blocks[i])]
            stages.append(nn.Sequential(*stage))
            cin = planes * expansion
            if i == 2:
                c3 = cin
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        red = cin // len(bins)
        self.ppm = nn.ModuleList([nn.Sequential(nn.AdaptiveAvgPool2d(b), *conv_bn(cin, red, 1), nn.ReLU())
                                  for b in bins])
        self.cls = head(cin + red * len(bins), scaled(512, width), classes)
        self.aux = head(c3, scaled(256, width), classes)

    def forward(self, x):
        size = ((x.shape[2] - 1) // 8 * 8 + 1, (x.shape[3] - 1) // 8 * 8 + 1)
        f3 = self.layer3(self.layer2(self.layer1(self.layer0(x))))
        f = self.layer4(f3)
        f = torch.cat([f] + [F.interpolate(p(f), f.shape[2:], mode="bilinear", align_corners=True)
                             for p in self.ppm], 1)
        out = F.interpolate(self.cls(f), size, mode="bilinear", align_corners=True)
        if not self.training:
            return out, None
        return out, F.interpolate(self.aux(f3), size, mode="bilinear", align_corners=True)


def conv_gflop(model, x):
    """Nominal GFLOP of one forward pass (with the aux head in training mode), by forward hooks."""
    total, first = [0.0], []

    def hook(m, inp, out):
        k = m.in_channels // m.groups * m.kernel_size[0] * m.kernel_size[1]
        flop = 2.0 * k * out.numel()
        total[0] += flop
        if not first:
            first.append(flop)

    hooks = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, nn.Conv2d)]
    with torch.no_grad():
        model(x)
    for h in hooks:
        h.remove()
    return total[0] * 1e-9, first[0] * 1e-9


def main():
    name, steps, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    depth, width, batch, size, train = CASES[name]
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = PSPNet(depth, width)
    x = torch.randn(batch, 3, size, size)
    label = torch.randint(0, 21, (batch, size, size))
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)
    model.train(train)
    fwd, first = conv_gflop(model, x)
    gflop = 3 * fwd - first if train else fwd
    times = []
    for step in range(steps + 1):  # step 0 warms up
        t0 = time.perf_counter()
        if train:
            out, aux = model(x)
            loss = F.cross_entropy(out, label, ignore_index=255) + 0.4 * F.cross_entropy(aux, label, ignore_index=255)
            opt.zero_grad()
            loss.backward()
            opt.step()
        else:
            with torch.no_grad():
                model(x)
        if step > 0:
            times.append(time.perf_counter() - t0)
    print("result seconds=%s gflop=%.3f" % (",".join("%.5f" % t for t in times), gflop))


if __name__ == "__main__":
    main()
