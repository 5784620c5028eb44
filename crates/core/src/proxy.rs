//! Reverse proxies trusted to say who the client is (`--trusted-proxy CIDR`): behind one, every
//! connection comes from the proxy, so per-address limits, lockout accounting and "last used
//! from" would all see the proxy. Only a peer inside a trusted range may name the client: in
//! `X-Forwarded-For` on HTTP, or in a PROXY protocol v2 header at the start of the connection
//! (HTTP, HTTPS and SFTP: `proxied_client`); anyone else's header is ignored (and a PROXY header
//! from anyone else is just bytes the protocol refuses), so a client cannot pick its own address.

use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

/// An address range, `ADDR/PREFIX` (a bare address is one host).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    pub fn parse(text: &str) -> Option<Cidr> {
        let (address, prefix) = match text.trim().split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (text.trim(), None),
        };
        let network: IpAddr = address.parse().ok()?;
        let bits = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(prefix) => prefix.parse::<u8>().ok().filter(|p| *p <= bits)?,
            None => bits,
        };
        Some(Cidr { network, prefix })
    }

    pub fn contains(&self, address: IpAddr) -> bool {
        // An IPv4 peer seen on an IPv6 socket is `::ffff:a.b.c.d`.
        let address = match address {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(address, IpAddr::V4),
            v4 => v4,
        };
        let (network, address, bits) = match (self.network, address) {
            (IpAddr::V4(n), IpAddr::V4(a)) => (u32::from(n) as u128, u32::from(a) as u128, 32),
            (IpAddr::V6(n), IpAddr::V6(a)) => (u128::from(n), u128::from(a), 128),
            _ => return false,
        };
        let shift = bits - u32::from(self.prefix);
        shift >= bits || network >> shift == address >> shift
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

/// The ranges whose connections may name the client.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<Cidr>);

impl TrustedProxies {
    pub fn new(ranges: Vec<Cidr>) -> TrustedProxies {
        TrustedProxies(ranges)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn trusts(&self, address: IpAddr) -> bool {
        self.0.iter().any(|range| range.contains(address))
    }

    /// The client of a connection from `peer` carrying the `X-Forwarded-For` values
    /// `forwarded` (each header a comma-separated list, appended to by each proxy): walking
    /// from the right, the first address that is not a trusted proxy. An untrusted peer, or
    /// a header that does not parse, leaves `peer`.
    pub fn client(&self, peer: IpAddr, forwarded: &[&str]) -> IpAddr {
        if !self.trusts(peer) {
            return peer;
        }
        let hops: Vec<&str> = forwarded
            .iter()
            .flat_map(|h| h.split(','))
            .map(str::trim)
            .collect();
        let mut client = peer;
        for hop in hops.iter().rev() {
            let Some(address) = parse_hop(hop) else {
                return client;
            };
            client = address;
            if !self.trusts(address) {
                break;
            }
        }
        client
    }
}

/// The PROXY protocol v2 signature (haproxy's proxy-protocol.txt, §2.2).
const SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";
/// The longest header taken after its first 16 bytes: the addresses (216 bytes at most, for
/// AF_UNIX) and a few TLVs; a proxy sending more is not one we know.
const MAX_HEADER_BODY: usize = 1024;

/// The client of a connection from trusted proxy `peer`: the source address of the PROXY
/// protocol v2 header the connection starts with, read off the stream (the protocol's bytes
/// follow). `peer` itself when the connection starts otherwise (a client or health check that
/// came straight to us), or carries a LOCAL header or one for a family without addresses. An
/// error when a header is cut, malformed, or not whole within `wait`: the caller closes the
/// connection. A client that waits for the server to speak first is waited for until `wait`:
/// HTTP and SSH clients speak first (RFC 4253 §4.2: both sides send their version line at
/// once), so only a balancer's bare TCP check meets this.
pub async fn proxied_client(
    stream: &mut TcpStream,
    peer: SocketAddr,
    wait: Duration,
) -> io::Result<SocketAddr> {
    tokio::time::timeout(wait, read_header(stream, peer))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "no whole PROXY header in time"))?
}

async fn read_header(stream: &mut TcpStream, peer: SocketAddr) -> io::Result<SocketAddr> {
    // Peek until the start is known: a signature (a header to take), or anything else (the
    // protocol itself: SSH and HTTP clients speak first, so they never wait here).
    let mut start = [0u8; 16];
    loop {
        let seen = stream.peek(&mut start).await?;
        if seen == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "closed before a request",
            ));
        }
        let known = seen.min(SIGNATURE.len());
        if start[..known] != SIGNATURE[..known] {
            return Ok(peer);
        }
        if seen == start.len() {
            break;
        }
        // Part of a signature: wait for the rest to arrive.
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    stream.read_exact(&mut start).await?;
    let length = usize::from(u16::from_be_bytes([start[14], start[15]]));
    if length > MAX_HEADER_BODY {
        return Err(invalid("a PROXY header longer than any we take"));
    }
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body).await?;
    parse_header(start[12], start[13], &body, peer)
}

fn invalid(message: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message.to_string())
}

/// The client named by a v2 header (§2.2): `version_command` (version 2; LOCAL 0 or PROXY 1),
/// `family` (address family and transport), and the addresses and TLVs in `body`.
fn parse_header(version_command: u8, family: u8, body: &[u8], peer: SocketAddr) -> io::Result<SocketAddr> {
    if version_command >> 4 != 2 {
        return Err(invalid("a PROXY header of a version other than 2"));
    }
    match version_command & 0x0f {
        // LOCAL: the proxy's own connection (a health check); the addresses are to be ignored.
        0 => return Ok(peer),
        1 => {}
        _ => return Err(invalid("a PROXY header with an unknown command")),
    }
    match family >> 4 {
        // AF_INET: source address, destination address, source port, destination port.
        1 if body.len() >= 12 => {
            let address = Ipv4Addr::new(body[0], body[1], body[2], body[3]);
            let port = u16::from_be_bytes([body[8], body[9]]);
            Ok(SocketAddr::new(IpAddr::V4(address), port))
        }
        2 if body.len() >= 36 => {
            let mut octets = [0u8; 16];
            octets.copy_from_slice(&body[..16]);
            let port = u16::from_be_bytes([body[32], body[33]]);
            Ok(SocketAddr::new(IpAddr::V6(Ipv6Addr::from(octets)), port))
        }
        1 | 2 => Err(invalid("a PROXY header shorter than its addresses")),
        // AF_UNSPEC or AF_UNIX: no client address to take.
        0 | 3 => Ok(peer),
        _ => Err(invalid("a PROXY header with an unknown address family")),
    }
}

/// One `X-Forwarded-For` entry: an address, possibly with a port (`[v6]:port`, `v4:port`).
fn parse_hop(hop: &str) -> Option<IpAddr> {
    if let Ok(address) = hop.parse() {
        return Some(address);
    }
    if let Some(rest) = hop.strip_prefix('[') {
        return rest.split_once(']')?.0.parse().ok();
    }
    hop.rsplit_once(':')?.0.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::{Cidr, TrustedProxies, parse_header, proxied_client};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A v2 PROXY header for a TCP connection from `source` to `destination`.
    fn header(source: std::net::SocketAddr, destination: std::net::SocketAddr) -> Vec<u8> {
        let mut out = super::SIGNATURE.to_vec();
        out.push(0x21);
        let mut body = Vec::new();
        match (source, destination) {
            (std::net::SocketAddr::V4(s), std::net::SocketAddr::V4(d)) => {
                out.push(0x11);
                body.extend(s.ip().octets());
                body.extend(d.ip().octets());
            }
            (std::net::SocketAddr::V6(s), std::net::SocketAddr::V6(d)) => {
                out.push(0x21);
                body.extend(s.ip().octets());
                body.extend(d.ip().octets());
            }
            _ => unreachable!("one family"),
        }
        body.extend(source.port().to_be_bytes());
        body.extend(destination.port().to_be_bytes());
        out.extend((body.len() as u16).to_be_bytes());
        out.extend(body);
        out
    }

    #[test]
    fn headers_name_their_client() {
        let peer: std::net::SocketAddr = "10.0.0.1:40000".parse().unwrap();
        let v4 = header(
            "192.0.2.9:5555".parse().unwrap(),
            "10.0.0.2:2022".parse().unwrap(),
        );
        assert_eq!(
            parse_header(v4[12], v4[13], &v4[16..], peer).unwrap(),
            "192.0.2.9:5555".parse().unwrap()
        );
        let v6 = header(
            "[2001:db8::7]:6000".parse().unwrap(),
            "[fd00::1]:443".parse().unwrap(),
        );
        assert_eq!(
            parse_header(v6[12], v6[13], &v6[16..], peer).unwrap(),
            "[2001:db8::7]:6000".parse().unwrap()
        );
        // LOCAL (a health check) and AF_UNSPEC keep the peer.
        assert_eq!(parse_header(0x20, 0x11, &v4[16..], peer).unwrap(), peer);
        assert_eq!(parse_header(0x21, 0x00, &[], peer).unwrap(), peer);
        // Version 1 in a v2 frame, an unknown command or family, addresses cut short.
        for (version, family, body) in [
            (0x11u8, 0x11u8, &v4[16..]),
            (0x2f, 0x11, &v4[16..]),
            (0x21, 0x51, &v4[16..]),
            (0x21, 0x11, &v4[16..20]),
            (0x21, 0x21, &v6[16..40]),
        ] {
            assert!(
                parse_header(version, family, body, peer).is_err(),
                "{version:x} {family:x}"
            );
        }
    }

    /// Over a socket: the header is taken off and the protocol's bytes follow; a connection
    /// without one is left whole; a header cut short or too long fails.
    #[tokio::test]
    async fn the_header_is_read_off_the_stream() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let client: std::net::SocketAddr = "198.51.100.4:1234".parse().unwrap();
        let wait = std::time::Duration::from_secs(2);
        let cases: Vec<(Vec<u8>, Option<std::net::SocketAddr>, &[u8])> = vec![
            (
                [header(client, address), b"SSH-2.0-x\r\n".to_vec()].concat(),
                Some(client),
                b"SSH-2.0-x\r\n",
            ),
            (b"GET / HTTP/1.1\r\n".to_vec(), None, b"GET / HTTP/1.1\r\n"),
            (super::SIGNATURE[..8].to_vec(), None, b""),
            (
                [&super::SIGNATURE[..], &[0x21, 0x11, 0xff, 0xff]].concat(),
                None,
                b"",
            ),
        ];
        for (sent, client, rest) in cases {
            let mut sender = tokio::net::TcpStream::connect(address).await.unwrap();
            let (mut stream, peer) = listener.accept().await.unwrap();
            sender.write_all(&sent).await.unwrap();
            // The third case is cut: the sender goes away after part of a signature.
            if rest.is_empty() {
                drop(sender);
                assert!(proxied_client(&mut stream, peer, wait).await.is_err(), "{sent:?}");
                continue;
            }
            let found = proxied_client(&mut stream, peer, wait).await.unwrap();
            assert_eq!(found, client.unwrap_or(peer));
            let mut got = vec![0u8; rest.len()];
            stream.read_exact(&mut got).await.unwrap();
            assert_eq!(got, rest);
            drop(sender);
        }
    }

    fn ip(text: &str) -> std::net::IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn ranges_parse_and_match() {
        let lan = Cidr::parse("10.0.0.0/8").unwrap();
        assert!(lan.contains(ip("10.200.3.4")));
        assert!(!lan.contains(ip("11.0.0.1")));
        assert!(lan.contains(ip("::ffff:10.1.2.3")), "IPv4 on an IPv6 socket");
        assert!(Cidr::parse("127.0.0.1").unwrap().contains(ip("127.0.0.1")));
        assert!(!Cidr::parse("127.0.0.1").unwrap().contains(ip("127.0.0.2")));
        assert!(Cidr::parse("0.0.0.0/0").unwrap().contains(ip("8.8.8.8")));
        assert!(Cidr::parse("fd00::/8").unwrap().contains(ip("fd12::1")));
        assert!(!Cidr::parse("fd00::/8").unwrap().contains(ip("10.0.0.1")));
        for bad in ["10.0.0.0/33", "fd00::/129", "nope", "10.0.0.0/x", ""] {
            assert!(Cidr::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn only_a_trusted_peer_names_the_client() {
        let proxies = TrustedProxies::new(vec![Cidr::parse("127.0.0.0/8").unwrap()]);
        // Not a proxy: whatever it claims, it is the client.
        assert_eq!(
            proxies.client(ip("203.0.113.9"), &["198.51.100.1"]),
            ip("203.0.113.9")
        );
        // The proxy names the client; an address the client itself put first is ignored.
        assert_eq!(
            proxies.client(ip("127.0.0.1"), &["6.6.6.6, 198.51.100.7"]),
            ip("198.51.100.7")
        );
        // Two proxies in a row, ports and brackets, several headers.
        assert_eq!(
            proxies.client(ip("127.0.0.1"), &["[2001:db8::5]:4711", "127.0.0.3:80"]),
            ip("2001:db8::5")
        );
        // No header, or garbage: the peer.
        assert_eq!(proxies.client(ip("127.0.0.1"), &[]), ip("127.0.0.1"));
        assert_eq!(
            proxies.client(ip("127.0.0.1"), &["not an address"]),
            ip("127.0.0.1")
        );
    }
}
