//! Measurement hooks for the benchmarks; not a stable API.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::bus::Bus;
use crate::runtime::instance::{Instance, Prepared};
use crate::runtime::state::PluginContext;
use crate::runtime::violations::Violations;
use crate::runtime::{Manifest, PluginError, Runtime};

/// Average time to instantiate a compiled, pre-linked component and
/// call its `init`, over `iterations`. Call inside a tokio runtime.
///
/// # Errors
/// Any load failure.
pub fn instantiate_time(
    runtime: &Runtime,
    bus: &Bus,
    manifest: Manifest,
    wasm: &[u8],
    iterations: u32,
) -> Result<Duration, PluginError> {
    let component = runtime.compile(&manifest.name, wasm)?;
    let prepared = runtime.prepare(&manifest, &component)?;
    let ctx = PluginContext::new(
        manifest,
        bus.clone(),
        tokio::runtime::Handle::current(),
        None,
        Arc::new(Violations::new(0)),
        Arc::default(),
        crate::store::kv::KeyValueDb::in_memory(),
    )?;
    let start_one = || -> Result<(), PluginError> {
        let ctx = Arc::clone(&ctx);
        match &prepared {
            Prepared::Worker(pre) => drop(pre.start(runtime.engine(), ctx)?),
            Prepared::Formatter(pre) => drop(Instance::start(runtime.engine(), pre, ctx)?),
        }
        Ok(())
    };
    start_one()?;
    let start = Instant::now();
    for _ in 0..iterations {
        start_one()?;
    }
    Ok(start.elapsed() / iterations.max(1))
}
