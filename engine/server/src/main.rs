//! `tachyon`: a drop-in NATS server. Accepts nats-server's command line.

use std::process::ExitCode;

use tachyon_config::flags::{self as cli, Command};
mod cpus;
mod jetstream;
mod listener;
mod logging;
mod monitor;
mod portsfile;
mod server;
#[cfg(debug_assertions)]
mod test_service;

/// mimalloc, not glibc's malloc: glibc packs small chunks of every size together in a
/// thread's arena, so a read-mostly object the route path reads per message (a match cache
/// key, a queue group name) could share a cache line with a read buffer's shared refcount,
/// which both shards write per message. Queue 16 B over two shards ran at 1.6-1.8 M msgs/s and
/// 0.72-0.80 CPU s/M in 4 runs of 10 (memcmp on the cache key 35 % of the profile) against
/// 3.7-4.2 M at 0.21-0.30 in the others; with mimalloc's per-size pages, 10 of 10 at 2.9-4.3 M.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Transparent huge pages off for this process (`PR_SET_THP_DISABLE`), before anything big is
/// allocated. mimalloc asks for them on its arenas, and the first touch of a 2 MiB page zeroes
/// all of it: with 500 publishers into one subscriber (128 B, one shard on its own core) the
/// kernel's `clear_page_erms` took 26-32 % of the shard's samples, and the process used 1.08
/// against 0.85 CPU s per run with 4 KiB pages (the same build, `MIMALLOC_ALLOW_THP=0`).
/// nats-server's Go runtime does not ask for them either.
fn small_pages() {
    // SAFETY: prctl with PR_SET_THP_DISABLE takes plain integers and only sets a flag on this
    // process's memory map; it touches no memory of ours.
    let rc = unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) };
    if rc != 0 {
        tracing::debug!(
            "huge pages left on: prctl: {}",
            std::io::Error::last_os_error()
        );
    }
}

fn main() -> ExitCode {
    small_pages();
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
        Ok(Command::Signal { command, pid }) => return send_signal(command, pid.as_deref()),
        Err(e) => {
            eprintln!("{e}");
            if e.shows_usage() {
                // nats-server prints its usage and exits 0 on flag syntax errors.
                eprintln!("{}", cli::usage());
                return ExitCode::SUCCESS;
            }
            return ExitCode::from(1);
        }
    };
    let opts = match tachyon_config::resolve(&opts) {
        Ok(o) => o,
        Err(e) => {
            // nats-server's own line first (client test harnesses look for "Parse error on
            // line N"), then the fatal line with the file and column.
            eprintln!("nats-server: {e}");
            logging::fatal(&e.located());
            return ExitCode::from(1);
        }
    };
    if opts.check_config {
        // The imports are checked where their routes are built.
        if let Err(e) = tachyon_core::accounts::Accounts::resolve(&opts.accounts) {
            eprintln!("nats-server: {e}");
            logging::fatal(&e.located());
            return ExitCode::from(1);
        }
        if let Some(path) = &opts.config_file {
            eprintln!(
                "nats-server: configuration file {} is valid",
                path.display()
            );
        }
        return ExitCode::SUCCESS;
    }
    let _guard = match logging::init(&logging::LogOptions::from(&opts)) {
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

/// `--signal CMD[=PID|=PIDFILE]`: signal a running server like `nats-server --signal` does.
fn send_signal(command: cli::SignalCommand, pid: Option<&str>) -> ExitCode {
    let pids: Vec<i32> = match pid {
        Some(p) => match p.trim().parse::<i32>() {
            Ok(n) => vec![n],
            Err(_) => match std::fs::read_to_string(p).map(|s| s.trim().parse::<i32>()) {
                Ok(Ok(n)) => vec![n],
                _ => {
                    eprintln!("nats-server: unable to read pid from {p}");
                    return ExitCode::from(1);
                }
            },
        },
        None => same_exe_pids(),
    };
    match pids.as_slice() {
        [] => {
            eprintln!("nats-server: no nats-server processes running");
            ExitCode::from(1)
        }
        [one] => {
            // SAFETY: kill has no memory effects; a wrong pid yields an error code.
            if unsafe { libc::kill(*one, command.signum()) } != 0 {
                eprintln!("nats-server: {}", std::io::Error::last_os_error());
                return ExitCode::from(1);
            }
            ExitCode::SUCCESS
        }
        _ => {
            eprintln!("nats-server: multiple nats-server processes running:");
            for p in &pids {
                eprintln!("{p}");
            }
            ExitCode::from(1)
        }
    }
}

/// Other processes running this same executable (nats-server uses pgrep for this).
fn same_exe_pids() -> Vec<i32> {
    let me = std::process::id() as i32;
    let Ok(exe) = std::fs::read_link("/proc/self/exe") else {
        return Vec::new();
    };
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&pid| pid != me)
        .filter(|pid| std::fs::read_link(format!("/proc/{pid}/exe")).ok().as_ref() == Some(&exe))
        .collect()
}
