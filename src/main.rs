//! The `orch` binary: everything lives in the library.

/// mimalloc: `orch plan check` on large plans is allocation-bound (measured
/// in `benches/plan_check.rs`).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    orch::cli::main()
}
