//! Tiny runs on synthetic episodes labelled as the twin labels its own
//! (`observation.environment_state` named like the twin's entries): for the
//! tests of a privileged policy and the perception run that serves it.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Two 30-frame episodes of "wipe up the ink" at 32×32 (PNG frames), with
/// the twin's environment-state entries, written to `dir`.
pub fn twin_labelled_dataset(dir: &Path) -> PathBuf {
    let mut spec = sponge_datasets::DatasetSpec::so100(30);
    spec.storage = sponge_datasets::CameraStorage::Png;
    spec.environment_state = sponge_sim::env::ENVIRONMENT_STATE_NAMES
        .map(String::from)
        .to_vec();
    spec.cameras = vec![sponge_datasets::CameraSpec {
        name: "front".into(),
        width: 32,
        height: 32,
    }];
    let mut writer = sponge_datasets::DatasetWriter::create(dir, spec).expect("writer");
    for e in 0..2 {
        sponge_datasets::synth::write_episode(&mut writer, e, 30, "wipe up the ink").expect("episode");
    }
    writer.close().expect("close");
    dir.to_path_buf()
}

/// `sponge train --dataset DATASET --out RUN --steps 2 --batch 2 EXTRA…`,
/// which must succeed; the run's path as text.
pub fn train_briefly(dataset: &Path, run: &Path, extra: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_sponge"))
        .args(["train", "--dataset"])
        .arg(dataset)
        .arg("--out")
        .arg(run)
        .args(["--steps", "2", "--batch", "2"])
        .args(extra)
        .output()
        .expect("sponge runs");
    assert!(
        output.status.success(),
        "sponge train {extra:?}: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    run.to_str().expect("utf-8").to_owned()
}

/// The flags of a perception run whose place keypoint finds the named
/// spill (a run for `--perception`, `perception=`).
pub const PLACE_PERCEPTION: &[&str] = &[
    "--aux-weight",
    "1",
    "--encoder",
    "conv-text",
    "--place-weight",
    "1",
    "--shift-px",
    "0",
];
