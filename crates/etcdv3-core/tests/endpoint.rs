//! Tests of endpoint parsing.

use std::collections::HashSet;

use etcdv3_core::endpoints::endpoint::{Endpoint, EndpointErrorReason, Scheme};
use proptest::prelude::*;

#[test]
fn accepted_forms() {
    // input, scheme, host, port, authority, display
    let cases = [
        (
            "http://localhost:2379",
            Scheme::Http,
            "localhost",
            2379,
            "localhost:2379",
            "http://localhost:2379",
        ),
        (
            "https://etcd-0.example.com:2379",
            Scheme::Https,
            "etcd-0.example.com",
            2379,
            "etcd-0.example.com:2379",
            "https://etcd-0.example.com:2379",
        ),
        (
            "localhost:2379",
            Scheme::Http,
            "localhost",
            2379,
            "localhost:2379",
            "http://localhost:2379",
        ),
        (
            "127.0.0.1:1",
            Scheme::Http,
            "127.0.0.1",
            1,
            "127.0.0.1:1",
            "http://127.0.0.1:1",
        ),
        (
            "[::1]:2379",
            Scheme::Http,
            "::1",
            2379,
            "[::1]:2379",
            "http://[::1]:2379",
        ),
        (
            "http://[::1]:2379",
            Scheme::Http,
            "::1",
            2379,
            "[::1]:2379",
            "http://[::1]:2379",
        ),
        (
            "https://[2001:db8::1]:65535/",
            Scheme::Https,
            "2001:db8::1",
            65535,
            "[2001:db8::1]:65535",
            "https://[2001:db8::1]:65535",
        ),
        (
            "http://10.0.0.1:2379/",
            Scheme::Http,
            "10.0.0.1",
            2379,
            "10.0.0.1:2379",
            "http://10.0.0.1:2379",
        ),
        (
            "HTTP://EtCd:2379",
            Scheme::Http,
            "etcd",
            2379,
            "etcd:2379",
            "http://etcd:2379",
        ),
        (
            "etcd_node-1:2379",
            Scheme::Http,
            "etcd_node-1",
            2379,
            "etcd_node-1:2379",
            "http://etcd_node-1:2379",
        ),
        (
            "[0:0:0:0:0:0:0:1]:2379",
            Scheme::Http,
            "::1",
            2379,
            "[::1]:2379",
            "http://[::1]:2379",
        ),
    ];
    for (input, scheme, host, port, authority, display) in cases {
        let ep = Endpoint::parse(input).unwrap_or_else(|e| panic!("{input}: {e}"));
        assert_eq!(ep.scheme(), scheme, "{input}");
        assert_eq!(ep.host(), host, "{input}");
        assert_eq!(ep.port(), port, "{input}");
        assert_eq!(ep.authority(), authority, "{input}");
        assert_eq!(ep.to_string(), display, "{input}");
        assert_eq!(ep.uri_prefix(), display, "{input}");
        assert_eq!(ep.is_tls(), scheme == Scheme::Https, "{input}");
        let via_from_str: Endpoint = input.parse().unwrap();
        assert_eq!(via_from_str, ep);
        // Display re-parses to the same endpoint.
        assert_eq!(Endpoint::parse(&ep.to_string()).unwrap(), ep);
    }
}

#[test]
fn rejected_forms() {
    use EndpointErrorReason as R;
    type Check = fn(&R) -> bool;
    let cases: &[(&str, Check)] = &[
        ("", |r| *r == R::Empty),
        ("   ", |r| *r == R::Whitespace),
        ("local host:2379", |r| *r == R::Whitespace),
        ("localhost:2379 ", |r| *r == R::Whitespace),
        ("localhost", |r| *r == R::MissingPort),
        ("http://localhost", |r| *r == R::MissingPort),
        ("localhost:", |r| *r == R::MissingPort),
        ("localhost:0", |r| matches!(r, R::InvalidPort(_))),
        ("localhost:65536", |r| matches!(r, R::InvalidPort(_))),
        ("localhost:99999999", |r| matches!(r, R::InvalidPort(_))),
        ("localhost:+80", |r| matches!(r, R::InvalidPort(_))),
        ("localhost:abc", |r| matches!(r, R::InvalidPort(_))),
        ("unix://", |r| *r == R::MissingPath),
        ("UNIXS://", |r| *r == R::MissingPath),
        ("unix:///run/etcd sock", |r| *r == R::Whitespace),
        (
            "unixx:///var/run/etcd.sock",
            |r| matches!(r, R::UnsupportedScheme(s) if s == "unixx"),
        ),
        (
            "grpc://localhost:2379",
            |r| matches!(r, R::UnsupportedScheme(s) if s == "grpc"),
        ),
        ("ftp://h:1", |r| matches!(r, R::UnsupportedScheme(_))),
        ("http://localhost:2379/v3", |r| *r == R::Path),
        ("http://localhost:2379//", |r| *r == R::Path),
        ("http://localhost:2379?x=1", |r| *r == R::Path),
        ("http://user:pw@localhost:2379", |r| *r == R::UserInfo),
        ("http://user@localhost:2379", |r| *r == R::UserInfo),
        ("[::1", |r| matches!(r, R::InvalidIpv6(_))),
        ("[::g]:2379", |r| matches!(r, R::InvalidIpv6(_))),
        ("[1.2.3.4]:2379", |r| matches!(r, R::InvalidIpv6(_))),
        ("[::1]", |r| *r == R::MissingPort),
        ("[::1]2379", |r| matches!(r, R::InvalidHost(_))),
        ("::1:2379", |r| *r == R::UnbracketedIpv6),
        ("fe80::1:2379", |r| *r == R::UnbracketedIpv6),
        (":2379", |r| *r == R::MissingHost),
        ("http://:2379", |r| *r == R::MissingHost),
        ("http://", |r| *r == R::MissingHost),
        ("256.0.0.1:2379", |r| matches!(r, R::InvalidHost(_))),
        ("1.2.3:2379", |r| matches!(r, R::InvalidHost(_))),
        ("-bad.example:2379", |r| matches!(r, R::InvalidHost(_))),
        ("a..b:2379", |r| matches!(r, R::InvalidHost(_))),
        ("h%41:2379", |r| matches!(r, R::InvalidHost(_))),
    ];
    for (input, check) in cases {
        let err = Endpoint::parse(input).expect_err(input);
        assert!(
            check(err.reason()),
            "{input:?}: unexpected reason {:?}",
            err.reason()
        );
        assert_eq!(err.input(), *input);
        let msg = err.to_string();
        assert!(
            msg.contains(&format!("{input:?}")),
            "message {msg:?} must name the input"
        );
    }
}

#[test]
fn unix_socket_forms() {
    // input, scheme, path, display
    let cases = [
        (
            "unix:///run/etcd.sock",
            Scheme::Unix,
            "/run/etcd.sock",
            "unix:///run/etcd.sock",
        ),
        (
            "unix://localhost:2379",
            Scheme::Unix,
            "localhost:2379",
            "unix://localhost:2379",
        ),
        (
            "UNIX://Rel/Path",
            Scheme::Unix,
            "Rel/Path",
            "unix://Rel/Path",
        ),
        (
            "unixs:///tmp/x.sock",
            Scheme::Unixs,
            "/tmp/x.sock",
            "unixs:///tmp/x.sock",
        ),
    ];
    for (input, scheme, path, display) in cases {
        let ep = Endpoint::parse(input).unwrap();
        assert_eq!(ep.scheme(), scheme, "{input}");
        assert!(ep.is_unix(), "{input}");
        assert_eq!(ep.unix_path(), Some(path), "{input}");
        assert_eq!(ep.is_tls(), scheme == Scheme::Unixs, "{input}");
        // What goes on the wire: grpc-go's authority for unix sockets.
        assert_eq!(ep.authority(), "localhost", "{input}");
        assert_eq!(ep.host(), "localhost", "{input}");
        assert_eq!(ep.port(), 0, "{input}");
        let prefix = if ep.is_tls() {
            "https://localhost"
        } else {
            "http://localhost"
        };
        assert_eq!(ep.uri_prefix(), prefix, "{input}");
        assert_eq!(ep.to_string(), display, "{input}");
        assert_eq!(Endpoint::parse(&ep.to_string()).unwrap(), ep, "{input}");
    }
    // A TCP endpoint is not a unix one, and the same path under the two
    // unix schemes gives different endpoints.
    assert_eq!(Endpoint::parse("localhost:2379").unwrap().unix_path(), None);
    assert_ne!(
        Endpoint::parse("unix:///a").unwrap(),
        Endpoint::parse("unixs:///a").unwrap()
    );
    // `unix:2379` (no `//`) stays host `unix`, port 2379, as before.
    let ep = Endpoint::parse("unix:2379").unwrap();
    assert_eq!(
        (ep.scheme(), ep.host(), ep.port()),
        (Scheme::Http, "unix", 2379)
    );
}

proptest! {
    #[test]
    fn unix_paths_round_trip(path in "[a-zA-Z0-9/._:-]{1,40}", tls in any::<bool>()) {
        let scheme = if tls { "unixs" } else { "unix" };
        let ep = Endpoint::parse(&format!("{scheme}://{path}")).unwrap();
        prop_assert_eq!(ep.unix_path(), Some(path.as_str()));
        prop_assert_eq!(ep.is_tls(), tls);
        prop_assert_eq!(Endpoint::parse(&ep.to_string()).unwrap(), ep);
    }
}

#[test]
fn equal_endpoints_hash_equal() {
    let a = Endpoint::parse("http://LOCALHOST:2379/").unwrap();
    let b = Endpoint::parse("localhost:2379").unwrap();
    let c = Endpoint::parse("https://localhost:2379").unwrap();
    let set: HashSet<Endpoint> = [a.clone(), b.clone(), c.clone()].into_iter().collect();
    assert_eq!(a, b);
    assert_ne!(a, c);
    assert_eq!(set.len(), 2);
}

proptest! {
    #[test]
    fn parse_never_panics(s in any::<String>()) {
        if let Ok(ep) = Endpoint::parse(&s) {
            prop_assert_eq!(Endpoint::parse(&ep.to_string()).unwrap(), ep.clone());
            prop_assert!(ep.port() != 0 || ep.unix_path().is_some());
        }
    }

    #[test]
    fn hostnames_and_ports_round_trip(
        host in "[a-z][a-z0-9-]{0,10}[a-z0-9](\\.[a-z][a-z0-9]{0,5}){0,3}",
        port in 1u16..,
        tls in any::<bool>(),
    ) {
        let scheme = if tls { "https" } else { "http" };
        let ep = Endpoint::parse(&format!("{scheme}://{host}:{port}")).unwrap();
        prop_assert_eq!(ep.host(), host.as_str());
        prop_assert_eq!(ep.port(), port);
        prop_assert_eq!(ep.is_tls(), tls);
    }

    #[test]
    fn ipv6_round_trip(segs in prop::array::uniform8(any::<u16>()), port in 1u16..) {
        let addr = std::net::Ipv6Addr::from(segs);
        let ep = Endpoint::parse(&format!("[{addr}]:{port}")).unwrap();
        prop_assert_eq!(ep.host(), addr.to_string());
        prop_assert_eq!(ep.authority(), format!("[{addr}]:{port}"));
    }
}
