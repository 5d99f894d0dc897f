//! Addresses as the lake keeps them: one canonical text per address, whichever way a
//! source printed it, so that joins across the three streams match.

use std::borrow::Cow;

/// IPs as text in canonical form: `::ffff:10.0.0.1` is `10.0.0.1`, IPv6 is compressed.
pub(crate) fn canonical_ip(ip: &str) -> String {
    canonical_ip_text(Cow::Borrowed(ip)).into_owned()
}

/// [`canonical_ip`] keeping the text it was given when that is already canonical, as
/// dotted IPv4 addresses (nearly all of them) are.
pub(crate) fn canonical_ip_text(ip: Cow<str>) -> Cow<str> {
    if is_printed_ipv4(&ip) {
        return ip;
    }
    match ip.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
            Some(v4) => Cow::Owned(v4.to_string()),
            None => Cow::Owned(v6.to_string()),
        },
        Ok(v4) => Cow::Owned(v4.to_string()),
        Err(_) => ip,
    }
}

/// Whether `ip` is a dotted IPv4 address exactly as the standard library prints it: four
/// octets of 0–255 without leading zeros. Checked digit by digit rather than parsed: every
/// audit event has one or two, and parsing them took 0.9 % of ingest's instructions
/// (checking them, 0.5 %).
fn is_printed_ipv4(ip: &str) -> bool {
    // Octets are cut at each dot by hand: `split` searched for them with SIMD and compared
    // the separator, more work than these few bytes need.
    let printed = |octet: &[u8]| match octet {
        [d] => d.is_ascii_digit(),
        [b'1'..=b'9', d] => d.is_ascii_digit(),
        [b'1', d, e] => d.is_ascii_digit() && e.is_ascii_digit(),
        [b'2', b'0'..=b'4', d] => d.is_ascii_digit(),
        [b'2', b'5', b'0'..=b'5'] => true,
        _ => false,
    };
    let mut rest = ip.as_bytes();
    for _ in 0..3 {
        let Some(dot) = rest.iter().take(4).position(|&b| b == b'.') else {
            return false;
        };
        if !printed(&rest[..dot]) {
            return false;
        }
        rest = &rest[dot + 1..];
    }
    printed(rest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_kept_as_given_only_when_already_canonical() {
        for (ip, canonical, kept) in [
            ("10.0.0.1", "10.0.0.1", true),
            ("::ffff:10.0.0.1", "10.0.0.1", false),
            ("2001:db8:0:0:0:0:0:1", "2001:db8::1", false),
            ("not an address", "not an address", true),
            ("0.0.0.0", "0.0.0.0", true),
            ("10.0.0.10", "10.0.0.10", true),
        ] {
            let out = canonical_ip_text(Cow::Borrowed(ip));
            assert_eq!(out, canonical, "{ip}");
            assert_eq!(matches!(out, Cow::Borrowed(_)), kept, "{ip}");
        }
        // A leading zero is never taken as printed: the text is whatever the standard
        // library prints for the address it parses, or the input if it parses none.
        let printed = match "010.0.0.1".parse::<std::net::IpAddr>() {
            Ok(ip) => ip.to_string(),
            Err(_) => "010.0.0.1".to_owned(),
        };
        assert_eq!(canonical_ip("010.0.0.1"), printed);
    }

    /// Every address of four, three or five parts made of octet-like pieces is taken as
    /// printed exactly when the standard library parses it and prints it back the same.
    #[test]
    fn an_address_is_taken_as_printed_exactly_when_std_prints_it_so() {
        let pieces = [
            "", "0", "00", "01", "1", "9", "10", "99", "100", "199", "200", "249", "250", "255",
            "256", "260", "300", "999", "1000", "a", "-1", "+1", " 1", "1 ", "١",
        ];
        let printed = |ip: &str| {
            ip.parse::<std::net::Ipv4Addr>()
                .is_ok_and(|a| a.to_string() == ip)
        };
        let mut checked = 0;
        for a in pieces {
            for b in pieces {
                for c in pieces {
                    let three = format!("{a}.{b}.{c}");
                    assert_eq!(is_printed_ipv4(&three), printed(&three), "{three}");
                    for d in pieces {
                        let four = format!("{three}.{d}");
                        assert_eq!(is_printed_ipv4(&four), printed(&four), "{four}");
                        let five = format!("{four}.1");
                        assert_eq!(is_printed_ipv4(&five), printed(&five), "{five}");
                        checked += 1;
                    }
                }
            }
        }
        assert_eq!(checked, pieces.len().pow(4));
        for ip in ["", "...", "1.2.3.4.", ".1.2.3.4", "::1", "1.2.3.4/32"] {
            assert!(!is_printed_ipv4(ip), "{ip}");
        }
    }
}
