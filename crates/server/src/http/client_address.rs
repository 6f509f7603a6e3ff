//! Who the end client of a forward-authentication request is, for the failed-attempt
//! limit: the socket peer, unless the peer is a trusted proxy; then the rightmost
//! `X-Forwarded-For` entry that is not itself a trusted proxy.
//!
//! Every outcome is an address, never "unknown": an entry that is not an address (or
//! no header at all) counts as the peer, so forged keys sent without a usable header
//! are limited as the peer's, not unlimited. Entries a client wrote itself stand to
//! the left of those the trusted proxies appended, so walking from the right stops
//! before them.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName};
use keyward_core::network::Network;

const FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// The socket peer of a request, where it came over a socket (see
/// [`super::connections`]); `None` for a router used without one.
pub struct Peer(pub Option<SocketAddr>);

impl<S: Send + Sync> FromRequestParts<S> for Peer {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let info = ConnectInfo::<SocketAddr>::from_request_parts(parts, state).await;
        Ok(Self(info.ok().map(|ConnectInfo(peer)| peer)))
    }
}

/// Networks whose hosts may speak for the client (`KEYWARD_TRUSTED_PROXIES`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrustedProxies(Vec<Network>);

impl TrustedProxies {
    /// Loopback only: a proxy on the same host.
    pub const DEFAULT: &'static str = "127.0.0.0/8,::1/128";

    /// A comma-separated list of addresses and CIDR networks (`10.0.0.0/8`,
    /// `fd00::/8`, `192.0.2.7`); an empty list trusts no proxy.
    pub fn parse(list: &str) -> Result<Self, String> {
        list.split(',')
            .map(str::trim)
            .filter(|item| !item.is_empty())
            .map(str::parse)
            .collect::<Result<_, _>>()
            .map(Self)
    }

    pub fn contains(&self, address: IpAddr) -> bool {
        self.0.iter().any(|network| network.contains(address))
    }

    /// The end client of a request that came from `peer` with these headers, for the
    /// failed-attempt limit. Without a peer (the router used without a socket) every
    /// request counts as one client.
    pub fn client(&self, peer: Option<SocketAddr>, headers: &HeaderMap) -> IpAddr {
        self.resolve(peer, headers).0
    }

    /// The end client as a trusted proxy names it (its `X-Forwarded-For` entry), for a
    /// key bound to networks; `None` when no trusted proxy named one. Falling back to
    /// the peer, as [`TrustedProxies::client`] does, would take a proxy (or a
    /// misconfigured one's) address for every client behind it.
    pub fn vouched_client(&self, peer: Option<SocketAddr>, headers: &HeaderMap) -> Option<IpAddr> {
        let (client, vouched) = self.resolve(peer, headers);
        vouched.then_some(client)
    }

    /// The end client, and whether a trusted proxy named it.
    fn resolve(&self, peer: Option<SocketAddr>, headers: &HeaderMap) -> (IpAddr, bool) {
        let peer = peer.map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |p| p.ip().to_canonical());
        if !self.contains(peer) {
            return (peer, false);
        }
        // Split as bytes: a client's non-ASCII entry must not hide the entries the
        // proxies appended after it.
        let entries: Vec<&[u8]> = headers
            .get_all(&FORWARDED_FOR)
            .iter()
            .flat_map(|value| value.as_bytes().split(|b| *b == b','))
            .collect();
        for entry in entries.iter().rev() {
            let entry = std::str::from_utf8(entry).unwrap_or("");
            match forwarded_address(entry.trim()) {
                Some(address) if self.contains(address) => continue,
                Some(address) => return (address, true),
                None => return (peer, false),
            }
        }
        (peer, false)
    }
}

/// An `X-Forwarded-For` entry: `192.0.2.1`, `192.0.2.1:443`, `2001:db8::1`,
/// `[2001:db8::1]` or `[2001:db8::1]:443`.
fn forwarded_address(entry: &str) -> Option<IpAddr> {
    if let Ok(address) = entry.parse::<IpAddr>() {
        return Some(address.to_canonical());
    }
    if let Ok(socket) = entry.parse::<SocketAddr>() {
        return Some(socket.ip().to_canonical());
    }
    entry
        .strip_prefix('[')
        .and_then(|rest| rest.strip_suffix(']'))
        .and_then(|inner| inner.parse::<IpAddr>().ok())
        .map(|address| address.to_canonical())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(forwarded: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in forwarded {
            headers.append(FORWARDED_FOR, value.parse().unwrap());
        }
        headers
    }

    fn peer(address: &str) -> Option<SocketAddr> {
        Some(SocketAddr::new(address.parse().unwrap(), 40000))
    }

    fn ip(address: &str) -> IpAddr {
        address.parse().unwrap()
    }

    #[test]
    fn a_clients_non_ascii_entry_does_not_hide_the_proxys() {
        let trusted = TrustedProxies::parse("127.0.0.1/32").unwrap();
        let mut forwarded = HeaderMap::new();
        forwarded.append(
            FORWARDED_FOR,
            axum::http::HeaderValue::from_bytes(b"\xff, 127.0.0.2").unwrap(),
        );
        assert_eq!(
            trusted.client(peer("127.0.0.1"), &forwarded),
            ip("127.0.0.2")
        );
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_forwards() {
        let trusted = TrustedProxies::parse(TrustedProxies::DEFAULT).unwrap();
        let client = trusted.client(peer("203.0.113.9"), &headers(&["198.51.100.1"]));
        assert_eq!(client, ip("203.0.113.9"));
    }

    #[test]
    fn behind_trusted_proxies_the_rightmost_untrusted_entry_is_the_client() {
        let trusted = TrustedProxies::parse("127.0.0.0/8, ::1, 10.0.0.0/8").unwrap();
        let forwarded = headers(&["1.1.1.1, 198.51.100.7", "10.1.2.3"]);
        assert_eq!(
            trusted.client(peer("127.0.0.1"), &forwarded),
            ip("198.51.100.7")
        );
        assert_eq!(trusted.client(peer("::1"), &forwarded), ip("198.51.100.7"));
        assert_eq!(
            trusted.client(peer("::ffff:127.0.0.1"), &forwarded),
            ip("198.51.100.7"),
            "an IPv4-mapped peer is the IPv4 address"
        );
    }

    #[test]
    fn ports_and_brackets_are_read_and_anything_else_counts_as_the_peer() {
        let trusted = TrustedProxies::parse(TrustedProxies::DEFAULT).unwrap();
        let local = peer("127.0.0.1");
        for (entry, expected) in [
            ("7.7.7.7:1234", "7.7.7.7"),
            ("[2001:db8::1]:443", "2001:db8::1"),
            ("[2001:db8::1]", "2001:db8::1"),
            ("2001:db8::2", "2001:db8::2"),
            ("foo", "127.0.0.1"),
            ("", "127.0.0.1"),
            ("unknown", "127.0.0.1"),
        ] {
            assert_eq!(
                trusted.client(local, &headers(&[entry])),
                ip(expected),
                "{entry:?}"
            );
        }
        assert_eq!(trusted.client(local, &HeaderMap::new()), ip("127.0.0.1"));
        assert_eq!(
            trusted.client(None, &headers(&["7.7.7.7"])),
            ip("0.0.0.0"),
            "no socket: every request is one client, whatever it forwards"
        );
    }

    #[test]
    fn only_a_client_a_trusted_proxy_named_is_vouched_for() {
        let trusted = TrustedProxies::parse(TrustedProxies::DEFAULT).unwrap();
        let local = peer("127.0.0.1");
        assert_eq!(
            trusted.vouched_client(local, &headers(&["10.9.9.9, 198.51.100.7"])),
            Some(ip("198.51.100.7"))
        );
        // The proxy named nobody, or only itself: not the proxy's own address.
        assert_eq!(trusted.vouched_client(local, &HeaderMap::new()), None);
        assert_eq!(
            trusted.vouched_client(local, &headers(&["127.0.0.1"])),
            None
        );
        assert_eq!(trusted.vouched_client(local, &headers(&["garbage"])), None);
        // A peer that is not a trusted proxy: its header is its own word.
        let stranger = peer("203.0.113.9");
        assert_eq!(
            trusted.vouched_client(stranger, &headers(&["198.51.100.7"])),
            None
        );
        assert_eq!(trusted.vouched_client(None, &headers(&["7.7.7.7"])), None);
    }

    #[test]
    fn proxy_lists_are_checked() {
        assert!(TrustedProxies::parse("10.0.0.0/33").is_err());
        assert!(TrustedProxies::parse("fd00::/129").is_err());
        assert!(TrustedProxies::parse("proxy.internal").is_err());
        let none = TrustedProxies::parse("").unwrap();
        assert!(!none.contains(ip("127.0.0.1")));
        let all = TrustedProxies::parse("0.0.0.0/0").unwrap();
        assert!(all.contains(ip("203.0.113.1")) && !all.contains(ip("::1")));
    }
}
