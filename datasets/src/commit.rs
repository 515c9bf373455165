//! Atomic commits of several files at once.
//!
//! Adding an episode rewrites a data file, a video file per camera and the
//! metadata, and no single rename covers them all. So: every new file is
//! written and synced under a temporary name; then a journal listing the
//! renames is written and renamed into place (the commit point); then the
//! renames run and the journal is deleted. Whoever opens the dataset next
//! finishes a journal left by a crash ([`recover`]); temporary files with
//! no journal belonged to an episode that never committed and are removed,
//! unless a writer still holds the dataset ([`WriterLock`]): those files are
//! then the episode it is committing.

use std::fs::File;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// Suffix of files written but not yet committed.
pub const TMP_SUFFIX: &str = ".sponge-tmp";

fn journal_path(root: &Path) -> PathBuf {
    root.join("meta/.sponge-commit.json")
}

fn lock_path(root: &Path) -> PathBuf {
    root.join("meta/.sponge-writer.lock")
}

/// The lock a writer holds for as long as it has a dataset open (an
/// advisory lock on `meta/.sponge-writer.lock`, which the system lets go
/// of when the process ends, crash or not). While it is held, whoever
/// opens the dataset reads what is committed and leaves the writer's
/// temporary files alone, and a second writer is refused.
#[derive(Debug)]
pub struct WriterLock {
    _file: File,
}

impl WriterLock {
    /// Takes the lock of the dataset at `root` (whose `meta` folder exists).
    /// A reader holds it for a moment while it recovers: that is waited
    /// for; another writer is not.
    pub fn acquire(root: &Path) -> Result<WriterLock> {
        let path = lock_path(root);
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| Error::io(&path, e))?;
        for _ in 0..30 {
            match file.try_lock() {
                Ok(()) => return Ok(WriterLock { _file: file }),
                Err(std::fs::TryLockError::WouldBlock) => {
                    std::thread::sleep(std::time::Duration::from_millis(100));
                }
                Err(std::fs::TryLockError::Error(e)) => return Err(Error::io(&path, e)),
            }
        }
        Err(Error::Usage(format!(
            "{} is being written by another process (a recording or generation still running?): wait for it to finish, or write to another folder",
            root.display()
        )))
    }
}

/// [`recover`], unless a writer has the dataset open: then its temporary
/// files are an episode being committed, not a crash's leftovers, and what
/// is committed is read as it is. Returns whether anything had to be done.
pub fn recover_unless_written(root: &Path) -> Result<bool> {
    // Only writers create the lock file: opening it read-only keeps a
    // reader from writing into a dataset (a read-only copy, a cache).
    let path = lock_path(root);
    let Ok(file) = File::open(&path) else {
        return recover(root);
    };
    match file.try_lock() {
        // No writer: recover while holding the lock, so that none starts meanwhile.
        Ok(()) => recover(root),
        Err(std::fs::TryLockError::WouldBlock) => Ok(false),
        Err(std::fs::TryLockError::Error(e)) => Err(Error::io(&path, e)),
    }
}

#[derive(Serialize, Deserialize)]
struct Journal {
    /// `(temporary, final)` paths relative to the root.
    renames: Vec<(PathBuf, PathBuf)>,
}

/// A set of files to replace together.
pub struct Commit {
    root: PathBuf,
    renames: Vec<(PathBuf, PathBuf)>,
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io(dir, e))
}

impl Commit {
    /// A commit in the dataset at `root`.
    pub fn new(root: &Path) -> Commit {
        Commit {
            root: root.to_path_buf(),
            renames: Vec::new(),
        }
    }

    /// The temporary path to write `final_path` (relative to the root) to.
    pub fn stage_path(&mut self, final_path: &Path) -> Result<PathBuf> {
        let relative = final_path
            .strip_prefix(&self.root)
            .unwrap_or(final_path)
            .to_path_buf();
        let mut tmp = relative.clone().into_os_string();
        tmp.push(TMP_SUFFIX);
        let tmp = PathBuf::from(tmp);
        let absolute = self.root.join(&tmp);
        if let Some(parent) = absolute.parent() {
            std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
        }
        self.renames.push((tmp, relative));
        Ok(absolute)
    }

    /// Writes `bytes` as the new content of `final_path`.
    pub fn stage_bytes(&mut self, final_path: &Path, bytes: &[u8]) -> Result<()> {
        let tmp = self.stage_path(final_path)?;
        std::fs::write(&tmp, bytes).map_err(|e| Error::io(&tmp, e))
    }

    /// Removes every staged file: nothing changes.
    pub fn discard(self) {
        for (tmp, _) in &self.renames {
            // Best effort: a staged file may not have been written yet.
            let _ = std::fs::remove_file(self.root.join(tmp));
        }
    }

    /// Makes every staged file durable, then swaps them all in.
    pub fn apply(self) -> Result<()> {
        for (tmp, _) in &self.renames {
            let path = self.root.join(tmp);
            File::open(&path)
                .and_then(|f| f.sync_all())
                .map_err(|e| Error::io(&path, e))?;
        }
        let journal = journal_path(&self.root);
        let text = serde_json::to_vec(&Journal {
            renames: self.renames,
        })
        .map_err(|e| Error::Usage(e.to_string()))?;
        let mut journal_tmp = journal.clone().into_os_string();
        journal_tmp.push(TMP_SUFFIX);
        let journal_tmp = PathBuf::from(journal_tmp);
        std::fs::write(&journal_tmp, text).map_err(|e| Error::io(&journal_tmp, e))?;
        File::open(&journal_tmp)
            .and_then(|f| f.sync_all())
            .map_err(|e| Error::io(&journal_tmp, e))?;
        std::fs::rename(&journal_tmp, &journal).map_err(|e| Error::io(&journal, e))?;
        if let Some(meta) = journal.parent() {
            sync_dir(meta)?;
        }
        finish(&self.root)
    }
}

/// Carries out a committed journal's renames and deletes it.
fn finish(root: &Path) -> Result<()> {
    let journal = journal_path(root);
    let text = std::fs::read(&journal).map_err(|e| Error::io(&journal, e))?;
    let Journal { renames } = serde_json::from_slice(&text)
        .map_err(|e| Error::format(&journal, format!("unreadable commit journal: {e}")))?;
    let mut dirs = Vec::new();
    for (tmp, dest) in renames {
        let (tmp, dest) = (root.join(tmp), root.join(dest));
        if tmp.exists() {
            std::fs::rename(&tmp, &dest).map_err(|e| Error::io(&dest, e))?;
        }
        if let Some(parent) = dest.parent()
            && !dirs.contains(&parent.to_path_buf())
        {
            dirs.push(parent.to_path_buf());
        }
    }
    for dir in dirs {
        sync_dir(&dir)?;
    }
    std::fs::remove_file(&journal).map_err(|e| Error::io(&journal, e))
}

/// Brings a dataset left by a crash to a consistent state: finishes a
/// committed journal, removes uncommitted temporary files. Returns whether
/// anything had to be done.
pub fn recover(root: &Path) -> Result<bool> {
    let mut changed = false;
    if journal_path(root).exists() {
        finish(root)?;
        changed = true;
    }
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.to_string_lossy().ends_with(TMP_SUFFIX) {
                std::fs::remove_file(&path).map_err(|e| Error::io(&path, e))?;
                changed = true;
            }
        }
    }
    Ok(changed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_root(name: &str) -> PathBuf {
        let root = std::env::temp_dir().join(format!("sponge-commit-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(root.join("meta")).unwrap();
        root
    }

    #[test]
    fn crash_after_the_journal_is_rolled_forward() {
        let root = temp_root("forward");
        std::fs::write(root.join("a.txt"), "old a").unwrap();
        let mut commit = Commit::new(&root);
        commit.stage_bytes(&root.join("a.txt"), b"new a").unwrap();
        commit.stage_bytes(&root.join("data/b.txt"), b"new b").unwrap();
        // The process dies right after the commit point: journal written, no rename done.
        let journal = serde_json::to_vec(&Journal {
            renames: commit.renames.clone(),
        })
        .unwrap();
        std::fs::write(journal_path(&root), journal).unwrap();
        assert!(recover(&root).unwrap());
        assert_eq!(std::fs::read_to_string(root.join("a.txt")).unwrap(), "new a");
        assert_eq!(std::fs::read_to_string(root.join("data/b.txt")).unwrap(), "new b");
        assert!(!journal_path(&root).exists());
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn crash_before_the_journal_is_rolled_back() {
        let root = temp_root("back");
        std::fs::write(root.join("a.txt"), "old a").unwrap();
        let mut commit = Commit::new(&root);
        commit.stage_bytes(&root.join("a.txt"), b"new a").unwrap();
        // The process dies before the commit point: staged files only.
        assert!(recover(&root).unwrap());
        assert_eq!(std::fs::read_to_string(root.join("a.txt")).unwrap(), "old a");
        let mut tmp = root.join("a.txt").into_os_string();
        tmp.push(TMP_SUFFIX);
        assert!(!PathBuf::from(tmp).exists());
        std::fs::remove_dir_all(&root).unwrap();
    }
}
