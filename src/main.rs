//! `licvault`: parse the command line and run it. Everything else lives in the library.

fn main() -> std::process::ExitCode {
    licvault::cli::main()
}
