//! `licvault`: parse the command line and run it. Everything else lives in the library.

// mimalloc: request handling allocates many small, short-lived objects (JSON, CBOR values);
// under `make bench` it gave ~60 % more durable issuances/s and ~30 % more verifications/s than
// glibc malloc, whose arenas contend when the sequencer thread frees what request threads made.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    licvault::cli::main()
}
