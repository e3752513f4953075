//! `groupcached-cli`: talk to a groupcached server from a shell.
//!
//! Exit status (also in `--help`): 0 ok; 1 not found (`get` of a key without a
//! value); 2 usage error (bad flags or arguments, a key or value the protocol
//! refuses); 3 cannot connect (nothing listening, the connection lost, or no answer
//! within `--timeout`); 4 the server answered an error (an error status, or an answer
//! the client cannot read); 5 local I/O error (reading stdin for `set -`, writing
//! stdout). Scripts can tell "the key is not there" from "the server is not there".
//!
//! `get` writes the value's bytes exactly as stored when stdout is a pipe or file;
//! on a terminal it adds a newline if the value does not end with one, so the shell
//! prompt is not glued to it.
//!
//! With `--peers`, `get`, `set` and `delete` go through a
//! [`ClusterClient`](groupcached_client::ClusterClient) straight to the key's owner
//! (falling back to the next member if it is down), and `owner` prints which member
//! that is without touching the network.
//!
//! Files: `args.rs` parses the command line, `run.rs` makes the call and prints,
//! `target.rs` says where calls go and how failures map to exit statuses.

mod args;
mod run;
mod target;

use std::process::ExitCode;

use args::{parse_args, Parsed, USAGE, USAGE_LINE};
use target::Failure;

fn main() -> ExitCode {
    match parse_args(std::env::args_os().skip(1)) {
        Ok(Parsed::Help) => {
            print!("{USAGE}");
            ExitCode::SUCCESS
        }
        Err(usage) => {
            eprintln!(
                "groupcached-cli: {usage}\n{USAGE_LINE}\nTry `groupcached-cli --help` for more."
            );
            ExitCode::from(2)
        }
        Ok(Parsed::Run(args)) => match run::run(args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(failure) => {
                match &failure {
                    Failure::NotFound => eprintln!("groupcached-cli: not found"),
                    Failure::Usage(msg) => eprintln!(
                        "groupcached-cli: {msg}\n{USAGE_LINE}\nTry `groupcached-cli --help` for more."
                    ),
                    Failure::Connect(msg) | Failure::Server(msg) | Failure::Local(msg) => {
                        eprintln!("groupcached-cli: {msg}")
                    }
                    Failure::BrokenPipe => {}
                }
                ExitCode::from(failure.exit_code())
            }
        },
    }
}
