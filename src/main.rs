//! `dra`: the command line. Parses arguments and calls the library; no method logic here.

mod cli;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    dra::device::reuse_freed_memory();
    let args = cli::Cli::parse();
    match cli::run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", cli::one_line(e.as_ref()));
            ExitCode::FAILURE
        }
    }
}
