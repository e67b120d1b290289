#!/usr/bin/env python3
"""Summarises one run of tests/bench/serve_vs_python: a table with ratios and a JSON file.

Called by the shell script with the scratch directory it filled; run directly
only the same way. For each server (`melfuse`, `python`) it reads:

* `SERVER.sequential.out` / `SERVER.concurrent.out`: wrk's output, whose last
  line is the JSON that tests/bench/serve_vs_python.lua prints (latencies in
  microseconds);
* `SERVER.cpu`: lines `PHASE WALL_S MACHINE_BUSY_S SERVER_CPU_S`, read at the
  start and the end of each phase from /proc (busy = user+nice+system+irq+
  softirq+steal over every core; the server's = its processes' utime+stime);
* for melfuse, `melfuse.metrics.{start,sequential,concurrent}`: /metrics
  before and after each phase, whose differences give the mean time per
  request in each stage (`melfuse_stage_duration_seconds`; a decoder call
  shared by a batch counts once) and in none (the request's server-side time
  minus its stages: waiting for a vocoder thread, stitching segments).

Throughput at C clients is wrk's count of completed responses over its
window; the ratio uses it. The requests still in flight when the window
closes had done part of their work, so the count is low by up to C requests,
which matters when one request takes a sizeable part of the window (the
Python server's, at 16 clients): the table prints the bound with them and
the range of ratios it allows. It also prints Little's law, C ÷ mean
latency, which a closed loop of C clients with no think time obeys: close to
the count when every request finishes well inside the window, above it when
some requests wait longer than the window (they never enter the mean).
"""

import argparse
import json
import os
import pathlib
import re
import sys

LATENCY_GOAL_S = 0.4
RATIO_GOAL = 5.0
SERVERS = ("melfuse", "python")
STAGES = ("queue", "decoder", "vocoder", "encode")


def wrk_result(path):
    lines = [line for line in path.read_text().splitlines() if line.startswith("{")]
    if not lines:
        sys.exit(f"serve_vs_python: no result line from wrk in {path}:\n{path.read_text()}")
    r = json.loads(lines[-1])
    lat = r["latency_us"]
    out = {
        "window_s": r["duration_us"] / 1e6,
        "responses": r["responses"],
        "ok": r["ok"],
        "errors": r["errors"],
        "bytes": r["bytes"],
    }
    if r["responses"]:
        out.update(
            p50_s=lat["percentiles"]["50"] / 1e6,
            p90_s=lat["percentiles"]["90"] / 1e6,
            p99_s=lat["percentiles"]["99"] / 1e6,
            mean_s=lat["mean"] / 1e6,
            min_s=lat["min"] / 1e6,
            max_s=lat["max"] / 1e6,
            counted_rps=r["responses"] / (r["duration_us"] / 1e6),
        )
    return out


def cpu_phases(path):
    """{phase: {wall_s, machine_busy_s, server_cpu_s, others_cpu_s}} from start/end readings."""
    readings = {}
    for line in path.read_text().split("\n"):
        if line.strip():
            phase, wall, busy, server = line.split()
            readings.setdefault(phase, []).append((float(wall), float(busy), float(server)))
    out = {}
    for phase, marks in readings.items():
        if len(marks) != 2:
            continue
        (w0, b0, s0), (w1, b1, s1) = marks
        out[phase] = {
            "wall_s": w1 - w0,
            "machine_busy_core_s": b1 - b0,
            "server_cpu_core_s": s1 - s0,
            # wrk and curl included: they are small next to a server doing Griffin-Lim.
            "others_cpu_core_s": max(0.0, (b1 - b0) - (s1 - s0)),
        }
    return out


METRIC = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)$")


def prometheus(path):
    values = {}
    for line in path.read_text().splitlines():
        m = METRIC.match(line)
        if m:
            values[(m.group(1), m.group(2) or "")] = float(m.group(3))
    return values


def stage_profile(before, after, requests):
    """Mean seconds per request in each stage between two /metrics scrapes."""
    if requests <= 0:
        return None
    d = lambda name, labels="": after.get((name, labels), 0.0) - before.get((name, labels), 0.0)
    profile = {}
    for stage in STAGES:
        profile[stage] = d("melfuse_stage_duration_seconds_sum", f'{{stage="{stage}"}}') / requests
    generate = '{endpoint="/generate",format="wav"}'
    served = d("melfuse_request_duration_seconds_count", generate)
    profile["server_request"] = d("melfuse_request_duration_seconds_sum", generate) / served if served else None
    if profile["server_request"] is not None:
        profile["unstaged"] = profile["server_request"] - sum(profile[s] for s in STAGES)
    batches = d("melfuse_batch_size_count")
    profile["decoder_calls_per_request"] = batches / requests
    profile["rows_per_decoder_call"] = d("melfuse_batch_size_sum") / batches if batches else None
    profile["server_requests_counted"] = served
    return profile


def fmt_s(value):
    if value is None:
        return "—"
    return f"{value * 1000:.0f} ms" if value < 10 else f"{value:.1f} s"


def ratio(a, b):
    return a / b if a and b else None


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=pathlib.Path, required=True)
    parser.add_argument("--json", type=pathlib.Path, required=True)
    parser.add_argument("--clients", type=int, required=True)
    parser.add_argument("--settings", required=True, help="JSON object of the run's settings, copied into the result")
    args = parser.parse_args()
    settings = json.loads(args.settings)
    c = args.clients

    results = {"settings": settings}
    for server in SERVERS:
        seq = wrk_result(args.work / f"{server}.sequential.out")
        conc = wrk_result(args.work / f"{server}.concurrent.out")
        conc["littles_law_rps"] = c / conc["mean_s"] if conc.get("mean_s") else None
        # Requests still in flight when the window closed had done part of their work: at most C more.
        conc["counted_rps_upper"] = (conc["responses"] + c) / conc["window_s"]
        results[server] = {"sequential": seq, "concurrent": conc, "cpu": cpu_phases(args.work / f"{server}.cpu")}
    scrapes = {p: prometheus(args.work / f"melfuse.metrics.{p}") for p in ("start", "sequential", "concurrent")}
    results["melfuse"]["stages"] = {
        "sequential": stage_profile(scrapes["start"], scrapes["sequential"], results["melfuse"]["sequential"]["responses"]),
        "concurrent": stage_profile(scrapes["sequential"], scrapes["concurrent"], results["melfuse"]["concurrent"]["responses"]),
    }

    mf, py = results["melfuse"], results["python"]
    ratios = {
        "sequential_p50": ratio(py["sequential"].get("p50_s"), mf["sequential"].get("p50_s")),
        "sequential_p99": ratio(py["sequential"].get("p99_s"), mf["sequential"].get("p99_s")),
        "concurrent_throughput": ratio(mf["concurrent"].get("counted_rps"), py["concurrent"].get("counted_rps")),
        "concurrent_throughput_low": ratio(mf["concurrent"].get("counted_rps"), py["concurrent"]["counted_rps_upper"]),
        "concurrent_throughput_high": ratio(mf["concurrent"]["counted_rps_upper"], py["concurrent"].get("counted_rps")),
        "concurrent_throughput_littles_law": ratio(mf["concurrent"]["littles_law_rps"], py["concurrent"]["littles_law_rps"]),
        "concurrent_p50": ratio(py["concurrent"].get("p50_s"), mf["concurrent"].get("p50_s")),
        "concurrent_p99": ratio(py["concurrent"].get("p99_s"), mf["concurrent"].get("p99_s")),
    }
    results["ratios"] = ratios
    p50 = mf["sequential"].get("p50_s")
    results["goals"] = {
        "melfuse_sequential_p50_s": LATENCY_GOAL_S,
        "melfuse_sequential_p50_met": p50 is not None and p50 <= LATENCY_GOAL_S,
        "ratio": RATIO_GOAL,
    }

    s = settings
    print()
    print(f"melfuse-serve vs Python reference (onnxruntime + librosa), model {s['model']}: "
          f"{s['seconds']:g} s WAV, {s['griffin_lim_iters']} Griffin-Lim iterations, {s['cores']} cores, "
          f"Python with {s['python_processes']} process(es)")
    w = 34
    print(f"{'':{w}} {'melfuse':>12} {'python':>12} {'ratio':>10}")

    def row(label, a, b, r, goal=True):
        mark = "" if r is None or not goal else ("  ok (goal ≥ 5×)" if r >= RATIO_GOAL else "  below goal (≥ 5×)")
        rs = f"{r:.1f}×" if r is not None else "—"
        print(f"{label:{w}} {a:>12} {b:>12} {rs:>10}{mark}")

    sq = (mf["sequential"], py["sequential"])
    cc = (mf["concurrent"], py["concurrent"])
    print(f"1 client, {s['sequential_seconds']} s window")
    row("  latency p50", fmt_s(sq[0].get("p50_s")), fmt_s(sq[1].get("p50_s")), ratios["sequential_p50"])
    row("  latency p99", fmt_s(sq[0].get("p99_s")), fmt_s(sq[1].get("p99_s")), ratios["sequential_p99"])
    row("  requests", str(sq[0]["responses"]), str(sq[1]["responses"]), None)
    print(f"{c} clients, {s['duration_seconds']} s window")
    lr = lambda x: f"{x['littles_law_rps']:.2f}/s" if x["littles_law_rps"] else "—"
    cr = lambda x: f"{x['counted_rps']:.2f}/s" if x.get("counted_rps") else "—"
    ur = lambda x: f"≤ {x['counted_rps_upper']:.2f}/s"
    row("  throughput (completed/window)", cr(cc[0]), cr(cc[1]), ratios["concurrent_throughput"])
    lo, hi = ratios["concurrent_throughput_low"], ratios["concurrent_throughput_high"]
    span = f"{lo:.1f}–{hi:.1f}×" if lo and hi else "—"
    print(f"{f'    + the {c} in flight at the end':{w}} {ur(cc[0]):>12} {ur(cc[1]):>12} {span:>10}")
    row(f"    {c} ÷ mean latency (Little)", lr(cc[0]), lr(cc[1]), ratios["concurrent_throughput_littles_law"], goal=False)
    row("  latency p50", fmt_s(cc[0].get("p50_s")), fmt_s(cc[1].get("p50_s")), ratios["concurrent_p50"], goal=False)
    row("  latency p99", fmt_s(cc[0].get("p99_s")), fmt_s(cc[1].get("p99_s")), ratios["concurrent_p99"], goal=False)
    row("  requests", str(cc[0]["responses"]), str(cc[1]["responses"]), None)
    for server in SERVERS:
        for phase in ("sequential", "concurrent"):
            e = results[server][phase]
            bad = sum(e["errors"].values()) + (e["responses"] - e["ok"])
            if bad or not e["responses"]:
                print(f"  !! {server} {phase}: {e['responses']} responses, {e['ok']} OK, errors {e['errors']}")
    for label, x in (("melfuse", cc[0]), ("python", cc[1])):
        if x.get("mean_s") and x["window_s"] < 5 * x["mean_s"]:
            print(f"  note: {label}'s {c}-client window is under 5 mean latencies: its count is low by up to {c} "
                  "requests (see the bound); a longer --duration narrows it")
        if x.get("counted_rps") and x["littles_law_rps"] > 1.2 * x["counted_rps_upper"]:
            print(f"  note: {label}: {c} ÷ mean latency is well above the count: some requests waited longer "
                  "than the window (unfair scheduling) or clients sat idle; trust the count")

    print(f"\nmelfuse 1-client p50 ≤ {LATENCY_GOAL_S * 1000:.0f} ms: "
          + ("yes" if results["goals"]["melfuse_sequential_p50_met"] else "NO") + f" ({fmt_s(p50)})")
    for phase in ("sequential", "concurrent"):
        prof = results["melfuse"]["stages"][phase]
        if not prof:
            continue
        parts = ", ".join(f"{st} {prof[st] * 1000:.1f}" for st in STAGES)
        extra = f", in no stage {prof['unstaged'] * 1000:.1f}" if prof.get("unstaged") is not None else ""
        rows = prof["rows_per_decoder_call"]
        rows = f"; {rows:.1f} decoder rows per call" if rows else ""
        print(f"melfuse stages, {phase}, ms per request: {parts}{extra} "
              f"(server-side total {fmt_s(prof['server_request'])}{rows})")
    busy_elsewhere = False
    for server in SERVERS:
        for phase, cpu in results[server]["cpu"].items():
            others = cpu["others_cpu_core_s"] / cpu["wall_s"]
            busy_elsewhere |= others > 0.2
            print(f"{server} {phase}: server used {cpu['server_cpu_core_s'] / cpu['wall_s']:.2f} cores, "
                  f"everything else on the machine {others:.2f} (of {s['cores']}), over {cpu['wall_s']:.0f} s")
    if busy_elsewhere:
        print("  !! other processes used part of the cores during the run: its figures are lower and noisier than on a quiet machine")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nall measurements: {os.path.relpath(args.json)}")


if __name__ == "__main__":
    main()
