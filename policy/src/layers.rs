//! Transformer layers written with candle's differentiable primitives.
//!
//! candle's fused `LayerNorm` and `softmax_last_dim` record no gradient
//! (see the pitfalls in the reference): layer norm here is built from
//! means and variances, and attention uses `ops::softmax`.

use candle_core::{D, Module, Result, Tensor};
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
        Ok(LayerNorm {
            weight: vb.get_with_hints(dim, "weight", Init::Const(1.0))?,
            bias: vb.get_with_hints(dim, "bias", Init::Const(0.0))?,
            eps: 1e-5,
        })
    }
}

impl Module for LayerNorm {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mean = x.mean_keepdim(D::Minus1)?;
        let centred = x.broadcast_sub(&mean)?;
        let var = centred.sqr()?.mean_keepdim(D::Minus1)?;
        let normed = centred.broadcast_div(&(var + self.eps)?.sqrt()?)?;
        normed.broadcast_mul(&self.weight)?.broadcast_add(&self.bias)
    }
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

impl Module for Attention {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (b, n, dim) = x.dims3()?;
        let head_dim = dim / self.heads;
        // Separate projections, so that a test of gradients per variable
        // sees whether the softmax passes them to the queries and keys.
        let heads = |l: &Linear| -> Result<Tensor> {
            l.forward(x)?
                .reshape((b, n, self.heads, head_dim))?
                .transpose(1, 2)
        };
        let (q, k, v) = (heads(&self.q)?, heads(&self.k)?, heads(&self.v)?);
        let scores = (q.contiguous()?.matmul(&k.contiguous()?.t()?)? / (head_dim as f64).sqrt())?;
        let weights = candle_nn::ops::softmax(&scores, D::Minus1)?;
        let mixed = weights.matmul(&v.contiguous()?)?;
        let mixed = mixed.transpose(1, 2)?.reshape((b, n, dim))?;
        self.out.forward(&mixed)
    }
}

/// A pre-norm transformer block: attention then a GELU MLP, each residual.
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
        let hidden = self.up.forward(&self.norm2.forward(&x)?)?.gelu()?;
        x + self.down.forward(&hidden)?
    }
}

/// Sinusoidal features of scalars `t` (shape `[B]`), `dim` wide.
pub fn sinusoidal(t: &Tensor, dim: usize) -> Result<Tensor> {
    let half = dim / 2;
    let device = t.device();
    let freqs: Vec<f32> = (0..half)
        .map(|i| (-(10_000f32.ln()) * i as f32 / half as f32).exp())
        .collect();
    let freqs = Tensor::from_vec(freqs, (1, half), device)?;
    let angles = (t.unsqueeze(1)? * 1000.0)?.broadcast_mul(&freqs)?;
    Tensor::cat(&[angles.sin()?, angles.cos()?], 1)
}
