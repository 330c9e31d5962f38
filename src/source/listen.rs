//! `dlcount-pipe listen`: nginx's access lines over syslog datagrams, on a
//! Unix datagram socket (`--socket`) and/or UDP (`--udp`), counted through
//! the same reader loop and database owner as Apache's pipe.
//!
//! nginx (`ngx_syslog.c`) sends one datagram per line from a non-blocking
//! socket: a line that finds the receiver gone or its queue full is dropped
//! by nginx ("send() … failed" in its error log). So the receiving thread
//! never waits on the database ([`Backpressure::Never`]: past `--max-pending`
//! held lines it drops and counts them instead), asks for a large receive
//! buffer, and the time of a request is taken from the log line, never from
//! the syslog header (see `syslog`). What nginx dropped is recovered by
//! `import` of nginx's own file log, which never counts a line twice.
//!
//! Facts of the kernel that bound what a listener can do: a Unix datagram
//! socket queues at most `net.unix.max_dgram_qlen` + 1 datagrams whatever
//! its buffer (10 + 1 on a stock kernel), while UDP queues as much as
//! `SO_RCVBUF` holds (capped by `net.core.rmem_max`). The listener says so at
//! start when the queue is that short.
//!
//! Invariants of the socket (`--socket PATH`): it is created by `bind()`,
//! which never follows a link; a file already at the path is replaced only
//! if it is a socket nothing receives on (a stale one: `connect()` is
//! refused), and never if it is a link or any other file; the directory must
//! not be writable by others unless sticky; the socket is created `0660`
//! and given to `--socket-group` without following a link (so a listener
//! started as root never changes a file a link points to); it is removed at
//! exit only if the path still names it.
//!
//! A configuration error does not lose lines: the sockets are opened anyway
//! and every line received goes to the spool (as the pipe's do) until
//! SIGTERM; the next listener with a valid configuration counts them.

use super::{Backpressure, Item, Source, Stop};
use crate::cli::ListenArgs;
use crate::config::{Extra, Settings};
use anyhow::{bail, Context, Result};
use std::ffi::OsString;
use std::io::Read;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Receive buffer asked for each socket (the kernel caps it at
/// `net.core.rmem_max`; root may go beyond with `SO_RCVBUFFORCE`).
const RCVBUF: usize = 8 << 20;
/// Bytes of one datagram kept (nginx cuts its syslog lines at about 2 KiB;
/// a longer datagram is counted as a line too long).
const SLOT: usize = 16 * 1024;
/// Datagrams taken by one `recvmmsg()`.
const SLOTS: usize = 64;
/// Datagrams read from one socket per `read()`, so hand-over deadlines and
/// the other socket are looked at in between.
const BURST: usize = 4096;
/// A Unix socket queue shorter than this gets a note at start.
const SHORT_QUEUE: u64 = 128;

/// A socket datagrams arrive on.
enum Receiver {
    Unix(UnixDatagram),
    Udp(UdpSocket),
}

impl Receiver {
    fn fd(&self) -> BorrowedFd<'_> {
        match self {
            Receiver::Unix(s) => s.as_fd(),
            Receiver::Udp(s) => s.as_fd(),
        }
    }
}

/// The sockets of one listener, and the Unix socket's path and identity
/// (to remove it at exit only if the path still names it).
pub struct Receivers {
    sockets: Vec<Receiver>,
    unix_path: Option<(PathBuf, (u64, u64))>,
}

impl Drop for Receivers {
    fn drop(&mut self) {
        if let Some((path, id)) = &self.unix_path {
            if std::fs::symlink_metadata(path).is_ok_and(|m| (m.dev(), m.ino()) == *id) {
                let _ = std::fs::remove_file(path);
            }
        }
    }
}

/// Where `--udp` receives: `PORT` is `127.0.0.1:PORT`.
pub fn udp_addr(text: &str) -> Result<SocketAddr> {
    if let Ok(port) = text.parse::<u16>() {
        return Ok(SocketAddr::from(([127, 0, 0, 1], port)));
    }
    text.parse::<SocketAddr>().map_err(|_| {
        anyhow::anyhow!(
            "--udp {text:?}: give PORT (on 127.0.0.1) or ADDR:PORT ([::1]:PORT for IPv6)"
        )
    })
}

/// Opens the sockets of `args`. `owner`: as root, the user (and group) the
/// socket is given to before root is left.
pub fn open_receivers(
    args: &ListenArgs,
    owner: Option<(nix::unistd::Uid, nix::unistd::Gid)>,
) -> Result<Receivers> {
    let mut r = Receivers {
        sockets: Vec::new(),
        unix_path: None,
    };
    if let Some(path) = &args.socket {
        let group = match &args.socket_group {
            Some(g) => Some(group_id(g)?),
            None => owner.map(|(_, g)| g),
        };
        let (sock, id) = bind_unix(path, owner.map(|(u, _)| u), group)?;
        r.unix_path = Some((path.clone(), id));
        say_queue_length();
        r.sockets.push(Receiver::Unix(sock));
    }
    if let Some(text) = &args.udp {
        let addr = udp_addr(text)?;
        let sock =
            UdpSocket::bind(addr).with_context(|| format!("cannot receive on UDP {addr}"))?;
        sock.set_nonblocking(true)?;
        let got = enlarge_rcvbuf(&sock);
        if got < RCVBUF {
            eprintln!(
                "dlcount: note: UDP {addr} receive buffer is {} KiB (net.core.rmem_max limits it); \
                 bursts beyond it are dropped by the kernel: raise net.core.rmem_max to {} for more",
                got / 1024,
                RCVBUF
            );
        }
        r.sockets.push(Receiver::Udp(sock));
    }
    if r.sockets.is_empty() {
        bail!("give --socket PATH or --udp [ADDR:]PORT to receive on");
    }
    Ok(r)
}

fn group_id(name: &str) -> Result<nix::unistd::Gid> {
    if let Ok(n) = name.parse::<u32>() {
        return Ok(nix::unistd::Gid::from_raw(n));
    }
    match nix::unistd::Group::from_name(name) {
        Ok(Some(g)) => Ok(g.gid),
        Ok(None) => bail!("--socket-group {name}: no such group"),
        Err(e) => bail!("--socket-group {name}: {e}"),
    }
}

/// Asks for [`RCVBUF`]; returns what the kernel granted (as it reports
/// it: twice the usable size).
fn enlarge_rcvbuf(sock: &impl AsFd) -> usize {
    use nix::sys::socket::{getsockopt, setsockopt, sockopt};
    if setsockopt(sock, sockopt::RcvBufForce, &RCVBUF).is_err() {
        let _ = setsockopt(sock, sockopt::RcvBuf, &RCVBUF);
    }
    getsockopt(sock, sockopt::RcvBuf).unwrap_or(0)
}

/// `net.unix.max_dgram_qlen`, if it can be read.
pub fn unix_queue_length() -> Option<u64> {
    std::fs::read_to_string("/proc/sys/net/unix/max_dgram_qlen")
        .ok()?
        .trim()
        .parse()
        .ok()
}

fn say_queue_length() {
    if let Some(q) = unix_queue_length().filter(|q| *q < SHORT_QUEUE) {
        eprintln!(
            "dlcount: note: net.unix.max_dgram_qlen is {q}: the socket queues at most {} lines, and nginx \
             drops a line that finds it full (\"send() … failed\" in its error log); raise it before the \
             listener starts (sysctl -w net.unix.max_dgram_qlen=1024) or receive over --udp 127.0.0.1:PORT",
            q + 1
        );
    }
}

/// Creates the Unix datagram socket at `path` (see the module header).
fn bind_unix(
    path: &Path,
    owner: Option<nix::unistd::Uid>,
    group: Option<nix::unistd::Gid>,
) -> Result<(UnixDatagram, (u64, u64))> {
    let shown = path.display();
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let dmeta = std::fs::metadata(dir).with_context(|| {
        format!(
            "--socket {shown}: directory {} is not usable",
            dir.display()
        )
    })?;
    if !dmeta.is_dir() {
        bail!("--socket {shown}: {} is not a directory", dir.display());
    }
    let mode = dmeta.mode();
    if mode & 0o002 != 0 && mode & 0o1000 == 0 {
        bail!(
            "--socket {shown}: {} is writable by everyone and not sticky (mode {:o}): refused \
             (use a directory of the listener's own, such as systemd's RuntimeDirectory /run/dlcount)",
            dir.display(),
            mode & 0o7777
        );
    }
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => {
            bail!("--socket {shown} is a symbolic link: refused (remove it)")
        }
        Ok(m) if m.file_type().is_socket() => {
            let probe = UnixDatagram::unbound()?;
            match probe.connect(path) {
                Ok(()) => bail!(
                    "--socket {shown}: another listener receives on it (stop it first, or give another path)"
                ),
                Err(e) if e.raw_os_error() == Some(nix::libc::ECONNREFUSED) => {
                    // Stale: nothing receives. Removed only if it is still that very file.
                    let again = std::fs::symlink_metadata(path)?;
                    if (again.dev(), again.ino()) == (m.dev(), m.ino()) {
                        std::fs::remove_file(path).with_context(|| {
                            format!("--socket {shown}: cannot remove the stale socket")
                        })?;
                        eprintln!("dlcount: replaced the stale socket {shown} (nothing received on it)");
                    }
                }
                Err(e) => bail!("--socket {shown}: cannot tell whether anything receives on it ({e}): refused"),
            }
        }
        Ok(_) => bail!("--socket {shown} exists and is not a socket: refused (remove it)"),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => bail!("--socket {shown}: {e}"),
    }
    // Made 0660 by bind itself (the umask): never writable by others, not
    // even for a moment, and no chmod through a path (which would follow a
    // link put there). Nothing else runs yet.
    let old = nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o117));
    let bound = UnixDatagram::bind(path);
    nix::sys::stat::umask(old);
    let sock = bound.with_context(|| format!("cannot create the socket {shown}"))?;
    let meta = std::fs::symlink_metadata(path)?;
    let id = (meta.dev(), meta.ino());
    let cleanup = |e: anyhow::Error| {
        let _ = std::fs::remove_file(path);
        e
    };
    if owner.is_some() || group.is_some() {
        nix::unistd::fchownat(
            nix::fcntl::AT_FDCWD,
            path,
            owner,
            group,
            nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
        )
        .map_err(|e| {
            cleanup(anyhow::anyhow!(
                "cannot give the socket {shown} to group {} ({e}): the listener must start as root \
                 or be a member of that group",
                group.map_or(0, |g| g.as_raw())
            ))
        })?;
    }
    sock.set_nonblocking(true)?;
    let _ = enlarge_rcvbuf(&sock);
    Ok((sock, id))
}

/// Datagrams received [`SLOTS`] at a time: a burst that the kernel queued
/// costs one system call, not one per line.
struct MultiRecv {
    buf: Vec<u8>,
    iov: Vec<nix::libc::iovec>,
    hdr: Vec<nix::libc::mmsghdr>,
}

// SAFETY: the raw pointers in `iov` and `hdr` point only into this value's
// own heap buffers (which do not move with it) and are set again before
// every call; nothing else holds them.
unsafe impl Send for MultiRecv {}

impl MultiRecv {
    fn new() -> MultiRecv {
        MultiRecv {
            buf: vec![0; SLOTS * SLOT],
            // SAFETY: iovec and mmsghdr are plain C structs; all-zero is a
            // valid value (null pointers, zero lengths), set before each use.
            iov: vec![unsafe { std::mem::zeroed() }; SLOTS],
            hdr: vec![unsafe { std::mem::zeroed() }; SLOTS],
        }
    }

    /// Takes up to [`SLOTS`] queued datagrams without waiting; how many.
    fn recv(&mut self, fd: BorrowedFd<'_>) -> std::io::Result<usize> {
        use std::os::fd::AsRawFd;
        let base = self.buf.as_mut_ptr();
        for i in 0..SLOTS {
            self.iov[i] = nix::libc::iovec {
                // SAFETY: slot i lies within buf (SLOTS * SLOT bytes).
                iov_base: unsafe { base.add(i * SLOT) }.cast(),
                iov_len: SLOT,
            };
            // SAFETY: as in new(): an all-zero header, then its one iovec.
            self.hdr[i] = unsafe { std::mem::zeroed() };
            self.hdr[i].msg_hdr.msg_iov = &mut self.iov[i];
            self.hdr[i].msg_hdr.msg_iovlen = 1;
        }
        // SAFETY: each header points at its own iovec and each iovec at its
        // own SLOT bytes of buf; all of them live, unaliased, through the call.
        let n = unsafe {
            nix::libc::recvmmsg(
                fd.as_raw_fd(),
                self.hdr.as_mut_ptr(),
                SLOTS as u32,
                nix::libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(n as usize)
    }

    /// Datagram `i` of the last [`MultiRecv::recv`], and whether it was cut.
    fn get(&self, i: usize) -> (&[u8], bool) {
        let h = &self.hdr[i];
        let len = (h.msg_len as usize).min(SLOT);
        let cut = h.msg_hdr.msg_flags & nix::libc::MSG_TRUNC != 0;
        (&self.buf[i * SLOT..i * SLOT + len], cut)
    }
}

/// nginx's datagrams as a [`Source`]: one line per datagram, its syslog
/// header removed (a datagram without one is counted as rejected).
pub struct DatagramSource {
    receivers: Receivers,
    stop: Arc<Stop>,
    multi: MultiRecv,
    line_no: u64,
}

impl DatagramSource {
    pub fn new(receivers: Receivers, stop: Arc<Stop>) -> DatagramSource {
        DatagramSource {
            receivers,
            stop,
            multi: MultiRecv::new(),
            line_no: 0,
        }
    }

    /// Waits until a socket is readable or the stop is requested.
    fn wait_fds(&self, timeout: Option<Duration>) -> bool {
        let mut fds: Vec<BorrowedFd<'_>> = self.receivers.sockets.iter().map(|s| s.fd()).collect();
        fds.push(self.stop.fd());
        super::poll_fds(&fds, timeout).iter().any(|r| *r)
    }

    /// Reads up to about [`BURST`] datagrams of each socket (`each` gets a
    /// datagram, whether it was cut, its number); true if every socket was
    /// emptied.
    fn drain(&mut self, each: &mut dyn FnMut(&[u8], bool, u64)) -> std::io::Result<bool> {
        let mut emptied = true;
        for sock in &self.receivers.sockets {
            let mut n = 0;
            loop {
                if n >= BURST {
                    emptied = false;
                    break;
                }
                match self.multi.recv(sock.fd()) {
                    Ok(0) => break,
                    Ok(got) => {
                        for i in 0..got {
                            self.line_no += 1;
                            let (d, cut) = self.multi.get(i);
                            each(d, cut, self.line_no);
                        }
                        n += got;
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    // A UDP socket reports an earlier ICMP error once: not ours to stop for.
                    Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {}
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(emptied)
    }
}

impl Source for DatagramSource {
    fn wait(&mut self, timeout: Option<Duration>) -> bool {
        self.wait_fds(timeout)
    }

    fn read(&mut self, sink: &mut dyn FnMut(Item<'_>)) -> std::io::Result<bool> {
        let stopping = self.stop.is_set();
        let emptied = self.drain(&mut |d, cut, no| match crate::syslog::parse(d) {
            _ if cut => sink(Item::TooLong(no)),
            Ok(dg) => sink(Item::Line(dg.line, no)),
            Err(_) => sink(Item::NotSyslog(no)),
        })?;
        // Told to stop: what was queued is read, then the input ends.
        Ok(!(stopping && emptied))
    }

    fn backpressure(&self) -> Backpressure {
        Backpressure::Never
    }

    fn stop(&self) -> Option<Arc<Stop>> {
        Some(Arc::clone(&self.stop))
    }

    fn name(&self) -> &'static str {
        "the socket"
    }

    fn recovery(&self) -> &'static str {
        "recover them with `dlcount-pipe import` of nginx's own log file (it never counts a line twice)"
    }
}

/// The received lines as a byte stream (`line\n` per datagram) for the
/// spool, until the stop is requested and the queue is read.
struct SpoolReader {
    source: DatagramSource,
    pending: Vec<u8>,
    at: usize,
    done: bool,
}

impl Read for SpoolReader {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        while self.at == self.pending.len() {
            if self.done {
                return Ok(0);
            }
            self.pending.clear();
            self.at = 0;
            self.source.wait_fds(None);
            let stopping = self.source.stop.is_set();
            let mut lines = std::mem::take(&mut self.pending);
            let emptied = self.source.drain(&mut |d, _, _| {
                // Not an nginx datagram: kept whole; the drain rejects it as a line.
                let line = crate::syslog::parse(d).map_or(d, |dg| dg.line);
                lines.extend_from_slice(line);
                lines.push(b'\n');
            })?;
            self.pending = lines;
            self.done = stopping && emptied;
        }
        let n = out.len().min(self.pending.len() - self.at);
        out[..n].copy_from_slice(&self.pending[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

/// SIGTERM and SIGINT trigger `stop` (for the spool, which has no owner).
pub(super) fn stop_on_signals(stop: &Arc<Stop>) -> std::io::Result<()> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGTERM, SIGINT])?;
    let stop = Arc::clone(stop);
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            if signals.forever().next().is_some() {
                stop.trigger();
            }
        })?;
    Ok(())
}

/// `dlcount-pipe listen`. Returns the exit code.
pub fn run(args: &ListenArgs, raw_args: &[OsString]) -> Result<i32> {
    let live = &args.live;
    let extra = Extra {
        user: live.user.clone(),
        root: None,
        refresh: live.refresh,
        max_pending: live.max_pending,
    };
    let settings = Settings::resolve(&live.db, &live.parse, &live.site, &extra);
    let user = match &settings {
        Ok(s) => s.user.clone(),
        Err(_) => live
            .user
            .clone()
            .or_else(|| crate::spool::intended_user(raw_args)),
    };
    // As root, the socket is the user's from the start (so it can remove it at exit).
    let owner = match &user {
        Some(u) if crate::privs::is_root() => crate::privs::lookup(u).ok(),
        _ => None,
    };
    let receivers = open_receivers(args, owner)?;
    // Before any thread: daemonize forks.
    crate::daemon::start(&args.daemon)?;
    let stop = Stop::new()?;
    let source = DatagramSource::new(receivers, Arc::clone(&stop));
    let problem = match settings {
        Err(e) => Some((
            format!("{e:#}"),
            crate::spool::intended_local_dir(raw_args),
            user,
        )),
        Ok(settings) => {
            let switched = match &settings.user {
                Some(u) if crate::privs::is_root() => crate::privs::drop_to(u),
                Some(u) => crate::privs::lookup(u).map(|_| ()),
                None => Ok(()),
            };
            match switched.and_then(|()| settings.check_db_path()) {
                Err(e) => Some((
                    format!("{e:#}"),
                    settings.db.local_dir().to_owned(),
                    settings.user.clone(),
                )),
                Ok(()) => {
                    if settings.user.is_none() && crate::privs::is_root() {
                        eprintln!("dlcount: warning: running as root; give --user (e.g. --user dlcount) to drop privileges");
                    }
                    let code = super::run_live(&settings, Box::new(source));
                    crate::daemon::finish(&args.daemon);
                    return Ok(code);
                }
            }
        }
    };
    let (problem, local_dir, user) = problem.expect("set above");
    spool_until_stopped(source, &stop, &problem, &local_dir, user);
    crate::daemon::finish(&args.daemon);
    Ok(2)
}

/// A configuration error: every line received goes to the spool until
/// SIGTERM (see the module header).
fn spool_until_stopped(
    source: DatagramSource,
    stop: &Arc<Stop>,
    problem: &str,
    local_dir: &Path,
    user: Option<String>,
) {
    if let Err(e) = stop_on_signals(stop) {
        eprintln!("dlcount: cannot install signal handlers: {e}");
    }
    let mut problem = problem.to_string();
    let mut spool_dir = Ok(crate::spool::dir_for(local_dir));
    if crate::privs::is_root() {
        match crate::app::leave_root_to_spool(local_dir, user.as_deref()) {
            Ok(Some(who)) => problem.push_str(&format!("; running as {who}, not root")),
            Ok(None) => {}
            Err(e) => spool_dir = Err(format!("cannot leave root: {e:#}")),
        }
    }
    let mut reader = SpoolReader {
        source,
        pending: Vec::new(),
        at: 0,
        done: false,
    };
    crate::spool::spool_input(
        spool_dir.as_deref().map_err(String::as_str),
        &problem,
        &mut reader,
        &mut std::io::stderr(),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(socket: Option<PathBuf>, udp: Option<&str>) -> ListenArgs {
        ListenArgs {
            live: Default::default(),
            socket,
            socket_group: None,
            udp: udp.map(str::to_string),
            daemon: Default::default(),
        }
    }

    #[test]
    fn udp_port_alone_is_loopback() {
        assert_eq!(udp_addr("5514").unwrap().to_string(), "127.0.0.1:5514");
        assert_eq!(udp_addr("0.0.0.0:514").unwrap().to_string(), "0.0.0.0:514");
        assert_eq!(udp_addr("[::1]:514").unwrap().to_string(), "[::1]:514");
        assert!(udp_addr("localhost:514").is_err());
    }

    #[test]
    fn the_socket_is_0660_a_stale_one_replaced_a_live_one_a_link_or_a_file_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("listen.sock");
        let r = open_receivers(&args(Some(path.clone()), None), None).unwrap();
        let meta = std::fs::symlink_metadata(&path).unwrap();
        assert!(meta.file_type().is_socket());
        assert_eq!(meta.permissions().mode() & 0o777, 0o660);
        // A second listener on the same path is refused while the first receives.
        let e = open_receivers(&args(Some(path.clone()), None), None)
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("another listener receives on it"), "{e}");
        drop(r);
        assert!(!path.exists(), "removed at exit");
        // A listener that died without removing it: the file is left, nothing receives.
        drop(UnixDatagram::bind(&path).unwrap());
        assert!(path.exists());
        let r = open_receivers(&args(Some(path.clone()), None), None).unwrap();
        drop(r);
        assert!(!path.exists(), "removed at exit");
        // A link (even to a socket) and a plain file are refused and left alone.
        let target = dir.path().join("elsewhere");
        std::fs::write(&target, "x").unwrap();
        std::os::unix::fs::symlink(&target, &path).unwrap();
        let e = open_receivers(&args(Some(path.clone()), None), None)
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("is a symbolic link: refused"), "{e}");
        std::fs::remove_file(&path).unwrap();
        std::fs::write(&path, "data").unwrap();
        let e = open_receivers(&args(Some(path.clone()), None), None)
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("exists and is not a socket"), "{e}");
        assert_eq!(std::fs::read(&path).unwrap(), b"data");
        assert_eq!(std::fs::read(&target).unwrap(), b"x");
    }

    #[test]
    fn a_world_writable_directory_is_refused_unless_sticky() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        let path = dir.path().join("s");
        let e = open_receivers(&args(Some(path.clone()), None), None)
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("writable by everyone and not sticky"), "{e}");
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o1777)).unwrap();
        assert!(open_receivers(&args(Some(path), None), None).is_ok());
    }

    #[test]
    fn datagrams_become_lines_and_the_stop_ends_after_the_queue() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s");
        let r = open_receivers(&args(Some(path.clone()), Some("0")), None).unwrap();
        let stop = Stop::new().unwrap();
        let mut src = DatagramSource::new(r, Arc::clone(&stop));
        let tx = UnixDatagram::unbound().unwrap();
        tx.send_to(b"<190>Nov  3 10:00:01 dlcount: line one", &path)
            .unwrap();
        tx.send_to(b"no header", &path).unwrap();
        tx.send_to(b"<190>Nov  3 10:00:02 web1 dlcount: line two", &path)
            .unwrap();
        assert!(src.wait(Some(Duration::from_secs(5))));
        let mut got = Vec::new();
        let mut collect = |i: Item<'_>| match i {
            Item::Line(l, n) => got.push(format!("{n} {}", String::from_utf8_lossy(l))),
            Item::NotSyslog(n) => got.push(format!("{n} rejected")),
            _ => got.push("other".into()),
        };
        assert!(src.read(&mut collect).unwrap());
        assert_eq!(got, ["1 line one", "2 rejected", "3 line two"]);
        tx.send_to(b"<190>Nov  3 10:00:03 dlcount: line three", &path)
            .unwrap();
        stop.trigger();
        let mut got = Vec::new();
        let mut collect = |i: Item<'_>| {
            if let Item::Line(l, _) = i {
                got.push(String::from_utf8_lossy(l).into_owned())
            }
        };
        assert!(!src.read(&mut collect).unwrap(), "stopped and drained");
        assert_eq!(got, ["line three"]);
    }
}
