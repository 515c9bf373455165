//! Rerun export of an episode (`sponge dataset view`), in builds with the
//! `rerun` feature.

use std::path::Path;

use sponge_datasets::{Dataset, Episode};

/// Writes `episode_NNNNNN.rrd` with the camera images and joint curves.
#[cfg(feature = "rerun")]
pub fn write_rrd(dataset: &Dataset, episode: &Episode, out: &Path) -> anyhow::Result<()> {
    use anyhow::Context;

    let path = out.join(format!("episode_{:06}.rrd", episode.index));
    let rec = rerun::RecordingStreamBuilder::new("sponge_dataset")
        .save(&path)
        .with_context(|| format!("creating {}", path.display()))?;
    let names: Vec<String> = dataset
        .features()
        .iter()
        .find(|(n, _)| n == "action")
        .and_then(|(_, f)| f.names.as_array().cloned())
        .unwrap_or_default()
        .iter()
        .filter_map(|n| n.as_str().map(str::to_owned))
        .collect();
    let sizes: Vec<(String, [u32; 2])> = dataset
        .features()
        .iter()
        .filter(|(_, f)| f.is_video() || f.is_image())
        .map(|(n, f)| (n.clone(), [f.shape[1] as u32, f.shape[0] as u32]))
        .collect();
    rec.log_static("task", &rerun::TextDocument::new(episode.task.clone()))?;
    for f in 0..episode.state.len() {
        rec.set_time_sequence("frame_index", f as i64);
        rec.set_duration_secs("timestamp", f64::from(episode.timestamps[f]));
        for (j, name) in names.iter().enumerate() {
            let joint = name.trim_end_matches(".pos");
            rec.log(
                format!("state/{joint}"),
                &rerun::Scalars::single(f64::from(episode.state[f][j])),
            )?;
            rec.log(
                format!("action/{joint}"),
                &rerun::Scalars::single(f64::from(episode.action[f][j])),
            )?;
        }
        for (camera, size) in &sizes {
            if let Some(frame) = episode.images.get(camera).and_then(|frames| frames.get(f)) {
                rec.log(camera.as_str(), &rerun::Image::from_rgb24(frame.clone(), *size))?;
            }
        }
    }
    rec.flush_blocking()?;
    println!(
        "{}: Rerun recording (open with `rerun {}`)",
        path.display(),
        path.display()
    );
    Ok(())
}

/// Without the `rerun` feature: says how to get the .rrd file.
#[cfg(not(feature = "rerun"))]
pub fn write_rrd(_dataset: &Dataset, _episode: &Episode, _out: &Path) -> anyhow::Result<()> {
    println!(
        "(no .rrd: this sponge was built without Rerun; `cargo build --release --features rerun` adds it)"
    );
    Ok(())
}
