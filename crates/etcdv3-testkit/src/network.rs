//! Network faults: peer isolation and client-link blackholes and resets, through the proxies.

use crate::{Cluster, TestkitError};

impl Cluster {
    /// Cuts member `i` off from all its peers in both directions: every peer connection from
    /// or to `i` is closed and new ones are refused, until [`Cluster::heal`]. Its client
    /// proxy keeps forwarding, so clients still reach it.
    pub fn isolate(&self, i: usize) -> Result<(), TestkitError> {
        self.check(i)?;
        self.net.set_isolated(i, true);
        for (j, slot) in self.slots.iter().enumerate() {
            slot.peer_proxy
                .kill_where(|from| j == i || from == Some(i) || from.is_none());
        }
        Ok(())
    }

    /// Lets peer traffic of member `i` through again (etcd redials on its own).
    pub fn heal(&self, i: usize) -> Result<(), TestkitError> {
        self.check(i)?;
        self.net.set_isolated(i, false);
        Ok(())
    }

    /// Turns member `i`'s client proxy into a dead network path: open connections stay open
    /// but no byte moves in either direction, and new connections are accepted and then
    /// hang. Held bytes are delivered after [`Cluster::unblackhole_client`], as TCP would
    /// after a healed partition.
    pub fn blackhole_client(&self, i: usize) -> Result<(), TestkitError> {
        self.check(i)?;
        self.slots[i].client_proxy.set_blackholed(true);
        Ok(())
    }

    /// Undoes [`Cluster::blackhole_client`].
    pub fn unblackhole_client(&self, i: usize) -> Result<(), TestkitError> {
        self.check(i)?;
        self.slots[i].client_proxy.set_blackholed(false);
        Ok(())
    }

    /// Makes member `i`'s client link slow: what the member sends to clients flows at
    /// `bytes_per_sec` at most (`None`: unlimited again), on open and new connections. What
    /// it sends faster queues in the socket buffers, as on a slow link, so an HTTP/2 PING
    /// answer waits behind a large response.
    pub fn limit_client_bandwidth(
        &self,
        i: usize,
        bytes_per_sec: Option<u64>,
    ) -> Result<(), TestkitError> {
        self.check(i)?;
        self.slots[i].client_proxy.set_down_rate(bytes_per_sec);
        Ok(())
    }

    /// Closes every current client connection of member `i`: the client side sees a TCP
    /// RST (SO_LINGER 0), etcd a FIN. New connections work as before. Returns how many
    /// connections were reset.
    pub fn reset_client(&self, i: usize) -> Result<usize, TestkitError> {
        self.check(i)?;
        Ok(self.slots[i].client_proxy.reset_all())
    }
}
