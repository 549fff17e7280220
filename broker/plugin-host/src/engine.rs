//! The wasmtime engine shared by every plugin: configuration, the linker with
//! the host capabilities, the epoch ticker behind call deadlines, and the
//! on-disk cache of compiled components.

use std::hash::{Hash, Hasher};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use sha2::{Digest, Sha256};
use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{Config, Engine, OptLevel};

use super::bindings::PluginHost;
use super::capabilities::StoreState;
use super::error::PluginError;
use super::sandbox::SandboxLimits;

/// Cheap to clone; the ticker thread stops when the last clone is dropped.
#[derive(Clone)]
pub struct PluginEngine {
    inner: Arc<EngineInner>,
}

struct EngineInner {
    engine: Engine,
    linker: Linker<StoreState>,
    limits: SandboxLimits,
    cache_dir: Option<PathBuf>,
    stop_ticker: Arc<AtomicBool>,
}

impl Drop for EngineInner {
    fn drop(&mut self) {
        self.stop_ticker.store(true, Ordering::Relaxed);
    }
}

/// The first bytes of a component binary (magic, version 0x0d, layer 1).
const COMPONENT_HEADER: [u8; 8] = [0x00, 0x61, 0x73, 0x6d, 0x0d, 0x00, 0x01, 0x00];

impl PluginEngine {
    /// `cache_dir`: where compiled components are kept between runs (keyed
    /// by content hash and engine configuration); `None` compiles every time.
    pub fn new(limits: SandboxLimits, cache_dir: Option<PathBuf>) -> Result<Self, PluginError> {
        let mut config = Config::new();
        config
            .wasm_component_model(true)
            .epoch_interruption(true)
            .consume_fuel(limits.fuel.is_some())
            .cranelift_opt_level(OptLevel::Speed);
        let engine = Engine::new(&config).map_err(PluginError::storage)?;
        let mut linker = Linker::new(&engine);
        PluginHost::add_to_linker::<StoreState, HasSelf<StoreState>>(&mut linker, |state| state)
            .map_err(PluginError::storage)?;

        let stop_ticker = Arc::new(AtomicBool::new(false));
        let (ticker_engine, stop, tick) = (engine.clone(), stop_ticker.clone(), limits.tick);
        std::thread::Builder::new()
            .name("plugin-epoch".into())
            .spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(tick);
                    ticker_engine.increment_epoch();
                }
            })
            .map_err(PluginError::storage)?;

        Ok(PluginEngine {
            inner: Arc::new(EngineInner {
                engine,
                linker,
                limits,
                cache_dir,
                stop_ticker,
            }),
        })
    }

    pub fn engine(&self) -> &Engine {
        &self.inner.engine
    }

    pub(crate) fn linker(&self) -> &Linker<StoreState> {
        &self.inner.linker
    }

    pub fn limits(&self) -> &SandboxLimits {
        &self.inner.limits
    }

    /// Compiles a component, or loads it from the cache when this exact
    /// component was compiled by a compatible engine before.
    pub fn compile(&self, bytes: &[u8]) -> Result<Component, PluginError> {
        check_header(bytes)?;
        let Some(dir) = self.cache_dir() else {
            return self.compile_uncached(bytes);
        };
        let path = dir.join(format!("{}.cwasm", sha256_hex(bytes)));
        if path.exists() {
            // SAFETY: the file was written by `Component::serialize` of an
            // engine with the same compatibility hash (it is in the path),
            // atomically (write to a temp file, then rename); wasmtime also
            // checks its header before using it.
            match unsafe { Component::deserialize_file(&self.inner.engine, &path) } {
                Ok(component) => return Ok(component),
                Err(error) => {
                    tracing::warn!(path = %path.display(), %error, "discarding unusable compiled plugin");
                    let _ = std::fs::remove_file(&path);
                }
            }
        }
        let component = self.compile_uncached(bytes)?;
        if let Err(error) = write_cache(&dir, &path, &component) {
            tracing::warn!(path = %path.display(), %error, "could not cache compiled plugin");
        }
        Ok(component)
    }

    fn compile_uncached(&self, bytes: &[u8]) -> Result<Component, PluginError> {
        Component::new(&self.inner.engine, bytes)
            .map_err(|e| PluginError::invalid(format!("does not compile: {e:#}")))
    }

    /// The cache directory for this engine configuration.
    fn cache_dir(&self) -> Option<PathBuf> {
        let base = self.inner.cache_dir.as_ref()?;
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        self.inner
            .engine
            .precompile_compatibility_hash()
            .hash(&mut hasher);
        Some(base.join(format!("{:016x}", hasher.finish())))
    }
}

fn write_cache(dir: &PathBuf, path: &PathBuf, component: &Component) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    let serialized = component.serialize().map_err(|e| anyhow::anyhow!("{e}"))?;
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, serialized)?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

fn check_header(bytes: &[u8]) -> Result<(), PluginError> {
    if !bytes.starts_with(&COMPONENT_HEADER[..4]) {
        return Err(PluginError::invalid(
            "not a WebAssembly binary (it does not start with \\0asm)",
        ));
    }
    if bytes.get(4..8) == Some(&[0x01, 0x00, 0x00, 0x00]) {
        return Err(PluginError::invalid(
            "this is a core wasm module, not a component; turn it into one with \
             `switchyard plugin componentize` (wit-component)",
        ));
    }
    Ok(())
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}
