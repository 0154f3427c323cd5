//! The `tessera` binary: parses arguments and dispatches to `cli`.

/// mimalloc: the request path allocates small, short-lived buffers from two worker
/// threads; glibc's allocator spent ~12% of a cached packument GET in malloc/free and
/// arena locks (perf), mimalloc's thread-local free lists avoid both.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    tessera::cli::main()
}
