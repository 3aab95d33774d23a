//! Just-in-time adapters under byte budgets (LoRAX's residency by bytes, vLLM's two tiers).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use tributary_model::{Adapter, AdapterWeights, Model, ModelError, SgmvBackend};
use web_time::Instant;

/// Where an adapter's two files come from.
#[derive(Debug, Clone)]
pub enum AdapterSource {
    /// A PEFT folder: `adapter_config.json` and `adapter_model.safetensors`.
    Dir(PathBuf),
    /// The same two files as bytes (uploaded, fetched).
    Bytes {
        config: Arc<[u8]>,
        safetensors: Arc<[u8]>,
    },
}

/// Bytes each tier may hold. An adapter larger than a whole budget cannot be served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budgets {
    /// Adapter pages in the model's pool (GPU memory on wgpu).
    pub device_bytes: u64,
    /// Parsed f32 weights kept in RAM, so a device eviction does not mean a reload from source.
    pub host_bytes: u64,
}

/// Counters since the store was made, for `/metrics`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StoreMetrics {
    pub registered: usize,
    /// Already on the device.
    pub hits: u64,
    /// On the host tier, uploaded again.
    pub host_hits: u64,
    /// Read from source, verified, parsed, uploaded.
    pub misses: u64,
    pub device_evictions: u64,
    pub host_evictions: u64,
    /// Total milliseconds spent in loads from source (read, hash, parse, upload).
    pub load_ms_total: f64,
    pub device_bytes: u64,
    pub host_bytes: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("no adapter named `{0}` is registered")]
    Unknown(String),
    #[error("adapter name `{0}` is invalid: {1}")]
    BadName(String, &'static str),
    #[error("an adapter named `{0}` is already registered")]
    Duplicate(String),
    #[error("adapter `{name}`: content hash {got} does not match the registered {expected}")]
    Hash {
        name: String,
        expected: String,
        got: String,
    },
    #[error(
        "adapter `{name}` needs {bytes} bytes on the {tier}, over its whole budget of {budget}"
    )]
    OverBudget {
        name: String,
        tier: &'static str,
        bytes: u64,
        budget: u64,
    },
    #[error(
        "adapter `{name}`: every other adapter on the {tier} is pinned; {needed} bytes cannot be freed"
    )]
    Pinned {
        name: String,
        tier: &'static str,
        needed: u64,
    },
    #[error("adapter `{name}`: {source}")]
    Load {
        name: String,
        #[source]
        source: ModelError,
    },
}

/// The content hash the store verifies (the same one the edge worker serves adapters under).
pub use tributary_peft::content_hash;

pub(crate) use tributary_peft::hex;

#[derive(Debug)]
struct Entry<B: SgmvBackend> {
    source: AdapterSource,
    expected_hash: Option<[u8; 32]>,
    pinned: bool,
    /// Last use, in store ticks; the smallest is evicted first.
    last_used: u64,
    host: Option<(Arc<AdapterWeights>, u64)>,
    device: Option<(Adapter<B>, u64)>,
}

#[derive(Debug)]
struct Inner<B: SgmvBackend> {
    entries: BTreeMap<String, Entry<B>>,
    tick: u64,
    metrics: StoreMetrics,
}

/// Adapters for one base model, loaded when first asked for and kept within [`Budgets`].
///
/// [`AdapterStore::acquire`] returns a handle the caller keeps while it generates. Evicting an
/// adapter drops the store's handle; the pool frees its pages once the last in-flight request
/// holding a clone finishes, so eviction never pulls weights from under a running request.
#[derive(Debug)]
pub struct AdapterStore<B: SgmvBackend> {
    model: Arc<Model<B>>,
    budgets: Budgets,
    inner: Mutex<Inner<B>>,
}

impl<B: SgmvBackend> AdapterStore<B> {
    pub fn new(model: Arc<Model<B>>, budgets: Budgets) -> Self {
        Self {
            model,
            budgets,
            inner: Mutex::new(Inner {
                entries: BTreeMap::new(),
                tick: 0,
                metrics: StoreMetrics::default(),
            }),
        }
    }

    pub fn model(&self) -> &Arc<Model<B>> {
        &self.model
    }

    fn lock(&self) -> MutexGuard<'_, Inner<B>> {
        // Every update below is made whole before it is stored; a panic elsewhere while the lock
        // was held leaves consistent state.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers an adapter without loading it. `sha256`, when given, is checked against
    /// [`content_hash`] of the files at every load.
    pub fn register(
        &self,
        name: &str,
        source: AdapterSource,
        sha256: Option<[u8; 32]>,
    ) -> Result<(), StoreError> {
        if name.is_empty() {
            return Err(StoreError::BadName(name.into(), "empty"));
        }
        if name.contains(':') || name.chars().any(char::is_control) {
            return Err(StoreError::BadName(
                name.into(),
                "must not contain ':' (it separates base and adapter) or control characters",
            ));
        }
        let mut inner = self.lock();
        if inner.entries.contains_key(name) {
            return Err(StoreError::Duplicate(name.into()));
        }
        inner.entries.insert(
            name.to_owned(),
            Entry {
                source,
                expected_hash: sha256,
                pinned: false,
                last_used: 0,
                host: None,
                device: None,
            },
        );
        inner.metrics.registered = inner.entries.len();
        Ok(())
    }

    pub fn contains(&self, name: &str) -> bool {
        self.lock().entries.contains_key(name)
    }

    /// Registered adapter names, sorted.
    pub fn names(&self) -> Vec<String> {
        self.lock().entries.keys().cloned().collect()
    }

    /// Forgets an adapter and its source; its tiers' bytes are freed, and a request that already
    /// holds it keeps its pages until it finishes. An edge isolate registers what clients ask for
    /// and must not keep every adapter's bytes forever.
    pub fn unregister(&self, name: &str) -> Result<(), StoreError> {
        let mut inner = self.lock();
        let entry = inner
            .entries
            .remove(name)
            .ok_or_else(|| StoreError::Unknown(name.into()))?;
        if let Some((_, bytes)) = entry.device {
            inner.metrics.device_bytes -= bytes;
        }
        if let Some((_, bytes)) = entry.host {
            inner.metrics.host_bytes -= bytes;
        }
        inner.metrics.registered = inner.entries.len();
        Ok(())
    }

    /// Pinned adapters are never evicted (and count against the budgets while resident).
    pub fn pin(&self, name: &str, pinned: bool) -> Result<(), StoreError> {
        let mut inner = self.lock();
        let entry = inner
            .entries
            .get_mut(name)
            .ok_or_else(|| StoreError::Unknown(name.into()))?;
        entry.pinned = pinned;
        Ok(())
    }

    pub fn metrics(&self) -> StoreMetrics {
        self.lock().metrics.clone()
    }

    /// The adapter on the device, loading it (from the host tier, or from source) if needed.
    pub fn acquire(&self, name: &str) -> Result<Adapter<B>, StoreError> {
        let mut guard = self.lock();
        let inner = &mut *guard;
        inner.tick += 1;
        let tick = inner.tick;
        let entry = inner
            .entries
            .get_mut(name)
            .ok_or_else(|| StoreError::Unknown(name.into()))?;
        entry.last_used = tick;
        if let Some((adapter, _)) = &entry.device {
            let adapter = adapter.clone();
            inner.metrics.hits += 1;
            return Ok(adapter);
        }
        let weights = match &entry.host {
            Some((weights, _)) => {
                inner.metrics.host_hits += 1;
                Arc::clone(weights)
            }
            None => {
                let started = Instant::now();
                let weights = Arc::new(self.load(name, entry)?);
                let bytes: u64 = weights
                    .pairs
                    .iter()
                    .map(|p| ((p.a.len() + p.b.len()) * size_of::<f32>()) as u64)
                    .sum();
                make_room(inner, name, Tier::Host, bytes, self.budgets.host_bytes)?;
                let entry = inner.entries.get_mut(name).expect("looked up above");
                entry.host = Some((Arc::clone(&weights), bytes));
                inner.metrics.host_bytes += bytes;
                inner.metrics.misses += 1;
                inner.metrics.load_ms_total += started.elapsed().as_secs_f64() * 1e3;
                weights
            }
        };
        // The device bytes of an adapter are its pages, known once it is in the pool; make room
        // for its weight bytes first (pages are never smaller), then settle the exact figure.
        let estimate: u64 = weights
            .pairs
            .iter()
            .map(|p| ((p.a.len() + p.b.len()) * size_of::<f32>()) as u64)
            .sum();
        make_room(
            inner,
            name,
            Tier::Device,
            estimate,
            self.budgets.device_bytes,
        )?;
        let before = self.model.adapter_bytes();
        let adapter = self
            .model
            .adapter(&weights)
            .map_err(|source| StoreError::Load {
                name: name.into(),
                source,
            })?;
        let bytes = self
            .model
            .adapter_bytes()
            .saturating_sub(before)
            .max(estimate);
        if let Err(e) = make_room(inner, name, Tier::Device, bytes, self.budgets.device_bytes) {
            drop(adapter); // frees its pages again
            return Err(e);
        }
        let entry = inner.entries.get_mut(name).expect("looked up above");
        entry.device = Some((adapter.clone(), bytes));
        inner.metrics.device_bytes += bytes;
        tracing::debug!(adapter = name, bytes, "adapter resident on the device");
        Ok(adapter)
    }

    /// Reads, verifies and parses an adapter from its source.
    fn load(&self, name: &str, entry: &Entry<B>) -> Result<AdapterWeights, StoreError> {
        let err = |source| StoreError::Load {
            name: name.into(),
            source,
        };
        let (config, safetensors): (Vec<u8>, Vec<u8>) = match &entry.source {
            AdapterSource::Dir(dir) => (
                read(&dir.join("adapter_config.json")).map_err(err)?,
                read(&dir.join("adapter_model.safetensors")).map_err(err)?,
            ),
            AdapterSource::Bytes {
                config,
                safetensors,
            } => (config.to_vec(), safetensors.to_vec()),
        };
        if let Some(expected) = entry.expected_hash {
            let got = content_hash(&config, &safetensors);
            if got != expected {
                return Err(StoreError::Hash {
                    name: name.into(),
                    expected: hex(&expected),
                    got: hex(&got),
                });
            }
        }
        AdapterWeights::from_bytes(name, &config, safetensors, &self.model.config).map_err(err)
    }
}

fn read(path: &Path) -> Result<Vec<u8>, ModelError> {
    std::fs::read(path).map_err(|source| ModelError::Io {
        file: path.to_path_buf(),
        source,
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tier {
    Device,
    Host,
}

impl Tier {
    fn label(self) -> &'static str {
        match self {
            Tier::Device => "device",
            Tier::Host => "host",
        }
    }
}

/// Evicts least recently used, unpinned adapters of `tier` (never `name` itself) until `bytes`
/// more fit within `budget`.
fn make_room<B: SgmvBackend>(
    inner: &mut Inner<B>,
    name: &str,
    tier: Tier,
    bytes: u64,
    budget: u64,
) -> Result<(), StoreError> {
    if bytes > budget {
        return Err(StoreError::OverBudget {
            name: name.into(),
            tier: tier.label(),
            bytes,
            budget,
        });
    }
    loop {
        let used = match tier {
            Tier::Device => inner.metrics.device_bytes,
            Tier::Host => inner.metrics.host_bytes,
        };
        if used + bytes <= budget {
            return Ok(());
        }
        let victim = inner
            .entries
            .iter()
            .filter(|(n, e)| {
                n.as_str() != name
                    && !e.pinned
                    && match tier {
                        Tier::Device => e.device.is_some(),
                        Tier::Host => e.host.is_some(),
                    }
            })
            .min_by_key(|(_, e)| e.last_used)
            .map(|(n, _)| n.clone());
        let Some(victim) = victim else {
            return Err(StoreError::Pinned {
                name: name.into(),
                tier: tier.label(),
                needed: used + bytes - budget,
            });
        };
        let entry = inner.entries.get_mut(&victim).expect("found above");
        match tier {
            Tier::Device => {
                let (_, freed) = entry.device.take().expect("filtered on device");
                inner.metrics.device_bytes -= freed;
                inner.metrics.device_evictions += 1;
            }
            Tier::Host => {
                let (_, freed) = entry.host.take().expect("filtered on host");
                inner.metrics.host_bytes -= freed;
                inner.metrics.host_evictions += 1;
            }
        }
        tracing::debug!(adapter = victim, tier = tier.label(), "evicted");
    }
}
