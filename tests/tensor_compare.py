#!/usr/bin/env python3
"""Compares the float32 tensors of two safetensors files (metadata ignored): prints the relative difference
of all tensors together, ||a - b|| / ||b|| (L2 over every value), and the largest one of a single tensor
with its name; exits 1 when the first exceeds argv[3] (default 1e-5), the second argv[4] (default: no
limit) or the files hold different tensors. Used by the MPI tests: two ranks at global batch 2B against one
process at 2B. Why two limits: the sums of a rank's half batch round differently from the whole batch's
(about 1e-7 relative), and AdamW divides each gradient by its own running magnitude, so in a small tensor
whose gradient is a near-cancelling sum (a BatchNorm bias) the rounding grows step by step, while the
weights as a whole stay within float rounding."""
import json
import math
import struct
import sys


def load(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    header.pop("__metadata__", None)
    out = {}
    for name, t in header.items():
        a, b = t["data_offsets"]
        if t["dtype"] != "F32":
            continue
        out[name] = struct.unpack("<%df" % ((b - a) // 4), data[a:b])
    return out


a, b = load(sys.argv[1]), load(sys.argv[2])
tol = float(sys.argv[3]) if len(sys.argv) > 3 else 1e-5
tensor_tol = float(sys.argv[4]) if len(sys.argv) > 4 else math.inf
if sorted(a) != sorted(b):
    print("different tensors: %s" % sorted(set(a) ^ set(b)))
    sys.exit(1)
worst, worst_name, diff_all, norm_all = 0.0, "", 0.0, 0.0
for name in sorted(a):
    diff = sum((x - y) ** 2 for x, y in zip(a[name], b[name]))
    norm = sum(y * y for y in b[name])
    diff_all, norm_all = diff_all + diff, norm_all + norm
    rel = math.sqrt(diff / norm) if norm > 0 else math.sqrt(diff)
    if rel > worst or math.isnan(rel):
        worst, worst_name = rel, name
total = math.sqrt(diff_all / norm_all) if norm_all > 0 else math.sqrt(diff_all)
print("relative difference %.3g over %d tensors; largest of one tensor %.3g (%s)" % (total, len(a), worst,
                                                                                     worst_name))
sys.exit(0 if total <= tol and worst <= tensor_tol else 1)
