//! A trained policy ready to act: loads a run folder, turns raw
//! observations (RGB8 camera frames, the state in dataset units, the
//! instruction) into the model's inputs, and returns chunks of actions in
//! dataset units. Noise comes from a seeded generator, so the same seed
//! gives the same actions.

use std::path::Path;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, StandardNormal};

use crate::tokenizer::Tokenizer;
use crate::train::{RunConfig, TrainError};
use crate::{ActionFrame, Observation, Policy};

/// One observation as a robot or the twin gives it.
#[derive(Debug, Clone, Copy)]
pub struct Input<'a> {
    /// RGB8 frames, row-major, one per camera in the run's camera order.
    pub images: &'a [&'a [u8]],
    /// Joint positions in dataset units (degrees, gripper 0..100).
    pub state: &'a [f32],
    /// For a policy that sees motion (`motion_frames` > 0), the joint
    /// positions that many frames before (the first ones, early in an
    /// episode; [`History`] keeps them); ignored by other policies.
    pub earlier: &'a [f32],
    /// The instruction.
    pub task: &'a str,
    /// For a privileged policy (a twin-only diagnostic,
    /// [`crate::PolicyConfig::privileged`]), the twin's environment state;
    /// empty for every other policy.
    pub environment: &'a [f32],
}

/// The joint states an episode went through, by time, for a policy that
/// sees motion: [`History::earlier`] gives the one a given time ago.
#[derive(Debug, Clone, Default)]
pub struct History {
    /// `(seconds, state)`, oldest first, spanning a little more than `keep_s`.
    states: std::collections::VecDeque<(f64, Vec<f32>)>,
    keep_s: f64,
}

impl History {
    /// A history that keeps what `ago_s` back needs.
    pub fn new(ago_s: f64) -> History {
        History {
            states: Default::default(),
            keep_s: ago_s.max(0.0),
        }
    }

    /// A history for `run`'s policy (`motion_frames` at its fps).
    pub fn for_run(run: &RunConfig) -> History {
        History::new(run.policy.motion_frames as f64 / f64::from(run.fps.max(1)))
    }

    /// Records the state at time `at_s` (non-decreasing).
    pub fn push(&mut self, at_s: f64, state: &[f32]) {
        self.states.push_back((at_s, state.to_vec()));
        // Keep the newest state at or before `keep_s` ago (within rounding
        // of frame times), drop older ones: the oldest kept is the one asked for.
        let at = at_s - self.keep_s + 1e-9;
        while self.states.len() > 1 && self.states[1].0 <= at {
            self.states.pop_front();
        }
    }

    /// The state `keep_s` before the newest: the newest one recorded at or
    /// before then, or the first one when the history is younger; empty
    /// before anything was pushed.
    pub fn earlier(&self) -> &[f32] {
        self.states.front().map_or(&[][..], |(_, s)| s.as_slice())
    }

    /// Forgets everything (a new episode).
    pub fn clear(&mut self) {
        self.states.clear();
    }
}

/// A chunk: `horizon` actions of `action_dim` values, dataset units.
pub type Chunk = Vec<Vec<f32>>;

/// A loaded policy.
pub struct Agent {
    run: RunConfig,
    policy: Policy,
    device: Device,
    rng: StdRng,
    smoothing: usize,
    tokenizer: Tokenizer,
}

impl Agent {
    /// Loads the run folder `run` (`config.json`, `model.safetensors`) onto
    /// `device`; `seed` seeds the flow's noise.
    pub fn load(run: &Path, device: &Device, seed: u64) -> Result<Agent, TrainError> {
        let config = RunConfig::read(run)?;
        let weights = run.join("model.safetensors");
        if !weights.exists() {
            return Err(TrainError::Run {
                path: weights,
                reason: "no checkpoint (has training saved one yet?)".into(),
            });
        }
        // Not memory-mapped: a checkpoint being rewritten by a running
        // training must not change under the policy.
        let tensors = candle_core::safetensors::load(&weights, device).map_err(|e| TrainError::Run {
            path: weights.clone(),
            reason: e.to_string(),
        })?;
        let vb = VarBuilder::from_tensors(tensors, DType::F32, device);
        let policy = Policy::new(&config.policy, vb).map_err(|e| TrainError::Run {
            path: weights.clone(),
            reason: format!("does not fit config.json: {e}"),
        })?;
        let tokenizer = Tokenizer::for_run(run, &config.policy.text).map_err(TrainError::Mismatch)?;
        Ok(Agent {
            tokenizer,
            run: config,
            policy,
            device: device.clone(),
            rng: StdRng::seed_from_u64(seed),
            smoothing: 0,
        })
    }

    /// Smooths every chunk with a centred moving average of `window`
    /// actions (0 or 1: as drawn). The action expert decodes a chunk in
    /// tokens of several actions each, and a scarcely trained one leaves a
    /// step at every token's edge; the average takes the steps out.
    pub fn set_smoothing(&mut self, window: usize) {
        self.smoothing = window;
    }

    /// The run's configuration (model shape, normalisation, cameras, tasks, fps).
    pub fn run_config(&self) -> &RunConfig {
        &self.run
    }

    /// `k` chunks for each observation (the observations encoded once, in
    /// one batch): `result[i][j]` is the j-th chunk for observation i.
    pub fn act(&mut self, inputs: &[Input], k: usize) -> Result<Vec<Vec<Chunk>>, TrainError> {
        let k = k.max(1);
        let noise = self.draw_noise(inputs.len() * k);
        self.act_from(inputs, k, &noise)
    }

    /// Values of the flow's starting noise per chunk (`horizon × action_dim`).
    pub fn noise_len(&self) -> usize {
        self.run.policy.horizon * self.run.policy.action_dim
    }

    /// Draws the starting noise of `k` chunks from the agent's seeded generator.
    pub fn draw_noise(&mut self, k: usize) -> Vec<f32> {
        let len = k * self.noise_len();
        standard_normal(&mut self.rng, len)
    }

    /// As [`Agent::draw_noise`], from the caller's generator: a caller
    /// running several episodes at once keeps one per episode, so that what
    /// happens in one episode (it ends early, say) does not change the
    /// noise another one draws.
    pub fn draw_noise_from(&self, rng: &mut impl Rng, k: usize) -> Vec<f32> {
        standard_normal(rng, k * self.noise_len())
    }

    /// As [`Agent::act`], from given starting noise (`inputs.len() × k ×`
    /// [`Agent::noise_len`] values, standard normal): a caller that keeps
    /// one noise per episode gets chunks that agree from one observation to
    /// the next, where fresh noise may pick another way of doing the task
    /// at every chunk.
    pub fn act_from(
        &mut self,
        inputs: &[Input],
        k: usize,
        noise: &[f32],
    ) -> Result<Vec<Vec<Chunk>>, TrainError> {
        self.act_continuing(inputs, k, noise, &[])
    }

    /// As [`Agent::act_from`], each new chunk continuing what the previous
    /// one planned: `planned[i]` holds the actions (dataset units) already
    /// decided for observation i's next steps, which its chunks start with
    /// exactly while the flow draws the rest to follow on from them
    /// (inpainting; see [`Policy::sample_guided`]). An empty `planned`, or
    /// an empty entry, constrains nothing; entries beyond the horizon are
    /// ignored. The L1 head ignores it.
    pub fn act_continuing(
        &mut self,
        inputs: &[Input],
        k: usize,
        noise: &[f32],
        planned: &[&[Vec<f32>]],
    ) -> Result<Vec<Vec<Chunk>>, TrainError> {
        let config = &self.run.policy;
        let b = inputs.len();
        let k = k.max(1);
        if b == 0 {
            return Ok(Vec::new());
        }
        let observation = self.observation(inputs)?;
        let device = &self.device;
        let memory = self
            .policy
            .memory(&self.policy.encode(&observation)?)?
            .repeat(k)?;
        let n = b * k * config.horizon * config.action_dim;
        if noise.len() != n {
            return Err(TrainError::Mismatch(format!(
                "{} noise values for {b} observation(s) × {k} chunk(s) of {}×{}; expected {n}",
                noise.len(),
                config.horizon,
                config.action_dim
            )));
        }
        let noise = Tensor::from_slice(noise, (b * k, config.horizon, config.action_dim), device)?;
        // A relative policy's actions are offsets from the state it saw.
        let origin = |input: &Input| match config.actions {
            ActionFrame::Absolute => vec![0.0; config.action_dim],
            ActionFrame::Relative => input.state.to_vec(),
        };
        let (h, a) = (config.horizon, config.action_dim);
        let known = if planned.iter().any(|p| !p.is_empty()) {
            let (mut actions, mut mask) = (vec![0f32; b * k * h * a], vec![0f32; b * k * h]);
            for (i, (input, steps)) in inputs.iter().zip(planned).enumerate() {
                let origin = origin(input);
                for (j, action) in steps.iter().take(h).enumerate() {
                    if action.len() != a {
                        return Err(TrainError::Mismatch(format!(
                            "a planned action of {} values; the policy's have {a}",
                            action.len()
                        )));
                    }
                    let offset: Vec<f32> = action.iter().zip(&origin).map(|(v, o)| v - o).collect();
                    let normalized = self.run.action.normalize(&offset);
                    for row in i * k..(i + 1) * k {
                        actions[(row * h + j) * a..(row * h + j + 1) * a].copy_from_slice(&normalized);
                        mask[row * h + j] = 1.0;
                    }
                }
            }
            Some((
                Tensor::from_vec(actions, (b * k, h, a), device)?,
                Tensor::from_vec(mask, (b * k, h, 1), device)?,
            ))
        } else {
            None
        };
        let chunks = self
            .policy
            .sample_guided(&memory, &noise, known.as_ref().map(|(x, m)| (x, m)))?;
        let values = chunks.flatten_all()?.to_vec1::<f32>()?;
        let per_chunk = config.horizon * config.action_dim;
        Ok(values
            .chunks_exact(k * per_chunk)
            .zip(inputs)
            .map(|(observation, input)| {
                let origin = origin(input);
                observation
                    .chunks_exact(per_chunk)
                    .map(|chunk| {
                        self.run
                            .action
                            .denormalize(chunk)
                            .chunks_exact(config.action_dim)
                            .map(|action| action.iter().zip(&origin).map(|(a, o)| a + o).collect())
                            .collect::<Chunk>()
                    })
                    .map(|chunk| smooth(&chunk, self.smoothing))
                    .collect()
            })
            .collect())
    }

    /// The model's inputs for a batch of observations, checked against its shape.
    fn observation(&self, inputs: &[Input]) -> Result<Observation, TrainError> {
        let config = &self.run.policy;
        let (b, size, cameras) = (inputs.len(), config.image_size, self.run.cameras.len());
        let plane = size * size;
        let mut images = Vec::with_capacity(b * cameras * 3 * plane);
        let mut tokens = Vec::with_capacity(b * config.max_text_tokens);
        let mut states = Vec::with_capacity(b * config.state_inputs());
        for input in inputs {
            if input.images.len() != cameras {
                return Err(TrainError::Mismatch(format!(
                    "the policy takes {cameras} camera(s) ({}), the observation has {}",
                    self.run.cameras.join(", "),
                    input.images.len()
                )));
            }
            for frame in input.images {
                if frame.len() != 3 * plane {
                    return Err(TrainError::Mismatch(format!(
                        "a camera frame of {} bytes is not {size}x{size} RGB8, the policy's image size",
                        frame.len()
                    )));
                }
                for c in 0..3 {
                    images.extend(frame[c..].iter().step_by(3).map(|&v| f32::from(v) / 255.0));
                }
            }
            if input.state.len() != config.state_dim {
                return Err(TrainError::Mismatch(format!(
                    "a state of {} values; the policy takes {}",
                    input.state.len(),
                    config.state_dim
                )));
            }
            states.extend(
                self.run
                    .state_input(input.state, input.earlier, input.environment)?,
            );
            tokens.extend(self.tokenizer.encode(input.task, config.max_text_tokens));
        }
        let device = &self.device;
        Ok(Observation {
            images: Tensor::from_vec(images, (b, cameras, 3, size, size), device)?,
            tokens: Tensor::from_vec(tokens, (b, config.max_text_tokens), device)?,
            state: Tensor::from_vec(states, (b, config.state_inputs()), device)?,
        })
    }

    /// What the auxiliary head makes of each observation: the dataset's
    /// environment state (in the twin's datasets where the dirt left of the
    /// named spill lies, how much is left, the contact force), in its own
    /// units, one entry per value the head was trained on. A run trained
    /// without `--aux-weight` has no such head and says so.
    pub fn perceive(&self, inputs: &[Input]) -> Result<Vec<Vec<f32>>, TrainError> {
        Ok(self.perceive_and_place(inputs, false, &[])?.0)
    }

    /// Where the first keypoint placed by the instruction finds the named
    /// spill in the first camera's picture, as a point on the table (x and
    /// y, metres, through the camera the run was trained with): for a run
    /// trained with a place target (`sponge train --place-weight`). `None`
    /// for an observation whose place lies above the horizon.
    pub fn place(&self, inputs: &[Input]) -> Result<Vec<TablePlace>, TrainError> {
        Ok(self.perceive_and_place(inputs, true, &[])?.1)
    }

    /// [`Agent::perceive`] (when the run has an auxiliary head; else
    /// empty) and, `with_place`, [`Agent::place`] (else empty), from one
    /// encoding of the observations; the place of observation `i` is
    /// looked for only near `near[i]` when that is given (a tracker's last
    /// place; see [`Near::weights`]).
    pub fn perceive_and_place(
        &self,
        inputs: &[Input],
        with_place: bool,
        near: &[Option<Near>],
    ) -> Result<(Vec<Vec<f32>>, Vec<TablePlace>), TrainError> {
        let normalizer = match (&self.run.environment, self.run.policy.aux_targets) {
            (Some(normalizer), n) if n > 0 => Some(normalizer),
            _ if with_place => None,
            _ => {
                return Err(TrainError::Mismatch(
                    "the run has no auxiliary head to perceive with (train it with --aux-weight)".into(),
                ));
            }
        };
        let camera = match (&self.run.train.place, with_place) {
            (Some(target), true) => Some(target.camera),
            (None, true) => {
                return Err(TrainError::Mismatch(
                    "the run has no keypoint trained to find the named spill (train it with --place-weight)"
                        .into(),
                ));
            }
            (_, false) => None,
        };
        if inputs.is_empty() {
            return Ok((Vec::new(), Vec::new()));
        }
        let (context, logits) = self.policy.encode_with_place(&self.observation(inputs)?)?;
        let perceived = match normalizer {
            Some(normalizer) => self
                .policy
                .perceive(&context)?
                .ok_or_else(|| TrainError::Mismatch("the model has no auxiliary head".into()))?
                .to_dtype(candle_core::DType::F32)?
                .to_vec2::<f32>()?
                .iter()
                .map(|row| normalizer.denormalize(row))
                .collect(),
            None => Vec::new(),
        };
        let places = match (camera, logits) {
            (Some(camera), Some(logits)) => crate::model::keypoint_weights(&logits)?
                .iter()
                .enumerate()
                .map(|(i, weights)| {
                    let p = match near.get(i).copied().flatten() {
                        Some(near) => crate::model::peak_place(&near.weights(weights, &camera)),
                        None => crate::model::peak_place(weights),
                    };
                    camera.on_table([f64::from(p[0]), f64::from(p[1])])
                })
                .collect(),
            (Some(_), None) => {
                return Err(TrainError::Mismatch(
                    "the model has no keypoints placed by the instruction".into(),
                ));
            }
            (None, _) => Vec::new(),
        };
        Ok((perceived, places))
    }

    /// What this run, as a perception, hands a privileged policy for each
    /// observation: its auxiliary head's entries, with the target's x and
    /// y (the first two) taken from where its place keypoint finds the
    /// named spill when it was trained with one (looked for near `near[i]`
    /// when that is given); and that place.
    pub fn perceive_environment(
        &self,
        inputs: &[Input],
        near: &[Option<Near>],
    ) -> Result<(Vec<Vec<f32>>, Vec<TablePlace>), TrainError> {
        let with_place = self.run.train.place.is_some();
        let (mut perceived, places) = self.perceive_and_place(inputs, with_place, near)?;
        for (p, place) in perceived.iter_mut().zip(&places) {
            if let (Some([x, y]), true) = (place, p.len() >= 2) {
                p[0] = *x as f32;
                p[1] = *y as f32;
            }
        }
        Ok((perceived, places))
    }
}

/// A point on the table (x and y, metres), or `None` for a place in the
/// picture above the horizon.
pub type TablePlace = Option<[f64; 2]>;

pub use crate::place::{Near, Tracker};

/// `chunk` averaged over a centred window of `window` actions (shorter at
/// the ends, so the first and last actions stay near their own values).
pub fn smooth(chunk: &[Vec<f32>], window: usize) -> Chunk {
    if window <= 1 {
        return chunk.to_vec();
    }
    let half = window / 2;
    (0..chunk.len())
        .map(|t| {
            let reach = half.min(t).min(chunk.len() - 1 - t);
            let rows = &chunk[t - reach..=t + reach];
            let mut mean = vec![0f32; chunk[t].len()];
            for row in rows {
                for (m, v) in mean.iter_mut().zip(row) {
                    *m += v / rows.len() as f32;
                }
            }
            mean
        })
        .collect()
}

/// `len` draws of the standard normal distribution from `rng`.
fn standard_normal(rng: &mut impl Rng, len: usize) -> Vec<f32> {
    (0..len).map(|_| StandardNormal.sample(rng)).collect()
}

#[cfg(test)]
mod tests {
    use super::{History, smooth};

    #[test]
    fn history_gives_the_state_a_fixed_time_ago_and_the_first_one_before_that() {
        let fps = 30.0;
        let mut history = History::new(10.0 / fps);
        assert!(history.earlier().is_empty());
        for frame in 0..40u32 {
            history.push(frame as f64 / fps, &[frame as f32]);
            // As the training loader does: frame t sees frame t - 10, or the first.
            let expected = frame.saturating_sub(10) as f32;
            assert_eq!(history.earlier(), &[expected], "frame {frame}");
        }
        // It keeps only what it needs.
        assert!(history.states.len() <= 12, "{} states kept", history.states.len());
        // States that come irregularly (a real arm's): the newest at or before the time.
        let mut history = History::new(0.3);
        for (t, v) in [(0.0, 0.0), (0.25, 1.0), (0.5, 2.0), (0.58, 3.0)] {
            history.push(t, &[v]);
        }
        assert_eq!(history.earlier(), &[1.0]);
        history.clear();
        assert!(history.earlier().is_empty());
    }

    #[test]
    fn smoothing_takes_out_steps_and_keeps_ramps_and_ends() {
        // A ramp is its own centred average; the ends keep their values.
        let ramp: Vec<Vec<f32>> = (0..10).map(|v| vec![v as f32]).collect();
        assert_eq!(smooth(&ramp, 5), ramp);
        // A step of 5 between two 5-action tokens becomes a slope.
        let step: Vec<Vec<f32>> = (0..10).map(|v| vec![if v < 5 { 0.0 } else { 5.0 }]).collect();
        let smoothed: Vec<f32> = smooth(&step, 5).iter().map(|a| a[0]).collect();
        assert_eq!(smoothed, vec![0.0, 0.0, 0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 5.0, 5.0]);
        assert_eq!(smooth(&step, 1), step);
    }
}
