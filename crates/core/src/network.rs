//! IP networks in CIDR notation: the one rule for reading `10.0.0.0/8`,
//! `2001:db8::/32` or a bare address (a network of one), and for whether an address
//! is in one. Trusted proxies are such networks; so will be the networks a key may be
//! used from.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// An IPv4 or IPv6 network. Host bits are cleared as it is read (`10.1.2.3/8` is
/// `10.0.0.0/8`), so two spellings of one network are equal and show alike. An
/// IPv4-mapped IPv6 address (`::ffff:192.0.2.1`) is read as the IPv4 address it maps.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Network {
    address: IpAddr,
    bits: u8,
}

impl Network {
    /// Whether `address` (IPv4-mapped IPv6 taken as IPv4) is in this network.
    pub fn contains(&self, address: IpAddr) -> bool {
        masked(address.to_canonical(), self.bits) == Some(self.address)
    }

    pub fn address(&self) -> IpAddr {
        self.address
    }

    /// The prefix length: 0-32 for IPv4, 0-128 for IPv6.
    pub fn bits(&self) -> u8 {
        self.bits
    }
}

/// `address` with all but its first `bits` bits cleared; `None` past its length.
fn masked(address: IpAddr, bits: u8) -> Option<IpAddr> {
    match address {
        IpAddr::V4(a) if bits <= 32 => {
            let mask = u32::MAX.checked_shl(32 - u32::from(bits)).unwrap_or(0);
            Some(IpAddr::V4((u32::from(a) & mask).into()))
        }
        IpAddr::V6(a) if bits <= 128 => {
            let mask = u128::MAX.checked_shl(128 - u32::from(bits)).unwrap_or(0);
            Some(IpAddr::V6((u128::from(a) & mask).into()))
        }
        _ => None,
    }
}

impl FromStr for Network {
    type Err = String;

    fn from_str(item: &str) -> Result<Self, Self::Err> {
        let (address, bits) = match item.split_once('/') {
            Some((address, bits)) => (address, Some(bits)),
            None => (item, None),
        };
        let address = address
            .parse::<IpAddr>()
            .map_err(|_| format!("{item:?} is not an IP address or CIDR network"))?
            .to_canonical();
        let max = if address.is_ipv4() { 32 } else { 128 };
        let bits = match bits {
            None => max,
            // Digits only: `u8::from_str` would also take `+8`.
            Some(bits) => Some(bits)
                .filter(|b| !b.is_empty() && b.len() <= 3 && b.bytes().all(|c| c.is_ascii_digit()))
                .and_then(|b| b.parse::<u8>().ok())
                .filter(|b| *b <= max)
                .ok_or_else(|| format!("{item:?}: the prefix length must be 0-{max}"))?,
        };
        let address = masked(address, bits).expect("bits checked against the family");
        Ok(Self { address, bits })
    }
}

impl fmt::Display for Network {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.address, self.bits)
    }
}

/// The most networks a key may be bound to.
pub const MAX_ALLOWED_NETWORKS: usize = 100;

/// The networks a key may be used from (`allowed_ips`): 1 to
/// [`MAX_ALLOWED_NETWORKS`] of them, each once, in the order given.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct AllowedNetworks(Vec<Network>);

impl AllowedNetworks {
    /// Reads a list as a request gives it; one message for all that is wrong.
    pub fn parse<S: AsRef<str>>(items: &[S]) -> Result<Self, String> {
        if items.is_empty() {
            return Err("must name at least one network (or be null for any address)".into());
        }
        if items.len() > MAX_ALLOWED_NETWORKS {
            return Err(format!("at most {MAX_ALLOWED_NETWORKS} networks"));
        }
        let mut networks: Vec<Network> = Vec::with_capacity(items.len());
        for item in items {
            let network: Network = item.as_ref().parse()?;
            if !networks.contains(&network) {
                networks.push(network);
            }
        }
        Ok(Self(networks))
    }

    /// Whether a verification on behalf of `client` may use the key: only from an
    /// address in one of the networks. No address at all is refused too (fail
    /// closed): a caller that does not say who the client is cannot vouch for it.
    pub fn admit(&self, client: Option<IpAddr>) -> bool {
        client.is_some_and(|client| self.0.iter().any(|network| network.contains(client)))
    }

    pub fn iter(&self) -> impl Iterator<Item = &Network> {
        self.0.iter()
    }

    /// The networks as text (`203.0.113.0/24`), as stored and shown.
    pub fn to_strings(&self) -> Vec<String> {
        self.0.iter().map(ToString::to_string).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(text: &str) -> Network {
        text.parse().unwrap()
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn a_network_holds_the_addresses_under_its_prefix() {
        let v4 = net("203.0.113.0/24");
        assert!(v4.contains(ip("203.0.113.0")) && v4.contains(ip("203.0.113.255")));
        assert!(!v4.contains(ip("203.0.114.0")));
        let v6 = net("2001:db8::/32");
        assert!(v6.contains(ip("2001:db8:ffff::1")));
        assert!(!v6.contains(ip("2001:db9::1")));
        // One family never matches the other, but a mapped address is its IPv4 one.
        assert!(!v6.contains(ip("203.0.113.1")));
        assert!(v4.contains(ip("::ffff:203.0.113.9")));
        assert!(net("0.0.0.0/0").contains(ip("198.51.100.1")));
        assert!(!net("0.0.0.0/0").contains(ip("::1")));
        assert!(net("::/0").contains(ip("::1")));
    }

    #[test]
    fn an_address_alone_is_a_network_of_one_and_host_bits_are_cleared() {
        assert_eq!(net("192.0.2.7"), net("192.0.2.7/32"));
        assert_eq!(net("2001:db8::1").to_string(), "2001:db8::1/128");
        assert_eq!(net("10.1.2.3/8").to_string(), "10.0.0.0/8");
        assert_eq!(net("10.1.2.3/8"), net("10.0.0.0/8"));
        assert_eq!(net("::ffff:10.0.0.1/32").to_string(), "10.0.0.1/32");
        assert_eq!(net("2001:db8:1234::/32").to_string(), "2001:db8::/32");
    }

    #[test]
    fn a_key_bound_to_networks_admits_only_their_addresses_and_never_no_address() {
        let allowed = AllowedNetworks::parse(&["203.0.113.0/24", "2001:db8::/32"]).unwrap();
        assert!(allowed.admit(Some(ip("203.0.113.9"))));
        assert!(allowed.admit(Some(ip("2001:db8::7"))));
        assert!(allowed.admit(Some(ip("::ffff:203.0.113.9"))));
        assert!(!allowed.admit(Some(ip("198.51.100.1"))));
        assert!(!allowed.admit(None));
        // Two spellings of one network are one entry.
        let twice = AllowedNetworks::parse(&["10.0.0.0/8", "10.1.2.3/8"]).unwrap();
        assert_eq!(twice.to_strings(), ["10.0.0.0/8"]);
    }

    #[test]
    fn a_list_of_networks_is_bounded_and_not_empty() {
        let none: [&str; 0] = [];
        assert!(AllowedNetworks::parse(&none).is_err());
        let many: Vec<String> = (0..=MAX_ALLOWED_NETWORKS)
            .map(|i| format!("10.0.{i}.0/24"))
            .collect();
        assert_eq!(
            AllowedNetworks::parse(&many).unwrap_err(),
            "at most 100 networks"
        );
        assert!(AllowedNetworks::parse(&many[..MAX_ALLOWED_NETWORKS]).is_ok());
        assert!(AllowedNetworks::parse(&["10.0.0.0/8", "nope"]).is_err());
    }

    #[test]
    fn anything_else_is_refused_with_what_is_wrong() {
        for bad in [
            "",
            "10.0.0.0/",
            "10.0.0.0/33",
            "fd00::/129",
            "10.0.0.0/+8",
            "10.0.0.0/ 8",
            "10.0.0.0/-1",
            "10.0.0.0/0008",
            "host.example",
            "10.0.0.0/8/8",
            "[::1]/128",
            "10.0.0.256",
        ] {
            assert!(bad.parse::<Network>().is_err(), "{bad:?}");
        }
        assert_eq!(
            "10.0.0.0/33".parse::<Network>().unwrap_err(),
            "\"10.0.0.0/33\": the prefix length must be 0-32"
        );
        assert_eq!(
            "nope".parse::<Network>().unwrap_err(),
            "\"nope\" is not an IP address or CIDR network"
        );
    }
}
