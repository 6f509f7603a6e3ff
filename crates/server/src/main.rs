//! The `keyward` binary: parse the command line, run it, report errors.
#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::Parser;
use keyward::cli::{Cli, OutputClosed, report, run};

// Requests allocate many small, short-lived buffers on two or more threads;
// mimalloc serves those from thread-local pages, measurably cheaper than glibc's
// arenas on the verification path (docs/PERFORMANCE.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        // The reader of the output went away (`keyward keys list | head -1`): what it
        // wanted, it has.
        Err(err) if err.is::<OutputClosed>() => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {}", report(&err));
            ExitCode::FAILURE
        }
    }
}
