//! The real `melfuse-serve` binary on loopback under 64 concurrent clients: no 5xx other than 503
//! at overload, every request accounted for in the metrics, memory bounded, and SIGTERM finishing
//! the request in flight before the process exits.

mod support;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const CLIENTS: usize = 64;
const LOAD_SECONDS: u64 = 8;

/// One HTTP/1.1 GET with `Connection: close`; the status code and the body.
fn http_get(port: u16, path: &str) -> std::io::Result<(u16, Vec<u8>)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(60)))?;
    write!(stream, "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response)?;
    let head_end = response.windows(4).position(|w| w == b"\r\n\r\n").map_or(response.len(), |p| p + 4);
    let status_line = String::from_utf8_lossy(&response[..head_end.min(response.len())]);
    let status = status_line.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    Ok((status, response[head_end..].to_vec()))
}

fn resident_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// Sum of `melfuse_requests_total` samples for `/generate`, by status.
fn generate_counts(metrics: &str) -> std::collections::BTreeMap<String, u64> {
    let mut counts = std::collections::BTreeMap::new();
    for line in metrics.lines().filter(|l| l.starts_with("melfuse_requests_total{endpoint=\"/generate\"")) {
        let status = line.split("status=\"").nth(1).and_then(|s| s.split('"').next()).unwrap_or("?").to_string();
        let value: u64 = line.rsplit(' ').next().and_then(|v| v.parse().ok()).unwrap_or(0);
        *counts.entry(status).or_insert(0) += value;
    }
    counts
}

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn sixty_four_clients_on_loopback_are_all_served_or_told_to_retry() {
    support::use_project_onnxruntime();
    let dir = tempfile::tempdir().unwrap();
    let bundle = support::write_bundle(&dir.path().join("bundle"));
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let child = Command::new(env!("CARGO_BIN_EXE_melfuse-serve"))
        .args(["--model", bundle.to_str().unwrap(), "--bind", &format!("127.0.0.1:{port}")])
        .args(["--queue-capacity", "16", "--max-batch", "16", "--max-wait-ms", "5", "--http-workers", "2"])
        .env("MELFUSE_VOCODER_THREADS", "2")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .expect("start melfuse-serve");
    let mut server = Server(child);
    let pid = server.0.id();

    let started = Instant::now();
    while http_get(port, "/readyz").map(|r| r.0).unwrap_or(0) != 200 {
        assert!(started.elapsed() < Duration::from_secs(60), "not ready within 60 s");
        assert!(server.0.try_wait().unwrap().is_none(), "melfuse-serve exited during start-up");
        std::thread::sleep(Duration::from_millis(100));
    }
    let baseline_kib = resident_kib(pid);

    let sent = Arc::new(AtomicU64::new(0));
    let peak_kib = Arc::new(AtomicU64::new(baseline_kib));
    let deadline = Instant::now() + Duration::from_secs(LOAD_SECONDS);
    let clients: Vec<_> = (0..CLIENTS)
        .map(|client| {
            let sent = Arc::clone(&sent);
            let peak_kib = Arc::clone(&peak_kib);
            std::thread::spawn(move || {
                let mut statuses = Vec::new();
                let mut i = 0;
                while Instant::now() < deadline {
                    let path = format!(
                        "/generate?blend=cn:{},edm:1&seed={}&seconds=3&griffin_lim_iters=8",
                        client % 5,
                        client * 1000 + i
                    );
                    sent.fetch_add(1, Ordering::SeqCst);
                    let (status, _) = http_get(port, &path).expect("the server closed a connection without answering");
                    statuses.push(status);
                    peak_kib.fetch_max(resident_kib(pid), Ordering::SeqCst);
                    i += 1;
                }
                statuses
            })
        })
        .collect();
    let statuses: Vec<u16> = clients.into_iter().flat_map(|c| c.join().unwrap()).collect();

    let ok = statuses.iter().filter(|&&s| s == 200).count();
    let busy = statuses.iter().filter(|&&s| s == 503).count();
    let others: Vec<&u16> = statuses.iter().filter(|&&s| s != 200 && s != 503).collect();
    assert!(others.is_empty(), "unexpected statuses: {others:?}");
    assert!(ok > 0, "nothing was served");
    eprintln!(
        "{} requests: {ok} × 200, {busy} × 503; RSS {baseline_kib} → peak {} KiB",
        statuses.len(),
        peak_kib.load(Ordering::SeqCst)
    );

    let (_, metrics) = http_get(port, "/metrics").unwrap();
    let counts = generate_counts(&String::from_utf8_lossy(&metrics));
    assert_eq!(counts.values().sum::<u64>(), sent.load(Ordering::SeqCst), "metrics lost requests: {counts:?}");
    assert_eq!(counts.get("200").copied().unwrap_or(0), ok as u64);
    assert_eq!(counts.get("503").copied().unwrap_or(0), busy as u64);

    let peak = peak_kib.load(Ordering::SeqCst);
    assert!(peak < baseline_kib + 256 * 1024, "memory grew from {baseline_kib} to {peak} KiB");

    // SIGTERM while a request is in flight: it is answered, then the process exits cleanly.
    let long_request = std::thread::spawn(move || http_get(port, "/generate?blend=cn&seconds=30&griffin_lim_iters=64"));
    std::thread::sleep(Duration::from_millis(300));
    let killed = Command::new("kill").args(["-TERM", &pid.to_string()]).status().unwrap();
    assert!(killed.success());
    let (status, body) = long_request.join().unwrap().expect("the in-flight request was dropped");
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let exit = server.0.wait().unwrap();
    assert!(exit.success(), "melfuse-serve exited with {exit}");
}
