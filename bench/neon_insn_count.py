#!/usr/bin/env python3
"""Dynamic instruction counts per FLOP of the NEON kernels against the scalar reference kernels (issue 8).

Runs an AArch64 incv3-kbench under qemu-user with `-d in_asm,exec,nochain` and joins the two logs while they
stream: in_asm prints every translated block once (its instructions), exec prints every execution of a block
(its guest pc), nochain makes qemu log each execution instead of jumping from block to block in generated
code. Instructions executed = sum over executions of the block's instruction count. Timings under qemu mean
nothing; instruction counts do, and a vectorized kernel executes several times fewer instructions per FLOP
than the scalar one.

Attribution, by the executable's symbol table (readelf; the kbench binary must carry its kernels, i.e. be
linked against a static libincv3, and not be stripped):
  - the NEON family: functions whose name contains "__neon" or ends in "_neon", or that come from a *_neon.c
    file (static helpers, strip kernels, OpenMP outlined bodies foo._omp_fn.N, .part/.constprop clones; a
    global's file is inferred from the functions around it);
  - the scalar family: names containing "_ref__scalar" or functions of a *_ref.c file, and kbench's own
    gemm_run (the scalar reference of --op gemm lives in kbench, not in the library);
  - a root is a family function entered at its first instruction from a block outside its family (kbench
    calling through the registry); every instruction of a family is charged to the root last entered in that
    family, so helpers and outlined OpenMP bodies count for their caller. Per-call counts divide by the root's
    entries (kbench checks the variant against the reference on batch 1, warms up, then times --repeat runs).
Not counted: instructions in shared libraries (libc's memset/memcpy, libgomp), which the kernels reach through
the PLT; the script reports those calls. kbench's FMA-peak loop is left out of the log with -dfilter (it is
~300M instructions of no interest here).

Usage: bench/neon_insn_count.py BUILD/bench/incv3-kbench [--case NAME ...] [--jobs N] [--verbose]
Python 3 standard library only; builds nothing. Example build (static, so kbench holds the kernels):
  meson setup /tmp/insn/build . --cross-file scripts/cross-aarch64.ini -Ddefault_library=static -Dtests=false
  ninja -C /tmp/insn/build bench/incv3-kbench
"""
import argparse
import bisect
import multiprocessing
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time


def conv_out(h, k, s, p):
    return (h + 2 * p - k) // s + 1


def conv_flop(c, h, w, k, kh, kw, s, ph, pw):
    """kbench's count: 2 x N x K x OH x OW x C x KH x KW, padded taps included, batch 1."""
    return 2 * k * c * conv_out(h, kh, s, ph) * conv_out(w, kw, s, pw) * kh * kw


def shape_arg(sh):
    return ",".join(str(v) for v in sh)


def shape_label(sh):
    c, h, w, k, kh, kw, s, ph, pw = sh
    return f"{c}x{h}x{w}->{k} {kh}x{kw} s{s} p{ph},{pw}"


S3 = (32, 17, 17, 32, 3, 3, 1, 1, 1)  # 3x3 32->32 at 17x17, pad 1
S17 = (32, 17, 17, 32, 1, 7, 1, 0, 3)  # 1x7 32->32 at 17x17, pad (0,3)
SPOOL = (32, 17, 17, 32, 3, 3, 2, 0, 0)  # max pool 3x3 stride 2 (K ignored)
GEMM = (32, 64, 256)
ADAMW_COUNT = 32768


def conv_case(name, op, sh, algo, neon_root, scalar_root):
    return dict(name=name, op=op, shape=shape_label(sh), flop=conv_flop(*sh),
                args=["--op", op, "--algo", algo, "--shape", shape_arg(sh)],
                neon=[neon_root], scalar=[scalar_root], scalar_calls=None)


def pool_flop(sh):
    c, h, w, _, kh, kw, s, ph, pw = sh
    return 2 * c * conv_out(h, kh, s, ph) * conv_out(w, kw, s, pw) * kh * kw  # one compare per cell, fwd + bwd


CASES = [
    conv_case("fwd3x3", "conv-fwd", S3, "direct", "conv_fwd_f32_direct__neon", "conv_fwd_f32_ref__scalar"),
    conv_case("bwd-data3x3", "conv-bwd-data", S3, "direct", "conv_bwd_data_f32_direct__neon",
              "conv_bwd_data_f32_ref__scalar"),
    conv_case("bwd-weights3x3", "conv-bwd-weights", S3, "direct", "conv_bwd_weights_f32_direct__neon",
              "conv_bwd_weights_f32_ref__scalar"),
    conv_case("fwd1x7", "conv-fwd", S17, "direct", "conv_fwd_f32_direct__neon", "conv_fwd_f32_ref__scalar"),
    conv_case("bwd-data1x7", "conv-bwd-data", S17, "direct", "conv_bwd_data_f32_direct__neon",
              "conv_bwd_data_f32_ref__scalar"),
    conv_case("bwd-weights1x7", "conv-bwd-weights", S17, "direct", "conv_bwd_weights_f32_direct__neon",
              "conv_bwd_weights_f32_ref__scalar"),
    conv_case("wino-f4x4", "conv-fwd", S3, "winograd-f4x4", "conv_fwd_f32_winograd_f4x4_3x3__neon",
              "conv_fwd_f32_ref__scalar"),
    dict(name="gemm", op="gemm", shape="M%d N%d K%d B^T" % GEMM, flop=2 * GEMM[0] * GEMM[1] * GEMM[2],
         args=["--op", "gemm", "--mnk", shape_arg(GEMM)], neon=["gemm_f32_8x12__neon"], scalar=["gemm_run"],
         # kbench's scalar GEMM (double accumulation) is its static gemm_run, entered once for the reference
         # and again, for a few instructions, at each call of the NEON GEMM it dispatches to.
         scalar_calls=1),
    dict(name="maxpool", op="pool", shape=shape_label(SPOOL).replace("->32 ", " "), flop=pool_flop(SPOOL),
         args=["--op", "pool", "--shape", shape_arg(SPOOL)],
         neon=["maxpool_fwd_f32_blocked__neon", "maxpool_bwd_f32_blocked__neon"],
         scalar=["maxpool_fwd_f32_ref__scalar", "maxpool_bwd_f32_ref__scalar"], scalar_calls=None),
    dict(name="adamw", op="adamw", shape=f"{ADAMW_COUNT} parameters", flop=12 * ADAMW_COUNT,
         args=["--op", "adamw", "--count", str(ADAMW_COUNT)], neon=["adamw_f32__neon"],
         scalar=["adamw_f32_ref__scalar"], scalar_calls=None),
    dict(name="conv-bn-relu-fwd", op="conv-bn-relu-fwd", shape=shape_label(S3), flop=conv_flop(*S3),
         args=["--op", "conv-bn-relu-fwd", "--shape", shape_arg(S3)],
         neon=["conv_fwd_stats_f32_direct__neon", "bn_relu_fwd_train_f32_blocked__neon"],
         scalar=["conv_fwd_f32_ref__scalar", "bn_fwd_train_f32_ref__scalar", "relu_fwd_f32_ref__scalar"],
         scalar_calls=None),
    dict(name="bn-relu-bwd", op="bn-relu-bwd", shape=shape_label(S3),
         flop=10 * S3[3] * conv_out(S3[1], S3[4], S3[6], S3[7]) * conv_out(S3[2], S3[5], S3[6], S3[8]),
         args=["--op", "bn-relu-bwd", "--shape", shape_arg(S3)], neon=["bn_relu_bwd_train_f32_blocked__neon"],
         scalar=["relu_bwd_f32_ref__scalar", "bn_bwd_train_f32_ref__scalar"], scalar_calls=None),
]

EXTRA_SCALAR = {"gemm_run"}  # kbench_layers.c's reference GEMM
SIMD_RE = re.compile(r"\bv\d+\.|\bq\d+\b")
CALL_RE = re.compile(r"^\s*(bl|blr)\b")
FMA_RE = re.compile(r"^\s*f(?:n?m(?:add|sub)|ml[as])\s+(?:v\d+\.(\d+)[sdh]|[sdh]\d+)")


# ---------------------------------------------------------------------------------------------- symbols

class Symbols:
    def __init__(self, exe, readelf):
        out = subprocess.run([readelf, "-sW", exe], check=True, capture_output=True, text=True).stdout
        funcs = {}
        in_symtab, cur_file = False, ""
        for line in out.splitlines():
            if line.startswith("Symbol table"):
                in_symtab = "'.symtab'" in line
                continue
            if not in_symtab:
                continue
            f = line.split()
            if len(f) < 8 or not f[0].endswith(":"):
                continue
            typ, bind, ndx, name = f[3], f[4], f[6], f[7]
            if typ == "FILE":
                cur_file = name if bind == "LOCAL" else ""
                continue
            if typ != "FUNC" or ndx == "UND":
                continue
            addr, size = int(f[1], 16), int(f[2], 0)
            if size == 0:
                continue
            src = cur_file if bind == "LOCAL" else ""  # globals follow all locals: their file is unknown
            if addr not in funcs or (bind == "GLOBAL" and funcs[addr][3] != "GLOBAL"):
                funcs[addr] = (addr, size, name, bind, src)
        if not funcs:
            sys.exit(f"neon_insn_count: {exe} has no function symbols (stripped?)")
        self.funcs = sorted(funcs.values())
        # Globals come after every file's locals in .symtab, so their file is unknown; an object's code is
        # contiguous, so a global between two functions of the same file belongs to it.
        known = [i for i, f in enumerate(self.funcs) if f[4]]
        for j, f in enumerate(self.funcs):
            if not f[4]:
                k = bisect.bisect_left(known, j)
                if 0 < k < len(known) and self.funcs[known[k - 1]][4] == self.funcs[known[k]][4]:
                    self.funcs[j] = f[:4] + (self.funcs[known[k]][4],)
        self.starts = [f[0] for f in self.funcs]
        self.family = [self._family(f[2], f[4]) for f in self.funcs]

        segs = subprocess.run([readelf, "-lW", exe], check=True, capture_output=True, text=True).stdout
        self.loads = []  # (vaddr, memsz, flags)
        for line in segs.splitlines():
            f = line.split()
            if f and f[0] == "LOAD":
                flags = " ".join(f[7:-1])
                self.loads.append((int(f[2], 16), int(f[5], 16), flags))
        self.pie = "DYN" in subprocess.run([readelf, "-hW", exe], check=True, capture_output=True,
                                           text=True).stdout.split("Type:")[1].split("\n")[0]
        secs = subprocess.run([readelf, "-SW", exe], check=True, capture_output=True, text=True).stdout
        self.plt = None
        for line in secs.splitlines():
            m = re.search(r"\]\s+\.plt\s+\S+\s+([0-9a-f]+)\s+[0-9a-f]+\s+([0-9a-f]+)", line)
            if m:
                self.plt = (int(m.group(1), 16), int(m.group(2), 16))
        rel = subprocess.run([readelf, "-rW", exe], check=True, capture_output=True, text=True).stdout
        self.plt_names, on = [], False
        for line in rel.splitlines():
            if line.startswith("Relocation section"):
                on = "'.rela.plt'" in line
                continue
            if on and "JUMP_SLOT" in line:
                self.plt_names.append(line.split()[4].split("@")[0])

    @staticmethod
    def _family(name, src):
        base = name.split(".")[0]
        if src.startswith("kbench") and base not in EXTRA_SCALAR:
            return None  # kbench's own code (kbench_peak_neon.c is no kernel)
        if "__neon" in base or base.endswith("_neon") or src.endswith("_neon.c"):
            return "neon"
        if "_ref__scalar" in base or src.endswith("_ref.c") or base in EXTRA_SCALAR:
            return "scalar"
        return None

    @staticmethod
    def _peak(name, src):
        """kbench's FMA-peak measurement (kbench_peak*.c): hundreds of millions of instructions, not logged."""
        base = name.split(".")[0]
        return src.startswith("kbench_peak") or base.startswith("kbench_peak") or base.startswith("peak_")

    def find(self, addr):
        """Index of the function holding addr (link-time address), or -1."""
        i = bisect.bisect_right(self.starts, addr) - 1
        if i >= 0 and addr < self.funcs[i][0] + self.funcs[i][1]:
            return i
        return -1

    def plt_name(self, addr):
        if self.plt and self.plt[0] <= addr < self.plt[0] + self.plt[1]:
            slot = (addr - self.plt[0] - 32) // 16
            if 0 <= slot < len(self.plt_names):
                return self.plt_names[slot] + "@plt"
            return "plt"
        return None

    def dfilter(self, bias):
        """Guest address ranges to log: the executable's code, less kbench's FMA-peak measurement."""
        code = [(v, v + m) for v, m, fl in self.loads if "E" in fl]
        skip = sorted((f[0], f[0] + f[1]) for f in self.funcs if self._peak(f[2], f[4]))
        ranges = []
        for lo, hi in code:
            cur = lo
            for a, b in skip:
                if b <= cur or a >= hi:
                    continue
                if a > cur:
                    ranges.append((cur, a))
                cur = max(cur, b)
            if cur < hi:
                ranges.append((cur, hi))
        return ",".join(f"0x{a + bias:x}..0x{b + bias - 1:x}" for a, b in ranges)


# ---------------------------------------------------------------------------------------------- running

def qemu_env():
    env = dict(os.environ)
    env.update(OMP_THREAD_LIMIT="1", OMP_NUM_THREADS="1")  # a second thread hangs under qemu-user here
    return env


def load_bias(opts, syms):
    """Where qemu-user loads the executable: start_code of `-d page`, less the first LOAD's page."""
    with tempfile.TemporaryDirectory() as tmp:
        log = os.path.join(tmp, "page.log")
        subprocess.run([opts.qemu, "-L", opts.sysroot, "-d", "page", "-D", log, opts.kbench, "--help"],
                       env=qemu_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=120, check=True)
        with open(log) as f:
            m = re.search(r"start_code\s+0x([0-9a-f]+)", f.read())
    if not m:
        sys.exit("neon_insn_count: no start_code in qemu's -d page log")
    first = min(v for v, _, _ in syms.loads) & ~0xFFFF
    return int(m.group(1), 16) - first


def run_case(job):
    """Runs kbench for one case under qemu and returns per-root counts. Parses the log from a pipe."""
    case, opts, syms, bias = job
    t0 = time.time()
    rfd, wfd = os.pipe()
    out = tempfile.TemporaryFile()
    err = tempfile.TemporaryFile()
    cmd = ["timeout", str(opts.timeout), opts.qemu, "-L", opts.sysroot, "-d", "in_asm,exec,nochain",
           "-dfilter", syms.dfilter(bias), "-D", f"/dev/fd/{wfd}", opts.kbench, "--isa", "neon",
           "--batch", "1", "--repeat", "1", "--format", "csv"] + case["args"]
    proc = subprocess.Popen(cmd, env=qemu_env(), stdout=out, stderr=err, pass_fds=(wfd,))
    os.close(wfd)

    funcs, family, find, plt_name = syms.funcs, syms.family, syms.find, syms.plt_name
    tbs = {}  # guest pc -> (insns, simd insns, family, root name if the block opens its function, ends in a call)
    roots = {}  # root -> [entries, insns, simd insns, FLOP done by multiply-add instructions]
    ctx = {"neon": None, "scalar": None}
    escaped = {}  # (root, callee) -> calls from a family block to code outside both families
    lines = execs = mismatch = 0
    prev = None
    blk_pc, blk_n, blk_simd, blk_fma, blk_last = None, 0, 0, 0, ""

    def close_block():
        if blk_pc is None:
            return
        i = find(blk_pc - bias)
        fam = family[i] if i >= 0 else None
        # Outlined OpenMP bodies are entered from libgomp (not logged): never roots of their own.
        entry = (funcs[i][2].split(".")[0] if i >= 0 and funcs[i][0] == blk_pc - bias and "_omp_fn" not in funcs[i][2]
                 else None)
        tbs[blk_pc] = (blk_n, blk_simd, fam, entry, bool(CALL_RE.match(blk_last)), i, blk_fma)

    with os.fdopen(rfd, "r", errors="replace", buffering=1 << 20) as log:
        for line in log:
            lines += 1
            if line.startswith("Trace "):
                b = line.index("[")
                pc = int(line[b + 1:].split("/", 2)[1], 16)
                tb = tbs.get(pc)
                if tb is None:
                    continue  # translated outside the filter (cannot happen with one filter)
                execs += 1
                n, simd, fam, entry, _, fi, fma = tb
                if fi >= 0 and execs & 1023 == 0:  # spot-check our symbol mapping against qemu's
                    if line.rstrip("\n").rsplit(" ", 1)[-1] != funcs[fi][2]:
                        mismatch += 1
                pfam = prev[2] if prev else None
                if fam:
                    if entry and pfam != fam:
                        ctx[fam] = entry
                        r = roots.setdefault(entry, [0, 0, 0, 0])
                        r[0] += 1
                    r = roots.setdefault(ctx[fam] or "?", [0, 0, 0, 0])
                    r[1] += n
                    r[2] += simd
                    r[3] += fma
                elif pfam and prev[4]:  # a kernel block ended in a call to code outside the families
                    callee = plt_name(pc - bias) or (funcs[fi][2] if fi >= 0 else hex(pc))
                    key = (ctx[pfam], callee)
                    escaped[key] = escaped.get(key, 0) + 1
                prev = tb
            elif line.startswith("0x"):
                if blk_pc is None:
                    blk_pc = int(line.split(":", 1)[0], 16)
                blk_n += 1
                text = line.split(None, 2)[2] if line.count(" ") >= 2 else ""
                blk_last = text
                if SIMD_RE.search(text):
                    blk_simd += 1
                m = FMA_RE.match(text)
                if m:  # fmla/fmls/fmadd/...: 2 FLOP per lane
                    blk_fma += 2 * int(m.group(1) or 1)
            elif line.startswith("IN:") or line.startswith("---") or not line.strip():
                close_block()
                blk_pc, blk_n, blk_simd, blk_fma, blk_last = None, 0, 0, 0, ""
    close_block()
    rc = proc.wait()
    out.seek(0)
    err.seek(0)
    stdout, stderr = out.read().decode(errors="replace"), err.read().decode(errors="replace")
    return dict(name=case["name"], rc=rc, roots=roots, escaped=escaped, lines=lines, execs=execs,
                mismatch=mismatch, seconds=time.time() - t0, stdout=stdout, stderr=stderr, cmd=cmd)


# ---------------------------------------------------------------------------------------------- report

def group(case, res, fam_roots, calls_override):
    """Sum over the group's roots of instructions per call; None when a root never ran."""
    insn = simd = fma = 0.0
    calls = []
    for r in fam_roots:
        if r not in res["roots"] or res["roots"][r][0] == 0:
            return None
        e, n, s, f = res["roots"][r]
        c = calls_override or e
        calls.append(c)
        insn += n / c
        simd += s / c
        fma += f / c
    return insn, simd, fma, calls


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("kbench", help="AArch64 incv3-kbench linked with a static libincv3 (symbols not stripped)")
    ap.add_argument("--case", action="append", choices=[c["name"] for c in CASES],
                    help="run only these cases (repeatable; default: all)")
    ap.add_argument("--qemu", default="qemu-aarch64")
    ap.add_argument("--sysroot", default="/usr/aarch64-linux-gnu", help="qemu -L (default %(default)s)")
    ap.add_argument("--readelf", default="readelf")
    ap.add_argument("--jobs", type=int, default=min(os.cpu_count() or 1, 4), help="cases run at once")
    ap.add_argument("--timeout", type=int, default=1200, help="seconds per kbench run (default %(default)s)")
    ap.add_argument("--verbose", action="store_true", help="per-root counts, calls leaving the kernels, kbench output")
    opts = ap.parse_args()
    for tool in (opts.qemu, opts.readelf, "timeout"):
        if not shutil.which(tool):
            sys.exit(f"neon_insn_count: {tool} not found")

    t_start = time.time()
    syms = Symbols(opts.kbench, opts.readelf)
    if not any(f == "neon" for f in syms.family):
        sys.exit(f"neon_insn_count: {opts.kbench} holds no NEON kernel symbols (link libincv3 statically)")
    bias = load_bias(opts, syms) if syms.pie else 0
    cases = [c for c in CASES if not opts.case or c["name"] in opts.case]
    jobs = [(c, opts, syms, bias) for c in cases]
    if opts.jobs > 1 and len(jobs) > 1:
        with multiprocessing.Pool(min(opts.jobs, len(jobs))) as pool:
            results = pool.map(run_case, jobs, chunksize=1)
    else:
        results = [run_case(j) for j in jobs]

    hdr = ("op", "shape", "kernel", "calls", "insns/call", "FLOP/call", "insn/FLOP", "SIMD%", "FMA%",
           "scalar/neon")
    rows, failed = [], 0
    for case, res in zip(cases, results):
        if res["rc"] != 0:
            failed += 1
            print(f"neon_insn_count: {case['name']}: kbench exited {res['rc']}:\n{res['stderr'][-2000:]}",
                  file=sys.stderr)
        s = group(case, res, case["scalar"], case["scalar_calls"])
        n = group(case, res, case["neon"], None)
        for label, g, fam_roots in (("scalar", s, case["scalar"]), ("neon", n, case["neon"])):
            kernel = "+".join(fam_roots)
            if g is None:
                rows.append((case["op"], case["shape"], kernel, "-", "not run", "", "", "", "", ""))
                failed += 1
                continue
            insn, simd, fma, calls = g
            ratio = ""
            if label == "neon" and s is not None:
                ratio = f"{s[0] / insn:.1f}x"
            rows.append((case["op"], case["shape"], kernel, "/".join(str(c) for c in calls), f"{insn:,.0f}",
                         f"{case['flop']:,}", f"{insn / case['flop']:.3f}", f"{100 * simd / insn:.0f}",
                         f"{100 * fma / case['flop']:.0f}", ratio))
    widths = [max(len(str(r[i])) for r in rows + [hdr]) for i in range(len(hdr))]
    right = {3, 4, 5, 6, 7, 8, 9}
    for r in [hdr] + rows:
        print("  ".join(str(v).rjust(widths[i]) if i in right else str(v).ljust(widths[i])
                        for i, v in enumerate(r)).rstrip())

    print("\ncalls: entries of each root (kbench: the check on batch 1, the warm-up, --repeat 1); insns/call: "
          "dynamic AArch64 instructions per call; FLOP/call: kbench's nominal count (direct-equivalent for "
          "Winograd); SIMD%: instructions naming a vector register (v/q); FMA%: FLOP done by multiply-add "
          "instructions (fmla/fmls/fmadd..., 2 per lane) as a share of the nominal FLOP; scalar/neon: ratio of "
          "instructions per call.")
    print(f"\n{len(cases)} kbench runs under qemu ({min(opts.jobs, len(jobs))} at once), "
          f"{time.time() - t_start:.0f} s in all; per run: " +
          ", ".join(f"{r['name']} {r['seconds']:.0f} s ({r['execs'] / 1e6:.1f}M block executions)" for r in results))
    mism = sum(r["mismatch"] for r in results)
    if mism:
        print(f"warning: {mism} sampled block executions where qemu's symbol differs from readelf's "
              f"(load bias 0x{bias:x} wrong?)", file=sys.stderr)
    lib_calls = {}
    for res in results:
        for (root, callee), k in res["escaped"].items():
            if root in (c for case in cases for c in case["neon"] + case["scalar"]):
                lib_calls[callee] = lib_calls.get(callee, 0) + k
    if lib_calls:
        print("calls from the counted kernels to code not counted (all runs, all calls): " +
              ", ".join(f"{k} x{v}" for k, v in sorted(lib_calls.items(), key=lambda kv: -kv[1])))
    if opts.verbose:
        for case, res in zip(cases, results):
            print(f"\n== {case['name']}: {' '.join(res['cmd'][3:])}\n{res['stdout']}", end="")
            for root, (e, n, s, f) in sorted(res["roots"].items(), key=lambda kv: -kv[1][1]):
                print(f"   {root:55s} entries {e:3d}  insns {n:14,d}  simd {100 * s / max(n, 1):3.0f}%  "
                      f"FMA FLOP {f:14,d}")
            for (root, callee), k in sorted(res["escaped"].items()):
                print(f"   call out: {root} -> {callee} x{k}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
