//! `groupcached-bench`: the load generator. Not built yet (see the bench issue); it
//! says so and exits non-zero rather than pretend to measure anything.

fn main() {
    eprintln!("groupcached-bench: the load generator is not implemented yet");
    std::process::exit(2);
}
