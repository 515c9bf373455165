//! The policy network: a convolutional image encoder, a byte-level text
//! encoder, the robot state as a token, a transformer trunk over all of
//! them, and a flow-matching action expert that turns noise into a chunk
//! of `horizon` actions in `flow_steps` Euler steps (as π0 and SmolVLA do),
//! or, as a baseline, an L1-regressed chunk (as ACT does).

use candle_core::{D, DType, Device, Module, Result, Tensor};
use candle_nn::{Embedding, Init, Linear, VarBuilder, embedding, linear};

use crate::bert::{Bert, Text};
use crate::layers::{Block, ExpertBlock, LayerNorm, sinusoidal};
use crate::pretrained::{ResNet, Vision};
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
    /// Consecutive actions the action expert handles as one token (divides
    /// `horizon`): 5 makes a 50-action chunk 10 tokens, which the expert's
    /// cost grows with.
    pub actions_per_token: usize,
    /// Euler steps when sampling a chunk.
    pub flow_steps: usize,
    /// How chunks are produced.
    #[serde(default)]
    pub head: Head,
    /// The image encoder: from scratch, or a pretrained ResNet.
    #[serde(default)]
    pub vision: Vision,
    /// The text encoder: from scratch, or a pretrained BERT.
    #[serde(default)]
    pub text: Text,
    /// What a chunk's actions are: joint goals, or offsets from the joint
    /// state the chunk was drawn for.
    #[serde(default)]
    pub actions: ActionFrame,
    /// Entries of the dataset's `observation.environment_state` an
    /// auxiliary head predicts from the trunk's state token during
    /// training (0: no such head). Inference never uses it.
    #[serde(default)]
    pub aux_targets: usize,
    /// How far back, in frames, the policy sees how the joints moved: the
    /// state token then also takes the state less the state this many
    /// frames before (0: the state alone). A sweep's direction, or
    /// whether the sponge is going down or coming up, is not in one frame.
    #[serde(default)]
    pub motion_frames: usize,
    /// Which entries (indices) of the twin's `observation.environment_state`
    /// the state token also takes (none, the default). A diagnostic that hands the
    /// policy what the twin knows and a camera only shows (where the dirt
    /// left of the named spill lies, how much is left, the contact force),
    /// to tell perception from control; such a policy runs only in the
    /// twin (`sponge eval`), never on the arm.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub privileged: Vec<usize>,
    /// Whether the `privileged` entries are those of the episode's first
    /// frame, kept through it (where the named spill lay when the episode
    /// began), rather than of the frame now. A perception then needs to
    /// find the spill once, in a picture without the arm over it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub privileged_start: bool,
    /// Whether the state token's inputs are all zero: a model that must
    /// judge from the pictures and the instruction alone (for a perception
    /// run, whose auxiliary head could otherwise read where the target is
    /// from where the demonstrator's arm was heading).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub blind_state: bool,
}

impl PolicyConfig {
    /// Values the state token is made from: the state, its change over
    /// `motion_frames` when the policy sees motion, and the `privileged`
    /// environment state.
    pub fn state_inputs(&self) -> usize {
        let motion = if self.motion_frames > 0 { self.state_dim } else { 0 };
        self.state_dim + motion + self.privileged.len()
    }

    /// Tokens of a chunk in the action expert.
    pub fn action_tokens(&self) -> usize {
        self.horizon / self.actions_per_token.max(1)
    }

    /// Whether the shape is consistent; the reason when it is not.
    pub fn validate(&self) -> std::result::Result<(), String> {
        if self.image_size == 0 || !self.image_size.is_multiple_of(16) {
            return Err(format!("image_size {} is not a multiple of 16", self.image_size));
        }
        if let Vision::Resnet { shape, .. } = &self.vision
            && !self.image_size.is_multiple_of(shape.stride())
        {
            return Err(format!(
                "image_size {} is not a multiple of {}, the ResNet's stride",
                self.image_size,
                shape.stride()
            ));
        }
        if let Vision::Conv { keypoints: 0, .. } = self.vision {
            return Err("the conv image encoder needs at least one keypoint".into());
        }
        if self.heads == 0 || !self.d_model.is_multiple_of(self.heads) {
            return Err(format!(
                "d_model {} is not divisible by {} heads",
                self.d_model, self.heads
            ));
        }
        if !self.d_model.is_multiple_of(2) {
            return Err(format!("d_model {} is odd", self.d_model));
        }
        if self.expert_layers == 0 {
            return Err("expert_layers 0: the action expert needs a block to see the observation".into());
        }
        if self.horizon == 0 {
            return Err("horizon 0: a chunk needs at least one action".into());
        }
        if self.actions_per_token == 0 || !self.horizon.is_multiple_of(self.actions_per_token) {
            return Err(format!(
                "horizon {} is not a multiple of actions_per_token {}",
                self.horizon, self.actions_per_token
            ));
        }
        if let Text::Bert { shape, .. } = &self.text
            && self.max_text_tokens > shape.max_position_embeddings
        {
            return Err(format!(
                "max_text_tokens {} is more than the text encoder's {} positions",
                self.max_text_tokens, shape.max_position_embeddings
            ));
        }
        if self.actions == ActionFrame::Relative && self.state_dim != self.action_dim {
            return Err(format!(
                "relative actions are offsets from the state: {} state entries for {} action entries",
                self.state_dim, self.action_dim
            ));
        }
        if self.cameras == 0 || self.max_text_tokens == 0 {
            return Err("a policy needs a camera and at least one text token".into());
        }
        Ok(())
    }
}

/// What the model's actions are measured from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ActionFrame {
    /// Joint goals, as the dataset stores them.
    #[default]
    Absolute,
    /// Each action of a chunk less the joint state the chunk was drawn
    /// for: "where to go from here". Small, careful motions (lowering the
    /// sponge a few degrees) are then as large to the loss as long
    /// travels, and what was learnt in one part of the table carries over
    /// to another.
    Relative,
}

/// How the action expert produces a chunk.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Head {
    /// Flow matching: noise integrated into a chunk; K noises give K chunks.
    #[default]
    Flow,
    /// One chunk regressed with an L1 loss (ACT-style baseline); every draw is the same.
    L1,
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
            max_text_tokens: 12,
            state_dim: 6,
            action_dim: 6,
            horizon: 50,
            actions_per_token: 5,
            flow_steps: 10,
            head: Head::Flow,
            vision: Vision::Scratch,
            text: Text::Scratch,
            actions: ActionFrame::Absolute,
            aux_targets: 0,
            motion_frames: 0,
            privileged: Vec::new(),
            privileged_start: false,
            blind_state: false,
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
    /// Robot state, `[B, state_inputs]`: the state, then (policies that
    /// see motion) the state less the one `motion_frames` before, then
    /// (privileged policies) the twin's environment state.
    pub state: Tensor,
}

/// The image encoder: images to tokens. Its kinds (see [`Vision`]):
///
/// - patch: four stages, each merging 2×2 neighbours into one wider
///   feature (a stride-2, 2×2 convolution written as a reshape and a matrix
///   product, so that its backward pass is as fast as its forward one): an
///   image becomes (size/16)² tokens, each seeing only its own patch;
/// - conv: the same merges with a residual 3×3 convolution on the
///   1/4-size map (each place then sees 12×12 pixels across patch edges);
///   from that map, `keypoints` spatial-softmax keypoints become extra
///   tokens (where a learned feature is strongest, to a fraction of a
///   place, and the feature there), so that a small spill is located more
///   finely than its 16-pixel patch;
/// - a pretrained ResNet, its features projected to tokens.
#[derive(Debug, Clone)]
pub struct ImageEncoder {
    kind: Encoder,
    position: Tensor,
}

#[derive(Debug, Clone)]
enum Encoder {
    Patch {
        stages: Vec<Linear>,
    },
    Conv {
        /// The four 2×2 merges.
        merges: Vec<Linear>,
        /// The 3×3 convolution at 1/4 of the image size.
        conv: Linear,
        /// Per keypoint, its logit at each place of the 1/4-size map.
        keypoint_logits: Linear,
        /// (x, y, feature there) to a token.
        keypoint_in: Linear,
        keypoint_embedding: Tensor,
        /// Keypoints placed by the instruction (conv with `instructed` > 0).
        instructed: Option<Instructed>,
    },
    Resnet {
        net: ResNet,
        project: Linear,
        frozen: bool,
    },
}

/// Keypoints placed by the instruction: a query per keypoint from the
/// instruction, matched against the map's features plus a learned key per
/// place.
#[derive(Debug, Clone)]
struct Instructed {
    /// The instruction (`[B, d]`) to the queries, `[B, n × C]`.
    query: Linear,
    /// A key per place of the 1/4-size map, `[places, C]`.
    place_keys: Tensor,
    /// Which instructed keypoint a token is, `[n, d]`.
    embedding: Tensor,
    n: usize,
}

impl ImageEncoder {
    /// The encoder of `config`'s vision (its `d_model`, `image_size` and `vision`).
    pub fn new(config: &PolicyConfig, vb: VarBuilder) -> Result<ImageEncoder> {
        let small = Init::Randn {
            mean: 0.0,
            stdev: 0.02,
        };
        let d = config.d_model;
        // Channels of the pixels and of the maps at 1/2 … 1/16 of the size.
        let widths = [3, 32, 64, 128, d];
        let merges = |vb: VarBuilder, name: &str| {
            (0..4)
                .map(|i| linear(4 * widths[i], widths[i + 1], vb.pp(format!("{name}{i}"))))
                .collect::<Result<Vec<_>>>()
        };
        let (kind, side) = match &config.vision {
            Vision::Resnet { shape, frozen, .. } => {
                let net = ResNet::new(shape, vb.pp("backbone"))?;
                let project = linear(net.channels(), d, vb.pp("project"))?;
                let kind = Encoder::Resnet {
                    net,
                    project,
                    frozen: *frozen,
                };
                (kind, config.image_size / shape.stride())
            }
            Vision::Scratch => {
                let stages = merges(vb.clone(), "stage")?;
                (Encoder::Patch { stages }, config.image_size / 16)
            }
            Vision::Conv {
                keypoints,
                instructed,
            } => {
                let c = widths[2];
                let quarter = config.image_size / 4;
                let instructed = match *instructed {
                    0 => None,
                    n => Some(Instructed {
                        query: linear(d, n * c, vb.pp("instructed_query"))?,
                        place_keys: vb.get_with_hints(
                            (quarter * quarter, c),
                            "instructed_place_keys",
                            small,
                        )?,
                        embedding: vb.get_with_hints((n, d), "instructed_embedding", small)?,
                        n,
                    }),
                };
                let kind = Encoder::Conv {
                    instructed,
                    merges: merges(vb.clone(), "merge")?,
                    conv: linear(9 * c, c, vb.pp("conv0"))?,
                    keypoint_logits: linear(c, *keypoints, vb.pp("keypoint_logits"))?,
                    keypoint_in: linear(2 + c, d, vb.pp("keypoint_in"))?,
                    keypoint_embedding: vb.get_with_hints((*keypoints, d), "keypoint_embedding", small)?,
                };
                (kind, config.image_size / 16)
            }
        };
        let position = vb.get_with_hints((side * side, d), "position", small)?;
        Ok(ImageEncoder { kind, position })
    }

    /// `[B, 3, H, W]` → `[B, tokens, d]`; `instruction` (`[B, d]`, the
    /// instruction's words pooled) places the instructed keypoints of an
    /// encoder that has them (and such an encoder needs it).
    pub fn forward(&self, images: &Tensor, instruction: Option<&Tensor>) -> Result<Tensor> {
        Ok(self.forward_with_place(images, instruction)?.0)
    }

    /// [`ImageEncoder::forward`], and for an encoder with instructed
    /// keypoints the first one's logits over the places of the 1/4-size
    /// map (`[B, places]`, row by row): where the instruction's thing is,
    /// for training it against where the twin says it is
    /// ([`Policy::losses`]).
    pub fn forward_with_place(
        &self,
        images: &Tensor,
        instruction: Option<&Tensor>,
    ) -> Result<(Tensor, Option<Tensor>)> {
        // Channels last: [B, H, W, C].
        let pixels = || ((images - 0.5)? * 2.0)?.permute((0, 2, 3, 1));
        match &self.kind {
            Encoder::Resnet { net, project, frozen } => {
                let mut features = net.forward(images)?;
                if *frozen {
                    features = features.detach();
                }
                let (b, c, h, w) = features.dims4()?;
                let tokens = features.reshape((b, c, h * w))?.transpose(1, 2)?.contiguous()?;
                Ok((project.forward(&tokens)?.broadcast_add(&self.position)?, None))
            }
            Encoder::Patch { stages } => {
                let mut x = pixels()?;
                for (i, stage) in stages.iter().enumerate() {
                    x = per_place(stage, &merge_2x2(&x)?)?;
                    if i + 1 < stages.len() {
                        x = x.silu()?;
                    }
                }
                let (b, h, w, d) = x.dims4()?;
                Ok((x.reshape((b, h * w, d))?.broadcast_add(&self.position)?, None))
            }
            Encoder::Conv {
                merges,
                conv,
                keypoint_logits,
                keypoint_in,
                keypoint_embedding,
                instructed,
            } => {
                let mut x = per_place(&merges[0], &merge_2x2(&pixels()?)?)?.silu()?;
                x = per_place(&merges[1], &merge_2x2(&x)?)?.silu()?;
                x = (&x + conv_3x3(conv, &x)?.silu()?)?;
                let mut keypoints = keypoint_in
                    .forward(&spatial_softmax(&x, keypoint_logits)?)?
                    .broadcast_add(keypoint_embedding)?;
                let mut place = None;
                if let Some(instructed) = instructed {
                    let Some(instruction) = instruction else {
                        candle_core::bail!("keypoints placed by the instruction need an instruction")
                    };
                    let (found, logits) = instructed.find(&x, instruction)?;
                    place = Some(logits.narrow(1, 0, 1)?.squeeze(1)?);
                    let found = keypoint_in
                        .forward(&found)?
                        .broadcast_add(&instructed.embedding)?;
                    keypoints = Tensor::cat(&[keypoints, found], 1)?;
                }
                x = per_place(&merges[2], &merge_2x2(&x)?)?.silu()?;
                x = per_place(&merges[3], &merge_2x2(&x)?)?;
                let (b, h, w, d) = x.dims4()?;
                let patches = x.reshape((b, h * w, d))?.broadcast_add(&self.position)?;
                Ok((Tensor::cat(&[patches, keypoints], 1)?, place))
            }
        }
    }
}

/// `layer` applied at each place of a `[B, H, W, C]` map, as one matrix
/// product (candle's `Linear` on a 4-D input makes one small product per
/// row and, backwards, a weight gradient per row before summing them).
fn per_place(layer: &Linear, x: &Tensor) -> Result<Tensor> {
    let (b, h, w, c) = x.dims4()?;
    let y = layer.forward(&x.reshape((b * h * w, c))?)?;
    let out = y.dim(1)?;
    y.reshape((b, h, w, out))
}

/// `[B, H, W, C]` → `[B, H/2, W/2, 4C]`: each 2×2 block as one feature.
fn merge_2x2(x: &Tensor) -> Result<Tensor> {
    let (b, h, w, c) = x.dims4()?;
    x.reshape((b, h / 2, 2, w / 2, 2, c))?
        .permute((0, 1, 3, 2, 4, 5))?
        .contiguous()?
        .reshape((b, h / 2, w / 2, 4 * c))
}

/// A 3×3 convolution (zeros beyond the edge) of a `[B, H, W, C]` map, with
/// `layer`'s weights laid out as nine taps of C inputs (row by row). Each
/// tap is a matrix product on a shifted view of the flattened, padded map,
/// so that every copy moves whole rows (candle copies a view of the last
/// dimension element by element, which made an unfolded 9C-wide map take
/// longer than the rest of a training step).
fn conv_3x3(layer: &Linear, x: &Tensor) -> Result<Tensor> {
    let (b, h, w, c) = x.dims4()?;
    let row = w + 2;
    // One spare row below, so that every tap's view is h rows long; the two
    // columns each output row gets from the padding are dropped at the end.
    let flat = x
        .pad_with_zeros(2, 1, 1)?
        .pad_with_zeros(1, 1, 2)?
        .reshape((b, (h + 3) * row, c))?;
    let mut sum: Option<Tensor> = None;
    for tap in 0..9 {
        let shifted = flat
            .narrow(1, (tap / 3) * row + tap % 3, h * row)?
            .contiguous()?
            .reshape((b * h * row, c))?;
        let weight = layer.weight().narrow(1, tap * c, c)?.t()?.contiguous()?;
        let y = shifted.matmul(&weight)?;
        sum = Some(match sum {
            None => y,
            Some(sum) => (sum + y)?,
        });
    }
    let mut y = sum.expect("nine taps");
    if let Some(bias) = layer.bias() {
        y = y.broadcast_add(bias)?;
    }
    let out = y.dim(1)?;
    y.reshape((b, h, row, out))?.narrow(2, 0, w)?.contiguous()
}

impl Instructed {
    /// The instructed keypoints of a `[B, H, W, C]` map: `[B, n, 2 + C]`
    /// as [`spatial_softmax`] gives them, and their logits over the places,
    /// `[B, n, H·W]`.
    fn find(&self, x: &Tensor, instruction: &Tensor) -> Result<(Tensor, Tensor)> {
        let (b, h, w, c) = x.dims4()?;
        let flat = x.reshape((b, h * w, c))?;
        let keys = flat.broadcast_add(&self.place_keys)?;
        let queries = self.query.forward(instruction)?.reshape((b, self.n, c))?;
        let scale = KEYPOINT_SHARPNESS / (c as f64).sqrt();
        let logits = (queries.matmul(&keys.transpose(1, 2)?.contiguous()?)? * scale)?;
        let found = expected_places(&crate::layers::softmax_f32(&logits)?, &flat, h, w)?;
        Ok((found, logits))
    }
}

/// How much sharper than their raw logits the keypoints' softmaxes are: at
/// 1 the fresh, small logits spread every keypoint's weight over the whole
/// map, where the gradient that would move it is weak.
const KEYPOINT_SHARPNESS: f64 = 10.0;

/// Spatial-softmax keypoints of a `[B, H, W, C]` map: for each of the
/// logits' K outputs, a softmax over the places, and under it the expected
/// place (x and y in −1..1) and the expected feature: `[B, K, 2 + C]`.
fn spatial_softmax(x: &Tensor, logits: &Linear) -> Result<Tensor> {
    let (b, h, w, c) = x.dims4()?;
    let flat = x.reshape((b, h * w, c))?;
    let weights = (logits.forward(&flat)?.transpose(1, 2)?.contiguous()? * KEYPOINT_SHARPNESS)?;
    expected_places(&crate::layers::softmax_f32(&weights)?, &flat, h, w)
}

/// Where the first instructed keypoint of the first camera puts the
/// instruction's thing, from its logits over the places (`[B, places]`,
/// [`Policy::encode_with_place`]): per observation, x and y in −1..1 of the
/// picture (x to the right, y down), at the peak of the keypoint's weights,
/// refined by the weighted mean of the 3×3 places around it (as heatmap
/// pose estimators read a heatmap: the mean over the whole map would fall
/// between two candidates, or towards the middle when the weights are
/// spread).
pub fn places_at_peak(logits: &Tensor) -> Result<Vec<[f32; 2]>> {
    Ok(keypoint_weights(logits)?.iter().map(|w| peak_place(w)).collect())
}

/// The first instructed keypoint's weights over the places (its softmax),
/// per observation, from its logits (`[B, places]`).
pub fn keypoint_weights(logits: &Tensor) -> Result<Vec<Vec<f32>>> {
    crate::layers::softmax_f32(&logits.to_dtype(DType::F32)?)?.to_vec2()
}

/// The peak of weights over the places of a square map (row by row),
/// refined by the weighted mean of the 3×3 places around it: x and y in
/// −1..1.
pub fn peak_place(weights: &[f32]) -> [f32; 2] {
    let side = (weights.len() as f64).sqrt().round() as usize;
    let best = (0..weights.len())
        .max_by(|&a, &b| weights[a].total_cmp(&weights[b]))
        .unwrap_or(0);
    let (row, col) = ((best / side) as i64, (best % side) as i64);
    let (mut sum, mut x, mut y) = (0.0f32, 0.0f32, 0.0f32);
    for r in row - 1..=row + 1 {
        for c in col - 1..=col + 1 {
            if r < 0 || c < 0 || r >= side as i64 || c >= side as i64 {
                continue;
            }
            let w = weights[r as usize * side + c as usize];
            sum += w;
            x += w * c as f32;
            y += w * r as f32;
        }
    }
    let centre = |v: f32| (v / sum.max(f32::MIN_POSITIVE) + 0.5) / side as f32 * 2.0 - 1.0;
    [centre(x), centre(y)]
}

/// The places of an `h × w` map, row by row: `[h·w, 2]`, x and y of each
/// place's centre in −1..1.
fn place_grid(h: usize, w: usize, device: &Device) -> Result<Tensor> {
    let grid: Vec<f32> = (0..h)
        .flat_map(|row| {
            (0..w).flat_map(move |col| {
                [
                    (col as f32 + 0.5) / w as f32 * 2.0 - 1.0,
                    (row as f32 + 0.5) / h as f32 * 2.0 - 1.0,
                ]
            })
        })
        .collect();
    Tensor::from_vec(grid, (h * w, 2), device)
}

/// Under weights over the places of an `h × w` map (`[B, K, h·w]`, each
/// row summing to 1), the expected place (x and y in −1..1) and feature of
/// `flat` (`[B, h·w, C]`): `[B, K, 2 + C]`.
fn expected_places(weights: &Tensor, flat: &Tensor, h: usize, w: usize) -> Result<Tensor> {
    let grid = place_grid(h, w, flat.device())?.to_dtype(flat.dtype())?;
    let places = weights.broadcast_matmul(&grid)?;
    let features = weights.matmul(flat)?;
    Tensor::cat(&[places, features], 2)
}

impl std::str::FromStr for ActionFrame {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<ActionFrame, String> {
        match s {
            "absolute" => Ok(ActionFrame::Absolute),
            "relative" => Ok(ActionFrame::Relative),
            other => Err(format!("unknown action frame '{other}' (absolute or relative)")),
        }
    }
}

impl std::str::FromStr for Head {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Head, String> {
        match s {
            "flow" => Ok(Head::Flow),
            "l1" => Ok(Head::L1),
            other => Err(format!("unknown head '{other}' (flow or l1)")),
        }
    }
}

/// The instruction's encoder.
#[derive(Debug, Clone)]
enum TextEncoder {
    /// Word embeddings, positions and transformer blocks trained with the policy.
    Scratch {
        embedding: Embedding,
        position: Tensor,
        blocks: Vec<Block>,
    },
    /// A pretrained BERT, its features projected to the policy's width.
    Bert {
        bert: Bert,
        project: Linear,
        frozen: bool,
    },
}

/// What [`Policy::losses`] learns from besides the chunks.
#[derive(Debug, Clone, Copy, Default)]
pub struct Targets<'a> {
    /// The auxiliary head's targets, `[B, aux_targets]`, normalised.
    pub environment: Option<&'a Tensor>,
    /// Where the instruction's thing lies in the first camera's picture, as
    /// weights over the places of the 1/4-size map (`[B, places]`, each
    /// row summing to 1), for the first instructed keypoint.
    pub place: Option<&'a Tensor>,
}

/// The losses of [`Policy::losses`].
#[derive(Debug, Clone)]
pub struct Losses {
    /// The flow (or L1 chunk) loss.
    pub flow: Tensor,
    /// The auxiliary head's, given its targets.
    pub aux: Option<Tensor>,
    /// The instructed keypoint's, given a place.
    pub place: Option<Tensor>,
}

/// The policy network.
#[derive(Debug, Clone)]
pub struct Policy {
    config: PolicyConfig,
    image: ImageEncoder,
    camera_embedding: Tensor,
    text: TextEncoder,
    state_in: Linear,
    trunk: Vec<Block>,
    trunk_norm: LayerNorm,
    /// Noisy actions and flow time in (flow head only).
    flow_in: Option<(Linear, Linear)>,
    action_position: Tensor,
    expert: Vec<ExpertBlock>,
    expert_norm: LayerNorm,
    action_out: Linear,
    /// The auxiliary head (`aux_targets` > 0).
    aux_out: Option<Linear>,
}

impl Policy {
    /// A policy of shape `config`, its variables from `vb`.
    pub fn new(config: &PolicyConfig, vb: VarBuilder) -> Result<Policy> {
        config.validate().map_err(candle_core::Error::Msg)?;
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
            text: match &config.text {
                Text::Scratch => TextEncoder::Scratch {
                    embedding: embedding(VOCAB, d, vb.pp("token_embedding"))?,
                    position: vb.get_with_hints((config.max_text_tokens, d), "text_position", small)?,
                    blocks: blocks(config.text_layers, vb.pp("text"))?,
                },
                Text::Bert { shape, frozen, .. } => TextEncoder::Bert {
                    bert: Bert::new(shape, vb.pp("text").pp("bert"))?,
                    project: linear(shape.hidden_size, d, vb.pp("text").pp("project"))?,
                    frozen: *frozen,
                },
            },
            state_in: linear(config.state_inputs(), d, vb.pp("state_in"))?,
            trunk: blocks(config.trunk_layers, vb.pp("trunk"))?,
            trunk_norm: LayerNorm::new(d, vb.pp("trunk_norm"))?,
            flow_in: match config.head {
                Head::Flow => Some((
                    linear(
                        config.action_dim * config.actions_per_token,
                        d,
                        vb.pp("action_in"),
                    )?,
                    linear(d, d, vb.pp("time_in"))?,
                )),
                Head::L1 => None,
            },
            action_position: vb.get_with_hints((config.action_tokens(), d), "action_position", small)?,
            expert: (0..config.expert_layers)
                .map(|i| ExpertBlock::new(d, config.heads, 4, vb.pp("expert").pp(i.to_string())))
                .collect::<Result<_>>()?,
            expert_norm: LayerNorm::new(d, vb.pp("expert_norm"))?,
            action_out: linear(
                d,
                config.action_dim * config.actions_per_token,
                vb.pp("action_out"),
            )?,
            aux_out: match config.aux_targets {
                0 => None,
                n => Some(linear(d, n, vb.pp("aux_out"))?),
            },
        })
    }

    /// Its shape.
    pub fn config(&self) -> &PolicyConfig {
        &self.config
    }

    /// The dtype of its weights, which its inputs must have (f32, or bf16
    /// for mixed-precision training); the flow times may stay f32.
    pub fn dtype(&self) -> DType {
        self.camera_embedding.dtype()
    }

    /// The trunk's tokens for an observation: `[B, tokens, d]`.
    pub fn encode(&self, observation: &Observation) -> Result<Tensor> {
        Ok(self.encode_with_place(observation)?.0)
    }

    /// [`Policy::encode`], and with instructed keypoints the first one's
    /// logits over the places of the first camera's 1/4-size map
    /// (`[B, places]`; see [`ImageEncoder::forward_with_place`]).
    pub fn encode_with_place(&self, observation: &Observation) -> Result<(Tensor, Option<Tensor>)> {
        let mut parts = Vec::new();
        // Text: padding tokens are zeroed so only the words count.
        let mask = observation
            .tokens
            .ne(PAD)?
            .to_dtype(self.dtype())?
            .unsqueeze(D::Minus1)?;
        let text = match &self.text {
            TextEncoder::Scratch {
                embedding,
                position,
                blocks,
            } => {
                let mut text = embedding
                    .forward(&observation.tokens)?
                    .broadcast_add(position)?
                    .broadcast_mul(&mask)?;
                for block in blocks {
                    text = block.forward(&text)?.broadcast_mul(&mask)?;
                }
                text
            }
            TextEncoder::Bert {
                bert,
                project,
                frozen,
            } => {
                let mut features = bert.forward(&observation.tokens, &mask.squeeze(D::Minus1)?)?;
                if *frozen {
                    features = features.detach();
                }
                project.forward(&features)?.broadcast_mul(&mask)?
            }
        };
        // The instruction's words pooled, for keypoints it places.
        let words = mask.sum(1)?.clamp(1.0, f64::MAX)?;
        let instruction = text.sum(1)?.broadcast_div(&words)?;
        let mut place = None;
        for camera in 0..self.config.cameras {
            let images = observation.images.narrow(1, camera, 1)?.squeeze(1)?;
            let (tokens, logits) = self.image.forward_with_place(&images, Some(&instruction))?;
            if camera == 0 {
                place = logits;
            }
            let tag = self.camera_embedding.narrow(0, camera, 1)?;
            parts.push(tokens.broadcast_add(&tag)?);
        }
        parts.push(text);
        parts.push(self.state_in.forward(&observation.state)?.unsqueeze(1)?);
        let mut x = Tensor::cat(&parts, 1)?;
        for block in &self.trunk {
            x = block.forward(&x)?;
        }
        Ok((self.trunk_norm.forward(&x)?, place))
    }

    /// What the action expert attends to: per expert block, the keys and
    /// values of the trunk's tokens. Computed once per observation.
    pub fn memory(&self, context: &Tensor) -> Result<Memory> {
        Ok(Memory(
            self.expert
                .iter()
                .map(|b| b.memory(context))
                .collect::<Result<_>>()?,
        ))
    }

    /// The expert's output for action tokens `x` (`[B, tokens, d]`): `[B, H, action_dim]`.
    fn expert(&self, memory: &Memory, mut x: Tensor) -> Result<Tensor> {
        for (block, kv) in self.expert.iter().zip(&memory.0) {
            x = block.forward(&x, kv)?;
        }
        let b = x.dim(0)?;
        self.action_out.forward(&self.expert_norm.forward(&x)?)?.reshape((
            b,
            self.config.horizon,
            self.config.action_dim,
        ))
    }

    /// The flow's velocity for noisy chunks `x_t` (`[B, H, action_dim]`) at
    /// times `t` (`[B]`, 0 = noise, 1 = data), given the expert's memory.
    /// With the L1 head, the chunk itself (`x_t` and `t` unused).
    pub fn velocity(&self, memory: &Memory, x_t: &Tensor, t: &Tensor) -> Result<Tensor> {
        let b = x_t.dim(0)?;
        let tokens = match &self.flow_in {
            Some((action_in, time_in)) => {
                let time = time_in
                    .forward(&sinusoidal(t, self.config.d_model)?.to_dtype(x_t.dtype())?)?
                    .silu()?
                    .unsqueeze(1)?;
                let grouped = x_t.reshape((
                    b,
                    self.config.action_tokens(),
                    self.config.action_dim * self.config.actions_per_token,
                ))?;
                action_in
                    .forward(&grouped)?
                    .broadcast_add(&self.action_position)?
                    .broadcast_add(&time)?
            }
            None => self
                .action_position
                .unsqueeze(0)?
                .broadcast_as((b, self.config.action_tokens(), self.config.d_model))?
                .contiguous()?,
        };
        self.expert(memory, tokens)
    }

    /// The training loss for expert chunks `actions` (`[B, H, action_dim]`,
    /// normalised), with noise `noise` and times `t` drawn by the caller.
    /// Flow head: the mean squared error of the velocity towards the data.
    /// `noise` and `t` may hold K rows per observation (`[B·K, H,
    /// action_dim]` and `[B·K]`, each observation's K rows in a row): the
    /// observation is encoded once and the expert learns from K noisy
    /// versions of its chunk.
    /// L1 head: the mean absolute error of the chunk (noise and times unused).
    pub fn flow_loss(
        &self,
        observation: &Observation,
        actions: &Tensor,
        noise: &Tensor,
        t: &Tensor,
    ) -> Result<Tensor> {
        Ok(self
            .losses(observation, actions, noise, t, Targets::default())?
            .flow)
    }

    /// [`Policy::flow_loss`] and, from the same encoding of the
    /// observation, the losses of what `targets` gives: the auxiliary
    /// head's mean squared error, and how far the first instructed
    /// keypoint's weights over the places lie from the place given (the
    /// Kullback-Leibler divergence from the given distribution).
    pub fn losses(
        &self,
        observation: &Observation,
        actions: &Tensor,
        noise: &Tensor,
        t: &Tensor,
        targets: Targets,
    ) -> Result<Losses> {
        let (context, logits) = self.encode_with_place(observation)?;
        let aux = match (targets.environment, self.perceive(&context)?) {
            (Some(target), Some(predicted)) => Some((predicted - target)?.sqr()?.mean_all()?),
            (Some(_), None) => {
                candle_core::bail!("an auxiliary target for a policy without an auxiliary head")
            }
            (None, _) => None,
        };
        let place = match (targets.place, logits) {
            (Some(wanted), Some(logits)) => {
                let logits = logits.to_dtype(DType::F32)?;
                let log_p = candle_nn::ops::log_softmax(&logits, D::Minus1)?;
                let wanted = wanted.to_dtype(DType::F32)?;
                // Σ q (log q − log p), with 0 log 0 = 0.
                let log_q = wanted.clamp(1e-12, 1.0)?.log()?;
                let b = logits.dim(0)? as f64;
                Some(((wanted * (log_q - log_p)?)?.sum_all()? / b)?)
            }
            (Some(_), None) => {
                candle_core::bail!("a place target for a policy without keypoints placed by the instruction")
            }
            (None, _) => None,
        };
        Ok(Losses {
            flow: self.flow_loss_from(&context, actions, noise, t)?,
            aux,
            place,
        })
    }

    /// The auxiliary head's prediction from an encoding (`[B, tokens, d]`,
    /// [`Policy::encode`]): `[B, aux_targets]`, normalised; `None` for a
    /// policy without the head.
    pub fn perceive(&self, context: &Tensor) -> Result<Option<Tensor>> {
        let Some(head) = &self.aux_out else {
            return Ok(None);
        };
        let tokens = context.dim(1)?;
        // The state token, last of the trunk's, has attended to all the others.
        let state_token = context.narrow(1, tokens - 1, 1)?.squeeze(1)?;
        Ok(Some(head.forward(&state_token)?))
    }

    fn flow_loss_from(
        &self,
        context: &Tensor,
        actions: &Tensor,
        noise: &Tensor,
        t: &Tensor,
    ) -> Result<Tensor> {
        let memory = self.memory(context)?;
        match self.config.head {
            Head::Flow => {
                let (b, rows) = (actions.dim(0)?, noise.dim(0)?);
                if rows % b != 0 || t.dim(0)? != rows {
                    candle_core::bail!(
                        "flow loss: {rows} noise rows and {} times for {b} chunks (want K·{b} of each)",
                        t.dim(0)?
                    );
                }
                let k = rows / b;
                let (memory, actions) = (memory.repeat(k)?, &repeat_rows(actions, k)?);
                let tt = t.to_dtype(actions.dtype())?.reshape((rows, 1, 1))?;
                let x_t = (actions.broadcast_mul(&tt)? + noise.broadcast_mul(&(1.0 - &tt)?)?)?;
                let target = (actions - noise)?;
                let predicted = self.velocity(&memory, &x_t, t)?;
                (predicted - target)?.sqr()?.mean_all()
            }
            Head::L1 => (self.velocity(&memory, actions, t)? - actions)?.abs()?.mean_all(),
        }
    }

    /// Chunks for an observation, integrating the flow from `noise`
    /// (`[B, H, action_dim]`; K different noises for one observation
    /// repeated K times give K different chunks).
    pub fn sample(&self, observation: &Observation, noise: &Tensor) -> Result<Tensor> {
        let memory = self.memory(&self.encode(observation)?)?;
        self.sample_from(&memory, noise)
    }

    /// Chunks from an observation's memory: `noise` may hold K rows per
    /// observation when `memory` was repeated K times (see [`Memory::repeat`]).
    pub fn sample_from(&self, memory: &Memory, noise: &Tensor) -> Result<Tensor> {
        self.sample_guided(memory, noise, None)
    }

    /// As [`Policy::sample_from`], with the first actions of each chunk
    /// given: `known` is `(actions, mask)`, `actions` a `[B, H,
    /// action_dim]` chunk (normalised) and `mask` `[B, H, 1]`, 1 where the
    /// action is given and 0 where the flow draws it. At every integration
    /// step the given actions are put where the flow's straight path from
    /// the noise to them is at that time, so the rest of the chunk is drawn
    /// to continue them (inpainting, a simple form of real-time chunking);
    /// the result holds them exactly. The L1 head ignores them.
    pub fn sample_guided(
        &self,
        memory: &Memory,
        noise: &Tensor,
        known: Option<(&Tensor, &Tensor)>,
    ) -> Result<Tensor> {
        let b = noise.dim(0)?;
        if self.config.head == Head::L1 {
            return self.velocity(memory, noise, &Tensor::zeros(b, noise.dtype(), noise.device())?);
        }
        let pin = |x: Tensor, t: f64| -> Result<Tensor> {
            match known {
                Some((actions, mask)) => {
                    let on_path = ((actions * t)? + (noise * (1.0 - t))?)?;
                    let keep = (1.0 - mask)?;
                    on_path.broadcast_mul(mask)? + x.broadcast_mul(&keep)?
                }
                None => Ok(x),
            }
        };
        let steps = self.config.flow_steps.max(1);
        let dt = 1.0 / steps as f64;
        let mut x = noise.clone();
        for k in 0..steps {
            let t = k as f64 * dt;
            x = pin(x, t)?;
            let v = self.velocity(memory, &x, &Tensor::full(t as f32, b, noise.device())?)?;
            x = (x + (v * dt)?)?;
        }
        pin(x, 1.0)
    }
}

/// The action expert's view of a batch of observations (keys and values per block).
#[derive(Debug, Clone)]
pub struct Memory(Vec<(Tensor, Tensor)>);

impl Memory {
    /// Each observation's memory `k` times in a row, to draw `k` chunks per observation at once.
    pub fn repeat(&self, k: usize) -> Result<Memory> {
        Ok(Memory(
            self.0
                .iter()
                .map(|(k_, v)| Ok((repeat_rows(k_, k)?, repeat_rows(v, k)?)))
                .collect::<Result<_>>()?,
        ))
    }
}

/// Each row (first index) of `t` `k` times in a row.
fn repeat_rows(t: &Tensor, k: usize) -> Result<Tensor> {
    if k == 1 {
        return Ok(t.clone());
    }
    let dims = t.dims();
    let mut expanded = vec![dims[0], k];
    expanded.extend_from_slice(&dims[1..]);
    let mut flat = vec![dims[0] * k];
    flat.extend_from_slice(&dims[1..]);
    t.unsqueeze(1)?
        .broadcast_as(expanded)?
        .contiguous()?
        .reshape(flat)
}

/// Standard normal noise of the shape of a batch of chunks.
pub fn chunk_noise(config: &PolicyConfig, batch: usize, device: &Device) -> Result<Tensor> {
    Tensor::randn(0f32, 1f32, (batch, config.horizon, config.action_dim), device)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer(weight: Vec<f32>, outputs: usize, inputs: usize, bias: Option<Vec<f32>>) -> Linear {
        let weight = Tensor::from_vec(weight, (outputs, inputs), &Device::Cpu).expect("weight");
        let bias = bias.map(|b| Tensor::from_vec(b, outputs, &Device::Cpu).expect("bias"));
        Linear::new(weight, bias)
    }

    /// The 3×3 convolution against the sum written out place by place.
    #[test]
    fn conv_3x3_matches_the_convolution_written_out() {
        let (b, h, w, c, out) = (2, 5, 4, 3, 2);
        let x: Vec<f32> = (0..b * h * w * c)
            .map(|i| ((i * 37 % 11) as f32 - 5.0) / 3.0)
            .collect();
        let weight: Vec<f32> = (0..out * 9 * c)
            .map(|i| ((i * 13 % 7) as f32 - 3.0) / 5.0)
            .collect();
        let bias = vec![0.5, -0.25];
        let conv = layer(weight.clone(), out, 9 * c, Some(bias.clone()));
        let input = Tensor::from_vec(x.clone(), (b, h, w, c), &Device::Cpu).expect("input");
        let got = conv_3x3(&conv, &input)
            .expect("conv")
            .flatten_all()
            .expect("flat");
        let got = got.to_vec1::<f32>().expect("values");
        for n in 0..b {
            for row in 0..h {
                for col in 0..w {
                    for o in 0..out {
                        let mut want = bias[o];
                        for tap in 0..9 {
                            let (r, q) = (row + tap / 3, col + tap % 3);
                            if r < 1 || q < 1 || r > h || q > w {
                                continue;
                            }
                            for i in 0..c {
                                let pixel = x[((n * h + r - 1) * w + q - 1) * c + i];
                                want += weight[o * 9 * c + tap * c + i] * pixel;
                            }
                        }
                        let at = ((n * h + row) * w + col) * out + o;
                        assert!(
                            (got[at] - want).abs() < 1e-4,
                            "place {n},{row},{col},{o}: {} ≠ {want}",
                            got[at]
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn a_conv_encoder_without_keypoints_is_refused_by_name() {
        let config = PolicyConfig {
            vision: Vision::Conv {
                keypoints: 0,
                instructed: 0,
            },
            ..PolicyConfig::default()
        };
        let error = config.validate().expect_err("zero keypoints");
        assert!(error.contains("keypoint"), "{error}");
        let config = PolicyConfig {
            vision: Vision::Conv {
                keypoints: 8,
                instructed: 0,
            },
            ..PolicyConfig::default()
        };
        assert!(config.validate().is_ok());
    }

    /// A keypoint whose logit peaks at one place reports that place, in
    /// −1..1, and the feature there.
    #[test]
    fn the_peak_place_is_the_strongest_candidates_not_the_mean_of_two() {
        // A 4×4 map: most weight at row 1, col 2, a rival at row 3, col 0.
        let mut w = vec![0.0f32; 16];
        w[6] = 0.5;
        w[7] = 0.1;
        w[12] = 0.4;
        let [x, y] = peak_place(&w);
        // Column 2 pulled a sixth of the way to column 3: (2 + 1/6 + 0.5) / 4 * 2 - 1.
        assert!(
            (x - ((2.0 + 1.0 / 6.0 + 0.5) / 4.0 * 2.0 - 1.0)).abs() < 1e-6,
            "{x}"
        );
        assert!((y - (1.5 / 4.0 * 2.0 - 1.0)).abs() < 1e-6, "{y}");
    }

    #[test]
    fn a_spatial_softmax_keypoint_finds_the_brightest_place() {
        let (h, w) = (6, 8);
        let (row, col) = (4, 1);
        let mut map = vec![0f32; h * w * 2];
        map[(row * w + col) * 2] = 1.0;
        map[(row * w + col) * 2 + 1] = 0.75;
        let map = Tensor::from_vec(map, (1, h, w, 2), &Device::Cpu).expect("map");
        // One keypoint that looks at the first channel, sharply.
        let logits = layer(vec![50.0, 0.0], 1, 2, None);
        let keypoint = spatial_softmax(&map, &logits)
            .expect("keypoint")
            .flatten_all()
            .expect("flat");
        let keypoint = keypoint.to_vec1::<f32>().expect("values");
        let x = (col as f32 + 0.5) / w as f32 * 2.0 - 1.0;
        let y = (row as f32 + 0.5) / h as f32 * 2.0 - 1.0;
        assert!((keypoint[0] - x).abs() < 1e-3, "x {} ≠ {x}", keypoint[0]);
        assert!((keypoint[1] - y).abs() < 1e-3, "y {} ≠ {y}", keypoint[1]);
        assert!((keypoint[2] - 1.0).abs() < 1e-3 && (keypoint[3] - 0.75).abs() < 1e-3);
    }
}
