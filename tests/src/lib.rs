//! Test support for exesdb-host: the guest plugins the tests run.

/// Every built guest plugin: the Rust ones from `exesdb_host::artifacts`
/// (built by `host/build.rs`) and the Python and JavaScript test plugins
/// (built by `tests/build.rs`, so building the host needs neither Python nor
/// Node).
pub mod guests {
    include!(concat!(env!("OUT_DIR"), "/guests.rs"));

    /// Every plugin, Rust, Python and JavaScript: (name, component path,
    /// manifest path).
    pub fn all() -> impl Iterator<Item = &'static (&'static str, &'static str, &'static str)> {
        exesdb_host::artifacts::ALL.iter().chain(PYTHON_JS.iter())
    }
}
