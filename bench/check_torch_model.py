#!/usr/bin/env python3
"""Holds bench/torch_seed_model.py to the golden files, so the PyTorch side of compare_pytorch.py runs the
same network as incv3.

Usage: check_torch_model.py SOURCE_ROOT   (golden files: SOURCE_ROOT/../shared/reference/golden/*.safetensors)

For every golden file: the model is built from the file's "config" metadata and loaded strictly from its
param.* tensors (every name must match both ways), then, in float32:
  - inference mode: logits vs eval_logits and the loss vs eval_loss;
  - training mode (batch statistics), from the same weights: logits, aux_logits, the loss with the aux
    head weighted by aux_weight, and every BatchNorm running statistic after that forward vs buffer_after.*;
    these use the golden rule (1): relative L2 error <= max(1e-5, 10 x fp32_rel_err[tensor]);
  - the gradients of that loss vs grad.* (grad.input included), rule (2): all together within
    3 x fp32_rel_err["group:grad"], each within max(1e-3, 10 x the median of the grad.* figures).
Also the parameter counts at width 1 against the seed table (25,212,020; 21,825,386 without the aux head).

Exit status: 0 all pass, 1 a failure, 77 (skip) without torch or without ../shared.
"""
import glob
import json
import os
import statistics
import sys

SKIP = 77


def skip(why):
    print("SKIP: " + why)
    sys.exit(SKIP)


def rel_err(got, want):
    got, want = got.detach().double().reshape(-1), want.detach().double().reshape(-1)
    n = float(want.norm())
    d = float((got - want).norm())
    return d / n if n > 0 else d


def check_file(path, torch, F, tsm):
    """Returns the list of failures for one golden file, printing a summary line per group."""
    tensors, meta = tsm.read_safetensors(path)
    cfg, fp32 = json.loads(meta["config"]), json.loads(meta["fp32_rel_err"])
    name = os.path.basename(path)
    failures = []
    model = tsm.from_config(cfg)
    try:
        model.load_state_dict(tsm.incv3_state(tensors, "param."))
    except RuntimeError as e:
        return ["%s: tensor names differ: %s" % (name, e)]
    x, y = tensors["input"].clone(), tensors["labels"].clone()
    smoothing, aux_weight = cfg["label_smoothing"], cfg["aux_weight"]

    results = []  # (tensor, error, tolerance)

    def rule1(key, got):
        if key not in tensors:
            failures.append("%s: %s missing from the golden file" % (name, key))
            return
        tol = max(1e-5, 10 * fp32[key])
        results.append((key, rel_err(got, tensors[key]), tol))

    model.eval()
    with torch.no_grad():
        logits = model(x)
    rule1("eval_logits", logits)
    rule1("eval_loss", F.cross_entropy(logits, y, label_smoothing=smoothing))

    model.train()
    xg = x.clone().requires_grad_(True)
    out = model(xg)
    logits, aux_logits = out if cfg["aux"] else (out, None)
    loss = F.cross_entropy(logits, y, label_smoothing=smoothing)
    rule1("logits", logits)
    if cfg["aux"]:
        rule1("aux_logits", aux_logits)
        loss = loss + aux_weight * F.cross_entropy(aux_logits, y, label_smoothing=smoothing)
    rule1("loss", loss)
    state = model.state_dict()
    buffers = [k for k in tensors if k.startswith("buffer_after.")]
    if len(buffers) != sum(1 for k in state if k.endswith(("running_mean", "running_var"))):
        failures.append("%s: %d buffer_after.* tensors for a model with other BatchNorm buffers" % (name, len(buffers)))
    for key in buffers:
        rule1(key, state[key[len("buffer_after."):]])
    loss.backward()

    grads = {"grad." + k: p.grad for k, p in model.named_parameters()}
    grads["grad.input"] = xg.grad
    golden_grads = [k for k in tensors if k.startswith("grad.")]
    if sorted(golden_grads) != sorted(grads):
        failures.append("%s: gradient names differ from the golden file's" % name)
    each_tol = max(1e-3, 10 * statistics.median(fp32[k] for k in golden_grads))
    grad_results = [(k, rel_err(grads[k], tensors[k]), each_tol) for k in golden_grads if k in grads]
    got_all = torch.cat([grads[k].detach().double().reshape(-1) for k in golden_grads if k in grads])
    want_all = torch.cat([tensors[k].double().reshape(-1) for k in golden_grads if k in grads])
    group_err, group_tol = rel_err(got_all, want_all), 3 * fp32["group:grad"]

    for label, rows in (("inference mode", [r for r in results if r[0].startswith("eval_")]),
                        ("training-mode outputs", [r for r in results if r[0] in ("logits", "aux_logits", "loss")]),
                        ("BatchNorm buffers after", [r for r in results if r[0].startswith("buffer_after.")]),
                        ("gradients, each", grad_results)):
        worst = max(rows, key=lambda r: r[1] / r[2])
        bad = [r for r in rows if not r[1] <= r[2]]
        print("  %-24s %3d tensors, %s; worst %s: rel err %.2e (tolerance %.2e)"
              % (label, len(rows), "%d FAIL" % len(bad) if bad else "pass", worst[0], worst[1], worst[2]))
        failures += ["%s: %s rel err %.3e > %.3e" % (name, k, e, t) for k, e, t in bad]
    print("  %-24s %3d tensors, %s; rel err %.2e (tolerance %.2e)"
          % ("gradients, together", len(grad_results), "pass" if group_err <= group_tol else "FAIL", group_err,
             group_tol))
    if not group_err <= group_tol:
        failures.append("%s: all gradients together rel err %.3e > %.3e" % (name, group_err, group_tol))
    return failures


def main():
    if len(sys.argv) != 2:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    golden_dir = os.path.join(sys.argv[1], "..", "shared", "reference", "golden")
    try:
        import torch
        import torch.nn.functional as F
    except ImportError:
        skip("PyTorch is not installed for %s (Debian: python3-torch, run with /usr/bin/python3)" % sys.executable)
    files = sorted(glob.glob(os.path.join(golden_dir, "*.safetensors")))
    if not files:
        skip("no golden files in %s (../shared is absent in a user's clone)" % os.path.normpath(golden_dir))
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import torch_seed_model as tsm

    torch.set_num_threads(min(2, os.cpu_count() or 1))
    failures = []
    counts = [sum(p.numel() for p in tsm.SeedInceptionV3(aux=aux).parameters()) for aux in (True, False)]
    print("parameters at width 1: %d, %d without the aux head (seed table: 25212020, 21825386)" % tuple(counts))
    if counts != [25212020, 21825386]:
        failures.append("parameter counts %s differ from the seed table's" % counts)
    for path in files:
        print(os.path.basename(path) + ":")
        failures += check_file(path, torch, F, tsm)
    for f in failures:
        print("FAIL: " + f)
    print("PASS" if not failures else "FAIL: %d problem%s" % (len(failures), "s" if len(failures) > 1 else ""))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
