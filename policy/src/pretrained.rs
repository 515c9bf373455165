//! Pretrained image encoders from a local folder in the Hugging Face
//! layout: a ResNet (`config.json` with `embedding_size`, `hidden_sizes`,
//! `depths`, `layer_type = "basic"`, and `model.safetensors` with the
//! `transformers` names: `embedder.embedder.convolution.weight`,
//! `encoder.stages.{i}.layers.{j}.layer.{k}.convolution.weight`, their
//! batch norms and shortcuts; a `resnet.` prefix, as in a classification
//! checkpoint, is accepted and the classifier ignored).
//!
//! The backbone's variables live in the policy's variable map (so a run's
//! checkpoint holds them and needs no folder to run); [`load_into`] copies
//! the pretrained values over them before training. Frozen backbones are
//! left out of the optimiser and their output is detached, so no gradient
//! is computed through them.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{D, Module, Result, Tensor};
use candle_nn::{Conv2d, Conv2dConfig, Init, VarBuilder, VarMap, conv2d_no_bias};
use serde::{Deserialize, Serialize};

/// The prefix of the backbone's variables in the policy.
pub const BACKBONE_PREFIX: &str = "image.backbone.";

/// A ResNet's shape, as its `config.json` gives it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResNetShape {
    /// Channels of the stem.
    pub embedding_size: usize,
    /// Channels of each stage.
    pub hidden_sizes: Vec<usize>,
    /// Blocks of each stage.
    pub depths: Vec<usize>,
    /// Block kind; only "basic" (ResNet-18/34) is supported.
    #[serde(default = "basic")]
    pub layer_type: String,
    /// Whether the first stage halves the resolution too.
    #[serde(default)]
    pub downsample_in_first_stage: bool,
}

impl ResNetShape {
    /// How many pixels across one feature of the output covers: 4 for the
    /// stem and its pool, times 2 per stage that halves the resolution.
    pub fn stride(&self) -> usize {
        let halving = self.hidden_sizes.len().saturating_sub(1) + usize::from(self.downsample_in_first_stage);
        4 << halving
    }
}

fn basic() -> String {
    "basic".into()
}

/// A pretrained model's `config.json` in `dir`: its path and its `what` shape.
pub(crate) fn read_config<T: serde::de::DeserializeOwned>(
    dir: &Path,
    what: &str,
) -> std::result::Result<(PathBuf, T), String> {
    let config = dir.join("config.json");
    let text = std::fs::read_to_string(&config).map_err(|e| format!("{}: {e}", config.display()))?;
    let shape =
        serde_json::from_str(&text).map_err(|e| format!("{}: not a {what} config: {e}", config.display()))?;
    Ok((config, shape))
}

/// Which image encoder the policy uses.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Vision {
    /// The small patch-merging encoder, trained from scratch: each token
    /// sees only its own 16×16 patch. The default (and what a config
    /// without `vision` means).
    #[default]
    Scratch,
    /// Overlapping 3×3 convolutions between the patch merges, and
    /// spatial-softmax keypoints (where each of `keypoints` learned
    /// features is strongest, and what is there) as extra tokens; trained
    /// from scratch (`sponge train --encoder conv`). Slower than `Scratch`
    /// and, so far, no better.
    Conv {
        /// Keypoint tokens per camera.
        keypoints: usize,
        /// Further keypoints per camera placed by the instruction: each is
        /// where the map best matches a query drawn from the instruction's
        /// words (with a learned key for every place, so that "on the left"
        /// can count), to find the named spill among others.
        #[serde(default, skip_serializing_if = "is_zero")]
        instructed: usize,
    },
    /// A pretrained ResNet.
    Resnet {
        /// The folder it was loaded from (for the record; a run does not need it).
        path: PathBuf,
        /// Whether its weights stay as loaded.
        frozen: bool,
        /// Its shape.
        shape: ResNetShape,
    },
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

impl Vision {
    /// A pretrained ResNet from `dir` (its `config.json` is read now).
    pub fn resnet(dir: &Path, frozen: bool) -> std::result::Result<Vision, String> {
        let (config, shape): (_, ResNetShape) = read_config(dir, "ResNet")?;
        if shape.layer_type != "basic" {
            return Err(format!(
                "{}: layer_type '{}': only basic blocks (ResNet-18/34) are supported",
                config.display(),
                shape.layer_type
            ));
        }
        if shape.hidden_sizes.is_empty() || shape.hidden_sizes.len() != shape.depths.len() {
            return Err(format!(
                "{}: hidden_sizes and depths differ in length",
                config.display()
            ));
        }
        Ok(Vision::Resnet {
            path: dir.to_owned(),
            frozen,
            shape,
        })
    }

    /// Whether the backbone is frozen.
    pub fn frozen(&self) -> bool {
        matches!(self, Vision::Resnet { frozen: true, .. })
    }
}

/// A convolution without bias followed by an inference-mode batch norm.
#[derive(Debug, Clone)]
struct ConvNorm {
    conv: Conv2d,
    weight: Tensor,
    bias: Tensor,
    mean: Tensor,
    var: Tensor,
}

impl ConvNorm {
    fn new(cin: usize, cout: usize, kernel: usize, stride: usize, vb: VarBuilder) -> Result<ConvNorm> {
        let config = Conv2dConfig {
            padding: kernel / 2,
            stride,
            ..Conv2dConfig::default()
        };
        let norm = vb.pp("normalization");
        Ok(ConvNorm {
            conv: conv2d_no_bias(cin, cout, kernel, config, vb.pp("convolution"))?,
            weight: norm.get_with_hints(cout, "weight", Init::Const(1.0))?,
            bias: norm.get_with_hints(cout, "bias", Init::Const(0.0))?,
            mean: norm.get_with_hints(cout, "running_mean", Init::Const(0.0))?,
            var: norm.get_with_hints(cout, "running_var", Init::Const(1.0))?,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        // The running statistics are constants, never trained.
        let shape = |t: &Tensor| t.reshape((1, (), 1, 1));
        let scale = (shape(&self.weight)? / (shape(&self.var.detach())? + 1e-5)?.sqrt()?)?;
        let x = self.conv.forward(x)?;
        x.broadcast_sub(&shape(&self.mean.detach())?)?
            .broadcast_mul(&scale)?
            .broadcast_add(&shape(&self.bias)?)
    }
}

#[derive(Debug, Clone)]
struct BasicBlock {
    shortcut: Option<ConvNorm>,
    first: ConvNorm,
    second: ConvNorm,
}

impl BasicBlock {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let residual = match &self.shortcut {
            Some(s) => s.forward(x)?,
            None => x.clone(),
        };
        let h = self.first.forward(x)?.relu()?;
        (self.second.forward(&h)? + residual)?.relu()
    }
}

/// A ResNet without its classifier: images to a feature map `[B, C, S/stride, S/stride]`.
#[derive(Debug, Clone)]
pub struct ResNet {
    /// ImageNet's channel means and standard deviations, `[1, 3, 1, 1]`.
    mean: Tensor,
    std: Tensor,
    stem: ConvNorm,
    blocks: Vec<BasicBlock>,
    channels: usize,
}

impl ResNet {
    /// A ResNet of `shape`, its variables from `vb` (the backbone's prefix).
    pub fn new(shape: &ResNetShape, vb: VarBuilder) -> Result<ResNet> {
        let stem = ConvNorm::new(3, shape.embedding_size, 7, 2, vb.pp("embedder.embedder"))?;
        let mut blocks = Vec::new();
        let mut cin = shape.embedding_size;
        for (i, (&cout, &depth)) in shape.hidden_sizes.iter().zip(&shape.depths).enumerate() {
            let stage = vb.pp(format!("encoder.stages.{i}.layers"));
            for j in 0..depth {
                let stride = if j == 0 && (i > 0 || shape.downsample_in_first_stage) {
                    2
                } else {
                    1
                };
                let layer = stage.pp(j.to_string());
                let block_in = if j == 0 { cin } else { cout };
                blocks.push(BasicBlock {
                    shortcut: if block_in != cout || stride != 1 {
                        Some(ConvNorm::new(block_in, cout, 1, stride, layer.pp("shortcut"))?)
                    } else {
                        None
                    },
                    first: ConvNorm::new(block_in, cout, 3, stride, layer.pp("layer.0"))?,
                    second: ConvNorm::new(cout, cout, 3, 1, layer.pp("layer.1"))?,
                });
            }
            cin = cout;
        }
        let device = vb.device();
        Ok(ResNet {
            mean: Tensor::new(&[0.485f32, 0.456, 0.406], device)?
                .reshape((1, 3, 1, 1))?
                .to_dtype(vb.dtype())?,
            std: Tensor::new(&[0.229f32, 0.224, 0.225], device)?
                .reshape((1, 3, 1, 1))?
                .to_dtype(vb.dtype())?,
            stem,
            blocks,
            channels: cin,
        })
    }

    /// Channels of the feature map.
    pub fn channels(&self) -> usize {
        self.channels
    }

    /// Images `[B, 3, H, W]` in 0..1 (normalised here as for ImageNet) to features.
    pub fn forward(&self, images: &Tensor) -> Result<Tensor> {
        let x = images.broadcast_sub(&self.mean)?.broadcast_div(&self.std)?;
        let x = self.stem.forward(&x)?.relu()?;
        let mut x = max_pool_3x3_stride_2(&x)?;
        for block in &self.blocks {
            x = block.forward(&x)?;
        }
        Ok(x)
    }
}

/// A 3×3 max pool of stride 2 with one pixel of padding, as ResNet's stem
/// has. Built from shifted views and `maximum` (candle's own max pool has
/// no backward pass when the window is wider than the stride). The input
/// comes after a ReLU, so zero padding is as good as −∞.
fn max_pool_3x3_stride_2(x: &Tensor) -> Result<Tensor> {
    let (b, c, h, w) = x.dims4()?;
    let (h2, w2) = (h.div_ceil(2) * 2, w.div_ceil(2) * 2);
    let padded = x
        .pad_with_zeros(D::Minus2, 1, 1 + h2 - h)?
        .pad_with_zeros(D::Minus1, 1, 1 + w2 - w)?;
    let mut out: Option<Tensor> = None;
    for dy in 0..3 {
        for dx in 0..3 {
            let view = padded.narrow(2, dy, h2)?.narrow(3, dx, w2)?;
            out = Some(match out {
                Some(m) => m.maximum(&view)?,
                None => view,
            });
        }
    }
    let full = out.ok_or_else(|| candle_core::Error::Msg("empty pool".into()))?;
    // Every other row and column.
    full.reshape((b, c, h2 / 2, 2, w2 / 2, 2))?
        .narrow(3, 0, 1)?
        .narrow(5, 0, 1)?
        .reshape((b, c, h2 / 2, w2 / 2))
}

/// Copies the pretrained ResNet in `dir/model.safetensors` over the
/// backbone's variables in `varmap`. Returns how many variables were loaded.
pub fn load_into(varmap: &VarMap, dir: &Path) -> std::result::Result<usize, String> {
    load_weights(varmap, dir, BACKBONE_PREFIX, "resnet.")
}

/// Copies the tensors of `dir/model.safetensors` (names with or without
/// `checkpoint_prefix`) over the variables of `varmap` whose names start
/// with `var_prefix`. Every such variable must be in the file with the same
/// shape; other tensors (a classifier, buffers) are ignored. Returns how
/// many variables were loaded.
pub fn load_weights(
    varmap: &VarMap,
    dir: &Path,
    var_prefix: &str,
    checkpoint_prefix: &str,
) -> std::result::Result<usize, String> {
    let file = dir.join("model.safetensors");
    let tensors = candle_core::safetensors::load(&file, &candle_core::Device::Cpu)
        .map_err(|e| format!("{}: {e}", file.display()))?;
    let lookup: HashMap<&str, &Tensor> = tensors
        .iter()
        .map(|(name, t)| (name.strip_prefix(checkpoint_prefix).unwrap_or(name), t))
        .collect();
    let vars = varmap
        .data()
        .lock()
        .map_err(|_| "the variable map is poisoned".to_owned())?;
    let mut loaded = 0;
    for (name, var) in vars.iter() {
        let Some(key) = name.strip_prefix(var_prefix) else {
            continue;
        };
        let tensor = lookup.get(key).ok_or_else(|| {
            format!(
                "{}: no tensor '{key}' (is this checkpoint in the transformers layout?)",
                file.display()
            )
        })?;
        if tensor.dims() != var.dims() {
            return Err(format!(
                "{}: '{key}' has shape {:?}, the config.json says {:?}",
                file.display(),
                tensor.dims(),
                var.dims()
            ));
        }
        let value = tensor
            .to_dtype(var.dtype())
            .and_then(|t| t.to_device(var.device()))
            .map_err(|e| format!("{}: '{key}': {e}", file.display()))?;
        var.set(&value)
            .map_err(|e| format!("{}: '{key}': {e}", file.display()))?;
        loaded += 1;
    }
    if loaded == 0 {
        return Err(format!(
            "the policy has no variables under '{var_prefix}' to load"
        ));
    }
    Ok(loaded)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_differentiable_max_pool_equals_candles_on_padded_input() {
        for side in [16, 17] {
            let x = Tensor::rand(0f32, 1f32, (2, 3, side, side), &candle_core::Device::Cpu).expect("x");
            let ours = max_pool_3x3_stride_2(&x).expect("ours");
            let reference = x
                .pad_with_zeros(D::Minus2, 1, 1)
                .and_then(|p| p.pad_with_zeros(D::Minus1, 1, 1))
                .and_then(|p| p.max_pool2d_with_stride(3, 2))
                .expect("reference");
            assert_eq!(ours.dims(), reference.dims(), "side {side}");
            let gap: f32 = (ours - reference)
                .and_then(|d| d.abs())
                .and_then(|d| d.sum_all())
                .and_then(|s| s.to_scalar())
                .expect("gap");
            assert_eq!(gap, 0.0, "side {side}");
        }
    }
}
