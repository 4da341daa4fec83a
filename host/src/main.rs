//! The `exesdb-host` binary.

/// mimalloc instead of the system allocator: messages are built on one
/// thread and freed on another (the subscriber's), which glibc's per-thread
/// arenas handle with locking and frequent trimming; mimalloc frees across
/// threads without either. See docs/benchmarks.md for the measured effect.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    exesdb_host::cli::main()
}
