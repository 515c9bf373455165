//! The training loader: batches of ready `f32` arrays, decoded ahead of the
//! trainer on worker threads.
//!
//! Worker threads decode whole episodes (one ffmpeg run per camera, or PNG
//! decoding) into a bounded queue; a batcher keeps a pool of decoded
//! episodes and draws frames at random from it, so every frame is used once
//! per epoch while memory stays bounded by the pool. Each sample is a window
//! as LeRobot's `delta_timestamps` give: past states and images, and a chunk
//! of future actions; frames beyond an episode's ends repeat the edge frame
//! and are flagged as padding.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use crate::reader::{Dataset, Episode};
use crate::{Error, Result};

/// What the loader produces.
#[derive(Debug, Clone)]
pub struct LoaderConfig {
    /// Samples per batch.
    pub batch_size: usize,
    /// Frame offsets of the observations (states and images) in each sample, e.g. `[-1, 0]`.
    pub observation_deltas: Vec<i64>,
    /// Future actions per sample (offsets 0..horizon).
    pub action_horizon: usize,
    /// Episodes to draw from (a train or validation split); all if `None`.
    pub episodes: Option<Vec<usize>>,
    /// Decoding threads.
    pub workers: usize,
    /// Decoded episodes kept to draw from. Each batch mixes frames from
    /// across the pool, so a small pool makes consecutive batches alike:
    /// trainers size it with [`episodes_that_fit`].
    pub pool_episodes: usize,
    /// Batches prepared ahead.
    pub prefetch: usize,
    /// Seed of the shuffling.
    pub seed: u64,
}

impl Default for LoaderConfig {
    fn default() -> LoaderConfig {
        LoaderConfig {
            batch_size: 64,
            observation_deltas: vec![0],
            action_horizon: 50,
            episodes: None,
            workers: 2,
            pool_episodes: 8,
            prefetch: 4,
            seed: 0,
        }
    }
}

/// A batch, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    /// Samples in the batch (B).
    pub size: usize,
    /// `observation.state`: `[B, observations, dims]`.
    pub state: Vec<f32>,
    /// `[B, observations]`: the observation lies outside its episode.
    pub state_is_pad: Vec<bool>,
    /// `action`: `[B, horizon, dims]`.
    pub action: Vec<f32>,
    /// `[B, horizon]`: the action lies beyond the episode's end.
    pub action_is_pad: Vec<bool>,
    /// `next.reward` of each action's step, `[B, horizon]` (the last
    /// reward repeats beyond the episode's end); empty when the dataset has
    /// no rewards.
    pub reward: Vec<f32>,
    /// `observation.environment_state` at each observation,
    /// `[B, observations, entries]`; empty when the dataset has none.
    pub environment_state: Vec<f32>,
    /// `observation.environment_state` at the first frame of each sample's
    /// episode (what the twin knew when it began), `[B, entries]`; empty
    /// when the dataset has none.
    pub environment_state_start: Vec<f32>,
    /// Per camera feature: `[B, observations, 3, height, width]`, values in [0, 1].
    pub images: BTreeMap<String, Vec<f32>>,
    /// Task index of each sample: `[B]`.
    pub task_index: Vec<i64>,
    /// Episode and frame of each sample: `[B]`.
    pub source: Vec<(u64, usize)>,
}

/// A small, fast, seedable generator (SplitMix64) for shuffling.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            items.swap(i, self.below(i + 1));
        }
    }
}

/// The memory a trainer's loader may fill with decoded episodes: 2 GiB
/// holds about 360 episodes of 20 s at 96×96, so that every batch draws
/// from the whole of a typical dataset.
pub const TRAINING_POOL_BYTES: usize = 2 << 30;

/// Batches a trainer averages its validation loss over: one batch of
/// held-out frames swings too much to compare checkpoints by.
pub const VALIDATION_BATCHES: usize = 4;

/// How many of `dataset`'s `episodes`, decoded, fit in `bytes` (at least
/// one, at most all of them): the pool that mixes the most episodes into
/// each batch within a memory budget. Counts every camera's RGB frames and
/// the per-frame vectors at the episodes' mean length.
pub fn episodes_that_fit(dataset: &Dataset, episodes: &[usize], bytes: usize) -> usize {
    let metas = dataset.episodes();
    let chosen: Vec<u64> = episodes
        .iter()
        .filter_map(|&e| metas.get(e).map(|m| m.length))
        .collect();
    if chosen.is_empty() {
        return 1;
    }
    let mean_frames = chosen.iter().sum::<u64>() as f64 / chosen.len() as f64;
    let per_frame: usize = dataset
        .features()
        .iter()
        .map(|(_, f)| {
            let values = f.shape.iter().product::<usize>().max(1);
            if f.is_video() || f.is_image() {
                values
            } else {
                // f32 values in their own Vec (24 bytes of header each).
                4 * values + 24
            }
        })
        .sum();
    let per_episode = (mean_frames * per_frame as f64).max(1.0);
    ((bytes as f64 / per_episode) as usize).clamp(1, chosen.len())
}

/// An endless stream of batches (epochs repeat, reshuffled).
pub struct Loader {
    batches: Receiver<Result<Batch>>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl Loader {
    /// Starts loading from the dataset at `root`.
    pub fn new(root: &Path, config: LoaderConfig) -> Result<Loader> {
        let dataset = Arc::new(Dataset::open(root)?);
        let episodes: Vec<usize> = match &config.episodes {
            Some(list) => list.clone(),
            None => (0..dataset.episodes().len()).collect(),
        };
        if episodes.is_empty() {
            return Err(Error::Usage(format!("{}: no episodes to load", root.display())));
        }
        if let Some(bad) = episodes.iter().find(|e| **e >= dataset.episodes().len()) {
            return Err(Error::Usage(format!(
                "episode {bad} does not exist ({} episodes)",
                dataset.episodes().len()
            )));
        }
        if config.batch_size == 0 || config.action_horizon == 0 || config.observation_deltas.is_empty() {
            return Err(Error::Usage(
                "batch size, action horizon and observation deltas must not be empty".into(),
            ));
        }
        let stop = Arc::new(AtomicBool::new(false));
        // Decoded episodes wait here for a place in the pool: a few, not a
        // pool's worth, so that memory stays near the pool's size.
        let waiting = config.pool_episodes.clamp(1, 2 * config.workers.max(1));
        let (episode_tx, episode_rx) = sync_channel::<Result<Arc<Episode>>>(waiting);
        let (batch_tx, batch_rx) = sync_channel::<Result<Batch>>(config.prefetch.max(1));

        // The order episodes are decoded in: shuffled each epoch, shared by the workers.
        let order = Arc::new(Mutex::new((Rng(config.seed ^ 0xE915_0DE5), Vec::<usize>::new())));
        let mut threads = Vec::new();
        for worker in 0..config.workers.max(1) {
            let (dataset, order, tx, stop, episodes) = (
                dataset.clone(),
                order.clone(),
                episode_tx.clone(),
                stop.clone(),
                episodes.clone(),
            );
            let thread = std::thread::Builder::new()
                .name(format!("loader-decode-{worker}"))
                .spawn(move || decode_loop(&dataset, &order, &episodes, &tx, &stop))
                .map_err(|e| Error::Usage(format!("cannot start a loader thread: {e}")))?;
            threads.push(thread);
        }
        drop(episode_tx);
        let batcher = {
            let stop = stop.clone();
            std::thread::Builder::new()
                .name("loader-batch".into())
                .spawn(move || batch_loop(&config, &episode_rx, &batch_tx, &stop))
                .map_err(|e| Error::Usage(format!("cannot start the batch thread: {e}")))?
        };
        threads.push(batcher);
        Ok(Loader {
            batches: batch_rx,
            stop,
            threads,
        })
    }

    /// The next batch (blocks until one is ready).
    pub fn next_batch(&mut self) -> Result<Batch> {
        self.batches
            .recv()
            .map_err(|_| Error::Usage("the loader's threads stopped".into()))?
    }
}

impl Drop for Loader {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Unblock the threads waiting to send.
        while self.batches.try_recv().is_ok() {}
        for thread in self.threads.drain(..) {
            while !thread.is_finished() {
                while self.batches.try_recv().is_ok() {}
                std::thread::yield_now();
            }
            let _ = thread.join();
        }
    }
}

fn decode_loop(
    dataset: &Dataset,
    order: &Mutex<(Rng, Vec<usize>)>,
    episodes: &[usize],
    tx: &SyncSender<Result<Arc<Episode>>>,
    stop: &AtomicBool,
) {
    while !stop.load(Ordering::SeqCst) {
        let next = {
            let Ok(mut guard) = order.lock() else { return };
            let (rng, queue) = &mut *guard;
            if queue.is_empty() {
                *queue = episodes.to_vec();
                rng.shuffle(queue);
            }
            queue.pop()
        };
        let Some(index) = next else { return };
        let episode = dataset.read_episode(index).map(Arc::new);
        let failed = episode.is_err();
        if tx.send(episode).is_err() || failed {
            return;
        }
    }
}

struct PoolEntry {
    episode: Arc<Episode>,
    remaining: Vec<usize>,
}

fn batch_loop(
    config: &LoaderConfig,
    episodes: &Receiver<Result<Arc<Episode>>>,
    tx: &SyncSender<Result<Batch>>,
    stop: &AtomicBool,
) {
    let mut rng = Rng(config.seed);
    let mut pool: Vec<PoolEntry> = Vec::new();
    let mut filled = false;
    // Frames not yet drawn from the episodes in the pool.
    let mut frames_left = 0usize;
    while !stop.load(Ordering::SeqCst) {
        while pool.len() < config.pool_episodes.max(1) {
            // Wait for a full pool at first (so that the first batches mix
            // as many episodes as the rest), and whenever the pool holds
            // fewer frames than a batch (episodes of a frame or a few are
            // drawn faster than they are decoded); else take whatever is ready.
            let received = if pool.is_empty() || !filled || frames_left < config.batch_size {
                episodes.recv().ok()
            } else {
                episodes.try_recv().ok()
            };
            match received {
                Some(Ok(episode)) => {
                    let mut remaining: Vec<usize> = (0..episode.state.len()).collect();
                    rng.shuffle(&mut remaining);
                    frames_left += remaining.len();
                    pool.push(PoolEntry { episode, remaining });
                }
                Some(Err(e)) => {
                    let _ = tx.send(Err(e));
                    return;
                }
                None => break,
            }
        }
        filled = true;
        if pool.is_empty() {
            return;
        }
        let mut picks = Vec::with_capacity(config.batch_size);
        for _ in 0..config.batch_size {
            let slot = rng.below(pool.len());
            let entry = &mut pool[slot];
            if let Some(frame) = entry.remaining.pop() {
                picks.push((entry.episode.clone(), frame));
                frames_left -= 1;
            }
            if entry.remaining.is_empty() {
                pool.swap_remove(slot);
                if pool.is_empty() {
                    break;
                }
            }
        }
        if picks.is_empty() {
            continue;
        }
        if tx.send(Ok(make_batch(config, &picks))).is_err() {
            return;
        }
    }
}

fn make_batch(config: &LoaderConfig, picks: &[(Arc<Episode>, usize)]) -> Batch {
    let size = picks.len();
    let observations = config.observation_deltas.len();
    let dims = picks
        .first()
        .map_or(0, |(e, _)| e.state.first().map_or(0, Vec::len));
    let mut batch = Batch {
        size,
        state: Vec::with_capacity(size * observations * dims),
        state_is_pad: Vec::with_capacity(size * observations),
        action: Vec::with_capacity(size * config.action_horizon * dims),
        action_is_pad: Vec::with_capacity(size * config.action_horizon),
        reward: Vec::new(),
        environment_state: Vec::new(),
        environment_state_start: Vec::new(),
        images: BTreeMap::new(),
        task_index: Vec::with_capacity(size),
        source: Vec::with_capacity(size),
    };
    if let Some((first, _)) = picks.first() {
        for (camera, frames) in &first.images {
            let pixels = frames.first().map_or(0, Vec::len);
            batch
                .images
                .insert(camera.clone(), Vec::with_capacity(size * observations * pixels));
        }
    }
    for (episode, frame) in picks {
        let last = episode.state.len() - 1;
        if let Some(first) = episode.environment_state.as_ref().and_then(|rows| rows.first()) {
            batch.environment_state_start.extend_from_slice(first);
        }
        for delta in &config.observation_deltas {
            let wanted = *frame as i64 + delta;
            let j = wanted.clamp(0, last as i64) as usize;
            batch.state_is_pad.push(wanted != j as i64);
            batch.state.extend_from_slice(&episode.state[j]);
            if let Some(rows) = &episode.environment_state {
                batch.environment_state.extend_from_slice(&rows[j]);
            }
            for ((_, frames), out) in episode.images.iter().zip(batch.images.values_mut()) {
                push_chw(out, &frames[j]);
            }
        }
        for h in 0..config.action_horizon {
            let wanted = frame + h;
            batch.action_is_pad.push(wanted > last);
            batch.action.extend_from_slice(&episode.action[wanted.min(last)]);
            if let Some(rewards) = &episode.reward {
                batch.reward.push(rewards[wanted.min(last)]);
            }
        }
        batch.task_index.push(episode.task_index);
        batch.source.push((episode.index, *frame));
    }
    batch
}

/// Appends an interleaved RGB8 image as planar channels scaled to [0, 1].
fn push_chw(out: &mut Vec<f32>, rgb: &[u8]) {
    let pixels = rgb.len() / 3;
    let start = out.len();
    out.resize(start + rgb.len(), 0.0);
    let planes = &mut out[start..];
    for (p, px) in rgb.chunks_exact(3).enumerate() {
        planes[p] = f32::from(px[0]) / 255.0;
        planes[pixels + p] = f32::from(px[1]) / 255.0;
        planes[2 * pixels + p] = f32::from(px[2]) / 255.0;
    }
}
