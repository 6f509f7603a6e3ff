//! The `keyward` binary: parse the command line, run it, report errors.
#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::FromArgMatches;
use keyward::cli::{Cli, OutputClosed, report, run};

// Requests allocate many small, short-lived buffers on two or more threads;
// mimalloc serves those from thread-local pages, measurably cheaper than glibc's
// arenas on the verification path (docs/PERFORMANCE.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    // mimalloc asks the kernel for transparent huge pages for its arenas: every 2 MiB
    // page touched counts whole in the resident set. Without them, peak RSS under a
    // cold load with 100,000 cached keys went from 149 to 121 MB, at the same speed
    // (docs/PERFORMANCE.md). A kernel that refuses changes nothing else; an operator
    // who sets mimalloc's own MIMALLOC_ALLOW_THP decides instead.
    #[cfg(target_os = "linux")]
    if std::env::var_os("MIMALLOC_ALLOW_THP").is_none() {
        let _ = rustix::thread::disable_transparent_huge_pages(true);
    }
    let cli = match Cli::from_arg_matches(&keyward::cli::command().get_matches()) {
        Ok(cli) => cli,
        Err(err) => err.exit(),
    };
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
