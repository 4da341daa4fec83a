//! The one place `bindgen!` runs: Rust bindings of the `exesdb:plugin` WIT
//! package for each world. The `types` and `host` interfaces are generated
//! once (with the `subscriber` world) and shared by the other worlds.

/// The `subscriber` world, plus the shared `types` and `host` interfaces.
pub mod subscriber {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "subscriber",
    });
}

/// The `alert-escalator` world.
pub mod escalator {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "alert-escalator",
        with: {
            "exesdb:plugin/types": super::subscriber::exesdb::plugin::types,
            "exesdb:plugin/host": super::subscriber::exesdb::plugin::host,
        },
    });
}

/// The `log-formatter` world.
pub mod formatter {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "log-formatter",
        with: {
            "exesdb:plugin/types": super::subscriber::exesdb::plugin::types,
            "exesdb:plugin/host": super::subscriber::exesdb::plugin::host,
        },
    });
}

pub use subscriber::exesdb::plugin::host as host_api;
pub use subscriber::exesdb::plugin::types as wit_types;
