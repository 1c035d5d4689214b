#!/usr/bin/env python3
"""incv3 <-> PyTorch weights interchange, checked on eval logits.

  1. An incv3 checkpoint (a short real training run: weights, BatchNorm running statistics, AdamW moments)
     loads into the PyTorch reference model (../shared/reference/seed_inception_v3.py); both give the same
     eval-mode logits on the same images.
  2. A PyTorch state_dict of the reference model (random weights, BatchNorm statistics moved by a few
     training-mode forwards, num_batches_tracked included) saved as safetensors is read by incv3 predict,
     the architecture inferred from the tensors, with and without the aux head; same logits again.

"Same" is the rule of ../shared/reference/make_golden.py for eval logits: relative L2 error <= max(1e-5,
10 x the error PyTorch itself makes in float32, measured against float64 on the same weights and input).
The safetensors files are read and written with the standard library (Debian has no python3-safetensors).

Usage: torch_interop.py INCV3 SOURCE_ROOT; exit 77 (skip) without torch, the reference or the MNIST data.
"""
import gzip
import json
import os
import struct
import subprocess
import sys
import tempfile

SKIP = 77


def skip(why):
    print("SKIP: " + why)
    sys.exit(SKIP)


INCV3, SRC = sys.argv[1], sys.argv[2]
SHARED = os.path.join(SRC, "..", "shared")
REF_DIR = os.path.join(SHARED, "reference")
DATA = os.path.join(SHARED, "data", "mnist")
if os.environ.get("INCV3_SANITIZER_PASS"):
    skip("the sanitizer pass checks memory; safetensors I/O has its own tests there")
try:
    import torch
except ImportError:
    skip("PyTorch is not installed for %s (Debian: python3-torch)" % sys.executable)
if not os.path.isfile(os.path.join(REF_DIR, "seed_inception_v3.py")):
    skip("no PyTorch reference in %s (../shared is absent in a user's clone)" % REF_DIR)
if not any(os.path.isfile(os.path.join(DATA, "t10k-images-idx3-ubyte" + ext)) for ext in ("", ".gz")):
    skip("no MNIST data in %s" % DATA)
sys.path.insert(0, REF_DIR)
from seed_inception_v3 import SeedInceptionV3  # noqa: E402

torch.set_num_threads(2)
MEAN, STD = 0.1307, 0.3081
DTYPES = {"F32": (torch.float32, 4), "I64": (torch.int64, 8), "F64": (torch.float64, 8)}


def read_safetensors(path):
    with open(path, "rb") as f:
        blob = f.read()
    (hlen,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + hlen])
    meta = header.pop("__metadata__", {})
    base = 8 + hlen
    out = {}
    for name, info in header.items():
        dtype, size = DTYPES[info["dtype"]]
        lo, hi = info["data_offsets"]
        t = torch.frombuffer(bytearray(blob[base + lo:base + hi]), dtype=dtype)
        out[name] = t.reshape(info["shape"]) if info["shape"] else t.reshape(())
    return out, meta


def write_safetensors(path, tensors):
    names = {torch.float32: "F32", torch.int64: "I64"}
    header, blobs, offset = {}, [], 0
    for name, t in tensors.items():
        b = t.detach().contiguous().cpu().numpy().tobytes() if hasattr(t, "numpy") else bytes(t)
        header[name] = {"dtype": names[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + len(b)]}
        blobs.append(b)
        offset += len(b)
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def mnist_digits(count, size):
    """The first `count` t10k digits, upscaled to size x size by nearest neighbour (rows of bytes)."""
    p = os.path.join(DATA, "t10k-images-idx3-ubyte")
    raw = gzip.open(p + ".gz").read() if os.path.exists(p + ".gz") else open(p, "rb").read()
    _, n, rows, cols = struct.unpack(">IIII", raw[:16])
    imgs = []
    for i in range(count):
        o = 16 + i * rows * cols
        px = raw[o:o + rows * cols]
        imgs.append(bytes(px[(r * rows // size) * cols + (c * cols // size)] for r in range(size) for c in range(size)))
    return imgs


def write_pgms(imgs, size, folder):
    paths = []
    for i, px in enumerate(imgs):
        p = os.path.join(folder, "digit%d.pgm" % i)
        with open(p, "wb") as f:
            f.write(b"P5\n%d %d\n255\n" % (size, size) + px)
        paths.append(p)
    return paths


def model_input(imgs, size, mean, std):
    """The images as incv3 preprocesses them at the model's own size (no resampling): v * (1 / (255 std)) +
    (-mean / std) in float32, replicated to three channels."""
    scale = torch.tensor(1.0, dtype=torch.float32) / (torch.tensor(255.0) * torch.tensor(std, dtype=torch.float32))
    shift = -torch.tensor(mean, dtype=torch.float32) / torch.tensor(std, dtype=torch.float32)
    x = torch.stack([torch.tensor(list(px), dtype=torch.float32).reshape(size, size) for px in imgs])
    x = x * scale + shift
    return x.unsqueeze(1).repeat(1, 3, 1, 1)


def incv3_logits(weights, pgms, extra):
    r = subprocess.run([INCV3, "predict", "--checkpoint", weights, "--logits"] + extra + pgms,
                       capture_output=True, text=True, env=dict(os.environ, OMP_NUM_THREADS="2"))
    if r.returncode != 0:
        print(r.stdout + r.stderr)
        raise SystemExit("FAIL: incv3 predict on %s exited %d" % (weights, r.returncode))
    rows = {}
    for line in r.stdout.splitlines():
        name, vals = line.rsplit(":", 1)
        rows[name] = [float(v) for v in vals.split()]
    return torch.tensor([rows[p] for p in pgms], dtype=torch.float64)


def compare(what, model, x, got):
    model.eval()
    with torch.no_grad():
        want32 = model(x).double()
        want64 = model.double()(x.double())
        model.float()
    rel = lambda a, b: float((a - b).norm() / b.norm())
    fp32_err = rel(want32, want64)
    tol = max(1e-5, 10 * fp32_err)
    err = rel(got, want64)
    print("%s: eval logits rel err %.3g (PyTorch float32 itself: %.3g; tolerance %.3g)" % (what, err, fp32_err, tol))
    if not err <= tol:
        print("incv3:\n%s\nPyTorch:\n%s" % (got, want64))
        raise SystemExit("FAIL: %s: logits differ" % what)
    if not torch.equal(got.argmax(1), want64.argmax(1)):
        raise SystemExit("FAIL: %s: predicted classes differ" % what)


def incv3_checkpoint_into_torch(tmp):
    """Direction 1: a real (short) incv3 run's checkpoint evaluated by PyTorch."""
    run = os.path.join(tmp, "run")
    cmd = [INCV3, "train", "--data", DATA, "--image-size", "75", "--no-aux", "--width", "0.25", "--epochs", "1",
           "--limit-train", "400", "--lr", "2e-3", "--threads", "2", "--out", run]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        print(r.stdout[-3000:] + r.stderr[-3000:])
        raise SystemExit("FAIL: incv3 train exited %d" % r.returncode)
    ckpt = os.path.join(run, "checkpoints", "last.safetensors")
    tensors, meta = read_safetensors(ckpt)
    cfg = json.loads(meta["config"])
    state = {k: v for k, v in tensors.items() if not k.startswith("optim.")}
    if not any(k.startswith("optim.exp_avg.") for k in tensors):
        raise SystemExit("FAIL: the checkpoint holds no AdamW moments")
    model = SeedInceptionV3(num_classes=10, aux=False, width=0.25)
    missing, unexpected = model.load_state_dict(state, strict=False)
    if unexpected or any(not k.endswith("num_batches_tracked") for k in missing):
        raise SystemExit("FAIL: names differ: missing %s, unexpected %s" % (missing, unexpected))
    imgs = mnist_digits(6, 75)
    pgms = write_pgms(imgs, 75, tmp)
    x = model_input(imgs, 75, cfg.get("mean", MEAN), cfg.get("std", STD))
    compare("incv3 checkpoint in PyTorch (75, no aux, width 0.25)", model, x, incv3_logits(ckpt, pgms, []))


def torch_state_dict_into_incv3(tmp, size, aux):
    """Direction 2: a PyTorch state_dict (no incv3 metadata) read by incv3, architecture from the tensors."""
    torch.manual_seed(size + aux)
    model = SeedInceptionV3(num_classes=10, aux=aux, width=0.25)
    imgs = mnist_digits(4, size)
    x = model_input(imgs, size, MEAN, STD)
    model.train()
    with torch.no_grad():  # running statistics away from their initial 0 / 1
        for _ in range(3):
            model(x + 0.1 * torch.randn_like(x))
    path = os.path.join(tmp, "torch-%d-%d.safetensors" % (size, aux))
    write_safetensors(path, model.state_dict())
    pgms = write_pgms(imgs, size, tmp)
    extra = ["--image-size", str(size)]  # width and aux head: inferred from the tensors
    compare("PyTorch state_dict in incv3 (%d, %s, width 0.25)" % (size, "aux" if aux else "no aux"), model, x,
            incv3_logits(path, pgms, extra))


with tempfile.TemporaryDirectory() as tmp:
    incv3_checkpoint_into_torch(tmp)
    torch_state_dict_into_incv3(tmp, 75, False)
    torch_state_dict_into_incv3(tmp, 299, True)
print("PASS")
