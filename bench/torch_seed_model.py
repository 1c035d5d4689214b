"""The seed's Inception-V3 written in PyTorch, tensor for tensor as incv3 builds it.

This is the PyTorch side of bench/compare_pytorch.py, and bench/check_torch_model.py holds it to the golden
files of ../shared/reference. incv3's layout (src/models/inception_v3.c) is followed literally:

  - every convolution has no bias and is followed by BatchNorm (eps 1e-5, momentum 0.1) and ReLU; such a
    unit is named PREFIX.conv / PREFIX.bn, e.g. mixed17.3.b7dbl.2.conv.weight;
  - channel counts of the seed table are scaled by the width multiplier as incv3 does,
    S(c) = max(1, floor(c * width + 0.5)); every other count (block inputs, concatenations, the 2c
    outputs of the 8x8 blocks' pool and 1x1 branches) follows from the modules already built;
  - branch order and concatenation order are those of incv3's graph, the 17x17 blocks apply 1x7 before
    7x1, and the aux head (5x5/3 average pool, 1x1 unit, two Linears with nothing between them) reads the
    last 17x17 block.

Tensor names therefore equal the names in incv3 checkpoints and model files and, behind the "param."
prefix, in the golden files: `model.load_state_dict(incv3_state(tensors))` works on both (PyTorch fills in
BatchNorm's num_batches_tracked, which incv3 does not store). Standard library and torch only.
"""
import json
import math
import struct

import torch
import torch.nn.functional as F
from torch import nn

BN_EPS = 1e-5
BN_MOMENTUM = 0.1
MIN_IMAGE_SIZE = 75


def channel_scale(width):
    """The scaled channel count function S for a width multiplier."""
    return lambda c: max(1, int(math.floor(c * width + 0.5)))


def grid17_size(image_size):
    """Spatial size that reaches the 17x17 blocks (17 at 299..314)."""
    s = (image_size - 3) // 2 + 1   # stem.0, stride 2
    s -= 2                          # stem.1
    s = (s - 3) // 2 + 1            # max pool, stride 2
    s -= 2                          # stem.4
    s = (s - 3) // 2 + 1            # stem.5, stride 2: the 35x35 grid
    return (s - 3) // 2 + 1         # grid reduction 1


def aux_image_sizes():
    """The input sizes with which the aux head fits: its Linear expects a 5x5 map from a 17x17 grid."""
    return [s for s in range(MIN_IMAGE_SIZE, 400) if grid17_size(s) == 17]


class Unit(nn.Module):
    """Convolution without bias, BatchNorm, ReLU: incv3's basic layer."""

    def __init__(self, cin, cout, kernel, stride=1, padding=0):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, stride=stride, padding=padding, bias=False)
        self.bn = nn.BatchNorm2d(cout, eps=BN_EPS, momentum=BN_MOMENTUM)
        self.out_channels = cout

    def forward(self, x):
        return F.relu(self.bn(self.conv(x)), inplace=True)


def chain(cin, *specs):
    """A branch of units from (cout, kernel[, stride[, padding]]) tuples; None stands for the max pool
    that opens a pool branch (3x3, stride 1, padding 1), so the pool branch's unit is index 1."""
    layers = []
    for spec in specs:
        if spec is None:
            layers.append(nn.MaxPool2d(3, stride=1, padding=1))
            continue
        layers.append(Unit(cin, *spec))
        cin = spec[0]
    seq = nn.Sequential(*layers)
    seq.out_channels = cin
    return seq


class Concat(nn.Module):
    """A block whose output is its branches' outputs, concatenated along channels in `order`."""

    order = ()

    def forward(self, x):
        return torch.cat([getattr(self, name)(x) for name in self.order], 1)

    @property
    def out_channels(self):
        return sum(getattr(self, name).out_channels for name in self.order)


class Mixed35(Concat):
    """35x35 block (paper fig. 5): the 5x5 path is two 3x3 units."""

    order = ("b3dbl", "b3", "bpool", "b1")

    def __init__(self, cin, S, pool_features):
        super().__init__()
        self.b3dbl = chain(cin, (S(64), 1), (S(64), 3, 1, 1), (S(64), 3, 1, 1))
        self.b3 = chain(cin, (S(64), 1), (S(64), 3, 1, 1))
        self.bpool = chain(cin, None, (S(96), 1))
        self.b1 = Unit(cin, S(pool_features), 1)


class GridReduction(Concat):
    """Halves the grid: two strided branches and a strided max pool that passes the input's channels."""

    order = ("ba", "bb", "pool")

    def __init__(self, cin, c_a, c_b):
        super().__init__()
        self.ba = chain(cin, (c_a, 1), (c_a, 3, 1, 1), (c_a, 3, 2))
        self.bb = chain(cin, (c_b, 1), (c_b, 3, 2))
        self.pool = nn.MaxPool2d(3, stride=2)
        self.pool.out_channels = cin


class Mixed17(Concat):
    """17x17 block (paper fig. 6, n = 7): 7x7 factorized into 1x7 then 7x1."""

    order = ("b7dbl", "b7", "bpool", "b1")

    def __init__(self, cin, S, c):
        super().__init__()
        row, col = ((1, 7), 1, (0, 3)), ((7, 1), 1, (3, 0))
        c, c192 = S(c), S(192)
        self.b7dbl = chain(cin, (c, 1), (c,) + row, (c,) + col, (c,) + row, (c192,) + col)
        self.b7 = chain(cin, (c, 1), (c,) + row, (c192,) + col)
        self.bpool = chain(cin, None, (c192, 1))
        self.b1 = Unit(cin, c192, 1)


class Mixed8(nn.Module):
    """8x8 block (paper fig. 7): both 3x3 paths end in a 1x3 and a 3x1 unit side by side."""

    def __init__(self, cin, S, c):
        super().__init__()
        c = S(c)
        self.b3dbl = chain(cin, (c, 1), (c, 3, 1, 1))
        self.b3 = Unit(cin, c, 1)
        self.b3dbl_a = Unit(c, c, (1, 3), padding=(0, 1))
        self.b3dbl_b = Unit(c, c, (3, 1), padding=(1, 0))
        self.b3_a = Unit(c, c, (1, 3), padding=(0, 1))
        self.b3_b = Unit(c, c, (3, 1), padding=(1, 0))
        self.bpool = chain(cin, None, (2 * c, 1))
        self.b1 = Unit(cin, 2 * c, 1)
        self.out_channels = 8 * c

    def forward(self, x):
        d, s = self.b3dbl(x), self.b3(x)
        return torch.cat([self.b3dbl_a(d), self.b3dbl_b(d), self.b3_a(s), self.b3_b(s), self.bpool(x), self.b1(x)],
                         1)


class AuxHead(nn.Module):
    """Auxiliary classifier on the last 17x17 map; the two Linears have no activation between them."""

    def __init__(self, cin, S, classes):
        super().__init__()
        self.conv = Unit(cin, S(128), 1)
        self.fc1 = nn.Linear(S(128) * 5 * 5, S(1024))
        self.fc2 = nn.Linear(S(1024), classes)

    def forward(self, x):
        x = self.conv(F.avg_pool2d(x, 5, stride=3))
        return self.fc2(self.fc1(torch.flatten(x, 1)))


class SeedInceptionV3(nn.Module):
    """incv3's model: InceptionV3(image_size=299, aux=True, classes=10, width=1.0, dropout=0.0).

    forward(x) gives the logits, or (logits, aux_logits) in training mode when the aux head exists;
    with_aux=True/False overrides that choice.
    """

    def __init__(self, image_size=299, aux=True, classes=10, width=1.0, dropout=0.0):
        super().__init__()
        if image_size < MIN_IMAGE_SIZE:
            raise ValueError("image size %d: at least %d" % (image_size, MIN_IMAGE_SIZE))
        if aux and grid17_size(image_size) != 17:
            sizes = aux_image_sizes()
            raise ValueError("image size %d: the aux head needs %d..%d (or aux=False)"
                             % (image_size, sizes[0], sizes[-1]))
        if not 0 < width <= 4:
            raise ValueError("width %g: must be in (0, 4]" % width)
        if not 0 <= dropout < 1:
            raise ValueError("dropout %g: must be in [0, 1)" % dropout)
        S = channel_scale(width)
        self.image_size, self.classes, self.width = image_size, classes, width
        self.stem = chain(3, (S(32), 3, 2), (S(32), 3), (S(64), 3, 1, 1))
        self.stem.append(nn.MaxPool2d(3, stride=2))
        self.stem.append(Unit(S(64), S(80), 3))
        self.stem.append(Unit(S(80), S(192), 3, stride=2))
        c = S(192)
        self.mixed35 = nn.ModuleList()
        for pool_features in (32, 64, 64):
            self.mixed35.append(Mixed35(c, S, pool_features))
            c = self.mixed35[-1].out_channels
        self.red1 = GridReduction(c, S(384), S(96))
        c = self.red1.out_channels
        self.mixed17 = nn.ModuleList()
        for width17 in (128, 144, 160, 176, 192):
            self.mixed17.append(Mixed17(c, S, width17))
            c = self.mixed17[-1].out_channels
        self.aux = AuxHead(c, S, classes) if aux else None
        self.red2 = GridReduction(c, S(384), S(128))
        c = self.red2.out_channels
        self.mixed8 = nn.ModuleList()
        for width8 in (208, 256):
            self.mixed8.append(Mixed8(c, S, width8))
            c = self.mixed8[-1].out_channels
        self.dropout = dropout
        self.fc = nn.Linear(c, classes)

    def forward(self, x, with_aux=None):
        if with_aux is None:
            with_aux = self.training and self.aux is not None
        x = self.stem(x)
        for block in list(self.mixed35) + [self.red1] + list(self.mixed17):
            x = block(x)
        aux_logits = self.aux(x) if with_aux else None
        x = self.red2(x)
        for block in self.mixed8:
            x = block(x)
        x = torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)
        if self.dropout > 0:
            x = F.dropout(x, self.dropout, self.training)
        logits = self.fc(x)
        return (logits, aux_logits) if with_aux else logits


def from_config(cfg):
    """The model for a config dict as incv3 checkpoints and the golden files carry it (image_size, aux,
    classes, width and, optionally, dropout)."""
    return SeedInceptionV3(image_size=int(cfg["image_size"]), aux=bool(cfg["aux"]), classes=int(cfg["classes"]),
                           width=float(cfg["width"]), dropout=float(cfg.get("dropout", 0.0)))


_DTYPES = {"F32": torch.float32, "F64": torch.float64, "I64": torch.int64, "I32": torch.int32}


def read_safetensors(path):
    """(tensors, metadata) of a safetensors file: 8-byte little-endian header size, JSON header, data."""
    with open(path, "rb") as f:
        (size,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(size))
        data = bytearray(f.read())
    meta = header.pop("__metadata__", {}) or {}
    tensors = {}
    for name, info in header.items():
        lo, hi = info["data_offsets"]
        dtype = _DTYPES[info["dtype"]]
        count = (hi - lo) // torch.empty((), dtype=dtype).element_size()
        t = torch.frombuffer(data, dtype=dtype, count=count, offset=lo) if count else torch.empty(0, dtype=dtype)
        tensors[name] = t.reshape(info["shape"])
    return tensors, meta


def incv3_state(tensors, prefix=""):
    """The model's state from an incv3 checkpoint or model file (AdamW moments "optim.*" dropped), or with
    prefix="param." from a golden file."""
    return {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix) and not k.startswith("optim.")}


def load_incv3(path):
    """An incv3 model file or checkpoint as a PyTorch model, built from its config metadata."""
    tensors, meta = read_safetensors(path)
    model = from_config(json.loads(meta["config"]))
    model.load_state_dict(incv3_state(tensors))
    return model


if __name__ == "__main__":
    full, main_only = SeedInceptionV3(), SeedInceptionV3(aux=False)
    count = lambda m: sum(p.numel() for p in m.parameters())
    print("parameters at width 1: %d with the aux head (seed table: 25,212,020), %d without (21,825,386)"
          % (count(full), count(main_only)))
