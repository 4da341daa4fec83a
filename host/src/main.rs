//! The `exesdb-host` binary.

fn main() -> std::process::ExitCode {
    exesdb_host::cli::main()
}
