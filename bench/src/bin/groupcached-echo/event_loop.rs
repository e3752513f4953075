//! One thread's event loop: its own listener (SO_REUSEPORT, so the kernel spreads
//! connections over the threads and no thread hands one to another), and the
//! connections it accepted, edge-triggered.

use std::io;
use std::net::TcpListener;

use mio::{Events, Interest, Poll, Token};

use crate::answer::Answers;
use crate::conn::{Conn, Next};

const LISTENER: Token = Token(usize::MAX);

/// Serves `listener` forever (until the process is killed); returns only if the
/// poller itself fails.
pub fn run(listener: TcpListener, answers: Answers) -> io::Result<()> {
    let mut poll = Poll::new()?;
    let mut listener = mio::net::TcpListener::from_std(listener);
    poll.registry()
        .register(&mut listener, LISTENER, Interest::READABLE)?;
    let mut conns: Vec<Option<Conn>> = Vec::new();
    let mut free: Vec<usize> = Vec::new();
    let mut events = Events::with_capacity(1024);
    loop {
        if let Err(e) = poll.poll(&mut events, None) {
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        for ev in events.iter() {
            if ev.token() == LISTENER {
                accept(&poll, &listener, &mut conns, &mut free);
                continue;
            }
            let i = ev.token().0;
            let Some(conn) = conns.get_mut(i).and_then(Option::as_mut) else {
                continue;
            };
            let hangup = ev.is_read_closed() || ev.is_error();
            if conn.ready(&answers, ev.is_readable() || hangup, hangup) == Next::Close {
                if let Some(mut conn) = conns[i].take() {
                    let _ = poll.registry().deregister(&mut conn.stream);
                }
                free.push(i);
            }
        }
    }
}

/// Accepts until the listener would block.
fn accept(
    poll: &Poll,
    listener: &mio::net::TcpListener,
    conns: &mut Vec<Option<Conn>>,
    free: &mut Vec<usize>,
) {
    loop {
        let mut stream = match listener.accept() {
            Ok((stream, _)) => stream,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                // EMFILE and friends: leave the rest in the backlog for later.
                eprintln!("groupcached-echo: accept failed: {e}");
                return;
            }
        };
        let _ = stream.set_nodelay(true);
        let i = free.pop().unwrap_or(conns.len());
        if let Err(e) = poll.registry().register(
            &mut stream,
            Token(i),
            Interest::READABLE | Interest::WRITABLE,
        ) {
            eprintln!("groupcached-echo: cannot register a connection: {e}");
            if i < conns.len() {
                free.push(i);
            }
            continue;
        }
        let conn = Some(Conn::new(stream));
        if i == conns.len() {
            conns.push(conn);
        } else {
            conns[i] = conn;
        }
    }
}
