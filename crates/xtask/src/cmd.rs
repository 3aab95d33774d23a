//! Running external commands with the command line echoed, and errors that name it.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

/// The command as a user would type it, for logs and error messages.
pub fn display(cmd: &Command) -> String {
    let mut line = cmd.get_program().to_string_lossy().into_owned();
    for arg in cmd.get_args() {
        let _ = write!(line, " {}", arg.to_string_lossy());
    }
    line
}

/// Runs `cmd` with inherited stdio; a non-zero exit becomes an error naming the command.
pub fn run(cmd: &mut Command) -> Result<()> {
    let line = display(cmd);
    println!("$ {line}");
    let status = cmd
        .status()
        .with_context(|| format!("could not start `{line}`"))?;
    if !status.success() {
        bail!("`{line}` failed ({status})");
    }
    Ok(())
}

/// Runs `cmd` quietly and returns its stdout, or `None` if it could not start or failed: used
/// for probes such as `tool --version`, where absence is an answer, not an error.
pub fn probe(cmd: &mut Command) -> Option<String> {
    let out = cmd.output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

pub fn cargo() -> Command {
    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

/// Where `cargo install` puts binaries, so a freshly installed tool is found even when that
/// directory is not on PATH.
pub fn cargo_bin(tool: &str) -> PathBuf {
    let home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cargo")))
        .unwrap_or_else(|| PathBuf::from(".cargo"));
    let installed = home.join("bin").join(tool);
    if installed.exists() {
        installed
    } else {
        PathBuf::from(tool)
    }
}

/// Workspace facts read from `cargo metadata`.
#[derive(Debug)]
pub struct Workspace {
    pub target_dir: PathBuf,
    /// Crates that declare `[package.metadata.tributary] wasm32 = true`: built for the browser.
    pub wasm_crates: Vec<String>,
}

impl Workspace {
    pub fn read(root: &Path) -> Result<Self> {
        let mut cmd = cargo();
        cmd.current_dir(root)
            .args(["metadata", "--no-deps", "--format-version", "1"]);
        let out = cmd.output().context("could not run `cargo metadata`")?;
        if !out.status.success() {
            bail!(
                "`cargo metadata` failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let meta: serde_json::Value =
            serde_json::from_slice(&out.stdout).context("`cargo metadata` printed bad JSON")?;
        let target_dir = meta["target_directory"]
            .as_str()
            .context("`cargo metadata` has no target_directory")?
            .into();
        let wasm_crates = meta["packages"]
            .as_array()
            .context("`cargo metadata` has no packages")?
            .iter()
            .filter(|p| p["metadata"]["tributary"]["wasm32"].as_bool() == Some(true))
            .filter_map(|p| p["name"].as_str().map(str::to_owned))
            .collect();
        Ok(Self {
            target_dir,
            wasm_crates,
        })
    }
}

impl Workspace {
    /// `-p NAME` for every wasm32 crate.
    pub fn wasm_packages(&self) -> Vec<String> {
        self.wasm_crates
            .iter()
            .flat_map(|c| ["-p".to_owned(), c.clone()])
            .collect()
    }
}

/// The version of `package` that Cargo.lock pins (the first one, if several).
pub fn locked_version(root: &Path, package: &str) -> Result<String> {
    let lock = std::fs::read_to_string(root.join("Cargo.lock")).context("reading Cargo.lock")?;
    let wanted = format!("name = \"{package}\"");
    let mut lines = lock.lines();
    while let Some(line) = lines.next() {
        if line.trim() == wanted
            && let Some(version) = lines
                .next()
                .and_then(|l| l.trim().strip_prefix("version = \""))
                .and_then(|v| v.strip_suffix('"'))
        {
            return Ok(version.to_owned());
        }
    }
    bail!("Cargo.lock has no package `{package}`")
}

/// Mesa lavapipe's Vulkan ICD file: pointing `VK_ICD_FILENAMES` at it makes lavapipe the only
/// Vulkan device, so GPU tests and benchmarks run on the same software device everywhere.
pub fn lavapipe_icd() -> Result<PathBuf> {
    let icd_dir = Path::new("/usr/share/vulkan/icd.d");
    let icd = std::fs::read_dir(icd_dir)
        .with_context(|| format!("reading {}", icd_dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("lvp_icd"))
        });
    icd.with_context(|| {
        format!(
            "no lavapipe ICD (lvp_icd*.json) in {}: is mesa-vulkan-drivers installed?",
            icd_dir.display()
        )
    })
}

/// Release wasm32 builds of every wasm crate in one cargo invocation: the same package set as the
/// wasm32 suite, since building one crate alone would unify features (burn's, getrandom's)
/// differently and rebuild them on every run.
pub fn build_wasm_release(root: &Path, ws: &Workspace) -> Result<()> {
    run(cargo()
        .current_dir(root)
        .args(["build", "--release", "--target", "wasm32-unknown-unknown"])
        .args(ws.wasm_packages()))
}
