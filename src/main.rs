//! The `greenbench` command line: parse, dispatch, exit code. Each subcommand lives in
//! `cli/<name>.rs` with its arguments; with no subcommand it runs the quick suite (every zoo
//! model at batch 1 and 32 on the CPU) and prints the table.

mod cli;

use clap::Parser;
use cli::Command;

#[derive(Parser)]
#[command(
    name = "greenbench",
    version,
    about = "Puts a price tag on small ML models: time, FPO and energy per example.",
    long_about = "Puts a price tag on small ML models: time, FPO and energy per example, \
                  measured on each backend, following the Green AI proposal \
                  (Schwartz et al., 2019). With no subcommand, runs the quick suite."
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        None => cli::run::run(cli::run::RunArgs::default()),
        Some(command) => command.run(),
    };
    match result {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("error: {}", cli::error_text(&e));
            std::process::exit(2);
        }
    }
}
