//! One listening socket per core on the same address (SO_REUSEPORT), so the kernel
//! spreads incoming connections over cores and no core hands connections to another.

use std::io;
use std::net::{SocketAddr, TcpListener};

use socket2::{Domain, Protocol, Socket, Type};

/// Pending connections the kernel may queue per listener.
pub const BACKLOG: i32 = 1024;

/// Binds `n` listeners on `addr`. With port 0 the first socket picks a free port
/// without SO_REUSEPORT (so it cannot land on a port another process shares), then
/// opts in, and the others join it on that port.
pub fn bind_reuseport(addr: SocketAddr, n: usize) -> io::Result<Vec<TcpListener>> {
    let first = socket(addr)?;
    if addr.port() != 0 {
        first.set_reuse_port(true)?;
    }
    first.bind(&addr.into())?;
    first.set_reuse_port(true)?;
    first.listen(BACKLOG)?;
    let bound = first
        .local_addr()?
        .as_socket()
        .ok_or_else(|| io::Error::other("listener has no inet address"))?;
    let mut out = vec![TcpListener::from(first)];
    for _ in 1..n {
        let s = socket(bound)?;
        s.set_reuse_port(true)?;
        s.bind(&bound.into())?;
        s.listen(BACKLOG)?;
        out.push(TcpListener::from(s));
    }
    Ok(out)
}

fn socket(addr: SocketAddr) -> io::Result<Socket> {
    let s = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    s.set_reuse_address(true)?;
    s.set_nonblocking(true)?;
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listeners_share_one_ephemeral_port() {
        let ls = bind_reuseport("127.0.0.1:0".parse().unwrap(), 3).unwrap();
        let a = ls[0].local_addr().unwrap();
        assert_ne!(a.port(), 0);
        for l in &ls {
            assert_eq!(l.local_addr().unwrap(), a);
        }
        // A second server on port 0 gets a port of its own.
        let other = bind_reuseport("127.0.0.1:0".parse().unwrap(), 2).unwrap();
        assert_ne!(other[0].local_addr().unwrap().port(), a.port());
    }
}
