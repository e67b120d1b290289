//! The playground page in a real browser: the real `melfuse-serve` binary on `models/demo`, Debian's
//! headless Chromium driven through chromedriver. A person's session, by keyboard and clicks: move
//! two genre sliders, type a length, press Generate, hear (a decodable `<audio>` source) and see
//! (a loaded spectrogram image) — and the clip the page holds is byte for byte what the API gives
//! for the blend and seed the page shows. A typed seed is sent as typed; a bad temperature shows
//! the API's own message next to the temperature control; the console stays clean; the page fits a
//! phone's width. The served page and the page as rendered pass an HTML validator.
//!
//! Screenshots (desktop and phone width), the rendered HTML and the logs go to
//! `target/playground/` (a CI artifact). Without chromium/chromedriver (or node/npm for the
//! validator) the test is skipped with a loud message — unless `CI` is set, where that fails.

mod browser;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use browser::{http_get, in_ci, keys, wait_for, which, Browser, Process};
use serde_json::{json, Value};

/// Where the screenshots, the rendered page and the logs go: `target/playground/`.
fn artifacts() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).parent().expect("target/ is above target/tmp").join("playground");
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    dir
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `Some(path)` of a tool; `None` after a loud message when it is missing outside CI; a panic in CI.
fn tool(found: Option<PathBuf>, what: &str) -> Option<PathBuf> {
    if found.is_some() {
        return found;
    }
    let message =
        format!("{what} is missing (Debian: apt-get install chromium chromium-driver nodejs npm; .ci/run does)");
    assert!(!in_ci(), "CI is set, so the browser test must run: {message}");
    // Straight to the process's stderr: libtest would swallow eprintln! output of a passing test.
    let _ = writeln!(std::io::stderr(), "\n!!!!! SKIPPED serve/tests/playground.rs: {message}\n");
    None
}

/// The console errors other than the browser's note of a 400 from `/generate` (a refusal the test
/// provoked).
fn errors_but_refusals(entries: &[Value]) -> Vec<String> {
    errors(entries).into_iter().filter(|e| !(e.contains("/generate?") && e.contains("status of 400"))).collect()
}

/// The browser's console entries that are errors.
fn errors(entries: &[Value]) -> Vec<String> {
    entries.iter().filter(|e| e["level"] == "SEVERE").map(|e| e["message"].to_string()).collect()
}

/// The `/generate` requests the page has sent: URL, status and body size, from the browser's own
/// record (Resource Timing).
const SENT: &str = "return performance.getEntriesByType('resource').filter(e => e.name.includes('/generate?'))
    .map(e => [e.name, e.responseStatus, e.decodedBodySize]);";

/// The page's state after a generation: what the result panel says and what the media elements hold.
const RESULT: &str = "const player = document.getElementById('player');
    const image = document.getElementById('spectrogram');
    const result = document.getElementById('result');
    return {
        busy: document.body.dataset.busy, seed: result.dataset.seed || null, query: result.dataset.query || null,
        audio_ready: player.readyState, duration: player.duration, audio_error: player.error && player.error.code,
        audio_src: player.currentSrc, image_width: image ? image.naturalWidth : 0,
        download: document.getElementById('download-wav').download,
        history: Array.from(document.querySelectorAll('#history li'), li => li.dataset.seed),
        general_error: document.getElementById('error-general').hidden ? null :
            document.getElementById('error-general').textContent };";

/// Waits until the page shows a clip with seed `seed` (any seed when `None`) and returns its state.
fn wait_for_clip(browser: &Browser, seed: Option<&str>) -> Value {
    wait_for("the clip to play and its spectrogram to show", Duration::from_secs(120), || {
        let state = browser.execute(RESULT, json!([]));
        assert!(state["general_error"].is_null(), "the page shows an error: {state}");
        let ready = state["busy"] == "false"
            && state["seed"].as_str().is_some_and(|s| seed.is_none_or(|want| s == want))
            && state["audio_ready"].as_u64().is_some_and(|r| r >= 1)
            && state["duration"].as_f64().is_some_and(|d| d > 0.0)
            && state["image_width"].as_u64().is_some_and(|w| w > 0);
        ready.then_some(state)
    })
}

/// Run before the page's own script: /openapi.json as it reads once `/generate` takes a `sampler`.
const WITH_SAMPLER: &str = "const fetchOriginal = window.fetch.bind(window);
    window.fetch = async (input, init) => {
        const response = await fetchOriginal(input, init);
        if (String(input) !== '/openapi.json') return response;
        const doc = await response.json();
        doc.paths['/generate'].get.parameters.push({name: 'sampler', in: 'query', required: false,
            schema: {type: 'string', enum: ['bank', 'prior'], default: 'bank'}});
        return new Response(JSON.stringify(doc), {headers: {'Content-Type': 'application/json'}});
    };";

fn metric(text: &str, line_start: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(line_start).and_then(|rest| rest.trim().parse().ok()))
        .unwrap_or_else(|| panic!("no `{line_start}` in /metrics"))
}

#[test]
fn a_person_mixes_plays_sees_and_downloads_a_clip_in_chromium() {
    let chromium = std::env::var_os("CHROMIUM").map(PathBuf::from).or_else(|| which("chromium"));
    let Some(chromium) = tool(chromium, "chromium") else { return };
    let Some(chromedriver) = tool(which("chromedriver"), "chromedriver") else { return };
    let out = artifacts();

    // The service exactly as the README starts it, on a free port.
    let port = browser::free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut command = Command::new(env!("CARGO_BIN_EXE_melfuse-serve"));
    command
        .args(["--model", &repo().join("models/demo").display().to_string(), "--bind", &format!("127.0.0.1:{port}")])
        .env("ORT_DYLIB_PATH", melfuse_e2e::onnxruntime_library())
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1");
    let serve_log = out.join("serve.log");
    let mut server = Process::start("melfuse-serve", command, &serve_log);
    let api = browser::agent();
    wait_for("melfuse-serve to be ready", Duration::from_secs(120), || {
        server.assert_running(&serve_log);
        api.get(&format!("{base}/readyz")).call().ok().filter(|r| r.status() == 200)
    });
    let (_, _, genres) = http_get(&api, &format!("{base}/genres"));
    let genres: Value = serde_json::from_slice(&genres).expect("/genres is JSON");
    let names: Vec<&str> = genres["genres"].as_array().unwrap().iter().filter_map(|g| g["name"].as_str()).collect();
    let (_, _, openapi) = http_get(&api, &format!("{base}/openapi.json"));
    let openapi: Value = serde_json::from_slice(&openapi).expect("/openapi.json is JSON");
    let has_sampler = openapi["paths"]["/generate"]["get"]["parameters"]
        .as_array()
        .is_some_and(|parameters| parameters.iter().any(|p| p["name"] == "sampler"));

    let browser = Browser::start(&chromedriver, &chromium, 1280, 900, &out.join("chromedriver.log"));
    browser.goto(&format!("{base}/"));
    wait_for("the page to read the API", Duration::from_secs(30), || {
        (browser.execute("return document.body.dataset.ready", json!([])) == "true").then_some(())
    });

    // The model's description comes from the API.
    let info = browser.execute(
        "return ['model', 'genres', 'provider', 'segment'].map(k => document.getElementById('info-' + k).textContent)",
        json!([]),
    );
    let segment_seconds = (genres["segment_seconds"].as_f64().expect("segment_seconds") * 100.0).round() / 100.0;
    let segment = format!("{segment_seconds} s at {} Hz", genres["sample_rate"]);
    assert_eq!(info, json!([genres["model"], names.join(", "), "CPU", segment]), "model description");
    let sliders = browser.execute(
        "return Array.from(document.querySelectorAll('#genre-sliders input[type=range]'), s => s.dataset.genre)",
        json!([]),
    );
    assert_eq!(sliders, json!(names), "one slider per genre, in the model's order");
    let sampler_shown = browser.execute("return !document.getElementById('field-sampler').hidden", json!([]));
    assert_eq!(sampler_shown, json!(has_sampler), "the sampler control exactly when the API has `sampler`");

    // Keyboard: the first genre from 100 down to 60, the third from 0 up to 40; a 4 s clip.
    assert!(names.len() >= 3, "the demo bundle has {names:?}");
    browser.find("#weight-0").send_keys(&keys::ARROW_LEFT.to_string().repeat(40));
    browser.find("#weight-2").send_keys(&keys::ARROW_RIGHT.to_string().repeat(40));
    let expected_blend = format!("{}:0.6,{}:0.4", names[0], names[2]);
    let shown = browser.execute(
        "return [document.getElementById('blend-text').textContent,
                 document.getElementById('share-0').textContent, document.getElementById('share-2').textContent]",
        json!([]),
    );
    assert_eq!(shown, json!([expected_blend, "60 %", "40 %"]), "the normalised blend is shown");
    let seconds = browser.find("#seconds");
    seconds.clear();
    seconds.send_keys("4");
    browser.find("#generate").click();

    // The clip plays and its spectrogram shows; the page holds what the API gives for the shown seed.
    let clip = wait_for_clip(&browser, None);
    let seed = clip["seed"].as_str().expect("the seed the service drew").to_string();
    let query = clip["query"].as_str().unwrap();
    let sent: Vec<(String, String)> = serde_urlencoded::from_str(query).expect("a query string");
    let sent_value = |name: &str| sent.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
    assert_eq!(sent_value("blend"), Some(expected_blend.as_str()), "{query}");
    assert_eq!((sent_value("seconds"), sent_value("format"), sent_value("seed")), (Some("4"), Some("wav"), None));
    assert!((clip["duration"].as_f64().unwrap() - 4.0).abs() < 0.01, "{clip}");
    assert!(clip["audio_error"].is_null(), "{clip}");
    assert_eq!(clip["download"], format!("melfuse-{seed}.wav"));
    assert_eq!(clip["history"], json!([seed]));
    let metrics = String::from_utf8(http_get(&api, &format!("{base}/metrics")).2).unwrap();
    assert_eq!(metric(&metrics, "melfuse_page_loads_total"), 1.0);
    let generated = r#"melfuse_requests_total{endpoint="/generate",format="#;
    assert_eq!(metric(&metrics, &format!(r#"{generated}"wav",status="200"}}"#)), 1.0);
    assert_eq!(metric(&metrics, &format!(r#"{generated}"png",status="200"}}"#)), 1.0, "one PNG, same request");
    let weight = |genre: &str| metric(&metrics, &format!("melfuse_blend_weight_total{{genre=\"{genre}\"}}"));
    assert!((weight(names[0]) - 1.2).abs() < 1e-4 && (weight(names[2]) - 0.8).abs() < 1e-4, "{metrics}");

    // What went over the wire: the WAV without a seed, then the PNG of the same request with the
    // seed the service reported — and each is what the API gives for that request.
    let wav_url = format!("{base}/generate?{query}");
    let png_url = format!("{base}/generate?{}&seed={seed}&format=png", query.replace("&format=wav", ""));
    let sent = browser.execute(SENT, json!([]));
    let (_, _, wav) = http_get(&api, &format!("{wav_url}&seed={seed}"));
    let (_, png_seed, png) = http_get(&api, &png_url);
    assert_eq!(png_seed.as_deref(), Some(seed.as_str()));
    assert_eq!(sent, json!([[wav_url, 200, wav.len()], [png_url, 200, png.len()]]), "the page's requests");
    let image = image::load_from_memory(&png).expect("a PNG");
    let natural = browser.execute(
        "const i = document.getElementById('spectrogram'); return [i.naturalWidth, i.naturalHeight]",
        json!([]),
    );
    assert_eq!(natural, json!([image.width(), image.height()]), "the spectrogram shown is that PNG");
    let console = browser.console();
    assert!(errors(&console).is_empty(), "console errors: {:?}", errors(&console));

    // A typed seed is sent as typed; the history keeps both clips, newest first.
    browser.find("#seed").send_keys("12345");
    browser.find("#generate").send_keys(&keys::ENTER.to_string());
    let second = wait_for_clip(&browser, Some("12345"));
    assert!(second["query"].as_str().unwrap().contains("seed=12345"), "{second}");
    assert_eq!(second["history"], json!(["12345", seed]));
    browser.screenshot(&out.join("desktop.png"));
    // A phone's width: nothing wider than the screen.
    browser.cdp(
        "Emulation.setDeviceMetricsOverride",
        json!({"width": 390, "height": 844, "deviceScaleFactor": 2, "mobile": true}),
    );
    let widths = browser.execute(
        "return new Promise(r => requestAnimationFrame(() => r([document.documentElement.scrollWidth, innerWidth])))",
        json!([]),
    );
    assert!(widths[0].as_u64() <= widths[1].as_u64(), "wider than a phone: {widths}");
    browser.screenshot(&out.join("phone.png"));
    browser.cdp("Emulation.clearDeviceMetricsOverride", json!({}));

    // A bad value: the API's message, next to the control it names, which gets the focus.
    let temperature = browser.find("#temperature");
    temperature.clear();
    temperature.send_keys("5");
    browser.find("#generate").click();
    let (status, _, body) = http_get(&api, &format!("{base}/generate?blend={expected_blend}&temperature=5"));
    assert_eq!(status, 400);
    let refusal: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(refusal["error"]["field"], "temperature");
    let shown = wait_for("the temperature error", Duration::from_secs(30), || {
        let shown = browser.execute(
            "const box = document.getElementById('error-temperature');
             return box.hidden ? null : [box.textContent, document.activeElement.id,
                 document.getElementById('temperature').getAttribute('aria-invalid'),
                 document.getElementById('error-general').hidden]",
            json!([]),
        );
        (!shown.is_null()).then_some(shown)
    });
    assert_eq!(shown, json!([refusal["error"]["message"], "temperature", "true", true]));
    // The one console error allowed: the browser's own note of that 400.
    let unexpected = errors_but_refusals(&browser.console());
    assert!(unexpected.is_empty(), "console errors: {unexpected:?}");

    // The page as rendered after two clips and an error, for the validator below.
    let rendered = browser.execute("return document.documentElement.outerHTML", json!([]));
    std::fs::write(out.join("rendered.html"), format!("<!DOCTYPE html>\n{}\n", rendered.as_str().unwrap())).unwrap();

    if has_sampler {
        assert!(sent_value("sampler").is_some(), "the sampler control's value was not sent: {query}");
    } else {
        // The sampler control must appear once the API describes a `sampler` parameter (another branch
        // adds it): the same page over an /openapi.json that has one. This server does not know the
        // field yet, so its refusal must land next to the sampler control.
        browser.cdp("Page.addScriptToEvaluateOnNewDocument", json!({"source": WITH_SAMPLER}));
        browser.goto(&format!("{base}/"));
        wait_for("the page to read the API", Duration::from_secs(30), || {
            (browser.execute("return document.body.dataset.ready", json!([])) == "true").then_some(())
        });
        let select = browser.execute(
            "const s = document.getElementById('sampler');
             return [document.getElementById('field-sampler').hidden, Array.from(s.options, o => o.value), s.value]",
            json!([]),
        );
        assert_eq!(select, json!([false, ["bank", "prior"], "bank"]), "the sampler control");
        browser.find("#generate").click();
        let (_, _, body) = http_get(&api, &format!("{base}/generate?blend={}&sampler=bank", names[0]));
        let refusal: Value = serde_json::from_slice(&body).unwrap();
        let shown = wait_for("the sampler error", Duration::from_secs(30), || {
            let shown = browser.execute(
                "const box = document.getElementById('error-sampler'); return box.hidden ? null : box.textContent",
                json!([]),
            );
            (!shown.is_null()).then_some(shown)
        });
        assert_eq!((refusal["error"]["field"].as_str(), &shown), (Some("sampler"), &refusal["error"]["message"]));
        let unexpected = errors_but_refusals(&browser.console());
        assert!(unexpected.is_empty(), "console errors: {unexpected:?}");
    }

    drop(browser);
    drop(server);

    // HTML validity, of the page as served and as rendered after two clips and an error.
    let Some(_) = tool(which("npm").and(which("node")), "node/npm (for html-validate)") else { return };
    let output = Command::new(repo().join("serve/html-validate"))
        .arg(repo().join("serve/static/index.html"))
        .arg(out.join("rendered.html"))
        .output()
        .expect("run serve/html-validate");
    assert!(
        output.status.success(),
        "html-validate:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    eprintln!("playground: screenshots and rendered page in {}", out.display());
}
