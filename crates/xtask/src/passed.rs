//! Suites that already passed on exactly this tree are not run again, so a re-run with nothing
//! changed takes seconds instead of the minutes the test binaries, the 60 s fuzz run and the
//! browsers take even when every build is fresh.
//!
//! "This tree" is a SHA-256 over every file git tracks or would track (tracked and untracked but
//! not ignored, with their contents as they are on disk) and over what the suites run with that
//! the tree does not pin: rustc's version, Node's, and the Debian packages of the GPU and browser
//! suites. Any change to any of them runs every suite again; a suite's pass is recorded only if
//! the tree still has the same fingerprint when it ends (an edit during a run does not count as
//! tested). `cargo xtask test --rerun` ignores the records. A fresh clone — CI's, a newcomer's —
//! has none, so it runs everything.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use sha2::{Digest as _, Sha256};

use crate::cmd::{Workspace, probe};

/// The fingerprint of the working tree and the tools outside it, as hex.
pub fn fingerprint(root: &Path) -> Result<String> {
    let listed = Command::new("git")
        .current_dir(root)
        .args([
            "ls-files",
            "-z",
            "--cached",
            "--others",
            "--exclude-standard",
        ])
        .output()
        .context("running git ls-files")?;
    if !listed.status.success() {
        bail!(
            "git ls-files failed: {}",
            String::from_utf8_lossy(&listed.stderr)
        );
    }
    let mut paths: Vec<&[u8]> = listed
        .stdout
        .split(|&b| b == 0)
        .filter(|p| !p.is_empty())
        .collect();
    paths.sort_unstable();
    paths.dedup();
    let mut hash = Sha256::new();
    for path in paths {
        let name = String::from_utf8_lossy(path);
        hash.update((path.len() as u64).to_le_bytes());
        hash.update(path);
        // A tracked file deleted in the working tree hashes as absent.
        match std::fs::read(root.join(name.as_ref())) {
            Ok(bytes) => {
                hash.update([1]);
                hash.update((bytes.len() as u64).to_le_bytes());
                hash.update(&bytes);
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => hash.update([0]),
            Err(e) => return Err(e).with_context(|| format!("reading {name}")),
        }
    }
    for tool in [
        &["rustc", "-vV"][..],
        &["node", "--version"],
        &[
            "dpkg-query",
            "-W",
            "-f",
            "${Package} ${Version}\n",
            "chromium",
            "mesa-vulkan-drivers",
        ],
    ] {
        let version = probe(Command::new(tool[0]).args(&tool[1..])).unwrap_or_default();
        hash.update((version.len() as u64).to_le_bytes());
        hash.update(version.as_bytes());
    }
    Ok(format!("{:x}", hash.finalize()))
}

/// Where a suite's last pass is recorded: one small file per suite in the target folder.
fn record(ws: &Workspace, suite: &str) -> PathBuf {
    let slug: String = suite
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    ws.target_dir.join("xtask-passed").join(slug)
}

/// Whether `suite` passed before on a tree with this fingerprint.
pub fn passed_before(ws: &Workspace, suite: &str, fingerprint: &str) -> bool {
    std::fs::read_to_string(record(ws, suite)).is_ok_and(|f| f.trim() == fingerprint)
}

/// Records that `suite` passed on the tree `tested`, if the tree still has it; otherwise forgets
/// any earlier pass. Written to a temporary name, then renamed, so a killed run leaves either
/// the old record or the new one.
pub fn remember(root: &Path, ws: &Workspace, suite: &str, tested: &str) -> Result<()> {
    let path = record(ws, suite);
    if fingerprint(root)? != tested {
        let _ = std::fs::remove_file(&path);
        return Ok(());
    }
    let dir = path.parent().expect("the record has a folder");
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, tested).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, &path).with_context(|| format!("renaming to {}", path.display()))
}

/// Forgets `suite`'s pass (it failed on this tree, or was run again and failed).
pub fn forget(ws: &Workspace, suite: &str) {
    let _ = std::fs::remove_file(record(ws, suite));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn git(dir: &Path, args: &[&str]) {
        let status = Command::new("git")
            .current_dir(dir)
            .args(args)
            .status()
            .unwrap();
        assert!(status.success(), "git {args:?}");
    }

    #[test]
    fn any_change_to_a_file_git_would_track_changes_the_fingerprint_and_ignored_files_do_not() {
        let dir = std::env::temp_dir().join(format!("xtask-passed-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        git(&dir, &["init", "-q"]);
        std::fs::write(dir.join(".gitignore"), "target/\n").unwrap();
        std::fs::write(dir.join("a.rs"), "fn a() {}").unwrap();
        git(&dir, &["add", "."]);
        let first = fingerprint(&dir).unwrap();
        assert_eq!(fingerprint(&dir).unwrap(), first, "not deterministic");

        std::fs::create_dir_all(dir.join("target")).unwrap();
        std::fs::write(dir.join("target/out"), "built").unwrap();
        assert_eq!(fingerprint(&dir).unwrap(), first, "an ignored file counted");

        std::fs::write(dir.join("a.rs"), "fn a() { }").unwrap();
        let edited = fingerprint(&dir).unwrap();
        assert_ne!(edited, first, "an unstaged edit was missed");

        std::fs::write(dir.join("b.rs"), "").unwrap();
        let untracked = fingerprint(&dir).unwrap();
        assert_ne!(untracked, edited, "a new untracked file was missed");

        std::fs::remove_file(dir.join("a.rs")).unwrap();
        assert_ne!(
            fingerprint(&dir).unwrap(),
            untracked,
            "a deleted file was missed"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
