//! The timing of DNS SRV discovery (`_etcd-client._tcp.<domain>` and
//! `_etcd-client-ssl._tcp.<domain>`): the client asks its nameservers one at
//! a time, the first that answers decides, and each gets
//! [`SRV_QUERY_TIMEOUT`].

use std::time::Duration;

/// How long one nameserver gets to answer one SRV question before the next
/// one is asked (glibc's and Go's default `timeout:5` would make a dead
/// nameserver cost 10 s per name).
pub const SRV_QUERY_TIMEOUT: Duration = Duration::from_secs(2);
