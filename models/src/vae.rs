//! The variational autoencoder: [`VaeConfig`] (with the `tiny` and `paper` presets and
//! validation) and [`Vae`] (encode, reparameterise, decode).

use burn::prelude::*;
use burn::tensor::Distribution;

use crate::decoder::{Decoder, DecoderConfig};
use crate::encoder::{Encoder, EncoderConfig, LatentHead, Stem};
use crate::error::VaeConfigError;
use crate::{latent_grid, DOWNSAMPLING};

/// Stages of the ResNet18 encoder (`widths` and `blocks` have this many entries).
pub const ENCODER_STAGES: usize = 4;
/// Upsampling blocks of the decoder at the default ÷32 latent grid (`decoder_widths` has this
/// many entries); 2⁵ = 32. A ÷16 grid has one fewer, ÷8 two fewer ([`VaeConfig::decoder_stages`]).
pub const DECODER_STAGES: usize = 5;
/// The latent grids a model may have: `n_mels` and `frames` divided by one of these.
pub const LATENT_DOWNSAMPLINGS: [usize; 3] = [8, 16, 32];
/// Default lower clamp of `logvar`: `exp(-10)` ≈ 4.5e-5, a posterior std of ≈ 0.007.
pub const DEFAULT_LOGVAR_MIN: f64 = -10.0;
/// Default upper clamp of `logvar`: `exp(10)` ≈ 2.2e4, far above the prior's 1 yet finite in f32.
pub const DEFAULT_LOGVAR_MAX: f64 = 10.0;

/// Everything that shapes a [`Vae`]. Field defaults are the `paper` preset; [`VaeConfig::tiny`]
/// is the CPU-sized one. Serialises to JSON/TOML through serde.
#[derive(Config, Debug)]
pub struct VaeConfig {
    /// Mel bands (image height), a multiple of 32.
    pub n_mels: usize,
    /// Frames (image width), a multiple of 32 (15 s at 44.1 kHz, hop 512 → 1280).
    pub frames: usize,
    /// Genres in the conditioning mixture vector.
    pub n_genres: usize,
    /// Latent size `Z`. Large by default: the seed study's reconstructions were blurred by a
    /// too-small latent, and the flatten head can feed a wide one cheaply.
    #[config(default = 256)]
    pub latent_dim: usize,
    /// Channels of the four encoder stages (ResNet18: 64, 128, 256, 512).
    #[config(default = "vec![64, 128, 256, 512]")]
    pub widths: Vec<usize>,
    /// BasicBlocks per encoder stage (ResNet18: 2, 2, 2, 2).
    #[config(default = "vec![2, 2, 2, 2]")]
    pub blocks: Vec<usize>,
    /// Encoder stem.
    #[config(default = "Stem::Wide")]
    pub stem: Stem,
    /// How the encoder's last feature map becomes the latent vector.
    #[config(default = "LatentHead::Flatten")]
    pub latent_head: LatentHead,
    /// Channels of the small map between the convolutions and the latent linears, on both sides
    /// (encoder: 1×1 reduction before flattening; decoder: the reshaped projection).
    #[config(default = 32)]
    pub head_channels: usize,
    /// Decoder channels after the 1×1 expansion of the projected latent.
    #[config(default = 512)]
    pub decoder_base_channels: usize,
    /// Output channels of the decoder upsampling blocks, one per halving of the latent grid
    /// (five at ÷32).
    #[config(default = "vec![256, 128, 64, 32, 32]")]
    pub decoder_widths: Vec<usize>,
    /// How much smaller than the mel image the latent grid is: 32 (the ResNet18 encoder's own
    /// ÷32), 16 or 8, where the last one or two encoder stages keep their resolution and the
    /// decoder has one or two fewer upsampling blocks. A finer grid puts each code closer to the
    /// detail it describes (see the crate docs for the measurement).
    #[config(default = 32)]
    pub latent_downsampling: usize,
    /// Lower clamp of the encoder's `logvar`.
    #[config(default = "DEFAULT_LOGVAR_MIN")]
    pub logvar_min: f64,
    /// Upper clamp of the encoder's `logvar`.
    #[config(default = "DEFAULT_LOGVAR_MAX")]
    pub logvar_max: f64,
}

impl VaeConfig {
    /// The full-size model of the design: 128 mels × 1280 frames (15 s), ResNet18 widths
    /// 64–512 with the 7×7 stem, latent 256.
    pub fn paper(n_genres: usize) -> Self {
        Self::new(128, 1280, n_genres)
    }

    /// A CPU-sized model for tests, demos and the synthetic corpus: 64 mels × 320 frames
    /// (≈ 3.7 s at 22.05 kHz, hop 256), widths 16–128 with the cheap 3×3 stem, latent 64.
    pub fn tiny(n_genres: usize) -> Self {
        Self::new(64, 320, n_genres)
            .with_latent_dim(64)
            .with_widths(vec![16, 32, 64, 128])
            .with_stem(Stem::Narrow)
            .with_head_channels(16)
            .with_decoder_base_channels(128)
            .with_decoder_widths(vec![64, 32, 32, 16, 8])
    }

    /// Upsampling blocks of the decoder: log₂ of `latent_downsampling` (5 at ÷32).
    pub fn decoder_stages(&self) -> usize {
        self.latent_downsampling.trailing_zeros() as usize
    }

    /// Checks every field the architecture constrains; the error names the first bad field.
    pub fn validate(&self) -> Result<(), VaeConfigError> {
        if !LATENT_DOWNSAMPLINGS.contains(&self.latent_downsampling) {
            return Err(VaeConfigError::LatentDownsampling { value: self.latent_downsampling });
        }
        for (field, value) in [("n_mels", self.n_mels), ("frames", self.frames)] {
            if value == 0 || value % DOWNSAMPLING != 0 {
                return Err(VaeConfigError::NotMultipleOf32 { field, value });
            }
        }
        for (field, value) in [
            ("n_genres", self.n_genres),
            ("latent_dim", self.latent_dim),
            ("head_channels", self.head_channels),
            ("decoder_base_channels", self.decoder_base_channels),
        ] {
            if value == 0 {
                return Err(VaeConfigError::Zero { field });
            }
        }
        for (field, list, expected) in [
            ("widths", &self.widths, ENCODER_STAGES),
            ("blocks", &self.blocks, ENCODER_STAGES),
            ("decoder_widths", &self.decoder_widths, self.decoder_stages()),
        ] {
            if list.len() != expected {
                return Err(VaeConfigError::WrongLength { field, expected, actual: list.len() });
            }
            if let Some(index) = list.iter().position(|&entry| entry == 0) {
                return Err(VaeConfigError::ZeroEntry { field, index });
            }
        }
        let (grid_height, grid_width) = latent_grid(self.n_mels, self.frames, self.latent_downsampling);
        let cells = grid_height * grid_width;
        if self.latent_head.is_map() && !self.latent_dim.is_multiple_of(cells) {
            let example = self.latent_dim.div_ceil(cells) * cells;
            return Err(VaeConfigError::LatentMapSize { latent_dim: self.latent_dim, cells, example });
        }
        let range_ok = self.logvar_min.is_finite() && self.logvar_max.is_finite() && self.logvar_min < self.logvar_max;
        if !range_ok {
            return Err(VaeConfigError::LogvarRange { min: self.logvar_min, max: self.logvar_max });
        }
        Ok(())
    }

    /// The encoder part of this config.
    pub fn encoder_config(&self) -> EncoderConfig {
        EncoderConfig::new(
            self.n_mels,
            self.frames,
            self.latent_dim,
            self.widths.clone(),
            self.blocks.clone(),
            self.stem,
            self.latent_head,
            self.head_channels,
            self.logvar_min,
            self.logvar_max,
        )
        .with_latent_downsampling(self.latent_downsampling)
    }

    /// The decoder part of this config.
    pub fn decoder_config(&self) -> DecoderConfig {
        DecoderConfig::new(
            self.n_mels,
            self.frames,
            self.latent_dim,
            self.n_genres,
            self.head_channels,
            self.decoder_base_channels,
            self.decoder_widths.clone(),
        )
        .with_latent_map(self.latent_head.is_map())
        .with_latent_downsampling(self.latent_downsampling)
    }

    /// Validates the config, then builds a freshly initialised model on `device`.
    ///
    /// The model trains on an autodiff device (`Device::….autodiff()`); call
    /// [`Module::valid`] on it for inference so BatchNorm uses its running statistics.
    pub fn init(&self, device: &Device) -> Result<Vae, VaeConfigError> {
        self.validate()?;
        Ok(Vae { encoder: self.encoder_config().init(device), decoder: self.decoder_config().init(device) })
    }
}

/// Everything one forward pass produces, for the loss and for logging.
#[derive(Debug, Clone)]
pub struct VaeOutput {
    /// Decoded image `[B, 1, n_mels, frames]` in `(0, 1)`.
    pub reconstruction: Tensor<4>,
    /// Posterior mean `[B, Z]`.
    pub mu: Tensor<2>,
    /// Posterior log-variance `[B, Z]`, already clamped to the config's range.
    pub logvar: Tensor<2>,
    /// The sampled latent `mu + eps · exp(logvar / 2)`, `[B, Z]`.
    pub z: Tensor<2>,
}

/// The genre-conditioned VAE.
///
/// # Training and inference mode
///
/// BatchNorm normalises with batch statistics (and updates its running averages) only when the
/// input lives on an autodiff device *and* the module is in training state; otherwise it uses the
/// running statistics, which makes every row of a batch independent of the others. So: build
/// and train the model on `device.autodiff()`, and call [`Module::valid`] (it returns a copy
/// without autodiff or training flags) before encoding centroids, decoding, or exporting.
#[derive(Module, Debug)]
pub struct Vae {
    /// Image → posterior.
    pub encoder: Encoder,
    /// Latent + genre mixture → image.
    pub decoder: Decoder,
}

impl Vae {
    /// Latent size `Z`.
    pub fn latent_dim(&self) -> usize {
        self.encoder.latent_dim
    }

    /// `x: [B, 1, n_mels, frames]` in `[0, 1]` → `(mu, logvar)`, both `[B, Z]`.
    pub fn encode(&self, input: Tensor<4>) -> (Tensor<2>, Tensor<2>) {
        self.encoder.forward(input)
    }

    /// The reparameterisation trick `z = mu + eps · exp(logvar / 2)`. The caller passes `eps`
    /// (standard normal, `[B, Z]`) so that training is reproducible and gradients reach `mu` and
    /// `logvar`; `logvar` is clamped to the encoder's range first.
    pub fn reparameterize(&self, mu: Tensor<2>, logvar: Tensor<2>, eps: Tensor<2>) -> Tensor<2> {
        let std = logvar.clamp(self.encoder.logvar_min, self.encoder.logvar_max).mul_scalar(0.5).exp();
        mu + eps * std
    }

    /// Draws `eps ~ N(0, I)` of shape `[batch_size, Z]` from the backend's RNG on `device`.
    /// Seed it once with `device.seed(seed)` for a reproducible sequence.
    pub fn sample_eps(&self, batch_size: usize, device: &Device) -> Tensor<2> {
        Tensor::random([batch_size, self.latent_dim()], Distribution::Normal(0.0, 1.0), device)
    }

    /// `z: [B, Z]`, `genre: [B, G]` → `[B, 1, n_mels, frames]` in `(0, 1)`.
    pub fn decode(&self, z: Tensor<2>, genre: Tensor<2>) -> Tensor<4> {
        self.decoder.forward(z, genre)
    }

    /// Encode, reparameterise with `eps`, decode with `genre`.
    pub fn forward(&self, input: Tensor<4>, genre: Tensor<2>, eps: Tensor<2>) -> VaeOutput {
        let (mu, logvar) = self.encode(input);
        let z = self.reparameterize(mu.clone(), logvar.clone(), eps);
        let reconstruction = self.decode(z.clone(), genre);
        VaeOutput { reconstruction, mu, logvar, z }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{autodiff_device, device, max_abs_diff, one_hot, small_config, values};

    fn check_shapes(config: &VaeConfig, batch: usize) {
        let device = device();
        let model = config.init(&device).expect("valid config");
        let input = Tensor::<4>::random([batch, 1, config.n_mels, config.frames], Distribution::Default, &device);
        let genre = one_hot(&vec![0; batch], config.n_genres, &device);

        let (mu, logvar) = model.encode(input.clone());
        assert_eq!(mu.dims(), [batch, config.latent_dim]);
        assert_eq!(logvar.dims(), [batch, config.latent_dim]);

        let decoded = model.decode(mu.clone(), genre.clone());
        assert_eq!(decoded.dims(), [batch, 1, config.n_mels, config.frames]);

        let eps = model.sample_eps(batch, &device);
        let output = model.forward(input, genre, eps);
        assert_eq!(output.reconstruction.dims(), [batch, 1, config.n_mels, config.frames]);
        assert_eq!(output.z.dims(), [batch, config.latent_dim]);
        assert_eq!(output.mu.dims(), [batch, config.latent_dim]);
    }

    #[test]
    fn tiny_preset_shapes_for_batch_1_and_3() {
        for batch in [1, 3] {
            check_shapes(&VaeConfig::tiny(3), batch);
        }
    }

    #[test]
    fn non_square_config_shapes_for_batch_1_and_3() {
        for batch in [1, 3] {
            check_shapes(&small_config(2), batch);
        }
    }

    #[test]
    fn wide_stem_and_average_pool_head_shapes() {
        let config = small_config(2).with_stem(Stem::Wide).with_latent_head(LatentHead::GlobalAveragePool);
        check_shapes(&config, 2);
    }

    /// The small config with a latent map: a 1×2 grid of 8 channels (Z = 16).
    fn map_config(n_genres: usize) -> VaeConfig {
        small_config(n_genres).with_latent_head(LatentHead::Map)
    }

    #[test]
    fn latent_map_head_shapes_for_batch_1_and_3() {
        for batch in [1, 3] {
            check_shapes(&map_config(2), batch);
            check_shapes(&VaeConfig::tiny(4).with_latent_head(LatentHead::Map).with_latent_dim(640), batch);
        }
        let model = map_config(2).init(&device()).expect("valid config");
        assert_eq!((model.latent_dim(), model.decoder.latent_channels), (16, 8));
        assert_eq!(model.encoder.mu.weight.dims(), [32, 8], "one 1×1 projection shared by every cell");
    }

    #[test]
    fn finer_latent_grids_keep_the_resolution_of_the_last_stages() {
        for (downsampling, stages) in [(16, 4), (8, 3)] {
            let widths = vec![16, 8, 8, 8, 8][..stages].to_vec();
            let config = map_config(2).with_latent_downsampling(downsampling).with_decoder_widths(widths);
            let cells = (32 / downsampling) * (64 / downsampling);
            let config = config.with_latent_dim(4 * cells);
            check_shapes(&config, 2);
            let model = config.init(&device()).expect("valid config");
            assert_eq!(model.decoder.blocks.len(), stages);
            assert_eq!((model.decoder.grid_height, model.decoder.grid_width), (32 / downsampling, 64 / downsampling));
        }
    }

    #[test]
    fn a_latent_map_decodes_each_stretch_of_time_from_its_own_cells() {
        // 32 mels × 256 frames: a 1×8 grid. Changing the first cell's code may only reach the
        // frames the decoder's receptive field allows (≈ 2 cells: two 3×3 convs per ×2 stage).
        let config = VaeConfig { frames: 256, ..map_config(2) }.with_latent_dim(64);
        let device = device();
        let model = config.init(&device).expect("valid config");
        let z = Tensor::<2>::random([1, 64], Distribution::Normal(0.0, 1.0), &device);
        let genre = one_hot(&[1], 2, &device);
        // Channel-major flattening: cell (0, 0) of channel c is element c · 8.
        let mut changed = values(z.clone());
        for channel in 0..8 {
            changed[channel * 8] += 3.0;
        }
        let changed = Tensor::<2>::from_data(TensorData::new(changed, [1, 64]), &device);
        let before = model.decode(z, genre.clone());
        let after = model.decode(changed, genre);
        let near =
            max_abs_diff(before.clone().slice(s![.., .., .., 0..32]), after.clone().slice(s![.., .., .., 0..32]));
        let far = max_abs_diff(before.slice(s![.., .., .., 96..256]), after.slice(s![.., .., .., 96..256]));
        assert!(near > 1e-4, "the changed cell must change its own frames ({near})");
        assert_eq!(far, 0.0, "frames three cells away changed");
    }

    #[test]
    fn decoder_output_is_inside_the_unit_interval() {
        let device = device();
        let config = small_config(3);
        let model = config.init(&device).expect("valid config");
        let z = Tensor::<2>::random([4, config.latent_dim], Distribution::Normal(0.0, 3.0), &device);
        let output = values(model.decode(z, one_hot(&[0, 1, 2, 0], 3, &device)));
        assert!(output.iter().all(|&v| v > 0.0 && v < 1.0));
    }

    /// The decoder split before any of its blocks gives the whole decoder's output, so a stage
    /// that freezes the coarse blocks trains the same network it exports.
    #[test]
    fn the_decoder_split_at_any_block_is_the_whole_decoder() {
        let device = device();
        let config = small_config(3);
        let model = config.init(&device).expect("valid config").valid();
        let z = Tensor::<2>::random([2, config.latent_dim], Distribution::Normal(0.0, 1.0), &device);
        let genre = one_hot(&[0, 2], 3, &device);
        let whole = model.decode(z.clone(), genre.clone());
        let blocks = model.decoder.blocks.len();
        assert!(blocks >= 2, "the small config has {blocks} blocks");
        for block in 0..=blocks {
            let hidden = model.decoder.features_before_block(z.clone(), genre.clone(), block);
            let split = model.decoder.forward_from_block(hidden, genre.clone(), block);
            assert!(max_abs_diff(whole.clone(), split) < 1e-6, "split before block {block}");
        }
    }

    #[test]
    fn changing_the_genre_changes_the_decoded_image() {
        let device = device();
        let config = small_config(3);
        let model = config.init(&device).expect("valid config");
        let z = Tensor::<2>::random([1, config.latent_dim], Distribution::Normal(0.0, 1.0), &device);
        let first = model.decode(z.clone(), one_hot(&[0], 3, &device));
        let second = model.decode(z.clone(), one_hot(&[2], 3, &device));
        let blend = Tensor::<2>::from_floats([[0.5, 0.0, 0.5]], &device);
        let blended = model.decode(z, blend);
        assert!(max_abs_diff(first.clone(), second.clone()) > 1e-4);
        assert!(max_abs_diff(first, blended.clone()) > 1e-5);
        assert!(max_abs_diff(second, blended) > 1e-5);
    }

    #[test]
    fn inference_decoding_of_a_batch_equals_decoding_each_row_alone() {
        let config = small_config(3);
        let train_device = autodiff_device();
        let model = config.init(&train_device).expect("valid config");
        // One training-mode pass moves the BatchNorm running statistics away from (0, 1).
        let input = Tensor::<4>::random([4, 1, config.n_mels, config.frames], Distribution::Default, &train_device);
        let genre = one_hot(&[0, 1, 2, 0], 3, &train_device);
        let eps = model.sample_eps(4, &train_device);
        let _ = model.forward(input, genre, eps);

        let model = model.valid();
        let device = device();
        let z = Tensor::<2>::random([3, config.latent_dim], Distribution::Normal(0.0, 1.0), &device);
        let genre = Tensor::<2>::from_floats([[1.0, 0.0, 0.0], [0.2, 0.8, 0.0], [0.3, 0.3, 0.4]], &device);
        let batched = model.decode(z.clone(), genre.clone());
        for row in 0..3 {
            let alone = model.decode(z.clone().slice(s![row..row + 1, ..]), genre.clone().slice(s![row..row + 1, ..]));
            let from_batch = batched.clone().slice(s![row..row + 1, .., .., ..]);
            assert!(max_abs_diff(alone, from_batch) < 1e-5, "row {row} depends on the rest of the batch");
        }
    }

    #[test]
    fn zero_eps_reparameterizes_to_the_mean() {
        let device = device();
        let model = small_config(2).init(&device).expect("valid config");
        let mu = Tensor::<2>::from_floats([[1.0, -2.0]], &device);
        let logvar = Tensor::<2>::from_floats([[0.0, 2.0]], &device);
        let z = model.reparameterize(mu.clone(), logvar.clone(), Tensor::zeros([1, 2], &device));
        assert!(max_abs_diff(z, mu.clone()) < 1e-6);
        let z = model.reparameterize(mu, logvar, Tensor::ones([1, 2], &device));
        let expected = Tensor::<2>::from_floats([[2.0, -2.0 + 1f32.exp()]], &device);
        assert!(max_abs_diff(z, expected) < 1e-5);
    }

    #[test]
    fn sampled_eps_is_standard_normal() {
        let device = device();
        let model = small_config(2).init(&device).expect("valid config");
        let eps = values(model.sample_eps(1000, &device));
        assert_eq!(eps.len(), 1000 * 16);
        let mean = eps.iter().sum::<f32>() / eps.len() as f32;
        let variance = eps.iter().map(|v| (v - mean).powi(2)).sum::<f32>() / eps.len() as f32;
        assert!(mean.abs() < 0.05 && (variance - 1.0).abs() < 0.05, "mean {mean}, variance {variance}");
    }

    #[test]
    fn presets_validate_and_report_their_sizes() {
        let device = device();
        for (name, config) in [("tiny", VaeConfig::tiny(4)), ("paper", VaeConfig::paper(4))] {
            config.validate().expect("preset is valid");
            let model = config.init(&device).expect("preset builds");
            println!(
                "{name}: encoder {} + decoder {} = {} parameters",
                model.encoder.num_params(),
                model.decoder.num_params(),
                model.num_params()
            );
        }
    }

    #[test]
    fn config_round_trips_through_toml() {
        let config = VaeConfig::tiny(5);
        let text = toml::to_string(&config).expect("serialises");
        let back: VaeConfig = toml::from_str(&text).expect("parses back");
        assert_eq!(back.widths, config.widths);
        assert_eq!(back.stem, config.stem);
        assert_eq!(back.latent_head, config.latent_head);
        assert_eq!(back.n_genres, 5);
        let map: VaeConfig = toml::from_str(&text.replace("Flatten", "Map")).expect("a map head parses");
        assert_eq!(map.latent_head, LatentHead::Map);
    }

    #[test]
    fn validation_errors_name_the_bad_field() {
        let cases: Vec<(VaeConfig, &str)> = vec![
            (VaeConfig { n_mels: 60, ..VaeConfig::tiny(3) }, "n_mels"),
            (VaeConfig { frames: 0, ..VaeConfig::tiny(3) }, "frames"),
            (VaeConfig { frames: 330, ..VaeConfig::tiny(3) }, "frames"),
            (VaeConfig::tiny(0), "n_genres"),
            (VaeConfig::tiny(3).with_latent_dim(0), "latent_dim"),
            (VaeConfig::tiny(3).with_head_channels(0), "head_channels"),
            (VaeConfig::tiny(3).with_decoder_base_channels(0), "decoder_base_channels"),
            (VaeConfig::tiny(3).with_widths(vec![16, 32, 64]), "widths"),
            (VaeConfig::tiny(3).with_blocks(vec![2, 0, 2, 2]), "blocks"),
            (VaeConfig::tiny(3).with_decoder_widths(vec![8; 4]), "decoder_widths"),
            (VaeConfig::tiny(3).with_logvar_min(20.0), "logvar_min"),
            (VaeConfig::tiny(3).with_latent_head(LatentHead::Map).with_latent_dim(650), "latent_dim"),
            (VaeConfig::tiny(3).with_latent_downsampling(4), "latent_downsampling"),
            (VaeConfig::tiny(3).with_latent_downsampling(16), "decoder_widths"),
        ];
        for (config, field) in cases {
            let error = config.validate().expect_err(field);
            assert_eq!(error.field(), field, "{error}");
            assert!(error.to_string().contains(field), "message `{error}` does not name `{field}`");
            assert!(config.init(&device()).is_err());
        }
    }
}
