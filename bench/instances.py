#!/usr/bin/env python3
"""Scale-out figures, side by side in one run: the embedded store (SQLite), one
instance on PostgreSQL and two instances on one PostgreSQL database.

Measures authenticated small packument GET and tarball GET with wrk (64 connections:
req/s and p99), each component's CPU share over the run (wrk, postgres, each
instance; from /proc), database transactions and tuples per request
(pg_stat_database deltas), raw publish PUT medians, and revocation trials (revoke on
A; requests on B the whole time; time from the revoke answer to the first refused
request on B; violations = requests started after the answer that were allowed).

Usage: bench/instances.py [seconds]     (bench/instances.sh calls it)
Environment: PG_ADMIN (default postgres://postgres@127.0.0.1:5432/postgres),
TRIALS (revocation trials, default 1000), PUBLISHES (per target and round, default 40),
ROUNDS (interleaved rounds, default 3),
TESSERA_BIN (default target/release/tessera).
"""

import base64
import hashlib
import http.client
import io
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import urllib.parse

DURATION = int(sys.argv[1]) if len(sys.argv) > 1 else 10
PG_ADMIN = os.environ.get("PG_ADMIN", "postgres://postgres@127.0.0.1:5432/postgres")
TRIALS = int(os.environ.get("TRIALS", "1000"))
PUBLISHES = int(os.environ.get("PUBLISHES", "40"))
ROUNDS = int(os.environ.get("ROUNDS", "3"))
BIN = os.environ.get("TESSERA_BIN", "target/release/tessera")
CLK = os.sysconf("SC_CLK_TCK")
CORES = os.cpu_count()
PASSWORD = "bench-password"


def psql(sql, db=None):
    url = PG_ADMIN if db is None else PG_ADMIN.rsplit("/", 1)[0] + "/" + db
    out = subprocess.run(["psql", url, "-qAtc", sql], check=True, capture_output=True, text=True)
    return out.stdout.strip()


class Client:
    """One keep-alive HTTP connection."""

    def __init__(self, base):
        u = urllib.parse.urlsplit(base)
        self.host, self.port = u.hostname, u.port
        self.conn = http.client.HTTPConnection(self.host, self.port, timeout=30)

    def call(self, method, path, token=None, body=None):
        headers = {}
        if token:
            headers["authorization"] = "Bearer " + token
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["content-type"] = "application/json"
        for attempt in range(2):
            try:
                self.conn.request(method, path, body=data, headers=headers)
                r = self.conn.getresponse()
                payload = r.read()
                return r.status, payload
            except (http.client.HTTPException, ConnectionError):
                self.conn.close()
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
                if attempt:
                    raise


def tarball(name, version):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        data = json.dumps({"name": name, "version": version}).encode()
        info = tarfile.TarInfo("package/package.json")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def publish_body(name, version):
    tgz = tarball(name, version)
    return {
        "_id": name, "name": name, "dist-tags": {"latest": version},
        "versions": {version: {"name": name, "version": version, "dist": {
            "integrity": "sha512-" + base64.b64encode(hashlib.sha512(tgz).digest()).decode(),
            "shasum": hashlib.sha1(tgz).hexdigest()}}},
        "_attachments": {f"{name}-{version}.tgz": {"data": base64.b64encode(tgz).decode(), "length": len(tgz)}},
    }


class Instance:
    def __init__(self, work, n, database_url, key, blobs):
        self.log = open(os.path.join(work, f"i{n}.out"), "w+")
        args = [BIN, "serve", "--listen", "127.0.0.1:0", "--data-dir", os.path.join(work, f"i{n}")]
        if database_url:
            args += ["--database-url", database_url]
        if key:
            args += ["--server-key-file", key, "--blob-store", blobs]
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=subprocess.DEVNULL)
        for _ in range(300):
            self.log.seek(0)
            text = self.log.read()
            if "listening" in text:
                self.url = text.split("\n")[0].split()[-1]
                return
            time.sleep(0.1)
        raise SystemExit(f"instance {n} did not start")

    def cpu(self):
        return proc_cpu(self.proc.pid)

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def proc_cpu(pid):
    """CPU seconds (user + system) of one process."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK
    except OSError:
        return 0.0


def postgres_cpu():
    total = 0.0
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/comm") as f:
                if f.read().strip() not in ("postgres", "postmaster"):
                    continue
        except OSError:
            continue
        total += proc_cpu(pid)
    return total


def machine_cpu():
    with open("/proc/stat") as f:
        parts = f.readline().split()[1:]
    values = [int(x) for x in parts]
    idle = values[3] + values[4]
    return sum(values) / CLK, (sum(values) - idle) / CLK


def children_cpu():
    r = os.times()
    return r.children_user + r.children_system


def db_stats(db):
    if db is None:
        return (0, 0)
    row = psql(f"SELECT xact_commit, tup_fetched FROM pg_stat_database WHERE datname = '{db}'")
    a, b = row.split("|")
    return int(a), int(b)


WRK_LINE = re.compile(r"Requests/sec:\s+([\d.]+)")
WRK_P99 = re.compile(r"^\s+99%\s+([\d.]+)(us|ms|s)\s*$", re.M)


def parse_wrk(out):
    rps = float(WRK_LINE.search(out).group(1))
    m = WRK_P99.search(out)
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(2)]
    return rps, float(m.group(1)) * scale, re.search(r"(\d+) requests in", out).group(1)


def wrk_run(targets, path, token, db, instances):
    """wrk against each URL in `targets` at once (64 connections in all)."""
    conns = 64 // len(targets)
    threads = 2 if len(targets) == 1 else 1
    time.sleep(1.0)
    x0, f0 = db_stats(db)
    pg0, m0, c0 = postgres_cpu(), machine_cpu(), children_cpu()
    i0 = [i.cpu() for i in instances]
    procs = [subprocess.Popen(
        ["wrk", f"-t{threads}", f"-c{conns}", f"-d{DURATION}s", "--latency", "--timeout", "10s",
         "-H", f"authorization: Bearer {token}", url + path],
        stdout=subprocess.PIPE, text=True) for url in targets]
    outs = [p.communicate()[0] for p in procs]
    pg1, m1, c1 = postgres_cpu(), machine_cpu(), children_cpu()
    i1 = [i.cpu() for i in instances]
    time.sleep(1.2)  # statistics reach pg_stat_database within a second
    x1, f1 = db_stats(db)
    parsed = [parse_wrk(o) for o in outs]
    rps = sum(p[0] for p in parsed)
    requests = sum(int(p[2]) for p in parsed)
    wall = m1[0] - m0[0]
    share = lambda s: round(100.0 * s / wall, 1) if wall > 0 else 0.0
    return {
        "rps": round(rps, 1),
        "p99_ms": round(max(p[1] for p in parsed), 2),
        "cpu_share": {
            "machine_busy": share(m1[1] - m0[1]),
            "client": share(c1 - c0),
            "postgres": share(pg1 - pg0) if db else 0.0,
            "instances": [share(b - a) for a, b in zip(i0, i1)],
        },
        "cpu_us_per_request": round(1e6 * sum(b - a for a, b in zip(i0, i1)) / max(requests, 1), 1),
        "db_xacts_per_request": round((x1 - x0) / max(requests, 1), 3) if db else None,
        "db_tuples_per_request": round((f1 - f0) / max(requests, 1), 2) if db else None,
    }


def warm_up(targets, path, token):
    """Two seconds of the same load on each of `targets`, not measured."""
    procs = [subprocess.Popen(
        ["wrk", "-t1", f"-c{64 // len(targets)}", "-d2s", "-H", f"authorization: Bearer {token}", url + path],
        stdout=subprocess.DEVNULL) for url in targets]
    for p in procs:
        p.wait()


def signup(url, name):
    c = Client(url)
    status, body = c.call("PUT", f"/-/user/org.couchdb.user:{name}", None,
                          {"name": name, "password": PASSWORD, "email": f"{name}@example.com"})
    assert status in (200, 201), body
    return json.loads(body)["token"]


def prepare(url, token, name):
    c = Client(url)
    status, body = c.call("PUT", f"/{name}", token, publish_body(name, "1.0.0"))
    assert status == 200, body


def publish_times(urls, token, name, round_no):
    """PUBLISHES raw publish PUTs (ms each), alternating between `urls`."""
    clients = [Client(u) for u in urls]
    times = []
    for i in range(PUBLISHES):
        body = publish_body(name, f"2.{round_no}.{i}")
        c = clients[i % len(clients)]
        t0 = time.perf_counter()
        status, payload = c.call("PUT", f"/{name}", token, body)
        times.append((time.perf_counter() - t0) * 1000)
        assert status == 200, payload
    return times


def median_run(runs):
    """The run whose rate is the median of `runs`."""
    ordered = sorted(runs, key=lambda x: x["rps"])
    return ordered[len(ordered) // 2]


def revocation_trials(a, b, token, package):
    """Revoke on A while B serves the victim token; see `docs/scaling.md`."""
    violations = 0
    delays = []
    ca = Client(a)
    for _ in range(TRIALS):
        status, body = ca.call("POST", "/-/npm/v1/tokens", token, {"password": PASSWORD, "readonly": True})
        assert status in (200, 201), body
        created = json.loads(body)
        victim, key = created["token"], created["key"]
        log = []
        stop = threading.Event()

        def probe():
            c = Client(b)
            while not stop.is_set():
                t0 = time.perf_counter()
                status, _ = c.call("GET", f"/{package}", victim)
                log.append((t0, time.perf_counter(), status))

        threads = [threading.Thread(target=probe) for _ in range(2)]
        for t in threads:
            t.start()
        while len(log) < 6:  # warm: B has the token cached
            time.sleep(0.001)
        status, _ = ca.call("DELETE", f"/-/npm/v1/tokens/token/{key}", token)
        answered = time.perf_counter()
        assert status == 200
        while not any(s > answered and st == 401 for s, _, st in list(log)):
            time.sleep(0.0005)
        stop.set()
        for t in threads:
            t.join()
        after = [(s, e, st) for s, e, st in log if s > answered]
        violations += sum(1 for _, _, st in after if st != 401)
        first = min(e for s, e, st in after if st == 401)
        delays.append((first - answered) * 1000)
    delays.sort()
    pick = lambda q: round(delays[min(len(delays) - 1, int(q * len(delays)))], 2)
    return {"trials": TRIALS, "violations": violations, "p50_ms": pick(0.5), "p90_ms": pick(0.9),
            "p99_ms": pick(0.99), "max_ms": round(delays[-1], 2)}


def main():
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is missing (apt-get install -y wrk)")
    if not os.access(BIN, os.X_OK):
        subprocess.run(["cargo", "build", "--release"], check=True)
    work = tempfile.mkdtemp()
    db = f"tessera_bench_{os.getpid()}"
    psql(f"CREATE DATABASE {db}")
    pg_url = PG_ADMIN.rsplit("/", 1)[0] + "/" + db
    key, blobs = os.path.join(work, "server.key"), os.path.join(work, "blobs")
    started = []
    try:
        e = Instance(work, 0, None, None, None)
        started.append(e)
        a = Instance(work, 1, pg_url, key, blobs)
        started.append(a)
        b = Instance(work, 2, pg_url, key, blobs)
        started.append(b)
        te = signup(e.url, "bench")
        tp = signup(a.url, "bench")
        for url, token in ((e.url, te), (a.url, tp)):
            prepare(url, token, "bench-pkg")
            prepare(url, token, "bench-pub")
        packument, tgz = "/bench-pkg", "/bench-pkg/-/bench-pkg-1.0.0.tgz"
        # Unmeasured: each instance opens its pooled connections (a PostgreSQL
        # backend each) and fills its caches before the first measured run.
        for targets, token in (([e.url], te), ([a.url, b.url], tp)):
            for path in (packument, tgz):
                warm_up(targets, path, token)
        results = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "cores": CORES,
                   "duration_s": DURATION, "load_before": os.getloadavg()}
        # ROUNDS interleaved rounds; each cell reports the run with the median rate,
        # so one disturbed run (a vacuum, a scheduler stall) does not decide a row.
        runs = {label: {"embedded": [], "pg_one": [], "pg_two": []} for label in ("packument", "tarball")}
        publishes = {"embedded": [], "pg_a_and_b": []}
        for r in range(ROUNDS):
            for label, path in (("packument", packument), ("tarball", tgz)):
                runs[label]["embedded"].append(wrk_run([e.url], path, te, None, [e]))
                runs[label]["pg_one"].append(wrk_run([a.url], path, tp, db, [a, b]))
                runs[label]["pg_two"].append(wrk_run([a.url, b.url], path, tp, db, [a, b]))
            publishes["embedded"].extend(publish_times([e.url], te, "bench-pub", r))
            publishes["pg_a_and_b"].extend(publish_times([a.url, b.url], tp, "bench-pub", r))
        results["rounds"] = ROUNDS
        for label, cells in runs.items():
            results[label] = {k: median_run(v) for k, v in cells.items()}
            results[label]["all_rps"] = {k: [x["rps"] for x in v] for k, v in cells.items()}
        results["publish_median_ms"] = {k: round(statistics.median(v), 2) for k, v in publishes.items()}
        results["revocation"] = revocation_trials(a.url, b.url, tp, "bench-pkg")
    finally:
        for i in started:
            i.stop()
        try:
            psql(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")
        except subprocess.CalledProcessError:
            pass
        shutil.rmtree(work, ignore_errors=True)
    os.makedirs("bench/results", exist_ok=True)
    with open("bench/results/instances.json", "w") as f:
        json.dump(results, f, indent=2)
    print_table(results)


def print_table(r):
    print(f"Scale-out run {r['date']}, {r['cores']} cores, wrk {r['duration_s']} s at 64 connections, "
          f"{r['rounds']} interleaved rounds (each row: the run with the median rate)\n")
    print("| request | store | req/s | p99 ms | CPU µs/req (instances) | db xacts/req | db tuples/req | CPU share: client / postgres / instances / machine busy |")
    print("|---|---|---|---|---|---|---|---|")
    names = {"embedded": "embedded (SQLite)", "pg_one": "PostgreSQL, 1 instance", "pg_two": "PostgreSQL, 2 instances"}
    for label in ("packument", "tarball"):
        for k, name in names.items():
            x = r[label][k]
            s = x["cpu_share"]
            inst = " + ".join(f"{v}%" for v in s["instances"])
            print(f"| {label} | {name} | {x['rps']} | {x['p99_ms']} | {x['cpu_us_per_request']} | "
                  f"{x['db_xacts_per_request'] if x['db_xacts_per_request'] is not None else '–'} | "
                  f"{x['db_tuples_per_request'] if x['db_tuples_per_request'] is not None else '–'} | "
                  f"{s['client']}% / {s['postgres']}% / {inst} / {s['machine_busy']}% |")
    for label in ("packument", "tarball"):
        rates = r[label]["all_rps"]
        print(f"\n{label} req/s of every round: " + "; ".join(f"{names[k]} {rates[k]}" for k in names), end="")
    print()
    p = r["publish_median_ms"]
    print(f"\nPublish PUT median: embedded {p['embedded']} ms, PostgreSQL through A and B {p['pg_a_and_b']} ms")
    v = r["revocation"]
    print(f"Revocation ({v['trials']} trials, revoke on A, requests on B throughout): {v['violations']} violations; "
          f"answer → first refusal on B p50 {v['p50_ms']} ms, p90 {v['p90_ms']} ms, p99 {v['p99_ms']} ms, max {v['max_ms']} ms")


if __name__ == "__main__":
    main()
