//! `cargo xtask setup`: installs only what is missing, printing each step, so running it twice
//! installs nothing the second time.

use std::path::Path;
use std::process::{Command, ExitCode};

use anyhow::{Context, Result, bail};

use crate::cmd;

/// Debian packages the suites need: lavapipe (Vulkan on the CPU) and its loader for the native
/// GPU tests, Chromium for the browser tests, and `bible-kjv`: the King James
/// Version (public domain) and the `bible` program that prints it, the real text the attribution
/// canary test plants its passages in.
const APT_PACKAGES: &[&str] = &["mesa-vulkan-drivers", "libvulkan1", "chromium", "bible-kjv"];
/// cargo-fuzz runs on the stable toolchain with `--sanitizer none` (coverage-guided libFuzzer).
const CARGO_FUZZ: &str = "0.13.1";
/// Folders with a committed package.json + package-lock.json.
const NPM_PROJECTS: &[&str] = &[
    "playwright",
    "crates/tributary-chain/solidity",
    "pkg",
    "edge-worker",
];

pub fn run(root: &Path) -> Result<ExitCode> {
    install(root)?;
    Ok(ExitCode::SUCCESS)
}

pub fn install(root: &Path) -> Result<()> {
    println!("== setup ==");
    rust_target("wasm32-unknown-unknown")?;
    apt_packages(APT_PACKAGES)?;
    node()?;
    for project in NPM_PROJECTS {
        npm_ci(&root.join(project))?;
    }
    let bindgen = cmd::locked_version(root, "wasm-bindgen")?;
    cargo_tool("wasm-bindgen-cli", "wasm-bindgen", &bindgen, false)?;
    cargo_tool("cargo-fuzz", "cargo-fuzz", CARGO_FUZZ, false)?;
    // --locked: trunk's own lock file is what builds on this rustc.
    cargo_tool("trunk", "trunk", crate::web::TRUNK, true)?;
    cargo_tool(
        "worker-build",
        "worker-build",
        crate::edge::WORKER_BUILD,
        false,
    )?;
    println!("setup: done");
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

/// `cargo install` of one exact version, skipped when `binary --version` already reports it.
/// `locked` only where it is known to resolve: a locked dependency version can be missing from
/// the registry here (wasm-bindgen-cli's is).
fn cargo_tool(krate: &str, binary: &str, version: &str, locked: bool) -> Result<()> {
    let path = cmd::cargo_bin(binary);
    let reported = cmd::probe(Command::new(&path).arg("--version")).unwrap_or_default();
    if reported.split_whitespace().any(|word| word == version) {
        println!("setup: {krate} {version}: present");
        return Ok(());
    }
    println!("setup: {krate} {version}: installing (a few minutes)");
    let mut install = cmd::cargo();
    install.args(["install", krate, "--version", &format!("={version}")]);
    // Tools are built once per machine and only run: one target folder for all of them, so the
    // dependencies they share (tokio, clap, walrus, …) compile once, and no fat LTO over a
    // single codegen unit (trunk's own profile), which doubled trunk's build for nothing here.
    install
        .arg("--target-dir")
        .arg(tools_target_dir())
        .env("CARGO_PROFILE_RELEASE_LTO", "false")
        .env("CARGO_PROFILE_RELEASE_CODEGEN_UNITS", "16");
    if locked {
        install.arg("--locked");
    }
    cmd::run(&mut install).with_context(|| format!("could not install {krate} {version}"))
}
