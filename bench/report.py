#!/usr/bin/env python3
"""Benchmark helper for bench/run.sh.

  report.py wrk FILE TEST TARGET ROUND LOADAVG   parse one wrk output -> one JSON line
  report.py report RAW.jsonl OUTDIR [--opts]      build latest.md / latest.json, print the table
"""
import argparse
import datetime
import json
import os
import platform
import re
import statistics
import subprocess
import sys

REGISTRIES = ["tessera", "verdaccio-jwt", "verdaccio-legacy"]
LABELS = {"tessera": "Tessera", "verdaccio-jwt": "Verdaccio JWT", "verdaccio-legacy": "Verdaccio legacy"}


def to_ms(text):
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text.strip())
    if not m:
        return None
    value, unit = float(m.group(1)), m.group(2)
    return value * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


def parse_wrk(path, test, target, rnd, load):
    text = open(path, errors="replace").read()
    out = {"kind": "wrk", "test": test, "target": target, "round": int(rnd), "load_before": load}
    m = re.search(r"Requests/sec:\s+([\d.]+)", text)
    out["rps"] = float(m.group(1)) if m else 0.0
    for pct in ("50", "99"):
        m = re.search(rf"^\s+{pct}(?:\.000)?%\s+(\S+)", text, re.M)
        out[f"p{pct}_ms"] = to_ms(m.group(1)) if m else None
    m = re.search(r"(\d+) requests in", text)
    out["requests"] = int(m.group(1)) if m else 0
    m = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    out["non2xx"] = int(m.group(1)) if m else 0
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    out["socket_errors"] = sum(int(x) for x in m.groups()) if m else 0
    out["timeouts"] = int(m.group(4)) if m else 0
    if out["requests"] == 0:
        out["p50_ms"] = out["p99_ms"] = None
        out["error"] = "no request completed: " + text.strip()[-200:]
    print(json.dumps(out))


def stats(values):
    values = [v for v in values if v is not None]
    if not values:
        return None
    return {"min": min(values), "median": statistics.median(values), "max": max(values), "rounds": values}


def fmt(v, unit):
    if v is None:
        return "–"
    if unit == "req/s":
        return f"{v:,.0f}" if v >= 100 else f"{v:.1f}"
    if unit == "ms":
        return f"{v:.1f}" if v < 100 else f"{v:,.0f}"
    if unit == "s":
        return f"{v:.3f}" if v < 0.1 else f"{v:.2f}"
    if unit == "MiB":
        return f"{v:.1f}"
    return str(v)


def cell(s, unit):
    if s is None:
        return "–"
    if len(s["rounds"]) == 1:
        return fmt(s["median"], unit)
    return f"{fmt(s['min'], unit)} / **{fmt(s['median'], unit)}** / {fmt(s['max'], unit)}"


def machine():
    cpu = "unknown CPU"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        kib = int(open("/proc/meminfo").readline().split()[1])
        mem = f"{kib / 1048576:.0f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    node = subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip()
    npm = subprocess.run(["npm", "--version"], capture_output=True, text=True).stdout.strip()
    return {"cpu": cpu, "cores": os.cpu_count(), "memory": mem, "kernel": platform.release(),
            "node": node, "npm": npm}


def build(raw_path, opts):
    recs = [json.loads(line) for line in open(raw_path) if line.strip()]
    wrk = [r for r in recs if r["kind"] == "wrk"]

    def series(kind, target, key, test=None, scale=1.0):
        vals = []
        for r in recs:
            if r["kind"] != kind or r.get("target") != target or (test and r.get("test") != test):
                continue
            v = r.get(key)
            if isinstance(v, list):
                v = statistics.median(v) if v else None
            vals.append(None if v is None else v * scale)
        return stats(vals)

    figures = []
    tests = [
        ("packument_small", "Full packument, small package", 50, True),
        ("abbreviated_small", "Abbreviated packument, small package", 50, True),
        ("packument_big", "Full packument, 100 versions", 20, False),
        ("abbreviated_big", "Abbreviated packument, 100 versions", 20, False),
        ("tarball", "Tarball", 20, False),
    ]
    ceiling = series("wrk", "ceiling", "rps", "ceiling")
    for test, label, factor, small in tests:
        vals = {t: series("wrk", t, "rps", test) for t in REGISTRIES}
        figures.append({"id": f"{test}_rps", "label": f"{label} (req/s)", "unit": "req/s", "better": "higher",
                        "values": vals, "target_ratio": factor, "target_text": f"≥ {factor}×"})
        p99 = {t: series("wrk", t, "p99_ms", test) for t in REGISTRIES}
        figures.append({"id": f"{test}_p99", "label": f"{label}, p99 (ms)", "unit": "ms", "better": "lower",
                        "values": p99, "target_ratio": 0.05 if small else None,
                        "target_text": "≤ 1/20" if small else ""})
        if small and ceiling:
            t = vals["tessera"]
            frac = t["median"] / ceiling["median"] if t and ceiling["median"] else None
            figures.append({"id": f"{test}_ceiling", "label": f"{label}: Tessera ÷ axum ceiling", "unit": "fraction",
                            "fraction": frac, "target_text": "≥ 50%", "met": frac is not None and frac >= 0.5})
    figures.append({"id": "ceiling_rps", "label": "Ceiling: minimal axum, fixed 2 KB JSON (req/s)", "unit": "req/s",
                    "better": "higher", "values": {"ceiling": ceiling}, "target_text": ""})
    installed = max((r.get("installed", 0) for r in recs if r["kind"] == "npm_install"), default=0)
    figures.append({"id": "npm_install", "label": f"Clean `npm install`, {installed} packages (s)", "unit": "s",
                    "better": "lower", "values": {t: series("npm_install", t, "seconds") for t in REGISTRIES},
                    "target_ratio": 0.7, "target_text": "≤ 0.7×"})
    figures.append({"id": "npm_install_server", "label": "… of which time inside Tessera's request handling (s)",
                    "unit": "s", "better": "lower",
                    "values": {t: series("npm_install", t, "server_seconds") for t in REGISTRIES},
                    "target_text": ""})
    def info(fid, label, values):  # a row without a target
        figures.append({"id": fid, "label": label, "unit": "s", "better": "lower", "values": values,
                        "target_text": ""})

    info("npm_install_resolve", "… npm's resolution phase: the packuments, fetched one after another (s)",
         {t: series("npm_install", t, "resolve_s") for t in REGISTRIES})
    info("npm_install_unpack", "… npm's unpack phase: the tarballs, fetched and extracted in parallel (s)",
         {t: series("npm_install", t, "unpack_s") for t in REGISTRIES})
    info("npm_install_offline", "npm alone: the same install from its warm cache, `--offline`, no registry request (s)",
         {"tessera": series("npm_install_offline", "tessera", "seconds")})
    info("npm_install_offline_resolve", "… of which npm's resolution phase (s)",
         {"tessera": series("npm_install_offline", "tessera", "resolve_s")})
    # Per round: the install without Tessera's own request time.
    without_server = stats([r["seconds"] - r["server_seconds"] for r in recs
                            if r["kind"] == "npm_install" and r.get("target") == "tessera"
                            and r.get("server_seconds") is not None and "seconds" in r])
    figures.append({"id": "npm_publish", "label": "`npm publish`, median of sequential runs (s)", "unit": "s",
                    "better": "lower", "values": {t: series("npm_publish", t, "seconds") for t in REGISTRIES},
                    "target_text": ""})
    figures.append({"id": "raw_put", "label": "Raw publish PUT, median (ms)", "unit": "ms", "better": "lower",
                    "values": {t: series("raw_put", t, "seconds", scale=1000.0) for t in REGISTRIES},
                    "target_ratio": 0.5, "target_text": "≤ 0.5×"})
    for kind, label, limit in (("rss_idle", "RSS idle after start (MiB)", 25), ("rss_peak", "RSS peak under load (MiB)", 70)):
        vals = {t: series(kind, t, "kib", scale=1 / 1024) for t in REGISTRIES + ["ceiling"]}
        fig = {"id": kind, "label": label, "unit": "MiB", "better": "lower", "values": vals,
               "target_text": f"< {limit} MiB"}
        t = vals["tessera"]
        fig["met"] = t is not None and t["median"] < limit
        figures.append(fig)

    for fig in figures:
        if "values" not in fig or fig["id"] == "ceiling_rps":
            continue
        v = fig["values"]
        t = v.get("tessera")
        others = [(k, v.get(k)) for k in ("verdaccio-jwt", "verdaccio-legacy") if v.get(k)]
        if not t or not others:
            fig["ratio"] = None
            continue
        pick = max if fig["better"] == "higher" else min
        best_name, best = pick(others, key=lambda kv: kv[1]["median"])
        fig["compared_with"] = best_name
        fig["ratio"] = t["median"] / best["median"] if best["median"] else None
        if fig.get("target_ratio") is not None and fig["ratio"] is not None:
            if fig["better"] == "higher" and fig["unit"] == "req/s":
                fig["met"] = fig["ratio"] >= fig["target_ratio"]
            else:
                fig["met"] = fig["ratio"] <= fig["target_ratio"]

    errors = [r for r in wrk if r.get("non2xx") or r.get("socket_errors") or r.get("error")]
    checks = [r for r in recs if r["kind"] == "check"]
    loads = [r for r in recs if r["kind"] == "load"]
    meta = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine(),
        "wrk": {"threads": opts.threads, "connections": opts.connections, "duration_s": opts.duration,
                "rounds": opts.rounds, "accept_encoding": opts.accept_encoding or None},
        "verdaccio": opts.verdaccio,
        "tessera_commit": opts.tessera_commit,
        "load_average_during_wrk": sorted({r.get("load_before") for r in wrk if r.get("load_before")}),
        "loading_seconds": {r["target"]: r["seconds"] for r in loads},
        "npm_install_without_tessera_time": without_server,
        "response_checks": checks,
        "wrk_errors": [{k: r.get(k) for k in ("test", "target", "round", "non2xx", "socket_errors", "timeouts", "error")}
                       for r in errors],
    }
    return {"meta": meta, "figures": figures, "raw": recs}


def install_bound(doc):
    """What a registry answering in no time at all could reach on `npm install`: the
    install without Tessera's own request time (per round), against Verdaccio's."""
    install = next((f for f in doc["figures"] if f["id"] == "npm_install"), None)
    without = doc["meta"].get("npm_install_without_tessera_time")
    other = install and install.get("compared_with")
    if not without or not other:
        return []
    theirs = install["values"][other]["median"]
    ours = without["median"]
    return [f"`npm install` bound: without any of Tessera's request time the install would take "
            f"{ours:.2f} s (median of the rounds), {ours / theirs:.2f}× {other}'s {theirs:.2f} s; "
            f"the rest is the npm client's own work (see the resolution phase and the offline run).", ""]


def markdown(doc):
    meta, figures = doc["meta"], doc["figures"]
    m = meta["machine"]
    w = meta["wrk"]
    lines = [
        f"# Tessera vs Verdaccio {meta['verdaccio']}: benchmark of {meta['date']}",
        "",
        f"Machine: {m['cores']} cores ({m['cpu']}), {m['memory']}, Linux {m['kernel']}, Node {m['node']}, npm {m['npm']}. "
        f"Tessera commit {meta['tessera_commit']} (release build, SQLite).",
        f"wrk: {w['threads']} threads, {w['connections']} connections, {w['duration_s']} s per run, {w['rounds']} rounds"
        + (f", `accept-encoding: {w['accept_encoding']}`" if w["accept_encoding"] else "") + ".",
        "Cells are min / **median** / max over the rounds. Ratio = Tessera ÷ the faster Verdaccio mode (medians).",
        "",
        "| Figure | Tessera | Verdaccio JWT | Verdaccio legacy | Ratio | Target | Met |",
        "|---|---|---|---|---|---|---|",
    ]
    for f in figures:
        unit = f["unit"]
        if unit == "fraction":
            frac = f["fraction"]
            lines.append(f"| {f['label']} | {'–' if frac is None else f'{frac:.0%}'} | | | | {f['target_text']} | "
                         f"{'yes' if f.get('met') else 'no'} |")
            continue
        v = f["values"]
        if f["id"] == "ceiling_rps":
            lines.append(f"| {f['label']} | {cell(v['ceiling'], unit)} | | | | | |")
            continue
        ratio = f.get("ratio")
        ratio_text = "–" if ratio is None else (f"{ratio:,.1f}×" if ratio >= 10 else f"{ratio:.2f}×")
        met = f.get("met")
        met_text = "" if met is None else ("yes" if met else "**no**")
        extra = ""
        if f["id"].startswith("rss") and v.get("ceiling"):
            extra = f" (ceiling {fmt(v['ceiling']['median'], unit)})"
        lines.append(f"| {f['label']} | {cell(v.get('tessera'), unit)}{extra} | {cell(v.get('verdaccio-jwt'), unit)} | "
                     f"{cell(v.get('verdaccio-legacy'), unit)} | {ratio_text} | {f.get('target_text', '')} | {met_text} |")
    lines.append("")
    lines.extend(install_bound(doc))
    loads = meta["load_average_during_wrk"]
    if loads:
        lines.append(f"Load average (1/5/15 min) seen before wrk runs: {loads[0]} … {loads[-1]} "
                     f"(wrk itself and other work on the machine included).")
    if meta["loading_seconds"]:
        lines.append("Loading the data through npm took " +
                     ", ".join(f"{k} {v:.0f} s" for k, v in meta["loading_seconds"].items()) + ".")
    bad = [c for c in meta["response_checks"] if c.get("status") != 200]
    sizes = {(c["test"], c["target"]): c.get("bytes") for c in meta["response_checks"]}
    if sizes:
        lines.append("Response sizes on the wire (bytes, Tessera / Verdaccio JWT): " + "; ".join(
            f"{t} {sizes.get((t, 'tessera'))} / {sizes.get((t, 'verdaccio-jwt'))}"
            for t in ("packument_small", "abbreviated_small", "packument_big", "abbreviated_big", "tarball")) + ".")
    if bad:
        lines.append("Failed checks: " + "; ".join(f"{c['test']} on {c['target']}: {c['status']}" for c in bad) + ".")
    if meta["wrk_errors"]:
        lines.append("wrk runs with errors: " + "; ".join(
            f"{e['test']}/{e['target']}#{e['round']}: "
            + ("no request completed" if e.get("error") else
               f"non-2xx {e['non2xx']}, socket errors {e['socket_errors']} (timeouts {e['timeouts']})")
            for e in meta["wrk_errors"]) + ".")
    return "\n".join(lines) + "\n"


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "wrk":
        parse_wrk(*sys.argv[2:8])
        return
    p = argparse.ArgumentParser()
    p.add_argument("cmd")
    p.add_argument("raw")
    p.add_argument("out")
    p.add_argument("--duration", type=int, default=15)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--connections", type=int, default=64)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--accept-encoding", default="")
    p.add_argument("--verdaccio", default="6.8.0")
    p.add_argument("--tessera-commit", default="")
    opts = p.parse_args()
    doc = build(opts.raw, opts)
    md = markdown(doc)
    os.makedirs(opts.out, exist_ok=True)
    with open(os.path.join(opts.out, "latest.md"), "w") as f:
        f.write(md)
    with open(os.path.join(opts.out, "latest.json"), "w") as f:
        json.dump(doc, f, indent=2)
    print(md)


if __name__ == "__main__":
    main()
