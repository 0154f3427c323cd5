//! Operations: draining on SIGTERM, connection limits, bounded metrics labels,
//! scheduled pruning and start-up validation. The shutdown and connection tests run
//! the built binary as an operator would and print what they measure (trials,
//! losses, shutdown times, peak memory) for the CI log.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tessera::clock::Clock;
use tessera::domain::maintenance::{Pruned, prune};

use crate::harness::*;
use crate::rules::publish_body;

const DAY_MS: i64 = 24 * 60 * 60 * 1000;

/// A `tessera serve` child with its JSON log in a file.
struct Served {
    child: Child,
    url: String,
    addr: SocketAddr,
    log: PathBuf,
    signalled: Option<Instant>,
}

impl Served {
    /// Runs `WRAPPER… tessera serve --listen 127.0.0.1:0 --data-dir DATA
    /// --log-format json ARGS` and waits for its "listening" line.
    fn start(data: &Path, args: &[&str], wrapper: &[&str]) -> Served {
        static RUNS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let log = data.with_file_name(format!("serve-{n}.log"));
        let bin = env!("CARGO_BIN_EXE_tessera");
        let mut cmd = match wrapper.split_first() {
            Some((program, rest)) => {
                let mut c = Command::new(program);
                c.args(rest).arg(bin);
                c
            }
            None => Command::new(bin),
        };
        cmd.args(["serve", "--listen", "127.0.0.1:0", "--log-format", "json"])
            .arg("--data-dir")
            .arg(data)
            .args(args)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap());
        for (key, _) in std::env::vars() {
            if key.starts_with("TESSERA_") {
                cmd.env_remove(key);
            }
        }
        let mut child = cmd.spawn().expect("tessera starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let url = line.trim().rsplit(' ').next().unwrap_or("").to_owned();
        assert!(
            url.starts_with("http://"),
            "no listening line: {line:?}\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        let addr = url["http://".len()..].parse().unwrap();
        Served {
            child,
            url,
            addr,
            log,
            signalled: None,
        }
    }

    fn pid(&self) -> String {
        self.child.id().to_string()
    }

    fn sigterm(&mut self) {
        self.signalled = Some(Instant::now());
        let status = Command::new("kill")
            .args(["-TERM", &self.pid()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits for the exit (failing after `limit`); returns the status and the time
    /// since SIGTERM.
    fn wait_exit(&mut self, limit: Duration) -> (ExitStatus, Duration) {
        let since = self.signalled.expect("signalled");
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return (status, since.elapsed());
            }
            if since.elapsed() > limit {
                let _ = self.child.kill();
                panic!(
                    "tessera still running {limit:?} after SIGTERM\n{}",
                    self.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Log entries whose message is `message`.
    fn logged(&self, message: &str) -> Vec<Value> {
        self.log_text()
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|v| v["fields"]["message"] == message)
            .collect()
    }

    /// Waits (up to 20 s) for a log entry with `message`.
    fn wait_for_log(&self, message: &str) -> Value {
        let started = Instant::now();
        loop {
            if let Some(entry) = self.logged(message).pop() {
                return entry;
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "no {message:?} logged:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// A line of /proc/PID/status or /proc/PID/limits.
    fn proc_line(&self, file: &str, prefix: &str) -> String {
        std::fs::read_to_string(format!("/proc/{}/{file}", self.pid()))
            .unwrap()
            .lines()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no {prefix} in /proc/{}/{file}", self.pid()))
            .to_owned()
    }

    /// Peak resident memory so far, in MiB.
    fn peak_rss_mib(&self) -> f64 {
        let line = self.proc_line("status", "VmHWM:");
        let kib: f64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
        kib / 1024.0
    }

    /// Soft and hard limits on open files.
    fn open_file_limits(&self) -> (String, String) {
        let line = self.proc_line("limits", "Max open files");
        let mut words = line["Max open files".len()..].split_whitespace();
        (
            words.next().unwrap().to_owned(),
            words.next().unwrap().to_owned(),
        )
    }

    fn open_fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid()))
            .map(|d| d.count())
            .unwrap_or(0)
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A raw HTTP/1.1 connection, to control exactly what is sent when.
struct Raw {
    stream: TcpStream,
    reader: BufReader<TcpStream>,
}

#[derive(Debug)]
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn closes(&self) -> bool {
        self.header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"))
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

impl Raw {
    fn connect(addr: SocketAddr) -> Raw {
        let stream = TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        Raw {
            reader: BufReader::new(stream.try_clone().unwrap()),
            stream,
        }
    }

    fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).unwrap();
    }

    /// Reads one response; `None` when the connection ends first.
    fn response(&mut self) -> Option<Reply> {
        let mut line = String::new();
        if self.reader.read_line(&mut line).ok()? == 0 {
            return None;
        }
        let status = line.split_whitespace().nth(1)?.parse().ok()?;
        let mut headers = Vec::new();
        loop {
            let mut h = String::new();
            if self.reader.read_line(&mut h).ok()? == 0 {
                return None;
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            let (name, value) = h.split_once(':')?;
            headers.push((name.trim().to_owned(), value.trim().to_owned()));
        }
        let mut reply = Reply {
            status,
            headers,
            body: Vec::new(),
        };
        if let Some(len) = reply.header("content-length") {
            let mut body = vec![0; len.parse().ok()?];
            self.reader.read_exact(&mut body).ok()?;
            reply.body = body;
        } else if reply
            .header("transfer-encoding")
            .is_some_and(|t| t.contains("chunked"))
        {
            loop {
                let mut size = String::new();
                self.reader.read_line(&mut size).ok()?;
                let size = usize::from_str_radix(size.trim(), 16).ok()?;
                let mut chunk = vec![0; size + 2];
                self.reader.read_exact(&mut chunk).ok()?;
                if size == 0 {
                    break;
                }
                reply.body.extend_from_slice(&chunk[..size]);
            }
        }
        Some(reply)
    }

    /// Waits up to `limit` for the server to close the connection (discarding
    /// anything it sends); returns how long that took.
    fn closed_within(&mut self, limit: Duration) -> Option<Duration> {
        let start = Instant::now();
        let mut buf = [0u8; 4096];
        loop {
            let left = limit.checked_sub(start.elapsed())?;
            self.reader
                .get_ref()
                .set_read_timeout(Some(left.max(Duration::from_millis(1))))
                .unwrap();
            match self.reader.read(&mut buf) {
                Ok(0) => return Some(start.elapsed()),
                Ok(_) => continue,
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    return None;
                }
                Err(_) => return Some(start.elapsed()),
            }
        }
    }
}

fn get(path: &str, addr: SocketAddr) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n").into_bytes()
}

fn put_json(path: &str, addr: SocketAddr, token: Option<&str>, body: &str) -> Vec<u8> {
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    format!(
        "PUT {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Content-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

fn login_body(name: &str) -> String {
    json!({"name": name, "password": password_of(name)}).to_string()
}

fn seconds(ds: &[Duration]) -> String {
    ds.iter()
        .map(|d| format!("{:.2}", d.as_secs_f64()))
        .collect::<Vec<_>>()
        .join(" ")
}

/// SIGTERM while keep-alive connections have just sent their next request and a
/// publish is half-way through its body: every request is answered, the ones
/// answered during the drain say `Connection: close`, the publish is committed, and
/// the process exits.
#[test]
fn sigterm_answers_requests_already_received() {
    const TRIALS: usize = 5;
    const KEEP_ALIVE: usize = 12;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut token = String::new();
    let (mut sent, mut answered, mut closing, mut lost) = (0, 0, 0, 0);
    let mut shutdowns = Vec::new();
    let mut peak_mib: f64 = 0.0;
    for trial in 0..TRIALS {
        let mut server = Served::start(&data, &["--shutdown-timeout", "10s"], &[]);
        let addr = server.addr;
        if trial == 0 {
            let mut c = Raw::connect(addr);
            c.send(&put_json(
                "/-/user/org.couchdb.user:drainer",
                addr,
                None,
                &json!({"name": "drainer", "password": password_of("drainer"), "email": "d@example.com"})
                    .to_string(),
            ));
            let reply = c.response().expect("signup answered");
            assert_eq!(reply.status, 201, "{reply:?}");
            token = reply.json()["token"].as_str().unwrap().to_owned();
        }
        let mut conns: Vec<Raw> = (0..KEEP_ALIVE)
            .map(|_| {
                let mut c = Raw::connect(addr);
                c.send(&get("/-/ping", addr));
                let reply = c.response().expect("first request answered");
                assert_eq!(reply.status, 200);
                assert!(!reply.closes(), "keep-alive before shutdown: {reply:?}");
                c
            })
            .collect();
        let name = format!("drained-{trial}");
        let body = publish_body(&name, "1.0.0").to_string();
        let request = put_json(&format!("/{name}"), addr, Some(&token), &body);
        let (first, rest) = request.split_at(request.len() - body.len() / 2);
        let mut publish = Raw::connect(addr);
        publish.send(first);
        // The next request on every keep-alive connection (half of them slow
        // password checks), then at once the signal.
        for (i, c) in conns.iter_mut().enumerate() {
            if i % 2 == 0 {
                c.send(&get("/-/ping", addr));
            } else {
                c.send(&put_json(
                    "/-/user/org.couchdb.user:drainer",
                    addr,
                    None,
                    &login_body("drainer"),
                ));
            }
        }
        sent += KEEP_ALIVE;
        peak_mib = peak_mib.max(server.peak_rss_mib());
        server.sigterm();
        server.wait_for_log("draining connections");
        publish.send(rest);
        let reply = publish
            .response()
            .expect("the publish in flight is answered");
        assert!(
            (200..300).contains(&reply.status),
            "publish during the drain: {reply:?}"
        );
        assert!(
            reply.closes(),
            "answered during the drain with Connection: close: {reply:?}"
        );
        assert!(publish.closed_within(Duration::from_secs(15)).is_some());
        for c in &mut conns {
            match c.response() {
                Some(r) if (200..300).contains(&r.status) => {
                    answered += 1;
                    closing += usize::from(r.closes());
                    assert!(
                        c.closed_within(Duration::from_secs(15)).is_some(),
                        "connection closed after its answer"
                    );
                }
                Some(r) => panic!("unexpected answer during the drain: {r:?}"),
                None => lost += 1,
            }
        }
        let (status, took) = server.wait_exit(Duration::from_secs(40));
        assert!(status.success(), "exit status {status:?}");
        shutdowns.push(took);
    }
    let server = Served::start(&data, &[], &[]);
    for trial in 0..TRIALS {
        let r = http()
            .get(format!("{}/drained-{trial}", server.url))
            .send()
            .unwrap();
        assert_eq!(r.status(), 200, "publish of trial {trial} survived");
    }
    eprintln!(
        "shutdown with requests in flight: {TRIALS} trials, {sent} keep-alive requests sent \
         just before SIGTERM, {answered} answered ({closing} with Connection: close), {lost} lost; \
         {TRIALS} publishes completed during the drain; exit after SIGTERM (s): {}; \
         peak RSS {peak_mib:.1} MiB",
        seconds(&shutdowns)
    );
    assert_eq!(lost, 0, "requests sent before SIGTERM went unanswered");
    assert_eq!(answered, sent);
}

/// A client that sent half its headers cannot hold the process: the header-read
/// limit closes it during the drain, and the shutdown deadline bounds the drain
/// when that limit is longer.
#[test]
fn sigterm_with_half_sent_requests_exits_within_the_limits() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut figures = Vec::new();
    for (args, bound, cut_at_deadline) in [
        (
            ["--header-read-timeout", "2s", "--shutdown-timeout", "30s"],
            30,
            false,
        ),
        (
            ["--header-read-timeout", "5m", "--shutdown-timeout", "2s"],
            2 + 15,
            true,
        ),
    ] {
        let mut server = Served::start(&data, &args, &[]);
        let addr = server.addr;
        let mut fresh = Raw::connect(addr);
        fresh.send(b"GET /-/ping HTTP/1.1\r\nHost: x\r\n");
        let mut kept = Raw::connect(addr);
        kept.send(&get("/-/ping", addr));
        assert_eq!(kept.response().unwrap().status, 200);
        kept.send(b"GET /-/ping HTTP/1.1\r\nHo");
        std::thread::sleep(Duration::from_millis(100));
        server.sigterm();
        let (status, took) = server.wait_exit(Duration::from_secs(bound + 20));
        assert!(status.success(), "exit status {status:?}");
        assert!(
            took < Duration::from_secs(bound),
            "exit {took:?} after SIGTERM with {args:?}"
        );
        assert!(fresh.closed_within(Duration::from_secs(5)).is_some());
        assert!(kept.closed_within(Duration::from_secs(5)).is_some());
        let deadline_logged = !server
            .logged("shutdown deadline reached; closing the connections still open")
            .is_empty();
        assert_eq!(deadline_logged, cut_at_deadline, "{}", server.log_text());
        figures.push(format!("{} → {:.2}s", args.join(" "), took.as_secs_f64()));
    }
    eprintln!(
        "shutdown with two half-sent requests: {}",
        figures.join("; ")
    );
}

/// More silent connections than the process may open files: they are closed by the
/// header-read limit, and a real client (HTTP and npm) is served meanwhile.
#[test]
fn silent_connections_do_not_starve_real_clients() {
    const LIMIT: usize = 256;
    const SILENT: usize = 400;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let ulimit = format!("ulimit -n {LIMIT} && exec \"$0\" \"$@\"");
    let server = Served::start(
        &data,
        &["--header-read-timeout", "2s"],
        &["sh", "-c", &ulimit],
    );
    assert_eq!(
        server.open_file_limits(),
        (LIMIT.to_string(), LIMIT.to_string())
    );
    let started = Instant::now();
    let mut silent: Vec<Raw> = (0..SILENT).map(|_| Raw::connect(server.addr)).collect();
    let connected_after = started.elapsed();
    // Wait until the server has run out of descriptors.
    server.wait_for_log("cannot accept connections; retrying every 50 ms");
    let fds_at_peak = server.open_fds();
    let client = Instant::now();
    let r = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
        .get(format!("{}/-/ping", server.url))
        .send()
        .expect("a real client is served while silent connections hold the files");
    assert_eq!(r.status(), 200);
    let served_after = client.elapsed();
    let npm = Npm::new(&server.url, None);
    let npm_started = Instant::now();
    npm.run(&["ping"]).ok();
    let npm_took = npm_started.elapsed();
    let mut closed = 0;
    for c in &mut silent {
        let left = Duration::from_secs(30).saturating_sub(started.elapsed());
        if c.closed_within(left).is_some() {
            closed += 1;
        }
    }
    let all_closed_after = started.elapsed();
    let peak_mib = server.peak_rss_mib();
    let metrics = http()
        .get(format!("{}/-/metrics", server.url))
        .send()
        .unwrap()
        .text()
        .unwrap();
    let header_timeouts: usize = metric(
        &metrics,
        "tessera_connections_closed_total{reason=\"header_timeout\"}",
    );
    let resumed = server.logged("accepting connections again");
    eprintln!(
        "silent connections: open-file limit {LIMIT}, {SILENT} silent connections (all connected \
         within {:.2}s), {fds_at_peak} descriptors open when accepting stopped; an HTTP client \
         started then was served after {:.2}s (header-read limit 2s), `npm ping` took {:.2}s; \
         {closed} silent connections closed by the server within {:.2}s ({header_timeouts} \
         header-read timeouts counted, accepting resumed {} time(s)); peak RSS {peak_mib:.1} MiB",
        connected_after.as_secs_f64(),
        served_after.as_secs_f64(),
        npm_took.as_secs_f64(),
        all_closed_after.as_secs_f64(),
        resumed.len(),
    );
    assert!(!resumed.is_empty(), "{}", server.log_text());
    assert_eq!(closed, SILENT, "every silent connection is closed");
    assert!(header_timeouts >= SILENT, "{metrics}");
}

/// The value of one sample line of the exposition text.
fn metric(text: &str, series: &str) -> usize {
    text.lines()
        .find_map(|l| l.strip_prefix(series))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {series} in\n{text}"))
}

/// `tessera serve` raises the soft open-file limit to the hard one.
#[test]
fn serve_raises_the_open_file_limit() {
    let dir = tempfile::tempdir().unwrap();
    let hard = std::fs::read_to_string("/proc/self/limits")
        .unwrap()
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(4).map(str::to_owned))
        .unwrap();
    let soft: u64 = hard.parse::<u64>().map_or(512, |h| (h / 2).min(512));
    let ulimit = format!("ulimit -S -n {soft} && exec \"$0\" \"$@\"");
    let server = Served::start(&dir.path().join("data"), &[], &["sh", "-c", &ulimit]);
    assert_eq!(server.open_file_limits(), (hard.clone(), hard.clone()));
    let raised = server.logged("raised the open file limit");
    assert_eq!(raised.len(), 1, "{}", server.log_text());
    assert_eq!(raised[0]["fields"]["from"], soft.to_string());
    assert_eq!(raised[0]["fields"]["to"], hard);
    eprintln!("open file limit raised from {soft} to {hard}");
}

/// Idle keep-alive connections, dribbled headers, stalled and trickled bodies are
/// cut off; an ordinary client is not.
#[test]
fn idle_connections_and_slow_clients_are_cut_off() {
    let server = TestServer::builder()
        .config(|c| {
            c.limits.header_read_timeout = Duration::from_secs(1);
            c.limits.idle_timeout = Duration::from_secs(2);
            c.limits.body_read_timeout = Duration::from_secs(1);
            c.limits.min_body_rate = 1000;
        })
        .start();
    let addr: SocketAddr = format!("127.0.0.1:{}", server.port).parse().unwrap();
    // An ordinary client with a body.
    server.signup("steady");

    let mut idle = Raw::connect(addr);
    idle.send(&get("/-/ping", addr));
    let reply = idle.response().unwrap();
    assert!(!reply.closes());
    let idle_closed = idle
        .closed_within(Duration::from_secs(10))
        .expect("idle keep-alive connection closed");

    let mut silent = Raw::connect(addr);
    let silent_closed = silent
        .closed_within(Duration::from_secs(10))
        .expect("silent connection closed");

    // One header line every 200 ms does not extend the header-read limit.
    let mut dribble = Raw::connect(addr);
    dribble.send(b"GET /-/ping HTTP/1.1\r\nHost: x\r\n");
    let dribble_start = Instant::now();
    let mut dribble_closed = None;
    for i in 0..40 {
        if dribble
            .stream
            .write_all(format!("X-{i}: 1\r\n").as_bytes())
            .is_err()
        {
            dribble_closed = Some(dribble_start.elapsed());
            break;
        }
        if dribble.closed_within(Duration::from_millis(200)).is_some() {
            dribble_closed = Some(dribble_start.elapsed());
            break;
        }
    }
    let dribble_closed = dribble_closed.expect("dribbled headers cut off");

    // A body that stops, and one that arrives at 400 bytes/s (below 1000).
    let stall_start = Instant::now();
    let mut stalled = Raw::connect(addr);
    let head = "PUT /-/user/org.couchdb.user:slowpoke HTTP/1.1\r\nHost: x\r\n\
                Content-Type: application/json\r\nContent-Length: 5000\r\n\r\n";
    stalled.send(head.as_bytes());
    stalled.send(b"{\"name\":");
    let reply = stalled.response().expect("a stalled body is answered");
    let stall_answered = stall_start.elapsed();
    assert_eq!(reply.status, 408, "{reply:?}");
    assert_eq!(reply.json()["error"], "the request body arrived too slowly");
    assert!(reply.closes());
    assert!(stalled.closed_within(Duration::from_secs(5)).is_some());

    let mut trickled = Raw::connect(addr);
    trickled.send(head.as_bytes());
    let mut writer = trickled.stream.try_clone().unwrap();
    let trickle = std::thread::spawn(move || {
        for _ in 0..40 {
            if writer.write_all(&[b' '; 100]).is_err() {
                break;
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    });
    let reply = trickled.response().expect("a trickled body is answered");
    assert_eq!(reply.status, 408, "{reply:?}");
    assert!(reply.closes());
    assert!(trickled.closed_within(Duration::from_secs(5)).is_some());
    drop(trickled);
    trickle.join().unwrap();

    // The ordinary client still works, on a fresh connection.
    let r = server
        .request(
            reqwest::Method::PUT,
            "/-/user/org.couchdb.user:steady",
            None,
        )
        .json(&json!({"name": "steady", "password": password_of("steady")}))
        .send()
        .unwrap();
    assert_eq!(r.status(), 201);
    let metrics = server.get("/-/metrics", None).text().unwrap();
    assert!(
        metric(
            &metrics,
            "tessera_connections_closed_total{reason=\"header_timeout\"}"
        ) >= 2,
        "{metrics}"
    );
    assert!(
        metric(
            &metrics,
            "tessera_connections_closed_total{reason=\"idle_timeout\"}"
        ) >= 1,
        "{metrics}"
    );
    eprintln!(
        "connection limits (header 1s, idle 2s, body 1000 B/s per 1s): idle keep-alive closed \
         after {:.2}s, silent after {:.2}s, dribbled headers after {:.2}s, stalled body answered \
         408 after {:.2}s",
        idle_closed.as_secs_f64(),
        silent_closed.as_secs_f64(),
        dribble_closed.as_secs_f64(),
        stall_answered.as_secs_f64()
    );
}

/// Any method token a client invents is counted under one `OTHER` label.
#[test]
fn invented_methods_share_one_metrics_series() {
    const INVENTED: usize = 300;
    let server = TestServer::start();
    for i in 0..INVENTED {
        let method = reqwest::Method::from_bytes(format!("X-INVENTED-{i}").as_bytes()).unwrap();
        let path = if i % 2 == 0 {
            "/some-package"
        } else {
            "/-/ping"
        };
        let r = server.request(method, path, None).send().unwrap();
        assert!(r.status().is_client_error(), "{}", r.status());
    }
    let text = server.get("/-/metrics", None).text().unwrap();
    let samples: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("tessera_requests_total{"))
        .collect();
    let methods: std::collections::BTreeSet<&str> = samples
        .iter()
        .filter_map(|l| l.split("method=\"").nth(1)?.split('"').next())
        .collect();
    let other: usize = samples
        .iter()
        .filter(|l| l.contains("method=\"OTHER\""))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<usize>().unwrap())
        .sum();
    eprintln!(
        "{INVENTED} invented methods → {} request series, method labels {methods:?}",
        samples.len()
    );
    assert!(!text.contains("X-INVENTED"), "{text}");
    assert_eq!(other, INVENTED);
    assert!(methods.iter().all(|m| {
        [
            "GET", "HEAD", "PUT", "POST", "DELETE", "PATCH", "OPTIONS", "OTHER",
        ]
        .contains(m)
    }));
    assert!(samples.len() <= 4, "{samples:#?}");
}

/// Pruning deletes failure counters older than a day, expired sessions and browser
/// logins, and security-log entries past the retention; fresh rows stay.
#[test]
fn pruning_removes_expired_rows_and_keeps_fresh_ones() {
    on_both_databases(|server| {
        server.signup("pruned");
        let app = &server.app;
        let store = &app.store;
        let user = server
            .block_on(store.user_by_name("pruned"))
            .unwrap()
            .unwrap()
            .id;
        let ip = "192.0.2.7";
        use tessera::store::Factor;
        let rows_at = |at: i64, tag: &str| {
            server.block_on(async {
                store
                    .add_security_event(
                        user,
                        tessera::store::SecurityEventKind::Login,
                        tag,
                        Some(ip),
                        at,
                    )
                    .await
                    .unwrap();
                store
                    .record_auth_failure(Factor::OneTimePassword, Some(user), ip, at)
                    .await
                    .unwrap();
                store
                    .record_auth_failure(Factor::Password, None, ip, at)
                    .await
                    .unwrap();
                store
                    .insert_session(format!("{tag}-session").as_bytes(), user, "c", false, at)
                    .await
                    .unwrap();
                store
                    .insert_session(format!("{tag}-pending").as_bytes(), user, "c", true, at)
                    .await
                    .unwrap();
                store
                    .insert_web_login(
                        format!("{tag}-login").as_bytes(),
                        format!("{tag}-done").as_bytes(),
                        Some("npm"),
                        at,
                        at + 10 * 60 * 1000,
                    )
                    .await
                    .unwrap();
            })
        };
        let t0 = server.clock.now_ms();
        rows_at(t0, "old");
        server.clock.advance_ms(2 * DAY_MS);
        let t1 = server.clock.now_ms();
        rows_at(t1, "fresh");
        // Seen a minute ago, but created eight days ago: past the absolute lifetime.
        server.block_on(async {
            store
                .insert_session(b"ancient-session", user, "c", false, t1 - 8 * DAY_MS)
                .await
                .unwrap();
            store
                .touch_session(b"ancient-session", t1 - 60_000)
                .await
                .unwrap();
        });
        let events_before = security_log_rows(&server, user);
        let pruned = server.block_on(prune(app)).unwrap();
        assert_eq!(
            pruned,
            Pruned {
                auth_failures: 2,
                security_events: 0,
                sessions: 3,
                web_logins: 1,
                oidc_token_ids: 0,
            }
        );
        server.block_on(async {
            assert!(store.session(b"fresh-session").await.unwrap().is_some());
            assert!(store.session(b"fresh-pending").await.unwrap().is_some());
            assert!(store.session(b"old-session").await.unwrap().is_none());
            assert!(store.session(b"old-pending").await.unwrap().is_none());
            assert!(store.session(b"ancient-session").await.unwrap().is_none());
            assert!(
                store
                    .web_login_by_id(b"fresh-login")
                    .await
                    .unwrap()
                    .is_some()
            );
            assert!(store.web_login_by_id(b"old-login").await.unwrap().is_none());
            let (_, by_ip) = store
                .auth_failures_since(Factor::Password, None, ip, 0)
                .await
                .unwrap();
            assert_eq!((by_ip.count, by_ip.oldest), (1, Some(t1)));
            let (by_user, _) = store
                .auth_failures_since(Factor::OneTimePassword, Some(user), ip, 0)
                .await
                .unwrap();
            assert_eq!((by_user.count, by_user.oldest), (1, Some(t1)));
        });
        assert_eq!(
            security_log_rows(&server, user).len(),
            events_before.len(),
            "the security log is kept for a year"
        );
        // A year after t0: entries older than 365 days go, the rest stay.
        server.clock.advance_ms(364 * DAY_MS);
        let t2 = server.clock.now_ms();
        server
            .block_on(store.add_security_event(
                user,
                tessera::store::SecurityEventKind::Login,
                "recent",
                None,
                t2,
            ))
            .unwrap();
        let old = events_before.iter().filter(|e| e.1 <= t0).count();
        assert!(old >= 1);
        let pruned = server.block_on(prune(app)).unwrap();
        assert_eq!(pruned.security_events, old as u64);
        let kept: Vec<String> = security_log_rows(&server, user)
            .into_iter()
            .map(|e| e.0)
            .collect();
        assert_eq!(kept, ["recent", "fresh"]);
        // Nothing left to prune.
        let again = server.block_on(prune(app)).unwrap();
        assert_eq!(
            again.security_events + again.auth_failures + again.web_logins,
            0
        );
    });

    // Retention 0 keeps the security log for ever.
    let server = TestServer::builder()
        .config(|c| c.security_log_retention_days = 0)
        .start();
    server.signup("keeper");
    let user = server
        .block_on(server.app.store.user_by_name("keeper"))
        .unwrap()
        .unwrap()
        .id;
    let before = security_log_rows(&server, user).len();
    assert!(before >= 1);
    server.clock.advance_ms(1000 * DAY_MS);
    assert_eq!(
        server.block_on(prune(&server.app)).unwrap().security_events,
        0
    );
    assert_eq!(security_log_rows(&server, user).len(), before);
}

/// `tessera serve` prunes when it starts (and every hour after).
#[test]
fn serve_prunes_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    tessera(
        &[
            "user",
            "add",
            "veteran",
            "--email",
            "v@example.com",
            "--password-stdin",
            "--data-dir",
            data.to_str().unwrap(),
        ],
        Some("veteran-password\n"),
        &[],
    )
    .ok();
    let url = format!("sqlite://{}", data.join("tessera.db").display());
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let now = tessera::clock::SystemClock.now_ms();
    runtime.block_on(async {
        let store = tessera::store::Store::connect(&url).await.unwrap();
        let user = store.user_by_name("veteran").await.unwrap().unwrap().id;
        store
            .add_security_event(
                user,
                tessera::store::SecurityEventKind::Login,
                "ancient",
                None,
                now - 400 * DAY_MS,
            )
            .await
            .unwrap();
        store
            .add_security_event(
                user,
                tessera::store::SecurityEventKind::Login,
                "recent",
                None,
                now - DAY_MS,
            )
            .await
            .unwrap();
        use tessera::store::Factor;
        store
            .record_auth_failure(Factor::Password, None, "198.51.100.1", now - 2 * DAY_MS)
            .await
            .unwrap();
        store
            .record_auth_failure(Factor::Password, None, "198.51.100.1", now - 60_000)
            .await
            .unwrap();
        store
            .insert_session(b"stale", user, "c", false, now - 3 * 60 * 60 * 1000)
            .await
            .unwrap();
        store.close().await;
    });
    let mut server = Served::start(&data, &[], &[]);
    let entry = server.wait_for_log("pruned expired rows");
    assert_eq!(entry["fields"]["security_events"], 1, "{entry}");
    assert_eq!(entry["fields"]["auth_failures"], 1, "{entry}");
    assert_eq!(entry["fields"]["sessions"], 1, "{entry}");
    server.sigterm();
    assert!(server.wait_exit(Duration::from_secs(30)).0.success());
    runtime.block_on(async {
        let store = tessera::store::Store::connect(&url).await.unwrap();
        let user = store.user_by_name("veteran").await.unwrap().unwrap().id;
        let mut conn = <sqlx::SqliteConnection as sqlx::Connection>::connect(&url)
            .await
            .unwrap();
        let details: Vec<String> =
            sqlx::query_scalar("SELECT detail FROM security_events WHERE user_id = $1")
                .bind(user)
                .fetch_all(&mut conn)
                .await
                .unwrap();
        assert!(details.contains(&"recent".to_owned()), "{details:?}");
        assert!(!details.contains(&"ancient".to_owned()), "{details:?}");
        let (_, by_ip) = store
            .auth_failures_since(tessera::store::Factor::Password, None, "198.51.100.1", 0)
            .await
            .unwrap();
        assert_eq!(by_ip.count, 1);
        store.close().await;
    });
}

/// Runs `tessera ARGS` (bounded by `timeout`) and returns its error output; the
/// command must stop with status 1 instead of starting.
fn refused(args: &[&str], env: &[(&str, &str)]) -> String {
    let mut cmd = Command::new("timeout");
    cmd.arg("20").arg(env!("CARGO_BIN_EXE_tessera")).args(args);
    for (key, _) in std::env::vars() {
        if key.starts_with("TESSERA_") {
            cmd.env_remove(key);
        }
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.stdin(Stdio::null()).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(
        out.status.code(),
        Some(1),
        "tessera {} should refuse to start\nstdout: {}\nstderr: {stderr}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout)
    );
    stderr
}

/// Every bad setting stops `tessera serve` (and the other commands that load the
/// configuration) with a message naming the setting and, for files, the path.
#[test]
fn bad_settings_stop_the_start_and_name_the_setting() {
    let dir = tempfile::tempdir().unwrap();
    let tmp = dir.path();
    let a_file = tmp.join("a-file");
    std::fs::write(&a_file, "not a directory").unwrap();
    let bad_key = tmp.join("bad.key");
    std::fs::write(&bad_key, "not a key\n").unwrap();
    let key_dir = tmp.join("key-dir");
    std::fs::create_dir(&key_dir).unwrap();
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let busy_addr = busy.local_addr().unwrap().to_string();
    let (file, key, keydir) = (
        a_file.to_str().unwrap(),
        bad_key.to_str().unwrap(),
        key_dir.to_str().unwrap(),
    );
    let cases: Vec<(Vec<&str>, Vec<&str>)> = vec![
        (
            vec!["--database-url", "sqlite://"],
            vec![
                "database_url (--database-url, TESSERA_DATABASE_URL)",
                "names no database file",
            ],
        ),
        (
            vec!["--database-url", "sqlite::memory:"],
            vec!["database_url", "in-memory"],
        ),
        (
            vec!["--database-url", "mysql://root:hunter2@db/x"],
            vec!["database_url", "root:***@db/x"],
        ),
        (
            vec!["--log-format", "yaml"],
            vec!["log_format (--log-format, TESSERA_LOG_FORMAT)", "\"yaml\""],
        ),
        (
            vec!["--max-body-bytes", "0"],
            vec!["max_body_bytes", "0 is outside"],
        ),
        (
            vec!["--listen", "localhost"],
            vec!["listen (--listen, TESSERA_LISTEN)", "\"localhost\""],
        ),
        (
            vec!["--listen", &busy_addr],
            vec!["listen", &busy_addr, "cannot listen"],
        ),
        (
            vec!["--trusted-proxies", "10.0.0.0/33"],
            vec!["trusted_proxies", "10.0.0.0/33"],
        ),
        (
            vec!["--public-url", "npm.example.com"],
            vec!["public_url", "npm.example.com"],
        ),
        (
            vec!["--shutdown-timeout", "forever"],
            vec!["shutdown_timeout", "\"forever\""],
        ),
        (
            vec!["--header-read-timeout", "0s"],
            vec!["header_read_timeout", "outside"],
        ),
        (vec!["--idle-timeout", "30"], vec!["idle_timeout", "\"30\""]),
        (
            vec!["--body-read-timeout", "2h"],
            vec!["body_read_timeout", "outside"],
        ),
        (
            vec!["--min-body-rate", "999999999999"],
            vec!["min_body_rate"],
        ),
        (
            vec!["--security-log-retention-days", "100000"],
            vec!["security_log_retention_days"],
        ),
        (vec!["--login-token-days=-1"], vec!["login_token_days"]),
        (
            vec!["--blob-store", "s3://"],
            vec!["blob_store", "names no bucket"],
        ),
        (
            vec!["--blob-store", file],
            vec!["blob_store", file, "not a directory"],
        ),
        (
            vec!["--data-dir", file],
            vec!["data_dir", file, "not a directory"],
        ),
        (
            vec!["--server-key-file", key],
            vec!["server_key_file", key, "not a server key"],
        ),
        (
            vec!["--server-key-file", keydir],
            vec!["server_key_file", keydir, "cannot read"],
        ),
    ];
    let mut checked = 0;
    for (i, (args, needles)) in cases.iter().enumerate() {
        let data = tmp.join(format!("data-{i}"));
        let mut full = vec!["serve"];
        if !args.contains(&"--listen") {
            full.extend(["--listen", "127.0.0.1:0"]);
        }
        if !args.contains(&"--data-dir") {
            full.extend(["--data-dir", data.to_str().unwrap()]);
        }
        full.extend(args.iter().copied());
        let err = refused(&full, &[]);
        for needle in needles {
            assert!(
                err.contains(needle),
                "{needle:?} missing for {args:?}: {err}"
            );
        }
        assert!(!err.contains("hunter2"), "{err}");
        checked += 1;
    }
    drop(busy);
    // The same checks for the environment, the config file and the other commands.
    let data = tmp.join("data-env");
    let data = data.to_str().unwrap();
    let err = refused(
        &["serve", "--listen", "127.0.0.1:0", "--data-dir", data],
        &[("TESSERA_LOG_FORMAT", "yaml")],
    );
    assert!(err.contains("TESSERA_LOG_FORMAT"), "{err}");
    let config = tmp.join("tessera.toml");
    std::fs::write(&config, "idle_timeout = \"soon\"\n").unwrap();
    let err = refused(
        &[
            "serve",
            "--data-dir",
            data,
            "--config",
            config.to_str().unwrap(),
        ],
        &[],
    );
    assert!(err.contains("idle_timeout"), "{err}");
    for command in ["migrate", "gc"] {
        let err = refused(&[command, "--data-dir", data, "--max-body-bytes", "0"], &[]);
        assert!(err.contains("max_body_bytes"), "{command}: {err}");
    }
    let err = refused(&["config", "show", "--database-url", "sqlite://"], &[]);
    assert!(err.contains("database_url"), "{err}");
    eprintln!(
        "{} bad settings refused at start, each naming its setting",
        checked + 5
    );
}

/// HTTP/2 with prior knowledge still works through the watched connections: several
/// requests share one connection, which the idle limit closes afterwards.
#[test]
fn http2_requests_share_one_watched_connection() {
    let server = TestServer::builder()
        .config(|c| c.limits.idle_timeout = Duration::from_secs(1))
        .start();
    let client = reqwest::blocking::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let get = |path: &str| {
        let r = client.get(format!("{}{path}", server.url)).send().unwrap();
        assert_eq!(r.version(), reqwest::Version::HTTP_2);
        (r.status().as_u16(), r.text().unwrap())
    };
    for _ in 0..5 {
        assert_eq!(get("/-/whoami").0, 401);
    }
    let (status, text) = get("/-/metrics");
    assert_eq!(status, 200);
    assert_eq!(metric(&text, "tessera_open_connections"), 1, "{text}");
    assert_eq!(
        metric(
            &text,
            "tessera_requests_total{method=\"GET\",route=\"/-/whoami\",status=\"401\"}"
        ),
        5
    );
    // Left alone, the HTTP/2 connection is closed as idle (polled over HTTP/1 with a
    // client that closes its own connection each time).
    let started = Instant::now();
    loop {
        let text = server.get("/-/metrics", None).text().unwrap();
        match metric(
            &text,
            "tessera_connections_closed_total{reason=\"idle_timeout\"}",
        ) {
            0 => assert!(started.elapsed() < Duration::from_secs(15), "{text}"),
            1 => break,
            n => panic!("{n} idle connections closed: {text}"),
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The connection and retention settings come from flags, the environment and the
/// file like every other setting, and `config show` says which.
#[test]
fn connection_settings_come_from_flags_env_and_file() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("tessera.toml");
    std::fs::write(
        &config,
        "shutdown_timeout = \"45s\"\nmin_body_rate = 2048\nsecurity_log_retention_days = 30\n",
    )
    .unwrap();
    let shown = tessera(
        &[
            "config",
            "show",
            "--data-dir",
            dir.path().to_str().unwrap(),
            "--config",
            config.to_str().unwrap(),
            "--idle-timeout",
            "90s",
        ],
        None,
        &[("TESSERA_HEADER_READ_TIMEOUT", "5s")],
    )
    .ok();
    for line in [
        "shutdown_timeout            = 45s  (file)",
        "header_read_timeout         = 5s  (env)",
        "idle_timeout                = 1m 30s  (flag)",
        "body_read_timeout           = 30s  (default)",
        "min_body_rate               = 2048  (file)",
        "security_log_retention_days = 30  (file)",
        "log_format                  = text  (default)",
    ] {
        assert!(shown.stdout.contains(line), "{line:?} in\n{}", shown.stdout);
    }
}
