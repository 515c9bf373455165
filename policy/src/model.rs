//! The policy network: a convolutional image encoder, a byte-level text
//! encoder, the robot state as a token, a transformer trunk over all of
//! them, and a flow-matching action expert that turns noise into a chunk
//! of `horizon` actions in `flow_steps` Euler steps (as π0 and SmolVLA do).

use candle_core::{D, DType, Device, Module, Result, Tensor};
use candle_nn::{Conv2d, Conv2dConfig, Embedding, Init, Linear, VarBuilder, conv2d, embedding, linear};

use crate::layers::{Block, LayerNorm, sinusoidal};
use crate::tokenizer::{PAD, VOCAB};

/// The shape of the model.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PolicyConfig {
    /// Square camera images, pixels (a multiple of 16).
    pub image_size: usize,
    /// Cameras, each encoded by the same encoder.
    pub cameras: usize,
    /// Token width.
    pub d_model: usize,
    /// Attention heads.
    pub heads: usize,
    /// Blocks of the text encoder.
    pub text_layers: usize,
    /// Blocks of the trunk.
    pub trunk_layers: usize,
    /// Blocks of the action expert.
    pub expert_layers: usize,
    /// Longest instruction, in tokens (bytes).
    pub max_text_tokens: usize,
    /// Robot state entries.
    pub state_dim: usize,
    /// Action entries per step.
    pub action_dim: usize,
    /// Actions per chunk.
    pub horizon: usize,
    /// Euler steps when sampling a chunk.
    pub flow_steps: usize,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        PolicyConfig {
            image_size: 96,
            cameras: 1,
            d_model: 128,
            heads: 4,
            text_layers: 1,
            trunk_layers: 3,
            expert_layers: 2,
            max_text_tokens: 48,
            state_dim: 6,
            action_dim: 6,
            horizon: 50,
            flow_steps: 10,
        }
    }
}

/// What the policy sees, batched: normalised values.
#[derive(Debug, Clone)]
pub struct Observation {
    /// Images, `[B, cameras, 3, size, size]`, values in 0..1.
    pub images: Tensor,
    /// Instruction tokens, `[B, max_text_tokens]` (u32).
    pub tokens: Tensor,
    /// Robot state, `[B, state_dim]`.
    pub state: Tensor,
}

/// Four stride-2 convolutions: an image becomes (size/16)² tokens.
#[derive(Debug, Clone)]
struct ImageEncoder {
    convs: Vec<Conv2d>,
    position: Tensor,
}

impl ImageEncoder {
    fn new(config: &PolicyConfig, vb: VarBuilder) -> Result<ImageEncoder> {
        let widths = [3, 32, 64, 128, config.d_model];
        let convs = (0..4)
            .map(|i| {
                let conv = Conv2dConfig {
                    padding: 1,
                    stride: 2,
                    ..Conv2dConfig::default()
                };
                conv2d(widths[i], widths[i + 1], 3, conv, vb.pp(format!("conv{i}")))
            })
            .collect::<Result<_>>()?;
        let side = config.image_size / 16;
        let position = vb.get_with_hints(
            (side * side, config.d_model),
            "position",
            Init::Randn {
                mean: 0.0,
                stdev: 0.02,
            },
        )?;
        Ok(ImageEncoder { convs, position })
    }

    /// `[B, 3, H, W]` → `[B, tokens, d]`.
    fn forward(&self, images: &Tensor) -> Result<Tensor> {
        let mut x = ((images - 0.5)? * 2.0)?;
        for (i, conv) in self.convs.iter().enumerate() {
            x = conv.forward(&x)?;
            if i + 1 < self.convs.len() {
                x = x.gelu()?;
            }
        }
        let (b, d, h, w) = x.dims4()?;
        x.reshape((b, d, h * w))?
            .transpose(1, 2)?
            .broadcast_add(&self.position)
    }
}

/// The policy network.
#[derive(Debug, Clone)]
pub struct Policy {
    config: PolicyConfig,
    image: ImageEncoder,
    camera_embedding: Tensor,
    token_embedding: Embedding,
    text_position: Tensor,
    text_blocks: Vec<Block>,
    state_in: Linear,
    trunk: Vec<Block>,
    trunk_norm: LayerNorm,
    action_in: Linear,
    time_in: Linear,
    action_position: Tensor,
    expert: Vec<Block>,
    expert_norm: LayerNorm,
    action_out: Linear,
}

impl Policy {
    /// A policy of shape `config`, its variables from `vb`.
    pub fn new(config: &PolicyConfig, vb: VarBuilder) -> Result<Policy> {
        let d = config.d_model;
        let small = Init::Randn {
            mean: 0.0,
            stdev: 0.02,
        };
        let blocks = |n: usize, vb: VarBuilder| {
            (0..n)
                .map(|i| Block::new(d, config.heads, 4, vb.pp(i.to_string())))
                .collect::<Result<Vec<_>>>()
        };
        Ok(Policy {
            config: config.clone(),
            image: ImageEncoder::new(config, vb.pp("image"))?,
            camera_embedding: vb.get_with_hints((config.cameras, d), "camera_embedding", small)?,
            token_embedding: embedding(VOCAB, d, vb.pp("token_embedding"))?,
            text_position: vb.get_with_hints((config.max_text_tokens, d), "text_position", small)?,
            text_blocks: blocks(config.text_layers, vb.pp("text"))?,
            state_in: linear(config.state_dim, d, vb.pp("state_in"))?,
            trunk: blocks(config.trunk_layers, vb.pp("trunk"))?,
            trunk_norm: LayerNorm::new(d, vb.pp("trunk_norm"))?,
            action_in: linear(config.action_dim, d, vb.pp("action_in"))?,
            time_in: linear(d, d, vb.pp("time_in"))?,
            action_position: vb.get_with_hints((config.horizon, d), "action_position", small)?,
            expert: blocks(config.expert_layers, vb.pp("expert"))?,
            expert_norm: LayerNorm::new(d, vb.pp("expert_norm"))?,
            action_out: linear(d, config.action_dim, vb.pp("action_out"))?,
        })
    }

    /// Its shape.
    pub fn config(&self) -> &PolicyConfig {
        &self.config
    }

    /// The trunk's tokens for an observation: `[B, tokens, d]`.
    pub fn encode(&self, observation: &Observation) -> Result<Tensor> {
        let mut parts = Vec::new();
        for camera in 0..self.config.cameras {
            let images = observation.images.narrow(1, camera, 1)?.squeeze(1)?;
            let tokens = self.image.forward(&images)?;
            let tag = self.camera_embedding.narrow(0, camera, 1)?;
            parts.push(tokens.broadcast_add(&tag)?);
        }
        // Text: embedded bytes; padding tokens are zeroed so only the words count.
        let mask = observation
            .tokens
            .ne(PAD)?
            .to_dtype(DType::F32)?
            .unsqueeze(D::Minus1)?;
        let mut text = self
            .token_embedding
            .forward(&observation.tokens)?
            .broadcast_add(&self.text_position)?
            .broadcast_mul(&mask)?;
        for block in &self.text_blocks {
            text = block.forward(&text)?.broadcast_mul(&mask)?;
        }
        parts.push(text);
        parts.push(self.state_in.forward(&observation.state)?.unsqueeze(1)?);
        let mut x = Tensor::cat(&parts, 1)?;
        for block in &self.trunk {
            x = block.forward(&x)?;
        }
        self.trunk_norm.forward(&x)
    }

    /// The flow's velocity for noisy chunks `x_t` (`[B, H, action_dim]`) at
    /// times `t` (`[B]`, 0 = noise, 1 = data), given the trunk's tokens.
    pub fn velocity(&self, context: &Tensor, x_t: &Tensor, t: &Tensor) -> Result<Tensor> {
        let time = self
            .time_in
            .forward(&sinusoidal(t, self.config.d_model)?)?
            .gelu()?
            .unsqueeze(1)?;
        let actions = self
            .action_in
            .forward(x_t)?
            .broadcast_add(&self.action_position)?
            .broadcast_add(&time)?;
        let n_context = context.dim(1)?;
        let mut x = Tensor::cat(&[context, &actions], 1)?;
        for block in &self.expert {
            x = block.forward(&x)?;
        }
        let actions = x.narrow(1, n_context, self.config.horizon)?;
        self.action_out.forward(&self.expert_norm.forward(&actions)?)
    }

    /// The flow-matching loss for expert chunks `actions` (`[B, H,
    /// action_dim]`, normalised), with noise `noise` and times `t` drawn by
    /// the caller: the mean squared error of the velocity towards the data.
    pub fn flow_loss(
        &self,
        observation: &Observation,
        actions: &Tensor,
        noise: &Tensor,
        t: &Tensor,
    ) -> Result<Tensor> {
        let context = self.encode(observation)?;
        let tt = t.reshape((t.dim(0)?, 1, 1))?;
        let x_t = (actions.broadcast_mul(&tt)? + noise.broadcast_mul(&(1.0 - &tt)?)?)?;
        let target = (actions - noise)?;
        let predicted = self.velocity(&context, &x_t, t)?;
        (predicted - target)?.sqr()?.mean_all()
    }

    /// Chunks for an observation, integrating the flow from `noise`
    /// (`[B, H, action_dim]`; K different noises for one observation
    /// repeated K times give K different chunks).
    pub fn sample(&self, observation: &Observation, noise: &Tensor) -> Result<Tensor> {
        let context = self.encode(observation)?;
        let b = noise.dim(0)?;
        let steps = self.config.flow_steps.max(1);
        let dt = 1.0 / steps as f64;
        let mut x = noise.clone();
        for k in 0..steps {
            let t = Tensor::full((k as f64 * dt) as f32, b, noise.device())?;
            let v = self.velocity(&context, &x, &t)?;
            x = (x + (v * dt)?)?;
        }
        Ok(x)
    }
}

/// Standard normal noise of the shape of a batch of chunks.
pub fn chunk_noise(config: &PolicyConfig, batch: usize, device: &Device) -> Result<Tensor> {
    Tensor::randn(0f32, 1f32, (batch, config.horizon, config.action_dim), device)
}
