#!/usr/bin/env python3
"""incv3 against PyTorch: the same Inception-V3 training and inference steps, on this machine's CPUs.

  compare_pytorch.py [--incv3 PATH] [--modes train299,train75,infer299,infer75] [--batch 32] [--threads 2]
                     [--repeat 5] [--rounds 3] [--layout default|channels_last|both] [--format table|json]

Modes: train299 (299x299 with the aux head), train75 (75x75, no aux head: it needs 299..314), infer299,
infer75 (forward only; at 299 both programs hold the aux head's weights, neither runs it). Width 1, ten
classes. A step is, in both programs:
  - train: forward with batch statistics, cross-entropy with label smoothing 1e-4 (+ 0.3 x the aux head's),
    backward, AdamW (lr 1e-4, betas 0.9/0.999, eps 1e-8, weight decay 0.01);
  - infer: forward with running statistics (PyTorch: eval mode under torch.no_grad()).
incv3 runs `incv3 bench`; PyTorch runs bench/torch_seed_model.py, the same network with the same tensor
names, held to the golden files by bench/check_torch_model.py. PyTorch runs in its default layout (NCHW)
and/or channels_last (model and input converted with memory_format=torch.channels_last); the ratio is taken
against the faster of the two. torch.set_num_threads(N) and OMP_NUM_THREADS=N give PyTorch the same thread
count as incv3's --threads N (incv3 pins its threads to cores, PyTorch runs as it does by default).

How the runs interleave. Every program runs in a process of its own, and no build or warm-up is timed:
  - incv3: one `incv3 bench --format json --repeat R` process per round. It builds the graph, runs one
    untimed warm-up step, times R steps and prints their median and its peak RSS. (A process per step
    would pay the model build for every step.)
  - PyTorch: one worker process per mode and layout (this script with --worker), started before the
    first round and kept until the last. It imports torch, builds the model, optimizer and random input,
    runs one untimed step and says it is ready; then for each "run R" line on its standard input it runs
    one untimed step (the counterpart of incv3's per-process warm-up: its caches went cold while the
    others ran) and R timed steps, and answers with the times and its getrusage ru_maxrss as a JSON line.
  - A round is one block of R steps of every program, one program at a time: while one runs, the others
    wait on a pipe and use no CPU. The order rotates from round to round (incv3, default, channels_last;
    then default, channels_last, incv3; ...). Blocks of one round are seconds to minutes apart, so slow
    drift of the host (other jobs, clocks) reaches every program far more alike than in back-to-back runs.
    One mode's workers live together: an idle one keeps its weights, optimizer state and whatever heap it
    retains, so with little memory run one --layout at a time.
A program's figure is the median over rounds of its per-round median step time; images/s = batch / that.
The ratio is incv3 images/s over PyTorch's (faster layout); --format json also gives every round's ratio.
Other load: during every block, the machine's busy CPU time (/proc/stat) less the program's own CPU time
(its rusage) is what other processes took; the table shows the largest share per mode and warns above 5%.
Peak RSS: incv3's own figure (largest over its rounds), each PyTorch worker's ru_maxrss, which includes
the Python interpreter and the torch libraries (import_rss_mib in the JSON: the worker before the model).

Without PyTorch (for this interpreter and /usr/bin/python3, or --python) it prints a SKIP line and exits
with --skip-status (default 0).
"""
import argparse
import datetime
import importlib.util
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
MODES = {  # name: (train, image size, aux head)
    "train299": (True, 299, True),
    "train75": (True, 75, False),
    "infer299": (False, 299, True),
    "infer75": (False, 75, False),
}
LAYOUTS = ("default", "channels_last")
LABEL_SMOOTHING, AUX_WEIGHT = 1e-4, 0.3
ADAMW = dict(lr=1e-4, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01)


def maxrss_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def cpu_seconds(who):
    ru = resource.getrusage(who)
    return ru.ru_utime + ru.ru_stime


def host_busy_seconds():
    """CPU seconds the whole machine has been busy (all CPUs, /proc/stat), or None off Linux."""
    try:
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:9]]
    except (OSError, ValueError):
        return None
    return (sum(v) - v[3] - v[4]) / os.sysconf("SC_CLK_TCK")  # all but idle and iowait


# ----------------------------------------------------------------------------- PyTorch worker process
def worker(spec):
    """Builds one configuration and times steps on request (protocol in the module docstring)."""
    reply_fd = os.dup(1)  # the protocol keeps the real stdout; anything else printed goes to stderr
    os.dup2(2, 1)
    reply = os.fdopen(reply_fd, "w")

    def send(obj):
        reply.write(json.dumps(obj) + "\n")
        reply.flush()

    import_start = time.perf_counter()
    import torch
    import torch.nn.functional as F
    sys.path.insert(0, HERE)
    import torch_seed_model as tsm

    torch.set_num_threads(spec["threads"])
    import_rss = maxrss_mib()
    t0 = time.perf_counter()
    torch.manual_seed(0)
    train, size, aux, batch = spec["train"], spec["image_size"], spec["aux"], spec["batch"]
    model = tsm.SeedInceptionV3(image_size=size, aux=aux, classes=spec["classes"], width=spec["width"])
    x = torch.randn(batch, 3, size, size)
    y = torch.randint(0, spec["classes"], (batch,))
    if spec["layout"] == "channels_last":
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    if train:
        model.train()
        opt = torch.optim.AdamW(model.parameters(), **ADAMW)

        def step():
            opt.zero_grad(set_to_none=True)
            out = model(x)
            logits, aux_logits = out if aux else (out, None)
            loss = F.cross_entropy(logits, y, label_smoothing=LABEL_SMOOTHING)
            if aux:
                loss = loss + AUX_WEIGHT * F.cross_entropy(aux_logits, y, label_smoothing=LABEL_SMOOTHING)
            loss.backward()
            opt.step()
    else:
        model.eval()

        def step():
            with torch.no_grad():
                model(x)
    build_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    step()
    send({"ready": True, "torch": torch.__version__, "threads": torch.get_num_threads(),
          "import_s": round(t0 - import_start - build_s, 3), "build_s": round(build_s, 3),
          "warmup_ms": round(1e3 * (time.perf_counter() - t0), 3), "import_rss_mib": round(import_rss, 1)})
    for line in sys.stdin:
        words = line.split()
        if not words or words[0] == "quit":
            break
        if words[0] != "run":
            send({"error": "unknown request %r" % line})
            continue
        cpu0 = cpu_seconds(resource.RUSAGE_SELF)
        step()  # untimed
        times = []
        for _ in range(int(words[1])):
            t0 = time.perf_counter()
            step()
            times.append(1e3 * (time.perf_counter() - t0))
        send({"ms": times, "rss_mib": round(maxrss_mib(), 1), "cpu_s": cpu_seconds(resource.RUSAGE_SELF) - cpu0})
    return 0


class Worker:
    """The parent's handle on a worker process."""

    def __init__(self, python, spec):
        env = dict(os.environ, OMP_NUM_THREADS=str(spec["threads"]), MKL_NUM_THREADS=str(spec["threads"]))
        self.spec = spec
        self.proc = subprocess.Popen([python, os.path.abspath(__file__), "--worker", json.dumps(spec)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
        self.info = self.read()

    def read(self):
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("PyTorch worker (%s, %s) exited with status %s" % (
                self.spec["mode"], self.spec["layout"], self.proc.wait()))
        msg = json.loads(line)
        if "error" in msg:
            raise RuntimeError("PyTorch worker: " + msg["error"])
        return msg

    def run(self, steps):
        self.proc.stdin.write("run %d\n" % steps)
        self.proc.stdin.flush()
        return self.read()

    def close(self):
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write("quit\n")
                self.proc.stdin.close()
                self.proc.wait(timeout=60)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()


# ----------------------------------------------------------------------------- parent
def torch_python(requested):
    """An interpreter that imports torch, or None."""
    if requested:
        candidates = [requested]
    else:
        candidates = [sys.executable, "/usr/bin/python3"]
    for py in candidates:
        if py == sys.executable and importlib.util.find_spec("torch") is not None:
            return py
        if py != sys.executable and os.access(py, os.X_OK) and subprocess.run(
                [py, "-c", "import torch"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode == 0:
            return py
    return None


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def incv3_round(incv3, name, args, log):
    """One `incv3 bench` process: its JSON object (median ms of args.repeat steps, peak RSS)."""
    train, size, aux = MODES[name]
    cmd = [incv3, "bench", "--mode", "train" if train else "infer", "--image-size", str(size),
           "--batch", str(args.batch), "--threads", str(args.threads), "--repeat", str(args.repeat),
           "--format", "json"]
    if not aux:
        cmd.append("--no-aux")
    if args.width != 1.0:
        cmd += ["--width", repr(args.width)]
    cpu0 = cpu_seconds(resource.RUSAGE_CHILDREN)  # the workers count only once they have exited
    r = subprocess.run(cmd, capture_output=True, text=True)
    cpu_s = cpu_seconds(resource.RUSAGE_CHILDREN) - cpu0
    if r.returncode != 0:
        raise RuntimeError("%s exited %d:\n%s" % (" ".join(cmd), r.returncode, r.stderr.strip()))
    for line in r.stderr.splitlines():
        if line.startswith("incv3 bench: threads:"):
            log.setdefault("incv3_threads", line.split(":", 2)[2].strip())
    lines = [l for l in r.stdout.splitlines() if l.strip()]
    res = json.loads(lines[-1])
    res["cpu_s"] = cpu_s
    return res


def compare_mode(name, args, python, meta, progress):
    train, size, aux = MODES[name]
    layouts = LAYOUTS if args.layout == "both" else (args.layout,)
    workers = {}
    try:
        for layout in layouts:
            spec = dict(mode=name, train=train, image_size=size, aux=aux, batch=args.batch, classes=10,
                        width=args.width, threads=args.threads, layout=layout)
            workers[layout] = Worker(python, spec)
            meta["torch"] = workers[layout].info["torch"]
            progress("%s: PyTorch %s worker ready (build %.1f s, warm-up step %.0f ms)" % (
                name, layout, workers[layout].info["build_s"], workers[layout].info["warmup_ms"]))
        programs = ["incv3"] + list(layouts)
        round_ms = {p: [] for p in programs}
        rss = {p: 0.0 for p in programs}
        others = []  # per block: share of the machine's CPUs that other processes used meanwhile
        for r in range(args.rounds):
            order = programs[r % len(programs):] + programs[:r % len(programs)]
            for p in order:
                busy0, t0 = host_busy_seconds(), time.perf_counter()
                if p == "incv3":
                    res = incv3_round(args.incv3, name, args, meta)
                    round_ms[p].append(res["median_ms_per_step"])
                    rss[p] = max(rss[p], res["peak_rss_mib"])
                else:
                    res = workers[p].run(args.repeat)
                    round_ms[p].append(statistics.median(res["ms"]))
                    rss[p] = max(rss[p], res["rss_mib"])
                if busy0 is not None:
                    other = host_busy_seconds() - busy0 - res["cpu_s"]
                    others.append(max(0.0, other) / ((time.perf_counter() - t0) * (os.cpu_count() or 1)))
            progress("%s round %d/%d (%s): %s" % (name, r + 1, args.rounds, " -> ".join(order), ", ".join(
                "%s %.1f ms/step" % (p, round_ms[p][-1]) for p in programs)))
    finally:
        for w in workers.values():
            w.close()

    def summary(p):
        ms = statistics.median(round_ms[p])
        return {"images_per_s": round(args.batch / (ms / 1e3), 3), "median_ms_per_step": round(ms, 3),
                "round_median_ms": [round(v, 3) for v in round_ms[p]], "peak_rss_mib": round(rss[p], 1)}

    pt = {}
    for layout in layouts:
        pt[layout] = summary(layout)
        info = workers[layout].info
        pt[layout].update(import_rss_mib=info["import_rss_mib"], build_s=info["build_s"],
                          warmup_ms=info["warmup_ms"], threads=info["threads"])
    faster = max(layouts, key=lambda l: pt[l]["images_per_s"])
    inc = summary("incv3")
    return {
        "mode": name, "train": train, "image_size": size, "batch": args.batch, "aux": aux, "width": args.width,
        "threads": args.threads, "rounds": args.rounds, "repeat": args.repeat, "date": meta["date"],
        "cpu": meta["cpu"], "logical_cpus": os.cpu_count(), "torch_version": meta.get("torch"),
        "incv3": inc, "pytorch": pt, "pytorch_faster_layout": faster,
        "ratio_images_per_s": round(inc["images_per_s"] / pt[faster]["images_per_s"], 4),
        "round_ratios": [round(b / a, 4) for a, b in zip(round_ms["incv3"], round_ms[faster])],
        "rss_ratio": round(inc["peak_rss_mib"] / pt[faster]["peak_rss_mib"], 4),
        "other_cpu_max": round(max(others), 4) if others else None,
    }


def print_table(results, meta, args):
    print("incv3 vs PyTorch %s, %s, %s (%s logical CPUs), %d thread%s; %d round%s x %d step%s per program%s" % (
        meta.get("torch", "?"), meta["date"], meta["cpu"], os.cpu_count(), args.threads,
        "s" if args.threads > 1 else "", args.rounds, "s" if args.rounds > 1 else "", args.repeat,
        "s" if args.repeat > 1 else "", "" if args.width == 1.0 else ", width %g" % args.width))
    if "incv3_threads" in meta:
        print("incv3 threads: " + meta["incv3_threads"])
    head = ("mode", "input", "incv3 img/s", "PyTorch img/s NCHW / ch-last", "ratio", "incv3 RSS", "PyTorch RSS",
            "RSS ratio", "other load")
    rows = []
    for r in results:
        pt = r["pytorch"]
        rate = lambda l: "%.2f%s" % (pt[l]["images_per_s"], "*" if l == r["pytorch_faster_layout"] and len(pt) > 1
                                     else "") if l in pt else "-"
        inp = "%dx%d b%d%s" % (r["image_size"], r["image_size"], r["batch"],
                               " +aux" if r["aux"] and r["train"] else "")
        rows.append((r["mode"], inp, "%.2f" % r["incv3"]["images_per_s"], "%s / %s" % (rate("default"),
                     rate("channels_last")), "%.2f" % r["ratio_images_per_s"],
                     "%.0f MiB" % r["incv3"]["peak_rss_mib"],
                     "%.0f MiB" % pt[r["pytorch_faster_layout"]]["peak_rss_mib"], "%.2f" % r["rss_ratio"],
                     "-" if r["other_cpu_max"] is None else "%.0f%%" % (100 * r["other_cpu_max"])))
    widths = [max(len(str(x[i])) for x in [head] + rows) for i in range(len(head))]
    for row in [head] + rows:
        print("  ".join(str(c).ljust(w) if i < 2 else str(c).rjust(w) for i, (c, w) in enumerate(zip(row, widths))))
    print("ratio = incv3 images/s / PyTorch's faster layout (* marks it; > 1: incv3 faster); PyTorch RSS: that "
          "layout's worker (interpreter and torch included); RSS ratio = incv3 / PyTorch (< 1: incv3 smaller);\n"
          "other load = the largest share of the machine's CPUs that other processes took during a timed block")
    noisy = [r["mode"] for r in results if (r["other_cpu_max"] or 0) > 0.05]
    if noisy:
        print("WARNING: other processes were busy during %s; those figures are disturbed (rerun on a quiet "
              "machine)" % ", ".join(noisy))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 epilog="See the module docstring for how the runs interleave.")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--incv3", default=os.path.join(HERE, "..", "build", "incv3"),
                    help="the incv3 binary (default: build/incv3 of this tree)")
    ap.add_argument("--modes", default="train299,train75,infer299,infer75",
                    help="comma-separated, of " + ", ".join(MODES))
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=5, help="timed steps per program and round (default 5)")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    ap.add_argument("--layout", choices=("default", "channels_last", "both"), default="both",
                    help="PyTorch memory format(s) (default both)")
    ap.add_argument("--width", type=float, default=1.0, help="channel multiplier (default 1; smaller for smoke "
                    "tests)")
    ap.add_argument("--format", choices=("table", "json"), default="table")
    ap.add_argument("--python", help="interpreter with torch for the workers (default: this one, else "
                    "/usr/bin/python3)")
    ap.add_argument("--skip-status", type=int, default=0, help="exit status when PyTorch is absent (default 0)")
    ap.add_argument("--quiet", action="store_true", help="no progress lines on standard error")
    args = ap.parse_args()
    if args.worker:
        return worker(json.loads(args.worker))

    modes = [m for m in args.modes.split(",") if m]
    bad = [m for m in modes if m not in MODES]
    if bad or not modes:
        ap.error("--modes %s: expected some of %s" % (args.modes, ",".join(MODES)))
    for opt in ("batch", "threads", "repeat", "rounds"):
        if getattr(args, opt) < 1:
            ap.error("--%s must be at least 1" % opt)
    if not os.access(args.incv3, os.X_OK):
        ap.error("--incv3 %s: not an executable (build it: ninja -C build)" % args.incv3)
    python = torch_python(args.python)
    if python is None:
        print("SKIP: PyTorch is not installed for %s (Debian: python3-torch; or pass --python); nothing compared"
              % (args.python or "%s or /usr/bin/python3" % sys.executable))
        return args.skip_status

    def progress(msg):
        if not args.quiet:
            print(msg, file=sys.stderr, flush=True)

    meta = {"date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"), "cpu": cpu_model()}
    results = []
    try:
        for name in modes:
            results.append(compare_mode(name, args, python, meta, progress))
            if args.format == "json":
                print(json.dumps(results[-1]), flush=True)
    except RuntimeError as e:
        print("compare_pytorch: %s" % e, file=sys.stderr)
        return 1
    if args.format == "table":
        print_table(results, meta, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
