//! A pretrained BERT-style text encoder (BERT, MiniLM) from a local folder
//! in the Hugging Face layout: `config.json` (`vocab_size`, `hidden_size`,
//! `num_hidden_layers`, `num_attention_heads`, `intermediate_size`,
//! `max_position_embeddings`), `vocab.txt` (WordPiece, `[PAD]` = 0) and
//! `model.safetensors` with the `transformers` names
//! (`embeddings.word_embeddings.weight`, `encoder.layer.{i}.attention.self.query.weight`,
//! …; a `bert.` prefix is accepted).

use std::path::{Path, PathBuf};

use candle_core::{D, DType, Module, Result, Tensor};
use candle_nn::{Linear, VarBuilder, linear};
use serde::{Deserialize, Serialize};

use crate::layers::LayerNorm;

/// The prefix of the text encoder's variables in the policy.
pub const BERT_PREFIX: &str = "text.bert.";

/// A BERT's shape, as its `config.json` gives it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BertShape {
    /// Vocabulary entries.
    pub vocab_size: usize,
    /// Token width.
    pub hidden_size: usize,
    /// Layers.
    pub num_hidden_layers: usize,
    /// Attention heads.
    pub num_attention_heads: usize,
    /// MLP width.
    pub intermediate_size: usize,
    /// Longest input.
    pub max_position_embeddings: usize,
    /// Segment kinds.
    #[serde(default = "two")]
    pub type_vocab_size: usize,
    /// Layer norm epsilon.
    #[serde(default = "bert_eps")]
    pub layer_norm_eps: f64,
}

fn two() -> usize {
    2
}

fn bert_eps() -> f64 {
    1e-12
}

/// Which text encoder the policy uses.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Text {
    /// Hashed words and a small transformer, trained from scratch.
    #[default]
    Scratch,
    /// A pretrained BERT-style encoder and its WordPiece vocabulary.
    Bert {
        /// The folder it was loaded from (a run keeps its own copy of the vocabulary).
        path: PathBuf,
        /// Whether its weights stay as loaded.
        frozen: bool,
        /// Its shape.
        shape: BertShape,
    },
}

impl Text {
    /// A pretrained BERT from `dir` (its `config.json` and `vocab.txt` are checked now).
    pub fn bert(dir: &Path, frozen: bool) -> std::result::Result<Text, String> {
        let (config, shape): (_, BertShape) = crate::pretrained::read_config(dir, "BERT")?;
        if shape.num_attention_heads == 0 || !shape.hidden_size.is_multiple_of(shape.num_attention_heads) {
            return Err(format!(
                "{}: hidden_size is not divisible by the heads",
                config.display()
            ));
        }
        crate::tokenizer::WordPiece::load(&dir.join("vocab.txt"))?;
        Ok(Text::Bert {
            path: dir.to_owned(),
            frozen,
            shape,
        })
    }

    /// Whether the text encoder is frozen.
    pub fn frozen(&self) -> bool {
        matches!(self, Text::Bert { frozen: true, .. })
    }
}

#[derive(Debug, Clone)]
struct BertLayer {
    query: Linear,
    key: Linear,
    value: Linear,
    attention_out: Linear,
    attention_norm: LayerNorm,
    intermediate: Linear,
    output: Linear,
    output_norm: LayerNorm,
}

/// A BERT encoder: token ids to contextual token features.
#[derive(Debug, Clone)]
pub struct Bert {
    word: Tensor,
    position: Tensor,
    token_type: Tensor,
    norm: LayerNorm,
    layers: Vec<BertLayer>,
    heads: usize,
}

impl Bert {
    /// A BERT of `shape`, its variables from `vb` (the encoder's prefix).
    pub fn new(shape: &BertShape, vb: VarBuilder) -> Result<Bert> {
        let h = shape.hidden_size;
        let eps = shape.layer_norm_eps;
        let emb = vb.pp("embeddings");
        let init = candle_nn::Init::Randn {
            mean: 0.0,
            stdev: 0.02,
        };
        let layers = (0..shape.num_hidden_layers)
            .map(|i| {
                let l = vb.pp(format!("encoder.layer.{i}"));
                Ok(BertLayer {
                    query: linear(h, h, l.pp("attention.self.query"))?,
                    key: linear(h, h, l.pp("attention.self.key"))?,
                    value: linear(h, h, l.pp("attention.self.value"))?,
                    attention_out: linear(h, h, l.pp("attention.output.dense"))?,
                    attention_norm: LayerNorm::with_eps(h, eps, l.pp("attention.output.LayerNorm"))?,
                    intermediate: linear(h, shape.intermediate_size, l.pp("intermediate.dense"))?,
                    output: linear(shape.intermediate_size, h, l.pp("output.dense"))?,
                    output_norm: LayerNorm::with_eps(h, eps, l.pp("output.LayerNorm"))?,
                })
            })
            .collect::<Result<_>>()?;
        Ok(Bert {
            word: emb.get_with_hints((shape.vocab_size, h), "word_embeddings.weight", init)?,
            position: emb.get_with_hints(
                (shape.max_position_embeddings, h),
                "position_embeddings.weight",
                init,
            )?,
            token_type: emb.get_with_hints(
                (shape.type_vocab_size, h),
                "token_type_embeddings.weight",
                init,
            )?,
            norm: LayerNorm::with_eps(h, eps, emb.pp("LayerNorm"))?,
            layers,
            heads: shape.num_attention_heads,
        })
    }

    /// Token ids `[B, T]` (u32) and a mask `[B, T]` (1 for words, 0 for
    /// padding) to features `[B, T, hidden]`.
    pub fn forward(&self, tokens: &Tensor, mask: &Tensor) -> Result<Tensor> {
        let (b, t) = tokens.dims2()?;
        let h = self.word.dim(1)?;
        let words = self
            .word
            .index_select(&tokens.flatten_all()?, 0)?
            .reshape((b, t, h))?;
        let positions = self.position.narrow(0, 0, t)?;
        let segment = self.token_type.narrow(0, 0, 1)?;
        let mut x = self
            .norm
            .forward(&words.broadcast_add(&positions)?.broadcast_add(&segment)?)?;
        // Padding keys get a large negative score.
        let key_bias = ((mask.to_dtype(DType::F32)? - 1.0)? * 1e4)?.reshape((b, 1, 1, t))?;
        let head_dim = h / self.heads;
        for layer in &self.layers {
            let split = |l: &Linear| -> Result<Tensor> {
                l.forward(&x)?
                    .reshape((b, t, self.heads, head_dim))?
                    .transpose(1, 2)?
                    .contiguous()
            };
            let (q, k, v) = (split(&layer.query)?, split(&layer.key)?, split(&layer.value)?);
            // Scores and softmax in f32, whatever the weights' dtype.
            let scores = (q.matmul(&k.t()?)? / (head_dim as f64).sqrt())?
                .to_dtype(DType::F32)?
                .broadcast_add(&key_bias)?;
            let weights = candle_nn::ops::softmax(&scores, D::Minus1)?.to_dtype(x.dtype())?;
            let mixed = weights.matmul(&v)?.transpose(1, 2)?.reshape((b, t, h))?;
            let attended = layer
                .attention_norm
                .forward(&(layer.attention_out.forward(&mixed)? + &x)?)?;
            let hidden = layer.intermediate.forward(&attended)?.gelu_erf()?;
            x = layer
                .output_norm
                .forward(&(layer.output.forward(&hidden)? + attended)?)?;
        }
        Ok(x)
    }
}
