//! Tests of the synthetic corpus: determinism, levels, genre character
//! measured with a tiny in-test FFT (independent of the audio crate's mel
//! code), validation, and the corpus writer end to end.

use std::f32::consts::PI;
use std::fs;
use std::path::Path;

use super::*;

// ------------------------------------------------------------ analysis

/// FFT size and hop of the fine in-test spectrogram (the model's STFT).
const N_FFT: usize = 2048;
const HOP: usize = 512;
/// Coarser spectrogram for spectral flux: ~93 ms frames average out the
/// 10–20 Hz chorus beating of ensemble pads, leaving note-level change.
const N_FFT_COARSE: usize = 4096;
const HOP_COARSE: usize = 1024;
/// Log-spaced analysis bands (a stand-in for mel bands).
const BANDS: usize = 40;
const BAND_RANGE_HZ: (f32, f32) = (40.0, 16_000.0);
/// Dynamic range kept below the loudest band, in dB (like a clipped mel image).
const FLOOR_DB: f32 = 60.0;

/// In-place iterative radix-2 FFT (`re.len()` a power of two).
fn fft(re: &mut [f32], im: &mut [f32]) {
    let n = re.len();
    let mut j = 0;
    for i in 1..n {
        let mut bit = n >> 1;
        while j & bit != 0 {
            j ^= bit;
            bit >>= 1;
        }
        j |= bit;
        if i < j {
            re.swap(i, j);
            im.swap(i, j);
        }
    }
    let mut len = 2;
    while len <= n {
        let angle = -2.0 * PI / len as f32;
        for start in (0..n).step_by(len) {
            for k in 0..len / 2 {
                let (s, c) = (angle * k as f32).sin_cos();
                let (a, b) = (start + k, start + k + len / 2);
                let tr = re[b] * c - im[b] * s;
                let ti = re[b] * s + im[b] * c;
                re[b] = re[a] - tr;
                im[b] = im[a] - ti;
                re[a] += tr;
                im[a] += ti;
            }
        }
        len <<= 1;
    }
}

/// Power spectrogram with frames of `n` samples every `hop`, Hann-windowed;
/// each row holds `n/2+1` bins.
fn power_frames_with(x: &[f32], n: usize, hop: usize) -> Vec<Vec<f32>> {
    let window: Vec<f32> = (0..n).map(|i| 0.5 - 0.5 * (2.0 * PI * i as f32 / n as f32).cos()).collect();
    (0..x.len().saturating_sub(n) / hop)
        .map(|f| {
            let mut re: Vec<f32> = x[f * hop..f * hop + n].iter().zip(&window).map(|(a, w)| a * w).collect();
            let mut im = vec![0.0; n];
            fft(&mut re, &mut im);
            (0..=n / 2).map(|k| re[k] * re[k] + im[k] * im[k]).collect()
        })
        .collect()
}

fn power_frames(x: &[f32]) -> Vec<Vec<f32>> {
    power_frames_with(x, N_FFT, HOP)
}

/// Centre frequency of `bin` in a spectrogram row of `row_len` bins.
fn bin_hz(bin: usize, row_len: usize, sr: f32) -> f32 {
    bin as f32 * sr / (2 * (row_len - 1)) as f32
}

/// Energy per frame in `lo..hi` Hz.
fn band_envelope(frames: &[Vec<f32>], sr: f32, lo: f32, hi: f32) -> Vec<f32> {
    frames
        .iter()
        .map(|p| {
            p.iter().enumerate().filter(|(k, _)| (lo..hi).contains(&bin_hz(*k, p.len(), sr))).map(|(_, v)| v).sum()
        })
        .collect()
}

/// dB energy in `BANDS` log-spaced bands per frame, floored `FLOOR_DB`
/// below the loudest value.
fn log_bands(frames: &[Vec<f32>], sr: f32) -> Vec<Vec<f32>> {
    let (lo, hi) = (BAND_RANGE_HZ.0, BAND_RANGE_HZ.1.min(sr / 2.0));
    let edge = |i: usize| lo * (hi / lo).powf(i as f32 / BANDS as f32);
    let mut db: Vec<Vec<f32>> = frames
        .iter()
        .map(|p| {
            let mut bands = vec![0.0f32; BANDS];
            for (k, &v) in p.iter().enumerate() {
                let hz = bin_hz(k, p.len(), sr);
                if let Some(b) = (0..BANDS).find(|&b| (edge(b)..edge(b + 1)).contains(&hz)) {
                    bands[b] += v;
                }
            }
            bands.into_iter().map(|e| 10.0 * (e + 1e-10).log10()).collect()
        })
        .collect();
    let top = db.iter().flatten().fold(f32::MIN, |m, &v| m.max(v));
    db.iter_mut().flatten().for_each(|v| *v = v.max(top - FLOOR_DB));
    db
}

/// Mean positive dB rise per band between consecutive frames.
fn band_rises(bands: &[Vec<f32>]) -> Vec<f32> {
    bands
        .windows(2)
        .map(|w| w[0].iter().zip(&w[1]).map(|(a, b)| (b - a).max(0.0)).sum::<f32>() / BANDS as f32)
        .collect()
}

/// Normalised autocorrelation (mean removed) at `lag`.
fn autocorrelation(x: &[f32], lag: usize) -> f32 {
    let mean = x.iter().sum::<f32>() / x.len() as f32;
    let d: Vec<f32> = x.iter().map(|v| v - mean).collect();
    let energy: f32 = d.iter().map(|v| v * v).sum();
    let cross: f32 = d.iter().zip(&d[lag..]).map(|(a, b)| a * b).sum();
    cross / energy.max(1e-12) * x.len() as f32 / (x.len() - lag) as f32
}

/// Best autocorrelation within ±1 frame of `period_frames`.
fn periodicity(x: &[f32], period_frames: f64) -> f32 {
    let centre = period_frames.round() as usize;
    (centre - 1..=centre + 1).map(|lag| autocorrelation(x, lag)).fold(f32::MIN, f32::max)
}

/// Spectral flux in the log-band ("mel-like") domain: mean dB rise per
/// band and frame on the coarse spectrogram — how much the sound changes.
fn spectral_flux(samples: &[f32], sr: f32) -> f32 {
    let rises = band_rises(&log_bands(&power_frames_with(samples, N_FFT_COARSE, HOP_COARSE), sr));
    rises.iter().sum::<f32>() / rises.len() as f32
}

/// Onsets per second: local maxima of the mean band rise above 3 dB
/// (a broadband jump such as a drum hit or a hard pluck).
fn onset_rate(frames: &[Vec<f32>], sr: f32) -> f32 {
    /// Mean dB rise across bands that counts as an onset.
    const ONSET_RISE_DB: f32 = 3.0;
    let rises = band_rises(&log_bands(frames, sr));
    let peaks = (1..rises.len() - 1)
        .filter(|&i| rises[i] > ONSET_RISE_DB && rises[i] >= rises[i - 1] && rises[i] > rises[i + 1])
        .count();
    peaks as f32 / (frames.len() as f32 * HOP as f32 / sr)
}

/// Power-weighted mean frequency.
fn spectral_centroid(frames: &[Vec<f32>], sr: f32) -> f32 {
    let (mut weighted, mut total) = (0.0f64, 0.0f64);
    for p in frames {
        for (k, &v) in p.iter().enumerate() {
            weighted += f64::from(bin_hz(k, p.len(), sr)) * f64::from(v);
            total += f64::from(v);
        }
    }
    (weighted / total) as f32
}

/// Share of power (130 Hz–4 kHz) in the pitch classes of `tonic`'s major
/// pentatonic.
fn pentatonic_share(frames: &[Vec<f32>], sr: f32, tonic: i32) -> f32 {
    let mut chroma = [0.0f64; 12];
    for p in frames {
        for (k, &v) in p.iter().enumerate() {
            let hz = bin_hz(k, p.len(), sr);
            if (130.0..4_000.0).contains(&hz) {
                let midi = (12.0 * (hz / 440.0).log2() + 69.0).round() as i32;
                chroma[midi.rem_euclid(12) as usize] += f64::from(v);
            }
        }
    }
    let total: f64 = chroma.iter().sum();
    let inside: f64 = music::MAJOR_PENTATONIC.iter().map(|&d| chroma[(tonic + d).rem_euclid(12) as usize]).sum();
    (inside / total) as f32
}

fn config(seconds: f64, seed: u64) -> SynthCorpusConfig {
    SynthCorpusConfig { clips_per_genre: 2, seconds, seed, ..SynthCorpusConfig::default() }
}

fn render(genre: Genre, index: usize, cfg: &SynthCorpusConfig) -> RenderedClip {
    render_clip(genre, index, cfg).expect("valid config renders")
}

// ------------------------------------------------------------ levels & determinism

#[test]
fn same_seed_same_samples_different_seed_different() {
    let cfg = config(2.0, 5);
    for genre in Genre::ALL {
        let a = render(genre, 1, &cfg);
        let b = render(genre, 1, &cfg);
        assert_eq!(a.samples, b.samples, "{genre} not deterministic");
        let c = render(genre, 1, &config(2.0, 6));
        assert_ne!(a.samples, c.samples, "{genre} ignores the seed");
        let d = render(genre, 0, &cfg);
        assert_ne!(a.samples, d.samples, "{genre} clips 0 and 1 are equal");
    }
}

#[test]
fn lengths_levels_and_finiteness() {
    for (seconds, rate) in [(4.0, 44_100), (1.5, 22_050), (0.75, 8_000), (1.0, 192_000)] {
        let cfg = SynthCorpusConfig { sample_rate: rate, ..config(seconds, 3) };
        for genre in Genre::ALL {
            for index in 0..2 {
                let clip = render(genre, index, &cfg);
                assert_eq!(clip.samples.len(), (seconds * f64::from(rate)) as usize);
                assert!(clip.samples.iter().all(|x| x.is_finite()), "{genre} has NaN/inf");
                let pcm = to_pcm16(&clip.samples);
                let peak_db = pcm_peak_dbfs(&pcm);
                assert!(peak_db <= -2.9 && peak_db > -6.0, "{genre} @ {rate}: peak {peak_db} dBFS");
                assert!(pcm.iter().all(|&s| s != i16::MIN && s != i16::MAX), "{genre} clips");
            }
        }
    }
}

// ------------------------------------------------------------ genre character

/// Amplitude envelope below 150 Hz (kick and sub-bass) and the clip's beat
/// period in frames.
fn low_band_onsets(clip: &RenderedClip, sr: f32) -> (Vec<f32>, f64) {
    let frames = power_frames(&clip.samples);
    let onsets: Vec<f32> = band_envelope(&frames, sr, 20.0, 150.0).iter().map(|e| e.sqrt()).collect();
    let period = music::beat_seconds(clip.tempo_bpm) * f64::from(sr) / HOP as f64;
    (onsets, period)
}

#[test]
fn edm_and_cn_edm_pulse_at_their_tempo_below_150_hz() {
    let cfg = config(4.0, 11);
    let sr = cfg.sample_rate as f32;
    for genre in [Genre::Edm, Genre::CnEdm] {
        for index in 0..2 {
            let clip = render(genre, index, &cfg);
            let (onsets, period) = low_band_onsets(&clip, sr);
            let on_beat = periodicity(&onsets, period);
            // A lag between beat multiples should find little correlation.
            let off_beat = periodicity(&onsets, period * 0.5);
            assert!(on_beat > 0.6, "{genre}#{index}: beat autocorrelation {on_beat}");
            assert!(on_beat > off_beat + 0.5, "{genre}#{index}: beat {on_beat} vs half-beat {off_beat}");
        }
    }
    // The same measurement does not find a steady low pulse in orchestral music.
    for index in 0..2 {
        let clip = render(Genre::Orchestral, index, &cfg);
        let (onsets, period) = low_band_onsets(&clip, sr);
        let on_beat = periodicity(&onsets, period);
        assert!(on_beat < 0.4, "orchestral#{index}: unexpected beat pulse {on_beat}");
    }
}

#[test]
fn orchestral_changes_far_less_than_edm() {
    let cfg = config(4.0, 12);
    let sr = cfg.sample_rate as f32;
    for index in 0..2 {
        let (edm_clip, orch_clip) = (render(Genre::Edm, index, &cfg), render(Genre::Orchestral, index, &cfg));
        let (flux_edm, flux_orch) = (spectral_flux(&edm_clip.samples, sr), spectral_flux(&orch_clip.samples, sr));
        let (edm, orch) = (power_frames(&edm_clip.samples), power_frames(&orch_clip.samples));
        assert!(flux_orch < 0.5 * flux_edm, "flux orchestral {flux_orch} vs edm {flux_edm}");
        let (rate_edm, rate_orch) = (onset_rate(&edm, sr), onset_rate(&orch, sr));
        assert!(rate_orch * 3.0 < rate_edm, "onsets/s orchestral {rate_orch} vs edm {rate_edm}");
    }
}

#[test]
fn cn_is_pentatonic_bright_and_sparse() {
    let cfg = config(4.0, 13);
    let sr = cfg.sample_rate as f32;
    let (mut onsets_cn, mut onsets_edm) = (0.0, 0.0);
    for index in 0..2 {
        let cn = render(Genre::Cn, index, &cfg);
        let cn_frames = power_frames(&cn.samples);
        let share = pentatonic_share(&cn_frames, sr, cn.tonic);
        // 5 of 12 pitch classes would hold ~42 % of the power of chromatic music.
        assert!(share > 0.7, "cn#{index}: pentatonic share {share}");
        let orch = power_frames(&render(Genre::Orchestral, index, &cfg).samples);
        let edm = power_frames(&render(Genre::Edm, index, &cfg).samples);
        let (c_cn, c_orch) = (spectral_centroid(&cn_frames, sr), spectral_centroid(&orch, sr));
        assert!(c_cn > 1.2 * c_orch, "centroid cn {c_cn} vs orchestral {c_orch}");
        onsets_cn += onset_rate(&cn_frames, sr);
        onsets_edm += onset_rate(&edm, sr);
    }
    // Pooled over clips: one cn clip may hold a tremolo roll (a burst of
    // fast plucks), but cn as a whole stays far sparser than the grid.
    assert!(onsets_cn * 1.5 < onsets_edm, "onsets/s cn {onsets_cn} vs edm {onsets_edm}");
}

#[test]
fn a_shuffled_signal_fails_the_genre_measures() {
    // Guard against measures that pass for anything: white noise has no
    // beat, and its pitch classes are uniform.
    let mut noise = voices::Noise::new(99);
    let sr = 44_100.0;
    let samples: Vec<f32> = (0..4 * 44_100).map(|_| noise.sample()).collect();
    let clip = RenderedClip { samples, tempo_bpm: 128.0, tonic: 0, mode: Mode::Major };
    let (onsets, period) = low_band_onsets(&clip, sr);
    assert!(periodicity(&onsets, period) < 0.4);
    assert!(pentatonic_share(&power_frames(&clip.samples), sr, 0) < 0.55);
}

// ------------------------------------------------------------ validation

#[test]
fn invalid_settings_are_typed_errors() {
    let base = SynthCorpusConfig::default();
    let check = |cfg: SynthCorpusConfig| cfg.validate().expect_err("must be refused");
    assert!(matches!(check(SynthCorpusConfig { clips_per_genre: 0, ..base.clone() }), SynthError::NoClips));
    for seconds in [0.0, -1.0, f64::NAN, f64::INFINITY, MAX_SECONDS + 1.0, 1e-9] {
        assert!(matches!(check(SynthCorpusConfig { seconds, ..base.clone() }), SynthError::BadSeconds(_)));
    }
    for rate in [7_999, 192_001, 0] {
        assert!(
            matches!(check(SynthCorpusConfig { sample_rate: rate, ..base.clone() }), SynthError::BadSampleRate(r) if r == rate)
        );
    }
    assert!(matches!(check(SynthCorpusConfig { peak_dbfs: 0.0, ..base.clone() }), SynthError::BadPeak(_)));
    assert!(matches!(check(SynthCorpusConfig { genres: vec![], ..base.clone() }), SynthError::BadGenres(_)));
    assert!(matches!(
        check(SynthCorpusConfig { genres: vec![Genre::Cn, Genre::Cn], ..base.clone() }),
        SynthError::BadGenres(_)
    ));
    assert!(base.validate().is_ok());
}

#[test]
fn toml_config_loads_with_defaults_and_rejects_unknown_keys() {
    let dir = tempfile::tempdir().expect("tempdir");
    let good = dir.path().join("synth.toml");
    fs::write(&good, "clips_per_genre = 3\ngenres = [\"cn_edm\"]\n").expect("write");
    let cfg = SynthCorpusConfig::from_toml_file(&good).expect("parses");
    assert_eq!(cfg.clips_per_genre, 3);
    assert_eq!(cfg.genres, vec![Genre::CnEdm]);
    assert_eq!(cfg.sample_rate, SynthCorpusConfig::default().sample_rate);
    let bad = dir.path().join("bad.toml");
    fs::write(&bad, "clip_per_genre = 3\n").expect("write");
    assert!(matches!(SynthCorpusConfig::from_toml_file(&bad), Err(SynthError::ConfigParse { .. })));
    assert!(matches!(
        SynthCorpusConfig::from_toml_file(&dir.path().join("missing.toml")),
        Err(SynthError::ConfigRead { .. })
    ));
}

// ------------------------------------------------------------ corpus writer

fn small_corpus(seed: u64) -> SynthCorpusConfig {
    SynthCorpusConfig { clips_per_genre: 2, seconds: 1.0, seed, ..SynthCorpusConfig::default() }
}

fn read_tree(root: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files = Vec::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in fs::read_dir(&dir).expect("readable") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                dirs.push(path);
            } else {
                let rel = path.strip_prefix(root).expect("inside").to_string_lossy().replace('\\', "/");
                files.push((rel, fs::read(&path).expect("read")));
            }
        }
    }
    files.sort();
    files
}

#[test]
fn corpus_layout_report_and_wavs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("corpus");
    let cfg = small_corpus(21);
    let report = write_corpus(&out, &cfg, false).expect("writes");

    let names: Vec<String> = read_tree(&out).into_iter().map(|(n, _)| n).collect();
    let mut expected: Vec<String> =
        Genre::ALL.iter().flat_map(|g| (0..2).map(move |i| format!("{g}/{g}_{i:03}.wav"))).collect();
    expected.push(CORPUS_FILE.to_string());
    expected.sort();
    assert_eq!(names, expected, "exactly the clips and corpus.json, no .partial left");

    let json: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(out.join(CORPUS_FILE)).expect("json")).expect("valid json");
    assert_eq!(json["source"]["kind"], "dsp");
    assert_eq!(json["settings"]["seed"], 21);
    assert_eq!(json["settings"]["genres"][3], "cn_edm");
    assert_eq!(json["files"].as_array().map(Vec::len), Some(8));
    assert_eq!(json["files"][0]["path"], "cn/cn_000.wav");
    assert_eq!(json["total_seconds"], 8.0);
    let parsed: CorpusReport = serde_json::from_value(json).expect("round-trips");
    assert_eq!(parsed, report);

    for record in &report.files {
        let reader = hound::WavReader::open(out.join(&record.path)).expect("hound reads it");
        let spec = reader.spec();
        assert_eq!((spec.channels, spec.sample_rate, spec.bits_per_sample), (1, 44_100, 16));
        assert_eq!(spec.sample_format, hound::SampleFormat::Int);
        assert_eq!(reader.len() as usize, record.frames);
        assert_eq!(record.frames, 44_100);
        assert!(record.peak_dbfs <= -2.9 && record.peak_dbfs > -6.0);
        assert!(!record.key.is_empty());
    }
}

#[test]
fn same_seed_gives_byte_identical_corpus() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (a, b, c) = (dir.path().join("a"), dir.path().join("b"), dir.path().join("c"));
    write_corpus(&a, &small_corpus(4), false).expect("a");
    write_corpus(&b, &small_corpus(4), false).expect("b");
    write_corpus(&c, &small_corpus(5), false).expect("c");
    assert_eq!(read_tree(&a), read_tree(&b));
    assert_ne!(read_tree(&a), read_tree(&c));
}

#[test]
fn non_empty_out_refused_unless_forced_and_force_removes_only_stale_clips() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().to_path_buf();
    let cfg =
        SynthCorpusConfig { clips_per_genre: 3, seconds: 0.5, genres: vec![Genre::Cn], ..SynthCorpusConfig::default() };
    write_corpus(&out, &cfg, false).expect("empty dir is fine");
    fs::write(out.join("cn").join("notes.txt"), "keep me").expect("write");

    let err = write_corpus(&out, &cfg, false).expect_err("non-empty refused");
    assert!(matches!(err, SynthError::OutDirNotEmpty(_)));
    assert!(err.to_string().contains("--force"));

    let smaller = SynthCorpusConfig { clips_per_genre: 1, ..cfg };
    write_corpus(&out, &smaller, true).expect("forced");
    assert!(out.join("cn/cn_000.wav").exists());
    assert!(!out.join("cn/cn_001.wav").exists(), "stale clip removed");
    assert!(out.join("cn/notes.txt").exists(), "foreign file kept");
}

#[test]
fn unwritable_out_is_a_clear_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("a-file");
    fs::write(&file, "x").expect("write");
    let err = write_corpus(&file, &small_corpus(1), false).expect_err("a file is not a directory");
    assert!(matches!(err, SynthError::OutNotADirectory(_)));
    let err = write_corpus(&file.join("below"), &small_corpus(1), false).expect_err("cannot create under a file");
    assert!(matches!(err, SynthError::Io { action: "inspect" | "create directory", .. }), "{err}");
    assert!(err.to_string().contains("below"));
}
