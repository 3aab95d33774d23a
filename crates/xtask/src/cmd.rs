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

/// The crate the native suites leave out: benchmarks, built in release by `cargo xtask bench`.
/// Its debug build was candle plus five binaries no test runs (about six minutes of a cold run
/// on two cores); the lint suite checks it with clippy instead.
pub const BENCH_CRATE: &str = "tributary-bench";

/// `cargo test` over what the native suites build: every workspace crate but [`BENCH_CRATE`].
/// Every caller selects the same crates, so features unify alike and one build serves the lint,
/// native, lavapipe and browser suites.
pub fn native_tests(root: &Path) -> Command {
    let mut test = cargo();
    test.current_dir(root)
        .args(["test", "--workspace", "--exclude", BENCH_CRATE]);
    test
}

pub fn cargo() -> Command {
    let mut cargo = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    lint_builds(&mut cargo);
    cargo
}

/// clippy-driver, once [`lint_every_build`] has found it.
static CLIPPY_DRIVER: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();

/// From now on every cargo build of a workspace crate — tests, binaries, wasm32 release builds,
/// also those trunk and worker-build start — compiles it with clippy-driver as the workspace
/// wrapper and warnings denied, as `cargo clippy -- -D warnings` would lint it. `cargo clippy`
/// only checks: its dependency metadata is a second compilation of every dependency, which
/// no build reuses (14 minutes of a cold run on two cores); linting inside the builds that the
/// tests need anyway costs nothing extra. Dependencies are compiled by plain rustc as before.
pub fn lint_every_build() -> Result<()> {
    let sysroot = probe(Command::new("rustc").args(["--print", "sysroot"]))
        .context("`rustc --print sysroot` failed")?;
    let driver = Path::new(sysroot.trim()).join("bin/clippy-driver");
    if !driver.exists() {
        bail!(
            "{} is missing: `rustup component add clippy` (cargo xtask setup does it)",
            driver.display()
        );
    }
    let _ = CLIPPY_DRIVER.set(driver);
    Ok(())
}

/// The environment [`lint_every_build`] turned on, for a command that runs cargo itself (trunk,
/// worker-build); the same for every build, so one build's output stays fresh for the next.
pub fn lint_builds(command: &mut Command) -> &mut Command {
    if let Some(driver) = CLIPPY_DRIVER.get() {
        // clippy-driver reads its own arguments from CLIPPY_ARGS, each followed by this
        // separator (what `cargo clippy -- -D warnings` sets).
        command.env("RUSTC_WORKSPACE_WRAPPER", driver).env(
            "CLIPPY_ARGS",
            "-D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__",
        );
    }
    command
}

/// Where `cargo install` puts binaries: `CARGO_INSTALL_ROOT/bin` when set (a cold check points
/// it at an empty folder), else `CARGO_HOME/bin`.
pub fn install_bin_dir() -> PathBuf {
    if let Some(root) = std::env::var_os("CARGO_INSTALL_ROOT") {
        return PathBuf::from(root).join("bin");
    }
    std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cargo")))
        .unwrap_or_else(|| PathBuf::from(".cargo"))
        .join("bin")
}

/// A Python virtual environment for one of xtask's Python jobs: `$<env>` when set, else
/// `~/.cache/tributary/<name>`; created the first time, then `requirements` installed into it
/// (pip skips what is already there at the pinned version, so this is cheap when current).
/// `configure` adds what the install needs (e.g. build parallelism). Returns its `python`.
pub fn python_venv(
    env: &str,
    name: &str,
    requirements: &Path,
    configure: impl FnOnce(&mut Command),
) -> Result<PathBuf> {
    let venv = std::env::var_os(env).map(PathBuf::from).unwrap_or_else(|| {
        let home = std::env::var_os("HOME").unwrap_or_else(|| ".".into());
        Path::new(&home).join(".cache/tributary").join(name)
    });
    let python = venv.join("bin/python");
    if !python.exists() {
        println!("creating the virtual environment {}", venv.display());
        run(Command::new("python3").args(["-m", "venv"]).arg(&venv))
            .context("could not create a Python virtual environment (Debian: python3-venv)")?;
    }
    let mut pip = Command::new(&python);
    pip.args(["-m", "pip", "install", "-q", "-r"])
        .arg(requirements);
    configure(&mut pip);
    run(&mut pip).with_context(|| format!("installing {}", requirements.display()))?;
    Ok(python)
}

/// A tool in [`install_bin_dir`], so a freshly installed tool is found even when that directory
/// is not on PATH.
pub fn cargo_bin(tool: &str) -> PathBuf {
    let installed = install_bin_dir().join(tool);
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

/// `cargo metadata --format-version 1` with `args`, parsed.
fn metadata(root: &Path, args: &[&str]) -> Result<serde_json::Value> {
    let out = cargo()
        .current_dir(root)
        .args(["metadata", "--format-version", "1"])
        .args(args)
        .output()
        .context("could not run `cargo metadata`")?;
    if !out.status.success() {
        bail!(
            "`cargo metadata` failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    serde_json::from_slice(&out.stdout).context("`cargo metadata` printed bad JSON")
}

impl Workspace {
    pub fn read(root: &Path) -> Result<Self> {
        let meta = metadata(root, &["--no-deps"])?;
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

/// The wasm32 crates (of [`Workspace::wasm_crates`]) that none of `roots` depends on, directly
/// or not, through normal dependencies for wasm32: no release build of a root compiles them.
pub fn wasm_crates_outside(root: &Path, ws: &Workspace, roots: &[&str]) -> Result<Vec<String>> {
    let meta = metadata(root, &["--filter-platform", "wasm32-unknown-unknown"])?;
    let name_of = |id: &str| -> Option<String> {
        meta["packages"]
            .as_array()?
            .iter()
            .find(|p| p["id"].as_str() == Some(id))
            .and_then(|p| p["name"].as_str().map(str::to_owned))
    };
    let nodes = meta["resolve"]["nodes"]
        .as_array()
        .context("`cargo metadata` has no resolve graph")?;
    let mut reached: Vec<String> = Vec::new();
    let mut queue: Vec<String> = nodes
        .iter()
        .filter_map(|n| n["id"].as_str())
        .filter(|id| name_of(id).is_some_and(|n| roots.contains(&n.as_str())))
        .map(str::to_owned)
        .collect();
    while let Some(id) = queue.pop() {
        if reached.contains(&id) {
            continue;
        }
        let node = nodes.iter().find(|n| n["id"].as_str() == Some(id.as_str()));
        for dep in node
            .and_then(|n| n["deps"].as_array())
            .into_iter()
            .flatten()
        {
            let normal = dep["dep_kinds"]
                .as_array()
                .is_some_and(|kinds| kinds.iter().any(|k| k["kind"].is_null()));
            if let (true, Some(dep_id)) = (normal, dep["pkg"].as_str()) {
                queue.push(dep_id.to_owned());
            }
        }
        reached.push(id);
    }
    let reached: Vec<String> = reached.iter().filter_map(|id| name_of(id)).collect();
    Ok(ws
        .wasm_crates
        .iter()
        .filter(|c| !reached.contains(c))
        .cloned()
        .collect())
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

/// A release wasm32 build of one package (and one of its binaries, or its library), selected
/// alone as trunk and worker-build select theirs, so that every build of the same package unifies
/// features the same way and reuses the others' compiled dependencies. Returns the `.wasm` file.
pub fn build_wasm_release(
    root: &Path,
    ws: &Workspace,
    package: &str,
    bin: Option<&str>,
) -> Result<PathBuf> {
    let mut build = cargo();
    build
        .current_dir(root)
        .args(["build", "--release", "--target", "wasm32-unknown-unknown"])
        .args(["-p", package]);
    if package == WEB_PACKAGE {
        web_release_profile(&mut build);
    }
    match bin {
        Some(bin) => build.args(["--bin", bin]),
        None => build.arg("--lib"),
    };
    run(&mut build)?;
    Ok(wasm_release_file(ws, bin.unwrap_or(package)))
}

/// The tab's package (`web/`: the app and the smoke pages' bindings), whose wasm32 release builds
/// — the smoke binary by [`build_wasm_release`], the app by trunk — compile at opt-level 1: the
/// tab's heavy work runs in WGSL on the GPU, and burn's and cubecl's generic code at level 3 was
/// the longest single build of a cold `cargo xtask test` (8–11 min on two cores). Every build of
/// it, in `test` and `demo` alike, goes through here so that they share one set of compiled
/// crates. The wallet verifier keeps level 3 (it builds in under a minute); the edge worker is
/// built at this level for the tests and at 3 to deploy (see `edge::Profile`).
pub const WEB_PACKAGE: &str = "tributary-web";

/// Sets the release profile's opt-level for a build of [`WEB_PACKAGE`] (see there).
pub fn web_release_profile(command: &mut Command) -> &mut Command {
    command.env("CARGO_PROFILE_RELEASE_OPT_LEVEL", "1")
}

/// Where cargo leaves the release `.wasm` of a library or binary target.
pub fn wasm_release_file(ws: &Workspace, target: &str) -> PathBuf {
    ws.target_dir
        .join("wasm32-unknown-unknown/release")
        .join(format!("{}.wasm", target.replace('-', "_")))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// On this workspace: the model, SGMV kernels and receipts are reached by the app, the edge
    /// worker or the wallet verifier, so only crates nobody depends on are left to lint alone.
    #[test]
    fn wasm_crates_outside_the_release_builds() {
        let root = crate::workspace_root();
        let ws = Workspace::read(&root).unwrap();
        for reached in ["tributary-model", "tributary-sgmv", "tributary-receipt"] {
            assert!(ws.wasm_crates.iter().any(|c| c == reached), "{reached}");
        }
        let rest = wasm_crates_outside(
            &root,
            &ws,
            &["tributary-verifier", "tributary-web", "tributary-edge"],
        )
        .unwrap();
        for reached in [
            "tributary-model",
            "tributary-sgmv",
            "tributary-receipt",
            "tributary-web",
        ] {
            assert!(!rest.iter().any(|c| c == reached), "{reached} in {rest:?}");
        }
        let everything = wasm_crates_outside(&root, &ws, &[]).unwrap();
        assert_eq!(everything, ws.wasm_crates);
    }
}
