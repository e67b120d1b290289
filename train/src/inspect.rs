//! `melfuse-train mel`: the dB mel spectrogram of one file (or one of its
//! training segments) as `.npy` and/or `.png`, to look at what the model
//! will see.

use std::path::{Path, PathBuf};

use melfuse_audio::atomic_file::write_atomically;
use melfuse_audio::load::load_mono;
use melfuse_audio::segment::segment_ranges;
use melfuse_audio::spectrogram_image::encode_db_spectrogram_png;
use melfuse_audio::{AudioError, MelSpectrogram, SignalConfig};
use ndarray::Array2;
use ndarray_npy::WriteNpyExt;

/// Range shown in spectrogram pictures, in dB below the loudest bin.
pub const PICTURE_DYNAMIC_RANGE_DB: f32 = 80.0;

/// Why `mel` could not produce its output.
#[derive(Debug, thiserror::Error)]
pub enum InspectError {
    /// Decoding, resampling or the transform failed.
    #[error(transparent)]
    Audio(#[from] AudioError),
    /// The asked-for segment does not exist.
    #[error("segment {asked} does not exist: the file has {available} segments of {seconds} s")]
    NoSuchSegment {
        /// The index asked for.
        asked: usize,
        /// How many there are.
        available: usize,
        /// Segment length.
        seconds: f32,
    },
    /// An output path whose extension is neither `.npy` nor `.png`.
    #[error("cannot tell the format of {0}: use a .npy or .png extension")]
    UnknownOutputFormat(PathBuf),
    /// Encoding the `.npy` file failed.
    #[error("cannot encode {path}: {detail}")]
    Npy {
        /// The output.
        path: PathBuf,
        /// The encoder's message.
        detail: String,
    },
}

/// Output formats of `mel`, chosen by file extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MelOutputFormat {
    /// float32 dB `[n_mels, frames]`, readable with `numpy.load`.
    Npy,
    /// Colour-mapped picture, low frequencies at the bottom.
    Png,
}

impl MelOutputFormat {
    /// The format `path`'s extension names.
    pub fn of(path: &Path) -> Result<Self, InspectError> {
        match path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).as_deref() {
            Some("npy") => Ok(Self::Npy),
            Some("png") => Ok(Self::Png),
            _ => Err(InspectError::UnknownOutputFormat(path.to_path_buf())),
        }
    }
}

/// The dB mel of `input` (whole, or segment `segment` of it) under `signal`.
pub fn file_mel_db(input: &Path, signal: &SignalConfig, segment: Option<usize>) -> Result<Array2<f32>, InspectError> {
    let transform = MelSpectrogram::new(signal)?;
    let samples = load_mono(input, signal.sample_rate)?;
    let samples = match segment {
        None => &samples[..],
        Some(asked) => {
            let ranges = segment_ranges(samples.len(), signal);
            let range = ranges.get(asked).cloned().ok_or(InspectError::NoSuchSegment {
                asked,
                available: ranges.len(),
                seconds: signal.segment_seconds,
            })?;
            &samples[range]
        }
    };
    Ok(transform.db(samples))
}

/// Writes `db` to every path in `outputs`, each in the format its extension
/// names; all extensions are checked before anything is written.
pub fn write_mel_outputs(db: &Array2<f32>, outputs: &[PathBuf]) -> Result<(), InspectError> {
    let formats = outputs.iter().map(|p| MelOutputFormat::of(p)).collect::<Result<Vec<_>, _>>()?;
    for (path, format) in outputs.iter().zip(formats) {
        let bytes = match format {
            MelOutputFormat::Npy => {
                let mut bytes = Vec::new();
                db.write_npy(&mut bytes)
                    .map_err(|e| InspectError::Npy { path: path.clone(), detail: e.to_string() })?;
                bytes
            }
            MelOutputFormat::Png => encode_db_spectrogram_png(db.view(), PICTURE_DYNAMIC_RANGE_DB)?,
        };
        write_atomically(path, &bytes)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray_npy::read_npy;

    fn tone_file(dir: &Path, seconds: f32, rate: u32) -> PathBuf {
        let path = dir.join("tone.wav");
        let samples: Vec<f32> = (0..(seconds * rate as f32) as usize)
            .map(|i| 0.3 * (std::f32::consts::TAU * 440.0 * i as f32 / rate as f32).sin())
            .collect();
        melfuse_audio::wav::write_wav_pcm16(&path, &samples, rate).unwrap();
        path
    }

    fn small_signal() -> SignalConfig {
        SignalConfig {
            sample_rate: 16_000,
            n_fft: 512,
            hop_length: 128,
            n_mels: 40,
            segment_seconds: 1.0,
            overlap_seconds: 0.5,
            ..Default::default()
        }
    }

    #[test]
    fn whole_file_and_segment_shapes() {
        let dir = tempfile::tempdir().unwrap();
        let input = tone_file(dir.path(), 2.0, 22_050);
        let signal = small_signal();
        let whole = file_mel_db(&input, &signal, None).unwrap();
        assert_eq!(whole.dim(), (40, 32_000 / 128 + 1));
        let second = file_mel_db(&input, &signal, Some(2)).unwrap();
        assert_eq!(second.dim(), (40, 16_000 / 128 + 1));
        match file_mel_db(&input, &signal, Some(3)) {
            Err(InspectError::NoSuchSegment { asked: 3, available: 3, .. }) => {}
            other => panic!("expected NoSuchSegment, got {other:?}"),
        }
    }

    #[test]
    fn writes_npy_and_png_and_checks_extensions_first() {
        let dir = tempfile::tempdir().unwrap();
        let db = Array2::from_shape_fn((8, 5), |(m, f)| -((m + f) as f32));
        let (npy, png) = (dir.path().join("a.npy"), dir.path().join("a.PNG"));
        write_mel_outputs(&db, &[npy.clone(), png.clone()]).unwrap();
        assert_eq!(read_npy::<_, Array2<f32>>(&npy).unwrap(), db);
        assert_eq!(png_size(&png), (5, 8));
        let bad = dir.path().join("b.jpg");
        assert!(matches!(
            write_mel_outputs(&db, &[dir.path().join("b.npy"), bad]),
            Err(InspectError::UnknownOutputFormat(_))
        ));
        assert!(!dir.path().join("b.npy").exists(), "nothing is written when one output is invalid");
    }

    /// Width and height from a PNG's IHDR chunk.
    fn png_size(path: &Path) -> (u32, u32) {
        let bytes = std::fs::read(path).unwrap();
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
        let be = |b: &[u8]| u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
        (be(&bytes[16..20]), be(&bytes[20..24]))
    }

    #[test]
    fn a_broken_file_is_a_typed_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.wav");
        std::fs::write(&path, b"").unwrap();
        assert!(matches!(file_mel_db(&path, &small_signal(), None), Err(InspectError::Audio(_))));
    }
}
