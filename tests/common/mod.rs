//! What the command-line tests share: running the `sponge` binary and
//! reading what it said, and scratch folders.

use std::path::PathBuf;
use std::process::{Command, Output};

/// The binary under test.
pub const SPONGE: &str = env!("CARGO_BIN_EXE_sponge");

/// Runs `sponge ARGS` to the end.
pub fn sponge(args: &[&str]) -> Output {
    Command::new(SPONGE).args(args).output().expect("sponge runs")
}

/// Its stdout and stderr together.
pub fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// A scratch path `sponge-<test>-<pid>-<name>` in the temporary folder,
/// emptied of what an earlier run left there (not created).
pub fn scratch(test: &str, name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sponge-{test}-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}
