//! `groupcached-bench`: a load generator for groupcached, and for memcached so both
//! can be compared with the same load. See `--help` and docs/benchmarks.md.
//!
//! Exit status: 0 on success, 1 if the run failed or its error rate was above
//! `--max-error-rate`, 2 for bad flags.

mod args;
mod engine;
mod proto;
mod report;
mod run;
mod values;
mod workload;

use clap::Parser;

fn main() {
    let config = match args::Args::parse().into_config() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("groupcached-bench: {e}");
            std::process::exit(2);
        }
    };
    match run::run(config) {
        Ok(run::Verdict::Pass) => {}
        Ok(run::Verdict::TooManyErrors { rate, max }) => {
            eprintln!(
                "groupcached-bench: error rate {:.4}% is above --max-error-rate {:.4}%",
                rate * 100.0,
                max * 100.0
            );
            std::process::exit(1);
        }
        Err(e) => {
            eprintln!("groupcached-bench: {e}");
            std::process::exit(1);
        }
    }
}
