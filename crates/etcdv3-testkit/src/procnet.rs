//! Finds which process owns the dialing end of a loopback TCP connection, via `/proc`.
//!
//! Every member dials a peer through the same advertised proxy URL, so the peer proxy cannot
//! tell the dialer from the address. It can from the dialer's source port: the connection's
//! other end is a socket with local port `sport` and remote port `proxy_port`; `/proc/net/tcp`
//! (and `tcp6`) maps that pair to a socket inode, and the owner is the process with an fd
//! linking to `socket:[inode]`.

use std::fs;

/// Parses the hex port after the `:` of a `/proc/net/tcp` address field.
fn port_of(field: &str) -> Option<u16> {
    let (_, port) = field.rsplit_once(':')?;
    u16::from_str_radix(port, 16).ok()
}

/// Inode of the socket whose local port is `local` and remote port is `remote`.
fn socket_inode(local: u16, remote: u16) -> Option<u64> {
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let cols: Vec<&str> = line.split_whitespace().collect();
            if cols.len() < 10 {
                continue;
            }
            if port_of(cols[1]) == Some(local) && port_of(cols[2]) == Some(remote) {
                if let Ok(inode) = cols[9].parse::<u64>() {
                    if inode != 0 {
                        return Some(inode);
                    }
                }
            }
        }
    }
    None
}

fn pid_owns(pid: u32, link: &str) -> bool {
    let Ok(dir) = fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    dir.flatten().any(|entry| {
        fs::read_link(entry.path())
            .map(|target| target.as_os_str() == link)
            .unwrap_or(false)
    })
}

/// Index into `pids` of the process owning the socket `127.0.0.1:sport → :proxy_port`, if any.
pub(crate) fn owner_of(sport: u16, proxy_port: u16, pids: &[Option<u32>]) -> Option<usize> {
    let inode = socket_inode(sport, proxy_port)?;
    let link = format!("socket:[{inode}]");
    pids.iter()
        .enumerate()
        .find_map(|(i, pid)| pid.filter(|&p| pid_owns(p, &link)).map(|_| i))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{TcpListener, TcpStream};

    #[test]
    fn finds_own_process_as_dialer() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let c = TcpStream::connect(("127.0.0.1", port)).unwrap();
        let (_s, from) = l.accept().unwrap();
        assert_eq!(from.port(), c.local_addr().unwrap().port());
        let me = std::process::id();
        assert_eq!(
            owner_of(from.port(), port, &[None, Some(1), Some(me)]),
            Some(2)
        );
        assert_eq!(owner_of(from.port(), port, &[Some(1)]), None);
        // Wrong remote port: no such socket.
        assert_eq!(
            owner_of(from.port(), port.wrapping_add(1), &[Some(me)]),
            None
        );
    }
}
