//! The world model: an encoder from what the robot sees (front camera,
//! joint state, instruction) to a latent; dynamics that roll the latent
//! forward over an action chunk, one segment of actions at a time; heads
//! that read progress (fraction of the named spill cleaned), risk (pressing
//! too hard within a segment) and the joint state off a latent; and a small
//! decoder that draws what a latent looks like, at half the camera's size.

use candle_core::{D, DType, Result, Tensor};
use candle_nn::{Embedding, Linear, Module, VarBuilder, embedding, linear};
use serde::{Deserialize, Serialize};
use sponge_policy::PolicyConfig;
use sponge_policy::model::ImageEncoder;
use sponge_policy::tokenizer::{PAD, VOCAB};

/// The model's shape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorldModelConfig {
    /// Camera image edge, pixels (a multiple of 16).
    pub image_size: usize,
    /// Width of the image encoder's tokens.
    pub d_model: usize,
    /// Latent width.
    pub latent: usize,
    /// Hidden width of the MLPs.
    pub hidden: usize,
    /// Joint state values.
    pub state_dim: usize,
    /// Action values per step.
    pub action_dim: usize,
    /// Actions in a chunk.
    pub horizon: usize,
    /// Actions per dynamics step (the horizon is a whole number of segments).
    pub segment: usize,
    /// Instruction tokens.
    pub max_text_tokens: usize,
    /// Width of the instruction's embedding.
    pub text_dim: usize,
}

impl Default for WorldModelConfig {
    fn default() -> Self {
        WorldModelConfig {
            image_size: 96,
            d_model: 64,
            latent: 128,
            hidden: 256,
            state_dim: 6,
            action_dim: 6,
            horizon: 50,
            segment: 10,
            max_text_tokens: 12,
            text_dim: 32,
        }
    }
}

impl WorldModelConfig {
    /// Dynamics steps per chunk.
    pub fn segments(&self) -> usize {
        self.horizon / self.segment.max(1)
    }

    /// Edge of the decoder's pictures, pixels.
    pub fn decoded_size(&self) -> usize {
        self.image_size / 2
    }

    /// Checks the shape.
    pub fn validate(&self) -> std::result::Result<(), String> {
        if self.image_size == 0 || !self.image_size.is_multiple_of(16) {
            return Err(format!("image size {} must be a multiple of 16", self.image_size));
        }
        if self.segment == 0 || !self.horizon.is_multiple_of(self.segment) || self.horizon == 0 {
            return Err(format!(
                "the horizon {} must be a whole number of segments of {}",
                self.horizon, self.segment
            ));
        }
        if [
            self.d_model,
            self.latent,
            self.hidden,
            self.state_dim,
            self.action_dim,
            self.text_dim,
        ]
        .contains(&0)
        {
            return Err("every width must be at least 1".into());
        }
        Ok(())
    }

    /// The policy shape whose image encoder this model uses: the patch
    /// encoder, which the world models trained so far were saved with.
    fn vision(&self) -> PolicyConfig {
        PolicyConfig {
            image_size: self.image_size,
            d_model: self.d_model,
            vision: sponge_policy::pretrained::Vision::Scratch,
            ..PolicyConfig::default()
        }
    }
}

/// Two linear layers with SiLU between.
#[derive(Debug, Clone)]
struct Mlp(Linear, Linear);

impl Mlp {
    fn new(input: usize, hidden: usize, output: usize, vb: VarBuilder) -> Result<Mlp> {
        Ok(Mlp(
            linear(input, hidden, vb.pp("0"))?,
            linear(hidden, output, vb.pp("1"))?,
        ))
    }
}

impl Module for Mlp {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.1.forward(&self.0.forward(x)?.silu()?)
    }
}

/// Normalises each row to zero mean and unit variance (no learned scale:
/// latents keep one scale, so that a predicted latent can be compared with
/// an observed one).
fn standardise(x: &Tensor) -> Result<Tensor> {
    sponge_policy::layers::standardise(x, 1e-5)
}

/// The world model.
#[derive(Debug, Clone)]
pub struct WorldModel {
    config: WorldModelConfig,
    image: ImageEncoder,
    squeeze: Linear,
    words: Embedding,
    encode: Mlp,
    dynamics: Mlp,
    progress: Mlp,
    risk: Mlp,
    state: Linear,
    seed: Linear,
    unmerge: Vec<Linear>,
}

/// Channels of the decoder's stages, from the latent's grid to RGB.
const DECODER_WIDTHS: [usize; 4] = [64, 48, 32, 3];
/// Channels per image token after squeezing.
const SQUEEZED: usize = 16;

impl WorldModel {
    /// A model with fresh (or `vb`'s) weights.
    pub fn new(config: &WorldModelConfig, vb: VarBuilder) -> Result<WorldModel> {
        config.validate().map_err(candle_core::Error::msg)?;
        let side = config.image_size / 16;
        let tokens = side * side;
        let l = config.latent;
        let unmerge = (0..3)
            .map(|i| {
                linear(
                    DECODER_WIDTHS[i],
                    4 * DECODER_WIDTHS[i + 1],
                    vb.pp(format!("decoder.unmerge{i}")),
                )
            })
            .collect::<Result<_>>()?;
        Ok(WorldModel {
            config: config.clone(),
            image: ImageEncoder::new(&config.vision(), vb.pp("image"))?,
            squeeze: linear(config.d_model, SQUEEZED, vb.pp("squeeze"))?,
            words: embedding(VOCAB, config.text_dim, vb.pp("words"))?,
            encode: Mlp::new(
                tokens * SQUEEZED + config.state_dim + config.text_dim,
                config.hidden,
                l,
                vb.pp("encode"),
            )?,
            dynamics: Mlp::new(
                l + config.segment * config.action_dim,
                config.hidden,
                l,
                vb.pp("dynamics"),
            )?,
            progress: Mlp::new(l, 64, 1, vb.pp("progress"))?,
            risk: Mlp::new(l, 64, 1, vb.pp("risk"))?,
            state: linear(l, config.state_dim, vb.pp("state"))?,
            seed: linear(l, tokens * DECODER_WIDTHS[0], vb.pp("decoder.seed"))?,
            unmerge,
        })
    }

    /// The shape.
    pub fn config(&self) -> &WorldModelConfig {
        &self.config
    }

    /// The dtype of its weights, which its inputs must have (f32, or bf16
    /// for mixed-precision training).
    pub fn dtype(&self) -> DType {
        self.squeeze.weight().dtype()
    }

    /// The instruction's embedding: the mean of its words' vectors.
    /// `tokens`: `[B, max_text_tokens]` (u32) → `[B, text_dim]`.
    pub fn text(&self, tokens: &Tensor) -> Result<Tensor> {
        let vectors = self.words.forward(tokens)?;
        let mask = tokens.ne(PAD)?.to_dtype(vectors.dtype())?;
        let count = mask.sum_keepdim(D::Minus1)?.clamp(1f32, f32::MAX)?;
        vectors
            .broadcast_mul(&mask.unsqueeze(D::Minus1)?)?
            .sum(1)?
            .broadcast_div(&count)
    }

    /// Latents of observations: `images` `[N, 3, S, S]` in 0..1, `state`
    /// `[N, state_dim]` (normalised), `text` `[N, text_dim]` → `[N, latent]`.
    pub fn encode(&self, images: &Tensor, state: &Tensor, text: &Tensor) -> Result<Tensor> {
        let tokens = self.squeeze.forward(&self.image.forward(images, None)?)?.silu()?;
        let n = tokens.dim(0)?;
        let flat = tokens.reshape((n, ()))?;
        let h = self.encode.forward(&Tensor::cat(&[&flat, state, text], 1)?)?;
        standardise(&h)
    }

    /// One dynamics step: the latent after `actions` `[N, segment * action_dim]`
    /// (normalised) from `latent` `[N, latent]`: a residual update,
    /// standardised again so that predicted latents stay on the encoder's
    /// scale (unchecked, residual steps compound and grow).
    pub fn step(&self, latent: &Tensor, actions: &Tensor) -> Result<Tensor> {
        standardise(&(latent + self.dynamics.forward(&Tensor::cat(&[latent, actions], 1)?)?)?)
    }

    /// The latents after each segment of `actions` `[N, horizon, action_dim]`
    /// (normalised), from `latent`: one `[N, latent]` per segment.
    pub fn rollout(&self, latent: &Tensor, actions: &Tensor) -> Result<Vec<Tensor>> {
        let (n, horizon, _) = actions.dims3()?;
        let segment = self.config.segment;
        let mut z = latent.clone();
        let mut out = Vec::with_capacity(horizon / segment);
        for k in 0..horizon / segment {
            let a = actions.narrow(1, k * segment, segment)?.reshape((n, ()))?;
            z = self.step(&z, &a)?;
            out.push(z.clone());
        }
        Ok(out)
    }

    /// Predicted fraction of the named spill cleaned, `[N]`, 0..1.
    pub fn progress(&self, latent: &Tensor) -> Result<Tensor> {
        sigmoid(&self.progress.forward(latent)?.squeeze(D::Minus1)?)
    }

    /// Logit of the chance that the segment leading to `latent` pressed too hard, `[N]`.
    pub fn risk_logit(&self, latent: &Tensor) -> Result<Tensor> {
        self.risk.forward(latent)?.squeeze(D::Minus1)
    }

    /// The joint state (normalised) a latent stands for, `[N, state_dim]`.
    pub fn state(&self, latent: &Tensor) -> Result<Tensor> {
        self.state.forward(latent)
    }

    /// What a latent looks like: `[N, size/2, size/2, 3]` (channels last), 0..1.
    pub fn decode(&self, latent: &Tensor) -> Result<Tensor> {
        let n = latent.dim(0)?;
        let side = self.config.image_size / 16;
        let mut x = self
            .seed
            .forward(latent)?
            .reshape((n, side, side, DECODER_WIDTHS[0]))?;
        for (i, stage) in self.unmerge.iter().enumerate() {
            let (b, h, w, _) = x.dims4()?;
            let c = DECODER_WIDTHS[i + 1];
            x = stage
                .forward(&x.silu()?)?
                .reshape((b, h, w, 2, 2, c))?
                .permute((0, 1, 3, 2, 4, 5))?
                .contiguous()?
                .reshape((b, 2 * h, 2 * w, c))?;
        }
        sigmoid(&x)
    }
}

/// The logistic function as `(1 + tanh(x/2)) / 2`: plain autodiff, and no
/// overflow for large |x| (`1 / (1 + e^-x)` gives NaN gradients there).
pub fn sigmoid(x: &Tensor) -> Result<Tensor> {
    ((x * 0.5)?.tanh()? + 1.0)? * 0.5
}

/// Halves images: `[N, 3, S, S]` → `[N, S/2, S/2, 3]` (2×2 means, channels
/// last), the decoder's targets.
pub fn half_size(images: &Tensor) -> Result<Tensor> {
    let (n, c, h, w) = images.dims4()?;
    images
        .reshape((n, c, h / 2, 2, w / 2, 2))?
        .mean(5)?
        .mean(3)?
        .permute((0, 2, 3, 1))?
        .contiguous()
}
