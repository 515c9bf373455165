//! A dataset writer killed with SIGKILL at random moments: every time, the
//! dataset validates and holds every episode reported saved; resuming adds
//! more.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sponge_datasets::Dataset;

const SPONGE: &str = env!("CARGO_BIN_EXE_sponge");

fn validate(dir: &Path) {
    let output = Command::new(SPONGE)
        .args(["dataset", "validate"])
        .arg(dir)
        .output()
        .expect("sponge runs");
    assert!(
        output.status.success(),
        "validate failed:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Runs `sponge dataset synth`, kills it after `after`, returns the episodes it reported saved.
fn run_and_kill(dir: &Path, resume: bool, after: Duration) -> u64 {
    let mut command = Command::new(SPONGE);
    command.args(["dataset", "synth", "--out"]).arg(dir);
    command.args([
        "--episodes",
        "1000",
        "--frames",
        "20",
        "--image-size",
        "64",
        "--cameras",
        "2",
    ]);
    if resume {
        command.arg("--resume");
    }
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("sponge runs");
    let saved = Arc::new(Mutex::new(0u64));
    let reader = {
        let saved = saved.clone();
        let stdout = child.stdout.take().expect("piped");
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if line.contains(" saved ") {
                    *saved.lock().expect("lock") += 1;
                }
            }
        })
    };
    // Time the kill from when the dataset exists: a loaded machine may take
    // longer than `after` just to start the process.
    let waiting = Instant::now();
    while !dir.join("meta/info.json").exists() && waiting.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(10));
    }
    std::thread::sleep(after);
    child.kill().expect("SIGKILL");
    child.wait().expect("reaped");
    reader.join().expect("reader");
    *saved.lock().expect("lock")
}

#[test]
fn killed_writer_leaves_a_valid_dataset_with_every_saved_episode() {
    let dir = std::env::temp_dir().join(format!("sponge-crash-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    // Deterministic "random" moments, spread over episode boundaries.
    let delays_ms = [700u64, 1130, 460, 1590, 930, 1270];
    let mut reported = 0;
    let started = Instant::now();
    for (round, delay) in delays_ms.iter().enumerate() {
        let saved = run_and_kill(&dir, round > 0, Duration::from_millis(*delay));
        reported += saved;
        validate(&dir);
        let dataset = Dataset::open(&dir).expect("opens");
        let episodes = dataset.info().total_episodes;
        // Every episode reported saved is there (one more may have committed before its line was printed).
        assert!(
            episodes >= reported && episodes <= reported + 1,
            "round {round}: {episodes} episodes, {reported} reported"
        );
        reported = episodes;
        println!("round {round}: killed after {delay} ms, {episodes} episodes, valid");
    }
    assert!(
        reported >= 3,
        "the writer saved episodes between kills ({reported})"
    );
    println!("{} kills in {:?}", delays_ms.len(), started.elapsed());
    std::fs::remove_dir_all(&dir).unwrap();
}
