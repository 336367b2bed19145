//! `tachyon`: a drop-in NATS server. Accepts nats-server's command line.

use std::process::ExitCode;

use tachyon_engine::cli::{self, Command};
use tachyon_engine::{logging, server};

fn main() -> ExitCode {
    let opts = match cli::parse_args(std::env::args().skip(1)) {
        Ok(Command::Run(opts)) => opts,
        Ok(Command::Help(text)) => {
            println!("{text}");
            return ExitCode::SUCCESS;
        }
        Ok(Command::Version(text)) => {
            println!("{text}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(1);
        }
    };
    let _guard = match logging::init(&logging::LogOptions {
        file: opts.log_file.clone(),
        debug: opts.debug,
        trace: opts.trace,
        logtime: opts.logtime,
    }) {
        Ok(g) => g,
        Err(e) => {
            eprintln!("nats-server: {e}");
            return ExitCode::from(1);
        }
    };
    match server::run(opts) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            logging::fatal(&e.to_string());
            ExitCode::from(1)
        }
    }
}
