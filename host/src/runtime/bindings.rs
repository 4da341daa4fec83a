//! The one place `bindgen!` runs: Rust bindings of the `exesdb:plugin` WIT
//! packages for each world, the current one (`wit/`, 0.2.0) and the older
//! one still loaded (`wit/v0.1.0/`).
//!
//! The `types` and `host` interfaces are generated once (with the 0.2.0
//! `subscriber` world) and shared by the other worlds. The 0.1.0 worlds
//! share the same `types` (the records and variants did not change), so a
//! 0.1.0 guest's messages and errors are the same Rust values; only their
//! interface names carry the version. 0.1.0's `host` is its own trait,
//! implemented by delegating to 0.2.0's (host/src/runtime/host_impl.rs).

/// The standard `wasi:keyvalue` interfaces (plugin state, host/src/runtime/keyvalue.rs).
pub mod keyvalue {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "wasi:keyvalue/imports",
        with: {
            "wasi:keyvalue/store.bucket": crate::runtime::keyvalue::Bucket,
            "wasi:keyvalue/atomics.cas": crate::runtime::keyvalue::Cas,
        },
    });
}

/// The standard `wasi:config/store` interface (secrets, host/src/runtime/secrets.rs).
pub mod config {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "wasi:config/imports",
    });
}

/// The `subscriber` world, plus the shared `types` and `host` interfaces.
pub mod subscriber {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "subscriber",
        with: {
            "wasi:io": wasmtime_wasi::p2::bindings::io,
            "wasi:clocks": wasmtime_wasi::p2::bindings::clocks,
            "wasi:http": wasmtime_wasi_http::p2::bindings::http,
            "wasi:keyvalue": super::keyvalue::wasi::keyvalue,
            "wasi:config": super::config::wasi::config,
        },
        // The mapped WASI bindings need store data that is `Send`.
        require_store_data_send: true,
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
            "wasi:io": wasmtime_wasi::p2::bindings::io,
            "wasi:clocks": wasmtime_wasi::p2::bindings::clocks,
            "wasi:http": wasmtime_wasi_http::p2::bindings::http,
            "wasi:keyvalue": super::keyvalue::wasi::keyvalue,
            "wasi:config": super::config::wasi::config,
        },
        // The mapped WASI bindings need store data that is `Send`.
        require_store_data_send: true,
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

/// The worlds of contract 0.1.0 (`wit/v0.1.0/`), for components built
/// against it: the same records, their interfaces named `…@0.1.0`.
pub mod v0_1 {
    /// 0.1.0's `subscriber` world and its `host` interface.
    pub mod subscriber {
        wasmtime::component::bindgen!({
            path: "../wit/v0.1.0",
            world: "subscriber",
            with: {
                "exesdb:plugin/types": crate::runtime::bindings::subscriber::exesdb::plugin::types,
            },
        });
    }

    /// 0.1.0's `alert-escalator` world.
    pub mod escalator {
        wasmtime::component::bindgen!({
            path: "../wit/v0.1.0",
            world: "alert-escalator",
            with: {
                "exesdb:plugin/types": crate::runtime::bindings::subscriber::exesdb::plugin::types,
                "exesdb:plugin/host": super::subscriber::exesdb::plugin::host,
            },
        });
    }

    /// 0.1.0's `log-formatter` world.
    pub mod formatter {
        wasmtime::component::bindgen!({
            path: "../wit/v0.1.0",
            world: "log-formatter",
            with: {
                "exesdb:plugin/types": crate::runtime::bindings::subscriber::exesdb::plugin::types,
                "exesdb:plugin/host": super::subscriber::exesdb::plugin::host,
            },
        });
    }

    pub use subscriber::exesdb::plugin::host as host_api;
}

pub use subscriber::exesdb::plugin::host as host_api;
pub use subscriber::exesdb::plugin::types as wit_types;
