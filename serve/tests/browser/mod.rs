//! A headless Chromium driven through WebDriver (Debian's `chromedriver`) over plain HTTP with
//! `ureq`, and the processes a browser test needs (the real `melfuse-serve`, `chromedriver`), each
//! killed when its handle drops.
//!
//! Design choice: the W3C WebDriver protocol spoken directly — a dozen JSON commands — instead of a
//! client crate (fantoccini, thirtyfour): nothing async, no TLS stack, quick to compile, and every
//! command the test sends is visible here. Chrome-only extras go through chromedriver's own
//! endpoints: `goog/cdp/execute` (DevTools commands: full-page screenshots, phone emulation) and
//! `se/log` (the browser console).

#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{json, Value};

/// WebDriver's key for element references in JSON.
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

/// WebDriver key codes (W3C WebDriver, "Keyboard actions").
pub mod keys {
    /// ←
    pub const ARROW_LEFT: char = '\u{E012}';
    /// →
    pub const ARROW_RIGHT: char = '\u{E014}';
    /// Home
    pub const HOME: char = '\u{E011}';
    /// Enter
    pub const ENTER: char = '\u{E007}';
}

/// Whether this run is CI's (`CI` set to anything but empty, `0` or `false`): there a missing
/// browser is a failure, not a skip.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "0" && !v.eq_ignore_ascii_case("false"))
}

/// `name` on PATH.
pub fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|dir| dir.join(name)).find(|candidate| candidate.is_file())
}

/// A free loopback port (bound, read, released; the caller binds it right after).
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    listener.local_addr().expect("local address").port()
}

/// A child process killed (and reaped) when dropped.
pub struct Process {
    name: String,
    child: Child,
}

impl Process {
    /// Starts `command` with stdout and stderr appended to `log`.
    pub fn start(name: &str, mut command: Command, log: &Path) -> Self {
        let file = std::fs::File::create(log).unwrap_or_else(|e| panic!("{}: {e}", log.display()));
        let err = file.try_clone().expect("clone the log handle");
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::from(file))
            .stderr(Stdio::from(err))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        Self { name: name.to_string(), child }
    }

    /// Panics with `log`'s contents if the process has exited.
    pub fn assert_running(&mut self, log: &Path) {
        if let Ok(Some(status)) = self.child.try_wait() {
            let text = std::fs::read_to_string(log).unwrap_or_default();
            panic!("{} exited ({status}):\n{text}", self.name);
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An HTTP client for loopback peers whose error statuses are answers, not failures.
pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(120)))
        .build()
        .new_agent()
}

/// GET `url`: status, headers we care about, body.
pub fn http_get(agent: &ureq::Agent, url: &str) -> (u16, Option<String>, Vec<u8>) {
    let mut response = agent.get(url).call().unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let seed = response.headers().get("x-melfuse-seed").and_then(|v| v.to_str().ok()).map(str::to_string);
    let body = response.body_mut().with_config().limit(256 << 20).read_to_vec().expect("read the body");
    (response.status().as_u16(), seed, body)
}

/// Polls `probe` every 100 ms until it returns `Some` or `timeout` passes (then panics with `what`).
pub fn wait_for<T>(what: &str, timeout: Duration, mut probe: impl FnMut() -> Option<T>) -> T {
    let started = Instant::now();
    loop {
        if let Some(value) = probe() {
            return value;
        }
        assert!(started.elapsed() < timeout, "timed out after {timeout:?} waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A chromedriver process and one browser session in it.
pub struct Browser {
    agent: ureq::Agent,
    session: String,
    // Dropped after the session is deleted (field order): the driver, then the profile.
    _driver: Process,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Starts `chromedriver` and a headless `chromium` session with the console log on, a
    /// `width`×`height` window and a fresh profile; the driver's log goes to `log`.
    pub fn start(chromedriver: &Path, chromium: &Path, width: u32, height: u32, log: &Path) -> Self {
        let port = free_port();
        let mut command = Command::new(chromedriver);
        command.arg(format!("--port={port}"));
        let mut driver = Process::start("chromedriver", command, log);
        let base = format!("http://127.0.0.1:{port}");
        let agent = agent();
        wait_for("chromedriver", Duration::from_secs(30), || {
            driver.assert_running(log);
            let mut response = agent.get(&format!("{base}/status")).call().ok()?;
            let status: Value = serde_json::from_str(&response.body_mut().read_to_string().ok()?).ok()?;
            status["value"]["ready"].as_bool().filter(|ready| *ready)
        });
        let profile = tempfile::tempdir().expect("a profile directory");
        // The flags that run Chromium as root in a container, without network chatter of its own.
        let args = vec![
            "--headless".to_string(),
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--disable-quic".into(),
            "--no-first-run".into(),
            "--disable-background-networking".into(),
            "--disable-component-update".into(),
            "--disable-sync".into(),
            "--disable-dev-shm-usage".into(),
            "--mute-audio".into(),
            "--autoplay-policy=no-user-gesture-required".into(),
            format!("--window-size={width},{height}"),
            format!("--user-data-dir={}", profile.path().display()),
        ];
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": chromium, "args": args},
            "goog:loggingPrefs": {"browser": "ALL"},
            "timeouts": {"script": 120_000, "pageLoad": 60_000}
        }}});
        let created = request(&agent, "POST", &format!("{base}/session"), Some(&capabilities));
        let id = created["sessionId"].as_str().unwrap_or_else(|| panic!("no session: {created}")).to_string();
        Self { agent, session: format!("{base}/session/{id}"), _driver: driver, _profile: profile }
    }

    /// Sends one WebDriver command (`path` relative to the session) and returns its `value`.
    pub fn command(&self, method: &str, path: &str, body: Option<&Value>) -> Value {
        request(&self.agent, method, &format!("{}{path}", self.session), body)
    }

    /// Navigates to `url` and waits for the load event.
    pub fn goto(&self, url: &str) {
        self.command("POST", "/url", Some(&json!({"url": url})));
    }

    /// Runs `script` (a function body; `arguments` holds `args`) and returns what it returns.
    pub fn execute(&self, script: &str, args: Value) -> Value {
        self.command("POST", "/execute/sync", Some(&json!({"script": script, "args": args})))
    }

    /// Runs `script` whose last argument is a callback, and returns what it passes to it.
    pub fn execute_async(&self, script: &str, args: Value) -> Value {
        self.command("POST", "/execute/async", Some(&json!({"script": script, "args": args})))
    }

    /// The first element matching the CSS `selector`.
    pub fn find(&self, selector: &str) -> Element<'_> {
        let found = self.command("POST", "/element", Some(&json!({"using": "css selector", "value": selector})));
        let id = found[ELEMENT_KEY].as_str().unwrap_or_else(|| panic!("no element {selector}: {found}"));
        Element { browser: self, id: id.to_string() }
    }

    /// A DevTools protocol command through chromedriver.
    pub fn cdp(&self, command: &str, params: Value) -> Value {
        self.command("POST", "/goog/cdp/execute", Some(&json!({"cmd": command, "params": params})))
    }

    /// A PNG of the whole page, beyond the viewport, written to `path`.
    pub fn screenshot(&self, path: &Path) {
        let shot = self.cdp("Page.captureScreenshot", json!({"format": "png", "captureBeyondViewport": true}));
        let data = shot["data"].as_str().expect("screenshot data");
        let png = base64::engine::general_purpose::STANDARD.decode(data).expect("base64 PNG");
        std::fs::write(path, png).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    }

    /// The console entries (`level`, `message`, `source`) logged since the last call.
    pub fn console(&self) -> Vec<Value> {
        let entries = self.command("POST", "/se/log", Some(&json!({"type": "browser"})));
        entries.as_array().cloned().unwrap_or_default()
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.agent.delete(&self.session).call();
    }
}

/// A page element.
pub struct Element<'a> {
    browser: &'a Browser,
    id: String,
}

impl Element<'_> {
    /// Clicks it.
    pub fn click(&self) {
        self.browser.command("POST", &format!("/element/{}/click", self.id), Some(&json!({})));
    }

    /// Types `text` into it (key codes from [`keys`] included), as a person would.
    pub fn send_keys(&self, text: &str) {
        self.browser.command("POST", &format!("/element/{}/value", self.id), Some(&json!({"text": text})));
    }

    /// Empties an input.
    pub fn clear(&self) {
        self.browser.command("POST", &format!("/element/{}/clear", self.id), Some(&json!({})));
    }
}

/// One WebDriver HTTP exchange; a WebDriver error is a panic that quotes it.
fn request(agent: &ureq::Agent, method: &str, url: &str, body: Option<&Value>) -> Value {
    let response = match (method, body) {
        ("GET", _) => agent.get(url).call(),
        ("DELETE", _) => agent.delete(url).call(),
        (_, Some(body)) => agent.post(url).content_type("application/json").send(body.to_string()),
        (_, None) => agent.post(url).content_type("application/json").send("{}"),
    };
    let mut response = response.unwrap_or_else(|e| panic!("{method} {url}: {e}"));
    let status = response.status().as_u16();
    let text = response.body_mut().with_config().limit(256 << 20).read_to_string().expect("a WebDriver reply");
    let reply: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{method} {url}: not JSON ({e}): {text}"));
    if status != 200 {
        panic!("{method} {url} → {status}: {}", reply["value"]);
    }
    reply["value"].clone()
}
