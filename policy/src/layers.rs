//! Transformer layers written with candle's differentiable primitives.
//!
//! candle's fused `LayerNorm` and `softmax_last_dim` record no gradient
//! (see the pitfalls in the reference): layer norm here is built from
//! means and variances, and attention uses `ops::softmax`.
//!
//! In a bf16 model (mixed-precision training, `sponge train --precision
//! bf16`) the matrix products run in bf16 while the layer norm's statistics,
//! the attention's softmax and the sinusoidal time features are computed in
//! f32 and cast back: bf16 keeps only 8 bits of mantissa, too few for a
//! variance or for angles of up to 1000 radians.

use candle_core::{D, DType, Module, Result, Tensor};
use candle_nn::{Init, Linear, VarBuilder, linear, linear_no_bias};

/// Layer normalisation over the last dimension, with a learned scale and shift.
#[derive(Debug, Clone)]
pub struct LayerNorm {
    weight: Tensor,
    bias: Tensor,
    eps: f64,
}

impl LayerNorm {
    /// A layer norm of width `dim`.
    pub fn new(dim: usize, vb: VarBuilder) -> Result<LayerNorm> {
        LayerNorm::with_eps(dim, 1e-5, vb)
    }

    /// A layer norm of width `dim` with `eps` added to the variance.
    pub fn with_eps(dim: usize, eps: f64, vb: VarBuilder) -> Result<LayerNorm> {
        Ok(LayerNorm {
            weight: vb.get_with_hints(dim, "weight", Init::Const(1.0))?,
            bias: vb.get_with_hints(dim, "bias", Init::Const(0.0))?,
            eps,
        })
    }
}

impl Module for LayerNorm {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        standardise(x, self.eps)?
            .broadcast_mul(&self.weight)?
            .broadcast_add(&self.bias)
    }
}

/// Each row (last dimension) of `x` to zero mean and unit variance, `eps`
/// added to the variance: written out, so that gradients flow; computed
/// in f32 and returned in `x`'s dtype.
pub fn standardise(x: &Tensor, eps: f64) -> Result<Tensor> {
    let dtype = x.dtype();
    let x = x.to_dtype(DType::F32)?;
    let mean = x.mean_keepdim(D::Minus1)?;
    let centred = x.broadcast_sub(&mean)?;
    let var = centred.sqr()?.mean_keepdim(D::Minus1)?;
    centred.broadcast_div(&(var + eps)?.sqrt()?)?.to_dtype(dtype)
}

/// Multi-head self-attention.
#[derive(Debug, Clone)]
pub struct Attention {
    q: Linear,
    k: Linear,
    v: Linear,
    out: Linear,
    heads: usize,
}

impl Attention {
    /// Attention over `dim`-wide tokens with `heads` heads.
    pub fn new(dim: usize, heads: usize, vb: VarBuilder) -> Result<Attention> {
        Ok(Attention {
            q: linear(dim, dim, vb.pp("q"))?,
            // No bias on keys: it shifts every score of a row alike, which
            // the softmax cancels, so it could never learn.
            k: linear_no_bias(dim, dim, vb.pp("k"))?,
            v: linear(dim, dim, vb.pp("v"))?,
            out: linear(dim, dim, vb.pp("out"))?,
            heads,
        })
    }
}

impl Attention {
    /// Keys and values of `memory` (`[B, n, dim]`), split into heads:
    /// computed once and reused when many queries attend to the same tokens.
    pub fn keys_values(&self, memory: &Tensor) -> Result<(Tensor, Tensor)> {
        Ok((self.split(&self.k, memory)?, self.split(&self.v, memory)?))
    }

    /// `x` (`[B, n, dim]`) attending to keys and values from [`keys_values`](Self::keys_values).
    pub fn attend(&self, x: &Tensor, keys: &Tensor, values: &Tensor) -> Result<Tensor> {
        let (b, n, dim) = x.dims3()?;
        let head_dim = dim / self.heads;
        let q = self.split(&self.q, x)?;
        let scores = (q.matmul(&keys.t()?)? / (head_dim as f64).sqrt())?;
        let weights = softmax_f32(&scores)?;
        let mixed = weights.matmul(values)?;
        let mixed = mixed.transpose(1, 2)?.reshape((b, n, dim))?;
        self.out.forward(&mixed)
    }

    /// `[B, n, dim]` projected by `l` → `[B, heads, n, head_dim]`, contiguous.
    fn split(&self, l: &Linear, x: &Tensor) -> Result<Tensor> {
        let (b, n, dim) = x.dims3()?;
        l.forward(x)?
            .reshape((b, n, self.heads, dim / self.heads))?
            .transpose(1, 2)?
            .contiguous()
    }
}

impl Module for Attention {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        // Separate projections, so that a test of gradients per variable
        // sees whether the softmax passes them to the queries and keys.
        let (k, v) = self.keys_values(x)?;
        self.attend(x, &k, &v)
    }
}

/// A pre-norm transformer block: attention then a SiLU MLP, each residual. (SiLU, not GELU: candle's CPU GELU computes a scalar tanh and powf per value and took a third of inference time.)
#[derive(Debug, Clone)]
pub struct Block {
    norm1: LayerNorm,
    attention: Attention,
    norm2: LayerNorm,
    up: Linear,
    down: Linear,
}

impl Block {
    /// A block of width `dim`, `heads` heads, an MLP `mlp_ratio` times wider.
    pub fn new(dim: usize, heads: usize, mlp_ratio: usize, vb: VarBuilder) -> Result<Block> {
        Ok(Block {
            norm1: LayerNorm::new(dim, vb.pp("norm1"))?,
            attention: Attention::new(dim, heads, vb.pp("attention"))?,
            norm2: LayerNorm::new(dim, vb.pp("norm2"))?,
            up: linear(dim, dim * mlp_ratio, vb.pp("up"))?,
            down: linear(dim * mlp_ratio, dim, vb.pp("down"))?,
        })
    }
}

impl Module for Block {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let x = (x + self.attention.forward(&self.norm1.forward(x)?)?)?;
        let hidden = self.up.forward(&self.norm2.forward(&x)?)?.silu()?;
        x + self.down.forward(&hidden)?
    }
}

/// A block of the action expert: self-attention over the action tokens,
/// cross-attention to the observation's tokens, then a SiLU MLP (as in a
/// transformer decoder). The observation's keys and values are computed
/// once per chunk and reused over the flow's integration steps.
#[derive(Debug, Clone)]
pub struct ExpertBlock {
    norm1: LayerNorm,
    attention: Attention,
    norm_cross: LayerNorm,
    cross: Attention,
    norm2: LayerNorm,
    up: Linear,
    down: Linear,
}

impl ExpertBlock {
    /// A block of width `dim`, `heads` heads, an MLP `mlp_ratio` times wider.
    pub fn new(dim: usize, heads: usize, mlp_ratio: usize, vb: VarBuilder) -> Result<ExpertBlock> {
        Ok(ExpertBlock {
            norm1: LayerNorm::new(dim, vb.pp("norm1"))?,
            attention: Attention::new(dim, heads, vb.pp("attention"))?,
            norm_cross: LayerNorm::new(dim, vb.pp("norm_cross"))?,
            cross: Attention::new(dim, heads, vb.pp("cross"))?,
            norm2: LayerNorm::new(dim, vb.pp("norm2"))?,
            up: linear(dim, dim * mlp_ratio, vb.pp("up"))?,
            down: linear(dim * mlp_ratio, dim, vb.pp("down"))?,
        })
    }

    /// The cross-attention's keys and values of the observation's tokens.
    pub fn memory(&self, context: &Tensor) -> Result<(Tensor, Tensor)> {
        self.cross.keys_values(context)
    }

    /// Action tokens `x` through the block, attending to `memory`.
    pub fn forward(&self, x: &Tensor, memory: &(Tensor, Tensor)) -> Result<Tensor> {
        let x = (x + self.attention.forward(&self.norm1.forward(x)?)?)?;
        let x = (&x
            + self
                .cross
                .attend(&self.norm_cross.forward(&x)?, &memory.0, &memory.1)?)?;
        let hidden = self.up.forward(&self.norm2.forward(&x)?)?.silu()?;
        x + self.down.forward(&hidden)?
    }
}

/// `ops::softmax` over the last dimension, computed in f32 and returned
/// in `scores`' dtype.
pub fn softmax_f32(scores: &Tensor) -> Result<Tensor> {
    candle_nn::ops::softmax(&scores.to_dtype(DType::F32)?, D::Minus1)?.to_dtype(scores.dtype())
}

/// Sinusoidal features of scalars `t` (shape `[B]`), `dim` wide, in
/// `t`'s dtype (computed in f32).
pub fn sinusoidal(t: &Tensor, dim: usize) -> Result<Tensor> {
    let half = dim / 2;
    let device = t.device();
    let dtype = t.dtype();
    let t = t.to_dtype(DType::F32)?;
    let freqs: Vec<f32> = (0..half)
        .map(|i| (-(10_000f32.ln()) * i as f32 / half as f32).exp())
        .collect();
    let freqs = Tensor::from_vec(freqs, (1, half), device)?;
    let angles = (t.unsqueeze(1)? * 1000.0)?.broadcast_mul(&freqs)?;
    Tensor::cat(&[angles.sin()?, angles.cos()?], 1)?.to_dtype(dtype)
}
