//! A pseudo-terminal for the child's stdout (posix_openpt, in libc proper).

use std::ffi::CStr;
use std::fs::{File, OpenOptions};
use std::io::Read;
use std::os::fd::FromRawFd;
use std::process::{Command, ExitStatus, Stdio};

/// Runs `cmd` with stdout on a new terminal; its exit status and what it wrote.
pub fn run(cmd: &mut Command) -> (ExitStatus, Vec<u8>) {
    // SAFETY: plain libc calls on a descriptor this function owns; the name
    // buffer is large enough and NUL-terminated by ptsname_r.
    let master = unsafe {
        let fd = libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY);
        assert!(fd >= 0, "posix_openpt failed");
        assert_eq!(libc::grantpt(fd), 0, "grantpt");
        assert_eq!(libc::unlockpt(fd), 0, "unlockpt");
        File::from_raw_fd(fd)
    };
    let mut name = [0 as libc::c_char; 128];
    // SAFETY: as above.
    let rc = unsafe {
        use std::os::fd::AsRawFd;
        libc::ptsname_r(master.as_raw_fd(), name.as_mut_ptr(), name.len())
    };
    assert_eq!(rc, 0, "ptsname_r");
    // SAFETY: ptsname_r wrote a NUL-terminated string into `name`.
    let path = unsafe { CStr::from_ptr(name.as_ptr()) }
        .to_str()
        .expect("UTF-8 pty name")
        .to_owned();
    let slave = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .expect("open the terminal");
    let mut child = cmd.stdout(Stdio::from(slave)).spawn().expect("spawn");
    // `cmd` still holds our copy of the terminal; drop it so EOF (EIO) comes
    // once the child exits.
    cmd.stdout(Stdio::null());
    let status = child.wait().expect("wait");
    let mut out = Vec::new();
    let mut master = master;
    let mut buf = [0u8; 4096];
    loop {
        match master.read(&mut buf) {
            Ok(0) | Err(_) => break, // EIO: no writer left
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
    (status, out)
}
