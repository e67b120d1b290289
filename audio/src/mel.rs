//! Mel spectrograms: samples → power STFT → mel bands → dB, and the model's
//! normalised input. Equal to `librosa.feature.melspectrogram(center=True,
//! pad_mode='reflect', power=2)` followed by `power_to_db(ref=1.0,
//! top_db=None)` on the same samples.

use ndarray::Array2;

use crate::config::SignalConfig;
use crate::error::AudioError;
use crate::mel_filterbank::MelFilterbank;
use crate::normalization::DbRange;
use crate::stft::Stft;

/// The forward transform of one [`SignalConfig`], planned once and reused
/// for every clip (it is `Send + Sync`).
#[derive(Debug, Clone)]
pub struct MelSpectrogram {
    config: SignalConfig,
    stft: Stft,
    filterbank: MelFilterbank,
}

impl MelSpectrogram {
    /// Validates `config` and plans the STFT and filterbank it describes.
    pub fn new(config: &SignalConfig) -> Result<Self, AudioError> {
        config.validate()?;
        Ok(Self {
            config: config.clone(),
            stft: Stft::new(config.n_fft, config.hop_length)?,
            filterbank: MelFilterbank::new(
                config.sample_rate,
                config.n_fft,
                config.n_mels,
                config.fmin,
                config.fmax_hz(),
            )?,
        })
    }

    /// The parameters this transform was built from.
    pub fn config(&self) -> &SignalConfig {
        &self.config
    }

    /// The planned STFT.
    pub fn stft(&self) -> &Stft {
        &self.stft
    }

    /// The mel filterbank.
    pub fn filterbank(&self) -> &MelFilterbank {
        &self.filterbank
    }

    /// Mel power spectrogram `[n_mels, frames]` of samples at `sample_rate`.
    pub fn power(&self, samples: &[f32]) -> Array2<f32> {
        let frame_major = self.stft.map_frames(samples, self.filterbank.n_mels(), |spectrum, mel| {
            self.filterbank.apply_power_frame(spectrum, mel)
        });
        frame_major.reversed_axes().as_standard_layout().into_owned()
    }

    /// Mel spectrogram in dB, `[n_mels, frames]`.
    pub fn db(&self, samples: &[f32]) -> Array2<f32> {
        power_to_db(&self.power(samples), self.config.amin)
    }

    /// The model's input for one segment: dB mel normalised with `range`
    /// and cropped to a whole multiple of `frame_multiple` frames.
    pub fn model_input(&self, segment: &[f32], range: &DbRange) -> Array2<f32> {
        let db = self.db(segment);
        let frames = db.ncols() - db.ncols() % self.config.frame_multiple.max(1);
        range.normalize(&db.slice(ndarray::s![.., ..frames]).to_owned())
    }
}

/// Power → dB: `10·log10(max(amin, S))` with reference 1.0 and no `top_db`
/// clipping (the model's [`DbRange`] does the clipping).
pub fn power_to_db(power: &Array2<f32>, amin: f32) -> Array2<f32> {
    power.mapv(|p| 10.0 * p.max(amin).log10())
}

/// dB → power, the inverse of [`power_to_db`] above `amin`.
pub fn db_to_power(db: &Array2<f32>) -> Array2<f32> {
    db.mapv(|d| 10f32.powf(d / 10.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small_config() -> SignalConfig {
        SignalConfig {
            sample_rate: 16_000,
            n_fft: 512,
            hop_length: 128,
            n_mels: 40,
            segment_seconds: 1.0,
            overlap_seconds: 0.0,
            frame_multiple: 8,
            ..Default::default()
        }
    }

    #[test]
    fn a_tone_lands_in_the_band_around_its_frequency() {
        let cfg = small_config();
        let mel = MelSpectrogram::new(&cfg).unwrap();
        let tone: Vec<f32> =
            (0..16_000).map(|i| (2.0 * std::f32::consts::PI * 2000.0 * i as f32 / 16_000.0).sin()).collect();
        let db = mel.db(&tone);
        assert_eq!(db.dim(), (40, 126));
        let column = db.column(60);
        let loudest = column.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).unwrap().0;
        let centre_hz =
            crate::mel_filterbank::mel_to_hz(crate::mel_filterbank::hz_to_mel(8000.0) * (loudest + 1) as f64 / 41.0);
        assert!((centre_hz - 2000.0).abs() < 150.0, "band {loudest} centred at {centre_hz} Hz");
    }

    #[test]
    fn silence_is_the_amin_floor() {
        let cfg = small_config();
        let db = MelSpectrogram::new(&cfg).unwrap().db(&[0.0; 4000]);
        assert!(db.iter().all(|&v| (v + 100.0).abs() < 1e-4));
    }

    #[test]
    fn model_input_is_cropped_and_in_unit_range() {
        let cfg = small_config();
        let mel = MelSpectrogram::new(&cfg).unwrap();
        let noise: Vec<f32> =
            (0..16_000u32).map(|i| ((i.wrapping_mul(2_654_435_761) >> 16) as f32 / 65_536.0) - 0.5).collect();
        let x = mel.model_input(&noise, &DbRange::new(-60.0, 20.0).unwrap());
        assert_eq!(x.dim(), (40, 120));
        assert!(x.iter().all(|v| (0.0..=1.0).contains(v)));
    }

    #[test]
    fn db_round_trip() {
        let p = ndarray::array![[1e-3f32, 1.0, 250.0]];
        let back = db_to_power(&power_to_db(&p, 1e-10));
        for (a, b) in p.iter().zip(back.iter()) {
            assert!((a - b).abs() <= 1e-5 * a);
        }
    }

    #[test]
    fn rejects_an_invalid_config() {
        let cfg = SignalConfig { n_mels: 0, ..small_config() };
        assert!(MelSpectrogram::new(&cfg).is_err());
    }
}
