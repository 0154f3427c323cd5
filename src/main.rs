//! The `tessera` binary: parses arguments and dispatches to `cli`.

fn main() -> std::process::ExitCode {
    tessera::cli::main()
}
