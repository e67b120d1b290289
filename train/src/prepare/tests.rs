//! `prepare` on small synthetic corpora: split, skips, round trip, reuse,
//! dB range and the folder-safety rules.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use melfuse_audio::load::load_mono;
use melfuse_audio::segment::segment_ranges;
use melfuse_audio::MelSpectrogram;

use super::cache::shard_file_name;
use super::tiny::two_second_signal;
use super::*;
use crate::synth::{write_corpus, Genre, SynthCorpusConfig};

/// Small, fast signal: 2 s segments every 1 s, 64 mels, 8-frame multiple.
fn small_config() -> PrepareConfig {
    PrepareConfig { signal: two_second_signal(8), segments_per_shard: 5, ..Default::default() }
}

/// A corpus of `genres` with `clips` clips of `seconds` s each.
fn corpus(root: &Path, genres: &[Genre], clips: usize, seconds: f64) -> PathBuf {
    let dir = root.join("corpus");
    let config = SynthCorpusConfig {
        clips_per_genre: clips,
        seconds,
        sample_rate: 22_050,
        genres: genres.to_vec(),
        ..Default::default()
    };
    write_corpus(&dir, &config, false).expect("synthetic corpus");
    dir
}

/// A fresh temporary folder with a corpus of `genres` × `clips` 4 s clips in `corpus/`, prepared
/// with `config` into `cache/`.
struct Prepared {
    /// Removes the folder when dropped.
    dir: tempfile::TempDir,
    corpus: PathBuf,
    out: PathBuf,
    report: PrepareReport,
}

fn prepared(genres: &[Genre], clips: usize, config: &PrepareConfig) -> Prepared {
    let dir = tempfile::tempdir().expect("tempdir");
    let corpus = corpus(dir.path(), genres, clips, 4.0);
    let out = dir.path().join("cache");
    let report = built(run(&corpus, &out, config, false).expect("prepare"));
    Prepared { dir, corpus, out, report }
}

fn built(outcome: PrepareOutcome) -> PrepareReport {
    match outcome {
        PrepareOutcome::Built(report) => *report,
        PrepareOutcome::UpToDate(_) => panic!("expected a build, the cache was up to date"),
    }
}

/// Every shard of the cache (training, then validation): file name and path.
fn shards(cache: &Path) -> Vec<(String, PathBuf)> {
    let index = CacheIndex::read(cache).expect("index");
    index.train.shards.iter().chain(&index.validation.shards).map(|s| (s.file.clone(), cache.join(&s.file))).collect()
}

fn shard_bytes(cache: &Path) -> Vec<(String, Vec<u8>)> {
    shards(cache).into_iter().map(|(file, path)| (file, std::fs::read(path).expect("shard"))).collect()
}

#[test]
fn tracks_never_straddle_the_split_and_the_output_is_deterministic() {
    let config = PrepareConfig { validation_fraction: 0.3, ..small_config() };
    let Prepared { dir, corpus, out, .. } = prepared(&[Genre::Cn, Genre::Edm, Genre::Orchestral], 3, &config);
    let cache = Cache::open(&out).expect("open");
    cache.verify_checksums().expect("checksums");
    assert_eq!(cache.genres(), ["cn", "edm", "orchestral"]);
    for split in Split::ALL {
        for segment in cache.segments(split) {
            let track = &cache.tracks()[segment.track];
            assert_eq!(track.split, split, "{} has a segment on the other side", track.path);
            assert_eq!(track.genre, segment.genre);
        }
    }
    for genre in 0..3 {
        for split in Split::ALL {
            assert!(cache.tracks().iter().any(|t| t.genre == genre && t.split == split), "genre {genre} lacks {split}");
        }
    }
    // 4 s clips, 2 s segments every 1 s → 3 segments per track.
    assert!(cache.tracks().iter().all(|t| t.segments == 3));
    let total: usize = Split::ALL.iter().map(|&s| cache.segments(s).len()).sum();
    assert_eq!(total, 27);

    // One thread gives byte-identical shards and the same index.
    let single = dir.path().join("single");
    let pool = rayon::ThreadPoolBuilder::new().num_threads(1).build().expect("pool");
    pool.install(|| run(&corpus, &single, &config, false)).expect("prepare on one thread");
    assert_eq!(CacheIndex::read(&single).expect("index"), *cache.index());
    assert_eq!(shard_bytes(&single), shard_bytes(&out));
    // Another seed moves tracks.
    let reseeded = dir.path().join("reseeded");
    run(&corpus, &reseeded, &PrepareConfig { split_seed: 1, ..config }, false).expect("prepare");
    let sides =
        |path: &Path| -> Vec<Split> { CacheIndex::read(path).expect("index").tracks.iter().map(|t| t.split).collect() };
    assert_ne!(sides(&reseeded), sides(&out));
}

fn write_wav(path: &Path, seconds: f64, rate: u32) {
    let spec =
        hound::WavSpec { channels: 1, sample_rate: rate, bits_per_sample: 16, sample_format: hound::SampleFormat::Int };
    let mut writer = hound::WavWriter::create(path, spec).expect("wav");
    for i in 0..(seconds * f64::from(rate)) as usize {
        writer.write_sample(((i as f32 * 0.05).sin() * 8000.0) as i16).expect("sample");
    }
    writer.finalize().expect("finalize");
}

#[test]
fn broken_and_short_files_are_skipped_and_reported() {
    let dir = tempfile::tempdir().expect("tempdir");
    let corpus = corpus(dir.path(), &[Genre::Cn, Genre::Edm], 2, 4.0);
    std::fs::write(corpus.join("cn/zero.wav"), b"").expect("write");
    let noise: Vec<u8> = (0..4096u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    std::fs::create_dir_all(corpus.join("edm/deeper")).expect("mkdir");
    std::fs::write(corpus.join("edm/deeper/noise.flac"), noise).expect("write");
    // Opus decodes since issue 14 (3 s: two 2 s segments); the .wma is no audio at all.
    let opus = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/tone_44k.opus");
    std::fs::copy(opus, corpus.join("edm/tone.opus")).expect("copy opus");
    std::fs::write(corpus.join("edm/tone.wma"), b"not a media file, only text ".repeat(64)).expect("write");
    write_wav(&corpus.join("cn/short.wav"), 1.5, 22_050);
    std::fs::write(corpus.join("cn/notes.txt"), b"liner notes").expect("write");
    let out = dir.path().join("cache");
    let report = built(run(&corpus, &out, &small_config(), false).expect("broken files are not fatal"));

    let reasons: Vec<(&str, &str)> = report.skipped.iter().map(|s| (s.path.as_str(), s.reason.as_str())).collect();
    assert_eq!(reasons.len(), 3, "{reasons:?}");
    assert_eq!(reasons[0], ("cn/zero.wav", "the file contains no audio samples"));
    assert_eq!(reasons[1].0, "edm/deeper/noise.flac");
    assert_eq!(reasons[2].0, "edm/tone.wma");
    assert!(reasons[2].1.contains("unsupported"), "{}", reasons[2].1);
    assert_eq!(report.too_short.len(), 1);
    assert_eq!(report.too_short[0].path, "cn/short.wav");
    assert!((report.too_short[0].seconds - 1.5).abs() < 0.01);
    let counts: Vec<(usize, usize, usize)> =
        report.genres.iter().map(|g| (g.skipped, g.too_short, g.ignored)).collect();
    assert_eq!(counts, [(1, 1, 1), (2, 0, 0)]);
    assert_eq!(report.total_train.tracks + report.total_validation.tracks, 5);
    let format = |name: &str| report.formats.get(name).copied().unwrap_or_default();
    assert_eq!(format("ogg/opus"), FormatCounts { used: 1, too_short: 0, skipped: 0, excluded: 0 });
    assert_eq!(format("unrecognised .wma").skipped, 1);
    assert_eq!(format("unrecognised .wav").skipped, 1, "{:?}", report.formats);
    assert_eq!(report.formats.values().map(|c| c.used + c.too_short + c.skipped).sum::<usize>(), 9);
    let saved: PrepareReport =
        serde_json::from_slice(&std::fs::read(out.join(REPORT_FILE)).expect("report.json")).expect("parse report");
    assert_eq!(saved, report);
    let text = report.to_string();
    assert!(text.contains("skipped edm/tone.wma") && text.contains("too short cn/short.wav"), "{text}");
    assert!(text.contains("format ogg/opus: 1 used, 0 too short, 0 skipped"), "{text}");
}

#[test]
fn values_read_back_equal_the_mel_within_f16_precision() {
    let config = small_config();
    let Prepared { dir: _dir, corpus, out, .. } = prepared(&[Genre::Edm, Genre::Orchestral], 2, &config);
    let cache = Cache::open(&out).expect("open");
    assert_eq!((cache.n_mels(), cache.frames()), (64, config.signal.model_frames()));
    assert_eq!(cache.signal(), &config.signal);
    let transform = MelSpectrogram::new(&config.signal).expect("transform");
    let frames = config.signal.model_frames();
    let range = cache.db_range();
    let mut normalized = vec![0.0f32; cache.n_mels() * frames];
    for split in Split::ALL {
        for (i, segment) in cache.segments(split).iter().enumerate() {
            let track = &cache.tracks()[segment.track];
            let samples = load_mono(&corpus.join(&track.path), config.signal.sample_rate).expect("decode");
            let r = segment_ranges(samples.len(), &config.signal)[segment.index].clone();
            assert_eq!(r.start as f64 / f64::from(config.signal.sample_rate), segment.start_seconds);
            let expected = transform.db(&samples[r]);
            let stored = cache.segment_db(split, i).expect("segment");
            for (&e, &s) in expected.slice(ndarray::s![.., ..frames]).iter().zip(stored.iter()) {
                // f16 keeps 11 significant bits: half an ulp is 2^-11 relative.
                assert!((e - s).abs() <= e.abs() * 2f32.powi(-11) + 1e-6, "{e} vs {s}");
            }
            cache.normalized_segment_into(split, i, &range, &mut normalized).expect("normalise");
            assert!(normalized.iter().all(|v| (0.0..=1.0).contains(v)));
        }
    }
    let len = cache.segments(Split::Train).len();
    assert!(matches!(cache.segment_db(Split::Train, len), Err(CacheError::NoSuchSegment { .. })));
    assert!(matches!(
        cache.normalized_segment_into(Split::Train, 0, &range, &mut [0.0; 3]),
        Err(CacheError::BufferSize { .. })
    ));
}

fn shard_mtimes(cache: &Path) -> Vec<SystemTime> {
    shards(cache)
        .into_iter()
        .map(|(_, path)| std::fs::metadata(path).and_then(|m| m.modified()).expect("mtime"))
        .collect()
}

#[test]
fn an_unchanged_corpus_reuses_the_cache_and_a_change_rebuilds_it() {
    let config = small_config();
    let Prepared { dir: _dir, corpus, out, .. } = prepared(&[Genre::Cn, Genre::Edm], 2, &config);
    let before = shard_mtimes(&out);
    match run(&corpus, &out, &config, false).expect("second run") {
        PrepareOutcome::UpToDate(index) => assert_eq!(index.genres, ["cn", "edm"]),
        PrepareOutcome::Built(_) => panic!("an unchanged corpus was rebuilt"),
    }
    assert_eq!(shard_mtimes(&out), before);

    // Touching a file changes its modification time: rebuild.
    let file = corpus.join("cn").read_dir().expect("list").flatten().next().expect("a clip").path();
    let later = SystemTime::now() + Duration::from_secs(5);
    std::fs::File::options().write(true).open(&file).and_then(|f| f.set_modified(later)).expect("touch");
    built(run(&corpus, &out, &config, false).expect("after touch"));
    // Adding a file: rebuild, with the new track in the index.
    write_wav(&corpus.join("edm/new.wav"), 3.0, 22_050);
    built(run(&corpus, &out, &config, false).expect("after adding"));
    assert!(Cache::open(&out).expect("open").tracks().iter().any(|t| t.path == "edm/new.wav"));
    // A changed setting rebuilds; --force rebuilds an up-to-date cache.
    built(run(&corpus, &out, &PrepareConfig { split_seed: 3, ..config.clone() }, false).expect("new seed"));
    built(run(&corpus, &out, &PrepareConfig { split_seed: 3, ..config }, true).expect("forced"));
    // Nothing of the builds is left behind but the cache itself.
    let mut names: Vec<String> = std::fs::read_dir(&out)
        .expect("list")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, [MARKER_FILE, INDEX_FILE, REPORT_FILE, "train", "validation"]);
}

#[test]
fn the_db_range_comes_from_the_training_split() {
    let config = small_config();
    let Prepared { dir: _dir, corpus, out, report } = prepared(&[Genre::Cn, Genre::Edm], 3, &config);
    let cache = Cache::open(&out).expect("open");
    let range = cache.db_range();
    assert_eq!(range, report.db_range);
    assert!(range.db_floor < range.db_ceiling);
    assert!(range.span() <= config.db_range.max_dynamic_range_db);
    let mut train_max = f32::NEG_INFINITY;
    for i in 0..cache.segments(Split::Train).len() {
        train_max = cache.segment_db(Split::Train, i).expect("segment").iter().fold(train_max, |m, &v| m.max(v));
    }
    assert_eq!(report.train_db_max, train_max);
    assert!(range.db_ceiling <= train_max && range.db_ceiling > train_max - 6.0, "{range:?} vs max {train_max}");
    // The 100th percentile is the maximum itself.
    let exact =
        PrepareConfig { db_range: DbRangeSettings { ceiling_percentile: 100.0, ..Default::default() }, ..config };
    built(run(&corpus, &out, &exact, false).expect("prepare"));
    assert_eq!(Cache::open(&out).expect("open").db_range().db_ceiling, train_max);
}

#[test]
fn foreign_folders_are_refused_and_empty_corpora_are_clear_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let corpus = corpus(dir.path(), &[Genre::Cn], 2, 3.0);
    let foreign = dir.path().join("photos");
    std::fs::create_dir_all(&foreign).expect("mkdir");
    std::fs::write(foreign.join("holiday.jpg"), b"jpeg").expect("write");
    let err = run(&corpus, &foreign, &small_config(), false).expect_err("foreign folder");
    assert!(matches!(err, PrepareError::OutDirNotEmpty(_)), "{err}");
    assert!(err.to_string().contains("--force"));
    // --force writes the cache beside the user's file and keeps it.
    built(run(&corpus, &foreign, &small_config(), true).expect("forced"));
    assert!(foreign.join("holiday.jpg").is_file());
    Cache::open(&foreign).expect("open");

    let flat = dir.path().join("flat");
    std::fs::create_dir_all(&flat).expect("mkdir");
    write_wav(&flat.join("song.wav"), 3.0, 22_050);
    let err = run(&flat, &dir.path().join("c1"), &small_config(), false).expect_err("no genre folders");
    assert!(matches!(err, PrepareError::Corpus(CorpusError::NoGenreFolders(_))), "{err}");

    std::fs::create_dir_all(flat.join("ambient")).expect("mkdir");
    write_wav(&flat.join("ambient/tiny.wav"), 0.5, 22_050);
    let err = run(&flat, &dir.path().join("c2"), &small_config(), false).expect_err("nothing usable");
    assert!(matches!(err, PrepareError::NoUsableAudio { too_short: 1, .. }), "{err}");
}

#[test]
fn damaged_caches_are_detected_and_rebuilt() {
    let config = small_config();
    let Prepared { dir: _dir, corpus, out, .. } = prepared(&[Genre::Cn, Genre::Edm], 2, &config);
    let shard = out.join(shard_file_name(Split::Train, 0));
    let mut bytes = std::fs::read(&shard).expect("read");
    bytes[10] ^= 0xff;
    std::fs::write(&shard, &bytes).expect("write");
    let cache = Cache::open(&out).expect("sizes still match");
    assert!(matches!(cache.verify_checksums(), Err(CacheError::Checksum { .. })));
    drop(cache);
    bytes.truncate(bytes.len() - 2);
    std::fs::write(&shard, &bytes).expect("write");
    let err = Cache::open(&out).expect_err("truncated shard");
    assert!(matches!(err, CacheError::Inconsistent { .. }), "{err}");
    // prepare notices and rebuilds although the corpus is unchanged.
    built(run(&corpus, &out, &config, false).expect("rebuild"));
    Cache::open(&out).expect("open").verify_checksums().expect("checksums");
}

#[test]
fn invalid_settings_name_the_field() {
    let cases = [
        (PrepareConfig { validation_fraction: -0.1, ..Default::default() }, "validation_fraction"),
        (PrepareConfig { segments_per_shard: 0, ..Default::default() }, "segments_per_shard"),
        (
            PrepareConfig {
                db_range: DbRangeSettings { floor_percentile: 99.999, ..Default::default() },
                ..Default::default()
            },
            "floor_percentile",
        ),
        (PrepareConfig { extensions: vec![".wav".into()], ..Default::default() }, "extensions"),
        (PrepareConfig { min_track_seconds: -1.0, ..Default::default() }, "min_track_seconds"),
        (PrepareConfig { min_segment_rms_dbfs: Some(3.0), ..Default::default() }, "min_segment_rms_dbfs"),
    ];
    for (config, field) in cases {
        match config.validate() {
            Err(PrepareError::InvalidConfig { name, .. }) => assert_eq!(name, field),
            other => panic!("{field}: expected InvalidConfig, got {other:?}"),
        }
    }
    PrepareConfig::default().validate().expect("defaults are valid");
    let debian: PrepareConfig = crate::config_file::load_config(Some(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/debian/prepare.toml"),
    ))
    .expect("configs/debian/prepare.toml");
    debian.validate().expect("the Debian corpus settings validate");
    assert_eq!((debian.min_track_seconds, debian.min_segment_rms_dbfs), (45.0, Some(-50.0)));
    let toml: PrepareConfig = toml::from_str("[signal]\nn_mels = 80\n").expect("partial toml");
    assert_eq!((toml.signal.n_mels, toml.segments_per_shard), (80, 256));
}

/// A 16-bit mono WAV whose amplitude (full scale = 1) is `gain(t)` at second `t`.
fn write_enveloped_wav(path: &Path, seconds: f64, rate: u32, gain: impl Fn(f64) -> f64) {
    let spec =
        hound::WavSpec { channels: 1, sample_rate: rate, bits_per_sample: 16, sample_format: hound::SampleFormat::Int };
    let mut writer = hound::WavWriter::create(path, spec).expect("wav");
    for i in 0..(seconds * f64::from(rate)) as usize {
        let t = i as f64 / f64::from(rate);
        writer.write_sample(((t * 2200.0).sin() * gain(t) * 32767.0) as i16).expect("sample");
    }
    writer.finalize().expect("finalize");
}

#[test]
fn short_tracks_and_quiet_segments_are_left_out_and_counted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let corpus = corpus(dir.path(), &[Genre::Cn, Genre::Edm], 2, 6.0);
    // 6 s with a silent tail: segments start at 0..4 s, the two from 3 s on are near-silent.
    write_enveloped_wav(&corpus.join("cn/fades.wav"), 6.0, 22_050, |t| if t < 2.9 { 0.3 } else { 1e-4 });
    write_enveloped_wav(&corpus.join("edm/quiet.wav"), 6.0, 22_050, |_| 1e-4);
    write_wav(&corpus.join("edm/loop.wav"), 3.0, 22_050);
    let plain = built(run(&corpus, &dir.path().join("plain"), &small_config(), false).expect("prepare"));
    assert_eq!((plain.excluded.len(), plain.quiet_segments), (0, 0), "the gates are off by default");

    let config = PrepareConfig { min_track_seconds: 4.0, min_segment_rms_dbfs: Some(-50.0), ..small_config() };
    let out = dir.path().join("gated");
    let report = built(run(&corpus, &out, &config, false).expect("prepare"));
    let excluded: Vec<(&str, &str)> = report.excluded.iter().map(|s| (s.path.as_str(), s.reason.as_str())).collect();
    assert_eq!(excluded.len(), 2, "{excluded:?}");
    assert_eq!(excluded[0], ("edm/loop.wav", "3.0 s is shorter than min_track_seconds = 4 s"));
    assert_eq!(excluded[1].0, "edm/quiet.wav");
    assert!(excluded[1].1.starts_with("all 5 segments are quieter than"), "{}", excluded[1].1);
    let fades = report.genres.iter().find(|g| g.name == "cn").expect("cn");
    assert_eq!((fades.quiet_segments, fades.excluded), (2, 0));
    assert_eq!(report.quiet_segments, 7);
    let cache = Cache::open(&out).expect("open");
    let track = cache.tracks().iter().position(|t| t.path == "cn/fades.wav").expect("fades kept");
    let starts: Vec<f64> = Split::ALL
        .iter()
        .flat_map(|&s| {
            cache.segments(s).iter().filter(|x| x.track == track).map(|x| x.start_seconds).collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(starts, [0.0, 1.0, 2.0]);
    // Minutes per genre: what was used, both sides.
    let cn_minutes = (fades.train.seconds + fades.validation.seconds) / 60.0;
    assert!(
        (fades.minutes - cn_minutes).abs() < 1e-9 && (fades.minutes - 18.0 / 60.0).abs() < 1e-3,
        "{}",
        fades.minutes
    );
    let text = report.to_string();
    assert!(text.contains("excluded edm/loop.wav: 3.0 s is shorter"), "{text}");
    assert!(
        text.contains("minutes per genre (train + validation): cn 0.3") && text.contains("quiet segments dropped: 7")
    );
    // Gates off serialise as before, so older caches keep their fingerprint.
    let json = serde_json::to_string(&small_config()).expect("json");
    assert!(!json.contains("min_track_seconds") && !json.contains("min_segment_rms_dbfs"), "{json}");
}
