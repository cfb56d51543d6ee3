//! Writes the deployment template `infra/template.json`, generated from the definitions in
//! `schema/src/lib.rs` (tables) and `infra/src/` (topic, queues, mappings, functions).
//!
//! `cargo run -p infra --bin gen-template` writes it; with `--check` nothing is written and the
//! exit status is 1 when the file is missing or differs from what would be generated.

use std::process::ExitCode;

use clap::Parser;

/// Writes infra/template.json, generated from the resource definitions.
#[derive(Parser, Debug)]
#[command(name = "gen-template")]
struct Args {
    /// Write nothing; exit 1 if the file is missing or not up to date.
    #[arg(long)]
    check: bool,
}

fn main() -> ExitCode {
    let check = Args::parse().check;
    let path = infra::template::template_path();
    let wanted = infra::template::render();
    let current = std::fs::read_to_string(&path).ok();
    if check {
        if current.as_deref() == Some(wanted.as_str()) {
            eprintln!("gen-template: {} is up to date", path.display());
            ExitCode::SUCCESS
        } else {
            eprintln!(
                "gen-template: {} is {}; run `cargo run -p infra --bin gen-template`",
                path.display(),
                if current.is_some() {
                    "out of date"
                } else {
                    "missing"
                }
            );
            ExitCode::FAILURE
        }
    } else if current.as_deref() == Some(wanted.as_str()) {
        eprintln!("gen-template: {} is up to date", path.display());
        ExitCode::SUCCESS
    } else {
        match std::fs::write(&path, wanted) {
            Ok(()) => {
                eprintln!("gen-template: wrote {}", path.display());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("gen-template: cannot write {}: {e}", path.display());
                ExitCode::FAILURE
            }
        }
    }
}
