"""crossgrad's speed, scale and memory figures, against the targets of the project.

    python benchmarks/run.py            # everything (about 10 minutes on 2 cores)
    python benchmarks/run.py --quick    # smaller runs (about 2 minutes)
    python benchmarks/run.py throughput scale   # some of them

Each figure runs in its own process (fresh memory, its own CPU affinity) and the
table is printed at the end. Timings vary with the machine's load: these figures
are for design, never assertions in tests.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]


def _one_core() -> None:
    """Pin this process (and the engine sandboxes it starts) to one CPU."""
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})


def _rss_mb(field: str = "VmRSS") -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _campaign_rate(examples: int, workers: int = 1, engine: str = "engine:Value", cluster: object = None) -> dict:
    """Expressions per second while exploring (after start-up), and the wall time."""
    from verifier.campaign import check_engine

    marks: list[tuple[float, int]] = []
    start = time.perf_counter()
    result = check_engine(engine, examples=examples, seed=1, workers=workers, cluster=cluster,
                          progress=lambda done, total: marks.append((time.perf_counter(), done)))
    wall = time.perf_counter() - start
    first = next(m for m in marks if m[1] >= examples // 10)
    last = marks[-1]
    return {"rate": (last[1] - first[1]) / (last[0] - first[0]), "wall": wall, "errors": len(result.findings)}


def bench_throughput(quick: bool) -> dict:
    _one_core()
    return _campaign_rate(1000 if quick else 4000)


def bench_handwritten(quick: bool) -> dict:
    _one_core()
    import handwritten

    return {"rate": handwritten.rate(3.0 if quick else 8.0)}


def bench_scale(quick: bool) -> dict:
    from graphs import FAMILIES

    from verifier import compare

    sizes = (1_000, 10_000) if quick else (1_000, 10_000, 100_000)
    out: dict = {}
    for name, build in FAMILIES.items():
        times = []
        for n in sizes:
            expr, point = build(n)
            start = time.perf_counter()
            c = compare(expr, point)
            times.append(time.perf_counter() - start)
            assert c.verdict == "agree", (name, n, c.verdict)
        out[name] = {"nodes": [len(build(n)[0].nodes()) for n in sizes], "seconds": times}
    return out


def bench_backward(quick: bool) -> dict:
    from engine import Value

    n = 100_000 if quick else 1_000_000
    start = time.perf_counter()
    x = Value(0.5)
    y = x
    for _ in range(n):
        y = y * 0.9999999 + 0.0000001
    built = time.perf_counter()
    y.backward()
    done = time.perf_counter()
    return {"nodes": 2 * n + 1, "build": built - start, "backward": done - built}


def bench_memory(quick: bool) -> dict:
    from verifier.campaign import check_engine

    check_engine("engine:Value", examples=300, seed=2)  # warm caches and imports
    before = _rss_mb()
    examples = 10_000 if quick else 100_000
    start = time.perf_counter()
    check_engine("engine:Value", examples=examples, seed=3)
    return {"examples": examples, "rss_before": before, "peak": _rss_mb("VmHWM"),
            "growth": _rss_mb("VmHWM") - before, "seconds": time.perf_counter() - start}


def bench_parallel(quick: bool) -> dict:
    from verifier.campaign import check_engine

    workers = len(os.sched_getaffinity(0))
    examples = 2000 if quick else 8000
    parallel = _campaign_rate(examples, workers=workers)
    target = f"{ROOT / 'tests' / 'engines' / 'student.py'}:Value"
    serial_findings = check_engine(target, examples=600, seed=4).findings
    parallel_findings = check_engine(target, examples=600, seed=4, workers=workers).findings
    same = [(f.kind, f.blame.op, f.expression, f.point) for f in serial_findings] == \
           [(f.kind, f.blame.op, f.expression, f.point) for f in parallel_findings]
    return {"workers": workers, "rate": parallel["rate"], "same_findings": same, "findings": len(serial_findings)}


def bench_dask(quick: bool) -> dict:
    """A campaign's shards as tasks on a Dask LocalCluster of 2 worker processes
    (examples/s while exploring, a warm cluster), and whether it finds what a serial run finds."""
    try:
        from distributed import LocalCluster
    except ImportError:
        return {"error": "dask.distributed is not installed: pip install 'crossgrad[dask]'"}
    from verifier.campaign import check_engine

    examples = 2000 if quick else 8000
    target = f"{ROOT / 'tests' / 'engines' / 'student.py'}:Value"
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        check_engine("engine:Value", examples=200, seed=2, cluster=cluster, progress=False)  # warm the workers
        dask = _campaign_rate(examples, cluster=cluster)
        dask_findings = check_engine(target, examples=600, seed=4, cluster=cluster, progress=False).findings
    serial_findings = check_engine(target, examples=600, seed=4, progress=False).findings
    same = [(f.signature, f.expression, f.point) for f in serial_findings] == \
           [(f.signature, f.expression, f.point) for f in dask_findings]
    return {"workers": 2, "examples": examples, "rate": dask["rate"], "wall": dask["wall"], "same_findings": same,
            "findings": len(serial_findings)}


BENCHMARKS = {
    "throughput": bench_throughput, "handwritten": bench_handwritten, "scale": bench_scale,
    "backward": bench_backward, "memory": bench_memory, "parallel": bench_parallel, "dask": bench_dask,
}


def _run(name: str, quick: bool) -> dict:
    command = [sys.executable, __file__, "--one", name] + (["--quick"] if quick else [])
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    if done.returncode != 0:
        return {"error": (done.stderr.strip().splitlines() or ["failed"])[-1]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def _table(results: dict) -> list[tuple[str, str, str, str]]:
    rows = []
    t, h = results.get("throughput"), results.get("handwritten")
    if t and "rate" in t:
        rows.append(("check_engine, 1 core (8 points, 4 oracles)", f"{t['rate']:.0f} expr/s", ">= 1000 expr/s", _ok(t["rate"] >= 1000)))
    if h and "rate" in h:
        rows.append(("hand-written four-way check, 1 core (1 point)", f"{h['rate']:.0f} expr/s", "comparison", ""))
    if t and h and "rate" in t and "rate" in h:
        ratio = t["rate"] / h["rate"]
        rows.append(("speed-up over the hand-written check, same run", f"{ratio:.1f}x (and 8x the points)", ">= 10x", _ok(ratio >= 10)))
    for family, data in (results.get("scale") or {}).items():
        if not isinstance(data, dict):
            continue
        secs = data["seconds"]
        shown = ", ".join(f"{n:,} nodes {s:.2f} s" for n, s in zip(data["nodes"], secs))
        growth = max((b / a) / (nb / na) * 10 for a, b, na, nb in zip(secs, secs[1:], data["nodes"], data["nodes"][1:]))
        rows.append((f"compare(), {family}", shown, "x10 nodes -> <= x12 time", _ok(growth <= 12) + f" (x{growth:.1f})"))
    b = results.get("backward")
    if b and "nodes" in b:
        rows.append(("engine backward", f"{b['nodes']:,} nodes: build {b['build']:.1f} s, backward {b['backward']:.1f} s", "works, no recursion limit", "yes"))
    m = results.get("memory")
    if m and "growth" in m:
        rows.append((f"campaign of {m['examples']:,} expressions", f"peak RSS +{m['growth']:.0f} MB ({m['seconds']:.0f} s)", "< 100 MB", _ok(m["growth"] < 100)))
    p = results.get("parallel")
    if p and "rate" in p and t and "rate" in t:
        speedup = p["rate"] / t["rate"]
        rows.append((f"--workers {p['workers']} vs 1 core", f"{p['rate']:.0f} expr/s = {speedup:.2f}x",
                     f">= {0.8 * p['workers']:.1f}x", _ok(speedup >= 0.8 * p["workers"])))
        rows.append(("same findings, serial vs parallel", "yes" if p["same_findings"] else "NO", "identical", _ok(p["same_findings"])))
    d = results.get("dask")
    if d and "rate" in d:
        over = f" = {d['rate'] / t['rate']:.2f}x 1 core" if t and "rate" in t else ""
        rows.append((f"Dask LocalCluster, {d['workers']} workers ({d['examples']:,} examples)",
                     f"{d['rate']:.0f} expr/s{over} ({d['wall']:.0f} s wall)", "comparison", ""))
        rows.append(("same findings, serial vs Dask", "yes" if d["same_findings"] else "NO", "identical", _ok(d["same_findings"])))
    for name, value in results.items():
        if isinstance(value, dict) and "error" in value:
            rows.append((name, "failed: " + value["error"], "", "no"))
    return rows


def _ok(flag: bool) -> str:
    return "yes" if flag else "no"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", metavar="NAME", help=f"benchmarks to run: {', '.join(BENCHMARKS)} (default: all)")
    parser.add_argument("--quick", action="store_true", help="smaller runs")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(BENCHMARKS[args.one](args.quick)))
        return
    unknown = [n for n in args.names if n not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark {unknown[0]!r}; expected some of: {', '.join(BENCHMARKS)}")
    names = list(dict.fromkeys(args.names or BENCHMARKS))
    if "parallel" in names and "throughput" not in names:
        names.insert(0, "throughput")  # the speed-up is over the 1-core figure
    results = {}
    for name in names:
        print(f"running {name}...", file=sys.stderr, flush=True)
        results[name] = _run(name, args.quick)
    rows = [("figure", "value", "target", "met")] + _table(results)
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    for i, row in enumerate(rows):
        print("| " + " | ".join(c.ljust(w) for c, w in zip(row, widths)) + " |")
        if i == 0:
            print("|" + "|".join("-" * (w + 2) for w in widths) + "|")


if __name__ == "__main__":
    main()
