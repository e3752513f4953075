//! The `groupcached` binary: parse the configuration, bind, run, stop on a signal.

use std::process::ExitCode;

use clap::Parser;
use groupcached::{Args, Config, Server};
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

fn main() -> ExitCode {
    let args = match Args::try_parse() {
        Ok(a) => a,
        Err(clap_err) => clap_err.exit(), // --help, --version, usage errors
    };
    let cfg = match Config::from_parsed(&args) {
        Err(e) => {
            eprintln!("groupcached: {e}");
            return ExitCode::from(2);
        }
        Ok(cfg) => cfg,
    };
    if args.print_config {
        return match cfg.to_toml() {
            Ok(text) => {
                print!("{text}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("groupcached: cannot print the configuration: {e}");
                ExitCode::from(2)
            }
        };
    }
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();

    // Before anything is announced: a SIGHUP that arrives early must not kill us.
    let mut signals = match Signals::new([SIGINT, SIGTERM, SIGHUP]) {
        Ok(s) => s,
        Err(e) => {
            log::error!("cannot install signal handlers: {e}");
            return ExitCode::from(1);
        }
    };
    let bound = match Server::bind(cfg) {
        Ok(b) => b,
        Err(e) => {
            log::error!("{e}");
            return ExitCode::from(1);
        }
    };
    log::info!(
        "groupcached {} listening on {} ({})",
        env!("CARGO_PKG_VERSION"),
        bound.local_addr(),
        bound.config().summary()
    );
    let handle = match bound.run() {
        Ok(h) => h,
        Err(e) => {
            log::error!("{e}");
            return ExitCode::from(1);
        }
    };
    let trigger = handle.trigger();
    std::thread::Builder::new()
        .name("gc-signals".into())
        .spawn(move || {
            for sig in signals.forever() {
                if sig == SIGHUP {
                    log::info!("SIGHUP received: re-reading the member list");
                    trigger.reload_members();
                    continue;
                }
                log::info!("signal {sig} received: finishing in-flight requests, then exiting");
                trigger.shutdown();
                break;
            }
        })
        .ok();
    handle.join();
    log::info!("stopped");
    ExitCode::SUCCESS
}
