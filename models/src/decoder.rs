//! The genre-conditioned decoder: `z: [B, Z]`, `genre: [B, G]` → mel image `[B, 1, n_mels, frames]`
//! in `(0, 1)`.
//!
//! Every step is one ONNX operator (or a BatchNorm that folds into the convolution before it),
//! so `melfuse-proto` can write `decoder.onnx` from these pub fields:
//!
//! ```text
//! input  = Concat([z, genre], axis 1)                       [B, Z+G]
//! h      = Reshape(Gemm(input, project), [B, head, h0, w0])   h0 = n_mels/d, w0 = frames/d
//! h      = Relu(BN(Conv1x1(h)))                             [B, base, h0, w0]    (expand)
//! h      = UpBlock_i(h, genre)  for i in 0..log2(d)         each ×2 in height and width
//! mel    = Sigmoid(Conv3x3(h) + bias)                       [B, 1, n_mels, frames]
//! ```
//!
//! (`d` = `latent_downsampling`: 32, the ResNet18 encoder's own, unless configured 16 or 8.)
//!
//! With a latent map ([`crate::LatentHead::Map`], `latent_channels = C > 0`) the first two lines
//! become a per-cell projection, so no layer connects distant time cells (every later one is a
//! 3×3 convolution):
//!
//! ```text
//! m      = Reshape(z, [B, C, h0, w0])
//! h      = Conv1x1(m; project[0..C]) + Reshape(genre · project[C..C+G], [B, head, 1, 1])
//! ```
//!
//! (`project` is one `Linear(C + G → head)` applied to `[m_cell, genre]` at every cell.)

use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{Linear, LinearConfig, PaddingConfig2d};
use burn::prelude::*;
use burn::tensor::activation::{relu, sigmoid};

use crate::block::{Projection, UpBlock, UpBlockConfig};
use crate::kernels::conv2d;
use crate::latent_grid;

/// Configuration of a [`Decoder`]; normally derived from [`crate::VaeConfig`].
#[derive(Config, Debug)]
pub struct DecoderConfig {
    /// Mel bands of the output (height), a multiple of 32.
    pub n_mels: usize,
    /// Frames of the output (width), a multiple of 32.
    pub frames: usize,
    /// Latent size `Z`.
    pub latent_dim: usize,
    /// Genres `G` in the conditioning mixture.
    pub n_genres: usize,
    /// Channels of the map the linear projection produces (mirrors the encoder's flatten head).
    pub head_channels: usize,
    /// Channels after the 1×1 expansion, entering the first upsampling block.
    pub base_channels: usize,
    /// Output channels of the upsampling blocks (each doubles height and width): five for a
    /// latent grid at ÷32, four at ÷16, three at ÷8.
    pub widths: Vec<usize>,
    /// Down-sampling of the latent grid the decoder starts from (32, 16 or 8).
    #[config(default = 32)]
    pub latent_downsampling: usize,
    /// Whether `z` is a flattened latent map `[C, n_mels/d, frames/d]` (the encoder's
    /// [`crate::LatentHead::Map`]) rather than one vector per clip.
    #[config(default = false)]
    pub latent_map: bool,
}

impl DecoderConfig {
    /// Builds the decoder. Expects a config that passed [`crate::VaeConfig::validate`]
    /// (one width per upsampling block, sizes multiples of 32); burn panics otherwise.
    pub fn init(&self, device: &Device) -> Decoder {
        let (grid_height, grid_width) = latent_grid(self.n_mels, self.frames, self.latent_downsampling);
        let mut blocks = Vec::new();
        let mut in_channels = self.base_channels;
        for &width in &self.widths {
            blocks.push(UpBlockConfig::new(in_channels, width, self.n_genres).init(device));
            in_channels = width;
        }
        let cells = grid_height * grid_width;
        let (latent_channels, project) = if self.latent_map {
            let channels = self.latent_dim / cells;
            (channels, LinearConfig::new(channels + self.n_genres, self.head_channels))
        } else {
            (0, LinearConfig::new(self.latent_dim + self.n_genres, self.head_channels * cells))
        };
        Decoder {
            project: project.init(device),
            expand: Projection::new(self.head_channels, self.base_channels, 1, device),
            blocks,
            output: Conv2dConfig::new([in_channels, 1], [3, 3])
                .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                .init(device),
            head_channels: self.head_channels,
            grid_height,
            grid_width,
            latent_channels,
        }
    }
}

/// The decoder (see the module docs for the exact operator sequence).
#[derive(Module, Debug)]
pub struct Decoder {
    /// `[z, genre]` → `head_channels · grid_height · grid_width` values, reshaped to a map; for a
    /// latent map, `[z_cell, genre]` → `head_channels` at every cell.
    pub project: Linear,
    /// 1×1 convolution + BatchNorm from `head_channels` to the base width, then ReLU.
    pub expand: Projection,
    /// The genre-conditioned ×2 upsampling blocks (five at ÷32).
    pub blocks: Vec<UpBlock>,
    /// Final 3×3 convolution to one channel (with bias), followed by a sigmoid.
    pub output: Conv2d,
    /// Channels of the reshaped projection.
    pub head_channels: usize,
    /// `n_mels / d`: height of the reshaped projection.
    pub grid_height: usize,
    /// `frames / d`: width of the reshaped projection.
    pub grid_width: usize,
    /// Channels `C` of a latent map (`z` is `[B, C · grid_height · grid_width]`, channel-major);
    /// 0 when the latent is one vector per clip.
    pub latent_channels: usize,
}

impl Decoder {
    /// `z: [B, Z]`, `genre: [B, G]` → `[B, 1, n_mels, frames]` in `(0, 1)`; for a latent map `z` may
    /// hold any whole number of columns, giving `frames / grid_width` mel frames per column.
    pub fn forward(&self, z: Tensor<2>, genre: Tensor<2>) -> Tensor<4> {
        let hidden = self.features_before_block(z, genre.clone(), 0);
        self.forward_from_block(hidden, genre, 0)
    }

    /// The decoder's first part: the projection, the expansion and blocks `0..block`, giving the
    /// features block `block` reads. With [`Decoder::forward_from_block`] this splits
    /// [`Decoder::forward`] in two, so a training stage can run the coarse layers frozen (in
    /// inference mode, without a gradient) and fine-tune only the finer ones.
    pub fn features_before_block(&self, z: Tensor<2>, genre: Tensor<2>, block: usize) -> Tensor<4> {
        let grid = self.project_latent(z, genre.clone());
        let mut hidden = relu(self.expand.forward(grid));
        for up in self.blocks.iter().take(block) {
            hidden = up.forward(hidden, genre.clone());
        }
        hidden
    }

    /// The decoder's second part: blocks `block..` and the output layer, from the features of
    /// [`Decoder::features_before_block`] at the same `block`.
    pub fn forward_from_block(&self, hidden: Tensor<4>, genre: Tensor<2>, block: usize) -> Tensor<4> {
        let mut hidden = hidden;
        for up in self.blocks.iter().skip(block) {
            hidden = up.forward(hidden, genre.clone());
        }
        sigmoid(conv2d(&self.output, hidden))
    }

    /// `z`, `genre` → the `[B, head_channels, grid_height, width]` map the blocks start from.
    ///
    /// For a latent map the width is read from `z`: any whole number of latent columns
    /// (`C · grid_height` values each) decodes, `grid_width` of them being one training segment.
    /// Every layer after the per-cell projection is a convolution or a ×2 upsampling, so a wider
    /// map is a longer clip drawn in one pass — what the exported graph's dynamic time axis offers.
    fn project_latent(&self, z: Tensor<2>, genre: Tensor<2>) -> Tensor<4> {
        let [batch, values] = z.dims();
        let height = self.grid_height;
        if self.latent_channels == 0 {
            let input = Tensor::cat(vec![z, genre], 1);
            return self.project.forward(input).reshape([batch, self.head_channels, height, self.grid_width]);
        }
        let width = values / (self.latent_channels * height);
        let n_genres = genre.dims()[1];
        let cells = z.reshape([batch, self.latent_channels, height, width]).permute([0, 2, 3, 1]);
        let genre = genre.reshape([batch, 1, 1, n_genres]).expand([batch, height, width, n_genres]);
        self.project.forward(Tensor::cat(vec![cells, genre], 3)).permute([0, 3, 1, 2])
    }
}

#[cfg(test)]
mod tests {
    use burn::prelude::*;
    use melfuse_proto::manifest::DECODER_REACH_COLUMNS;

    use crate::test_support::{device, one_hot, small_config, values};
    use crate::LatentHead;

    /// The service decodes a window of a long map with `DECODER_REACH_COLUMNS` of context beyond the
    /// frames it keeps, trusting that a column's frames read no further: change one column of a
    /// 12-column map and only the frames of the columns within reach may change.
    #[test]
    fn a_latent_map_decoder_reads_no_further_than_its_reach() {
        let (columns, changed) = (12usize, 6usize);
        for (downsampling, stages) in [(8usize, 3usize), (32, 5)] {
            let widths = vec![16, 8, 8, 8, 8][..stages].to_vec();
            let cells = (32 / downsampling) * (64 / downsampling);
            let config = small_config(2)
                .with_latent_head(LatentHead::Map)
                .with_latent_downsampling(downsampling)
                .with_decoder_widths(widths)
                .with_latent_dim(4 * cells);
            let decoder = config.init(&device()).expect("valid config").decoder;
            let height = decoder.grid_height;
            let values_per_column = decoder.latent_channels * height;
            let mut state = 0x9E37_79B9u32;
            let mut map: Vec<f32> = (0..values_per_column * columns)
                .map(|_| {
                    state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                    (state >> 8) as f32 / (1u32 << 24) as f32 * 2.0 - 1.0
                })
                .collect();
            let decode = |map: &[f32]| {
                let z = Tensor::from_data(TensorData::new(map.to_vec(), [1, map.len()]), &device());
                values(decoder.forward(z, one_hot(&[1], 2, &device())))
            };
            let before = decode(&map);
            // Channel-major [C][H][columns]: one value per (channel, row) in the changed column.
            for row in 0..values_per_column {
                map[row * columns + changed] += 1.5;
            }
            let after = decode(&map);
            let frames = columns * (64 / decoder.grid_width);
            let per_column = frames / columns;
            let moved: Vec<usize> = (0..frames)
                .filter(|&t| {
                    before.iter().skip(t).step_by(frames).zip(after.iter().skip(t).step_by(frames)).any(|(a, b)| a != b)
                })
                .collect();
            let reach = DECODER_REACH_COLUMNS;
            let allowed = (changed - reach) * per_column..(changed + reach + 1) * per_column;
            assert!(
                moved.iter().any(|t| (changed * per_column..(changed + 1) * per_column).contains(t)),
                "÷{downsampling}: the column's own frames change"
            );
            assert!(
                moved.iter().all(|t| allowed.contains(t)),
                "÷{downsampling}: frames {:?}..={:?} changed, reach allows {allowed:?}",
                moved.first(),
                moved.last()
            );
        }
    }
}
