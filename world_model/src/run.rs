//! A trained world model ready to use: loads a run folder and works on raw
//! observations (RGB8 frames, the state in dataset units, the instruction)
//! and action chunks in dataset units. It scores chunks by imagined
//! outcome, measures surprise against what it expected, and draws what it
//! expects.

use std::path::Path;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use sponge_policy::train::{TrainError, run_error};

use crate::model::{WorldModel, half_size, sigmoid};
use crate::monitor::Parts;
use crate::train::{WmRunConfig, task_tokens};

/// Side of the square patches (in the decoder's pixels) whose worst error
/// the monitor records.
const PATCH: usize = 8;

/// How much predicted risk (chance of pressing too hard) costs against
/// predicted progress (fraction cleaned) when chunks are ranked, by default.
pub const RISK_WEIGHT: f32 = 0.5;

/// An imagined outcome of one chunk.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Score {
    /// Predicted fraction of the named spill cleaned at the chunk's end.
    pub progress: f32,
    /// Predicted chance that some segment of the chunk presses too hard.
    pub risk: f32,
    /// `progress − risk weight · risk`: higher is better.
    pub value: f32,
}

/// A loaded world model.
pub struct WorldModelRun {
    run: WmRunConfig,
    model: WorldModel,
    device: Device,
    risk_weight: f32,
}

impl WorldModelRun {
    /// Sets how much predicted risk costs against predicted progress in
    /// [`WorldModelRun::score`] ([`RISK_WEIGHT`] unless set).
    pub fn with_risk_weight(mut self, weight: f32) -> WorldModelRun {
        self.risk_weight = weight;
        self
    }

    /// Loads the run folder `dir` (`config.json`, `model.safetensors`) onto `device`.
    pub fn load(dir: &Path, device: &Device) -> Result<WorldModelRun, TrainError> {
        let config_path = dir.join("config.json");
        let text = std::fs::read_to_string(&config_path).map_err(|e| {
            run_error(
                &config_path,
                format!("{e} (is this a folder written by `sponge wm train`?)"),
            )
        })?;
        let run: WmRunConfig = serde_json::from_str(&text).map_err(|e| run_error(&config_path, e))?;
        run.model.validate().map_err(TrainError::Mismatch)?;
        let weights = dir.join("model.safetensors");
        if !weights.exists() {
            return Err(run_error(&weights, "no checkpoint (has training saved one yet?)"));
        }
        let mut varmap = candle_nn::VarMap::new();
        let model = WorldModel::new(&run.model, VarBuilder::from_varmap(&varmap, DType::F32, device))?;
        varmap.load(&weights).map_err(|e| run_error(&weights, e))?;
        Ok(WorldModelRun {
            run,
            model,
            risk_weight: RISK_WEIGHT,
            device: device.clone(),
        })
    }

    /// The run's configuration.
    pub fn run_config(&self) -> &WmRunConfig {
        &self.run
    }

    /// The model.
    pub fn model(&self) -> &WorldModel {
        &self.model
    }

    /// Actions per dynamics step.
    pub fn segment(&self) -> usize {
        self.run.model.segment
    }

    fn images(&self, frames: &[&[u8]]) -> Result<Tensor, TrainError> {
        let size = self.run.model.image_size;
        let mut data = Vec::with_capacity(frames.len() * 3 * size * size);
        for frame in frames {
            if frame.len() != 3 * size * size {
                return Err(TrainError::Mismatch(format!(
                    "a frame of {} bytes is not {size}x{size} RGB",
                    frame.len()
                )));
            }
            let start = data.len();
            data.resize(start + frame.len(), 0.0);
            let planes = &mut data[start..];
            let pixels = size * size;
            for (p, px) in frame.chunks_exact(3).enumerate() {
                for c in 0..3 {
                    planes[c * pixels + p] = f32::from(px[c]) / 255.0;
                }
            }
        }
        Ok(Tensor::from_vec(
            data,
            (frames.len(), 3, size, size),
            &self.device,
        )?)
    }

    /// Latents of N observations (front frames at the model's size, states
    /// in dataset units, instructions): `[N, latent]`.
    pub fn encode(&self, frames: &[&[u8]], states: &[&[f32]], tasks: &[&str]) -> Result<Tensor, TrainError> {
        let latent = self.encode_with_images(frames, states, tasks)?.0;
        Ok(latent)
    }

    fn encode_with_images(
        &self,
        frames: &[&[u8]],
        states: &[&[f32]],
        tasks: &[&str],
    ) -> Result<(Tensor, Tensor), TrainError> {
        let config = &self.run.model;
        let n = frames.len();
        if states.len() != n || tasks.len() != n {
            return Err(TrainError::Mismatch(
                "frames, states and tasks differ in number".into(),
            ));
        }
        let flat: Vec<f32> = states.iter().flat_map(|s| s.iter().copied()).collect();
        if flat.len() != n * config.state_dim {
            return Err(TrainError::Mismatch(format!(
                "states must have {} values each",
                config.state_dim
            )));
        }
        let images = self.images(frames)?;
        let state = Tensor::from_vec(
            self.run.state.normalize(&flat),
            (n, config.state_dim),
            &self.device,
        )?;
        let text = self.model.text(&task_tokens(tasks, config, &self.device)?)?;
        Ok((self.model.encode(&images, &state, &text)?, images))
    }

    /// Normalised actions `[N, steps, action_dim]` from chunks in dataset
    /// units (each padded or cut to `steps` by repeating its last action).
    fn actions(&self, chunks: &[&[Vec<f32>]], steps: usize) -> Result<Tensor, TrainError> {
        let dim = self.run.model.action_dim;
        let mut flat = Vec::with_capacity(chunks.len() * steps * dim);
        for chunk in chunks {
            let Some(last) = chunk.last() else {
                return Err(TrainError::Mismatch("an empty chunk".into()));
            };
            for t in 0..steps {
                let action = chunk.get(t).unwrap_or(last);
                if action.len() != dim {
                    return Err(TrainError::Mismatch(format!("actions must have {dim} values")));
                }
                flat.extend_from_slice(action);
            }
        }
        Ok(Tensor::from_vec(
            self.run.action.normalize(&flat),
            (chunks.len(), steps, dim),
            &self.device,
        )?)
    }

    /// Scores every candidate chunk of every observation: `latents`
    /// `[N, latent]`, `candidates[i]` the chunks proposed for observation
    /// `i` (dataset units). All candidates are imagined in one batch.
    pub fn score(
        &self,
        latents: &Tensor,
        candidates: &[Vec<Vec<Vec<f32>>>],
    ) -> Result<Vec<Vec<Score>>, TrainError> {
        let mut starts = Vec::new();
        let mut chunks: Vec<&[Vec<f32>]> = Vec::new();
        for (i, proposed) in candidates.iter().enumerate() {
            for chunk in proposed {
                starts.push(i as u32);
                chunks.push(chunk);
            }
        }
        if chunks.is_empty() {
            return Ok(candidates.iter().map(|_| Vec::new()).collect());
        }
        let index = Tensor::from_vec(starts, chunks.len(), &self.device)?;
        let start = latents.index_select(&index, 0)?;
        let actions = self.actions(&chunks, self.run.model.horizon)?;
        let predicted = self.model.rollout(&start, &actions)?;
        let Some(end) = predicted.last() else {
            return Err(TrainError::Mismatch("the model predicts no segment".into()));
        };
        let progress = self.model.progress(end)?.to_vec1::<f32>()?;
        let mut risk = vec![0f32; chunks.len()];
        for z in &predicted {
            let r = sigmoid(&self.model.risk_logit(z)?)?.to_vec1::<f32>()?;
            for (m, v) in risk.iter_mut().zip(r) {
                *m = m.max(v);
            }
        }
        let mut out: Vec<Vec<Score>> = candidates.iter().map(|c| Vec::with_capacity(c.len())).collect();
        let mut k = 0;
        for (i, proposed) in candidates.iter().enumerate() {
            for _ in proposed {
                out[i].push(Score {
                    progress: progress[k],
                    risk: risk[k],
                    value: progress[k] - self.risk_weight * risk[k],
                });
                k += 1;
            }
        }
        Ok(out)
    }

    /// What the monitor keeps of a check for the next one: the latents
    /// and the pictures seen (`encode` plus the camera frames at the
    /// decoder's size).
    pub fn anchor(&self, frames: &[&[u8]], states: &[&[f32]], tasks: &[&str]) -> Result<Anchor, TrainError> {
        let (latent, images) = self.encode_with_images(frames, states, tasks)?;
        Ok(Anchor {
            latent,
            seen: half_size(&images)?,
        })
    }

    /// Surprise of N observations: what the model predicted from the
    /// `previous` check and the actions executed since (`executed[i]`, a
    /// segment of actions in dataset units), against what is seen now.
    /// Returns the parts and the anchor for the next check.
    pub fn surprise(
        &self,
        previous: &Anchor,
        executed: &[&[Vec<f32>]],
        frames: &[&[u8]],
        states: &[&[f32]],
        tasks: &[&str],
    ) -> Result<(Vec<Parts>, Anchor), TrainError> {
        let config = &self.run.model;
        let Anchor { latent: now, seen } = self.anchor(frames, states, tasks)?;
        let actions = self.actions(executed, config.segment)?;
        let n = frames.len();
        if previous.latent.dim(0)? != n {
            return Err(TrainError::Mismatch(
                "the previous check and this one differ in number".into(),
            ));
        }
        let predicted = self.model.step(&previous.latent, &actions.reshape((n, ()))?)?;
        let flat: Vec<f32> = states.iter().flat_map(|s| s.iter().copied()).collect();
        let state = Tensor::from_vec(
            self.run.state.normalize(&flat),
            (n, config.state_dim),
            &self.device,
        )?;
        let per_row =
            |t: Tensor| -> Result<Vec<f32>, TrainError> { Ok(t.flatten_from(1)?.mean(1)?.to_vec1::<f32>()?) };
        // The worst patch's mean squared error, over the colours
        // (pictures are `[N, H, W, 3]`).
        let worst_patch = |t: &Tensor| -> Result<Vec<f32>, TrainError> {
            let side = PATCH.min(t.dim(1)?);
            Ok(t.mean_keepdim(3)?
                .permute((0, 3, 1, 2))?
                .avg_pool2d(side)?
                .flatten_from(1)?
                .max(1)?
                .to_vec1::<f32>()?)
        };
        let latent = per_row((&predicted - &now)?.sqr()?)?;
        let state_error = per_row((self.model.state(&predicted)? - state)?.sqr()?)?;
        let drawn = self
            .model
            .decode(&Tensor::cat(&[&now, &predicted, &previous.latent], 0)?)?;
        let (drawn_now, drawn_predicted, drawn_before) = (
            drawn.narrow(0, 0, n)?,
            drawn.narrow(0, n, n)?,
            drawn.narrow(0, 2 * n, n)?,
        );
        let image = per_row((drawn_now - &seen)?.sqr()?)?;
        let expected = per_row((&drawn_predicted - &seen)?.sqr()?)?;
        // The last picture seen, moved on by the change the model expects:
        // what does not move (table, spills away from the sponge) is
        // expected exactly as it was, so a camera knocked aside or a spill
        // turning colour stands out against the arm's own motion.
        let expected_change = (drawn_predicted - drawn_before)?;
        let carried = (&previous.seen + &expected_change)?;
        let change_error = (carried - &seen)?.sqr()?;
        // The half of the picture where the model expects the least change
        // (away from the arm): there the camera should see what it saw.
        let moving = expected_change.abs()?.mean_keepdim(3)?;
        let flat = moving.flatten_from(1)?;
        let middle = flat.dim(1)? / 2;
        let median = flat.sort_last_dim(true)?.0.narrow(1, middle, 1)?;
        let still_mask = moving
            .broadcast_le(&median.reshape((n, 1, 1, 1))?)?
            .to_dtype(DType::F32)?;
        let still_error = change_error.broadcast_mul(&still_mask)?;
        let still_patch = worst_patch(&still_error)?;
        let still = per_row(still_error)?;
        let change = per_row(change_error)?;
        let parts = (0..n)
            .map(|i| Parts {
                latent: latent[i],
                state: state_error[i],
                image: image[i],
                expected_image: expected[i],
                change: change[i],
                still: still[i],
                still_patch: still_patch[i],
                // The rest is filled in by the caller, who sees every
                // control step and the camera's own pixels.
                ..Parts::default()
            })
            .collect();
        Ok((parts, Anchor { latent: now, seen }))
    }

    /// What the model expects to see after each segment of `chunk` from
    /// `latent` (`[1, latent]`): RGB8 frames at half the camera's size.
    pub fn imagine(&self, latent: &Tensor, chunk: &[Vec<f32>]) -> Result<Vec<Vec<u8>>, TrainError> {
        let actions = self.actions(&[chunk], self.run.model.horizon)?;
        let predicted = self.model.rollout(latent, &actions)?;
        let frames = self.model.decode(&Tensor::cat(&predicted, 0)?)?;
        let frames = (frames * 255.0)?
            .round()?
            .clamp(0f32, 255f32)?
            .to_dtype(DType::U8)?;
        let n = frames.dim(0)?;
        Ok((0..n)
            .map(|i| frames.get(i).and_then(|f| f.flatten_all()?.to_vec1::<u8>()))
            .collect::<candle_core::Result<_>>()?)
    }

    /// What the model makes of a latent: its picture (RGB8, half size).
    pub fn picture(&self, latent: &Tensor) -> Result<Vec<u8>, TrainError> {
        let frame = self.model.decode(latent)?;
        let frame = (frame * 255.0)?
            .round()?
            .clamp(0f32, 255f32)?
            .to_dtype(DType::U8)?;
        Ok(frame.flatten_all()?.to_vec1::<u8>()?)
    }
}

/// What the monitor keeps of one check for the next: the latents `[N,
/// latent]` and the pictures seen at the decoder's size `[N, S, S, 3]`.
#[derive(Debug, Clone)]
pub struct Anchor {
    latent: Tensor,
    seen: Tensor,
}

impl Anchor {
    /// The latents, to imagine from.
    pub fn latent(&self) -> &Tensor {
        &self.latent
    }

    /// Row `i` alone.
    pub fn row(&self, i: usize) -> Result<Anchor, TrainError> {
        Ok(Anchor {
            latent: self.latent.narrow(0, i, 1)?,
            seen: self.seen.narrow(0, i, 1)?,
        })
    }

    /// Rows of several anchors, in order, as one.
    pub fn cat(rows: &[&Anchor]) -> Result<Anchor, TrainError> {
        let latents: Vec<&Tensor> = rows.iter().map(|a| &a.latent).collect();
        let seen: Vec<&Tensor> = rows.iter().map(|a| &a.seen).collect();
        Ok(Anchor {
            latent: Tensor::cat(&latents, 0)?,
            seen: Tensor::cat(&seen, 0)?,
        })
    }
}
