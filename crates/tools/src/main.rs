//! `vision-bench`: the measurement tools of `vision_tools`, run against live nodes from a process of
//! their own, so the node binary links none of their dependencies. `vision-bench --help` lists them;
//! `scripts/bench-cluster.sh` runs them on a 3-node loopback cluster.

#![forbid(unsafe_code)]

use clap::Parser;

/// Benchmarks against running Vision nodes.
#[derive(Debug, Parser)]
#[command(name = "vision-bench", version, about)]
struct Cli {
    #[command(subcommand)]
    cmd: vision_tools::BenchCmd,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match vision_tools::run(cli.cmd) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
