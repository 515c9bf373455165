//! Where a run trained with `sponge train --place-weight` finds the named
//! spill, frame by frame, against where the dataset says its dirt lies:
//! one line per frame (picture places at 96 px and the error on the table)
//! and a summary by kind of instruction (the median and the share within 2
//! and 4 cm, which a root mean square hides when a few frames pick the
//! wrong spill).
//!
//! ```sh
//! cargo run --release -p sponge-policy --example place_on_dataset -- RUN DATASET [FIRST] [COUNT] [FRAME_STRIDE] [EPISODE_STRIDE]
//! ```
//!
//! E.g. `... runs/place data/scenes 9 1500 1 10` judges episodes 9, 19, …
//! (those the trainer held out, every 10th) from 9 to 1508.

use std::collections::BTreeMap;
use std::path::Path;

use candle_core::Device;
use sponge_policy::agent::{Agent, Input};

/// The kind of instruction, for the summary.
fn kind(task: &str) -> &'static str {
    let has = |w: &str| task.contains(w);
    if has("left") || has("right") {
        "left/right"
    } else if has("every") || has("all ") || task == "wipe the table" {
        "everything"
    } else if has("water") || has("blue") {
        "water"
    } else if has("coffee") || has("brown") {
        "coffee"
    } else if has("ink") || has("black") {
        "ink"
    } else {
        "other"
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        eprintln!("usage: place_on_dataset RUN DATASET [FIRST] [COUNT] [FRAME_STRIDE] [EPISODE_STRIDE]");
        std::process::exit(2);
    }
    let number = |i: usize, default: usize| {
        args.get(i).map_or(default, |v| {
            v.parse().unwrap_or_else(|_| panic!("{v} is not a whole number"))
        })
    };
    let agent = Agent::load(Path::new(&args[1]), &Device::Cpu, 0).expect("loading the run");
    let camera = agent
        .run_config()
        .train
        .place
        .expect("the run was not trained with --place-weight")
        .camera;
    let data = sponge_datasets::reader::Dataset::open(Path::new(&args[2])).expect("opening the dataset");
    let (first, count) = (number(3, 0), number(4, data.episodes().len()));
    let (frame_stride, episode_stride) = (number(5, 1).max(1), number(6, 1).max(1));
    let last = (first + count).min(data.episodes().len());
    let mut errors: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    let pixel = |p: [f64; 2]| [(p[0] + 1.0) * 48.0, (p[1] + 1.0) * 48.0];
    for e in (first..last).step_by(episode_stride) {
        let episode = data.read_episode(e).expect("reading an episode");
        let frames = episode
            .images
            .get("observation.images.front")
            .expect("no front camera");
        let truths = episode
            .environment_state
            .as_ref()
            .expect("no observation.environment_state");
        for f in (0..frames.len()).step_by(frame_stride) {
            let images = [frames[f].as_slice()];
            let input = Input {
                images: &images,
                state: &episode.state[f],
                earlier: &episode.state[f],
                task: &episode.task,
                environment: &[],
            };
            let truth = [f64::from(truths[f][0]), f64::from(truths[f][1])];
            let found = agent.place(&[input]).expect("place")[0];
            // A place above the horizon counts as a metre off.
            let error = found.map_or(1.0, |p| (p[0] - truth[0]).hypot(p[1] - truth[1]));
            let seen = |p: [f64; 2]| camera.project([p[0], p[1], 0.0]).map(pixel);
            println!(
                "episode {e} frame {f} {:<34} truth px {:?} found px {:?} off {:.1} cm, dirt left {:.2}",
                episode.task,
                seen(truth).map(|p| [p[0].round(), p[1].round()]),
                found.and_then(seen).map(|p| [p[0].round(), p[1].round()]),
                error * 100.0,
                truths[f][2]
            );
            errors.entry(kind(&episode.task)).or_default().push(error);
            errors.entry("all frames").or_default().push(error);
        }
    }
    for (kind, mut e) in errors {
        e.sort_by(f64::total_cmp);
        let share = |cm: f64| e.iter().filter(|v| **v < cm / 100.0).count() as f64 / e.len() as f64;
        let rms = (e.iter().map(|v| v * v).sum::<f64>() / e.len() as f64).sqrt();
        println!(
            "{kind:<12} {:4} frames: median {:.1} cm, within 2 cm {:.0}%, within 4 cm {:.0}%, root mean square {:.1} cm",
            e.len(),
            e[e.len() / 2] * 100.0,
            share(2.0) * 100.0,
            share(4.0) * 100.0,
            rms * 100.0
        );
    }
}
