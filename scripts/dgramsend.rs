//! `dgramsend`: sends the lines of a log file as nginx sends access lines to
//! syslog (`scripts/bench.sh` measures `dlcount-pipe listen` with it): one
//! datagram per line, no newline, nginx's header `<190>Mmm dd hh:mm:ss TAG: `.
//!
//! Two ways to send, for two questions:
//! - blocking, to a Unix socket (the default): the kernel makes the sender
//!   wait while the listener's queue is full, so nothing is lost and the
//!   time taken is the listener's own pace;
//! - `--nonblocking --rate N`: as nginx does, a line that finds the queue
//!   full is dropped (counted), at a steady N lines a second: what a
//!   listener keeps up with.
//!
//! Invariant: it prints exactly how many datagrams were sent and dropped.

use anyhow::{bail, Context, Result};
use clap::Parser;
use std::io::BufRead;
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::time::{Duration, Instant};

#[derive(Parser)]
#[command(name = "dgramsend")]
struct Args {
    /// Unix datagram socket to send to.
    #[arg(long, conflicts_with = "udp")]
    socket: Option<PathBuf>,
    /// UDP address to send to (ADDR:PORT).
    #[arg(long)]
    udp: Option<String>,
    /// Lines a second, steady (default: as fast as the receiver takes them).
    #[arg(long)]
    rate: Option<u64>,
    /// Drop a line that finds the receiver's queue full, as nginx does.
    #[arg(long)]
    nonblocking: bool,
    /// The syslog tag.
    #[arg(long, default_value = "dlcount")]
    tag: String,
    /// The log file whose lines are sent.
    file: PathBuf,
}

enum Peer {
    Unix(UnixDatagram, PathBuf),
    Udp(std::net::UdpSocket, String),
}

impl Peer {
    fn send(&self, d: &[u8]) -> std::io::Result<usize> {
        match self {
            Peer::Unix(s, p) => s.send_to(d, p),
            Peer::Udp(s, a) => s.send_to(d, a.as_str()),
        }
    }
}

fn main() -> Result<()> {
    let args = Args::parse();
    let peer = match (&args.socket, &args.udp) {
        (Some(p), _) => Peer::Unix(UnixDatagram::unbound()?, p.clone()),
        (None, Some(a)) => Peer::Udp(std::net::UdpSocket::bind("0.0.0.0:0")?, a.clone()),
        (None, None) => bail!("give --socket PATH or --udp ADDR:PORT"),
    };
    match &peer {
        Peer::Unix(s, _) => s.set_nonblocking(args.nonblocking)?,
        Peer::Udp(s, _) => s.set_nonblocking(args.nonblocking)?,
    }
    let file = std::fs::File::open(&args.file)
        .with_context(|| format!("cannot open {}", args.file.display()))?;
    let mut input = std::io::BufReader::with_capacity(1 << 20, file);
    let header = format!("<190>Dec  3 12:00:00 {}: ", args.tag);
    let mut datagram = header.clone().into_bytes();
    let mut line = Vec::new();
    let (mut sent, mut dropped) = (0u64, 0u64);
    let start = Instant::now();
    loop {
        line.clear();
        if input.read_until(b'\n', &mut line)? == 0 {
            break;
        }
        if line.last() == Some(&b'\n') {
            line.pop();
        }
        datagram.truncate(header.len());
        datagram.extend_from_slice(&line);
        if let Some(rate) = args.rate {
            // Sleeps (never spins: the listener needs the cores) whenever a
            // millisecond ahead of the steady pace.
            let due = start + Duration::from_secs_f64((sent + dropped) as f64 / rate as f64);
            let ahead = due.saturating_duration_since(Instant::now());
            if ahead >= Duration::from_millis(1) {
                std::thread::sleep(ahead);
            }
        }
        match peer.send(&datagram) {
            Ok(_) => sent += 1,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => dropped += 1,
            Err(e) => return Err(e).context("send"),
        }
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "sent {sent} dropped {dropped} seconds {secs:.4} rate {:.0}",
        (sent + dropped) as f64 / secs
    );
    Ok(())
}
