//! The ports file and the pid file, written as nats-server writes them.
//!
//! Tools that start a server with `--ports_file_dir DIR` wait for
//! `DIR/<executable base name>_<pid>.ports` to appear and read the client URLs from it, so the
//! name, the JSON field names and the URL list follow nats-server (server/server.go `Ports`,
//! `portFile`, `resolveHostPorts`).

use std::ffi::OsStr;
use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// URLs where the server can be reached; empty lists are left out of the JSON, as in
/// nats-server (`omitempty`).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Ports {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nats: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub monitoring: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cluster: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub profile: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub websocket: Vec<String>,
}

/// `scheme://host:port` for a bound listener. An unspecified address (0.0.0.0 or ::) becomes
/// one URL per address of every interface, loopback and IPv6 included, grouped by interface
/// in index order, as nats-server lists them.
pub fn urls(scheme: &str, addr: SocketAddr) -> Vec<String> {
    let port = addr.port();
    let ips = if addr.ip().is_unspecified() {
        interface_ips()
    } else {
        vec![addr.ip()]
    };
    ips.into_iter()
        .map(|ip| format!("{scheme}://{}", host_port(ip, port)))
        .collect()
}

/// Go's net.JoinHostPort: IPv6 in brackets.
fn host_port(ip: IpAddr, port: u16) -> String {
    match ip {
        IpAddr::V4(v4) => format!("{v4}:{port}"),
        IpAddr::V6(v6) => format!("[{v6}]:{port}"),
    }
}

/// `<exe>_<pid>.ports`, `exe` being the base name the process was started as.
pub fn file_name(exe: &OsStr, pid: u32) -> String {
    let base = Path::new(exe)
        .file_name()
        .map(|b| b.to_string_lossy().into_owned())
        .unwrap_or_else(|| "tachyon".to_string());
    format!("{base}_{pid}.ports")
}

/// The ports file path for this process in `dir`.
pub fn path_in(dir: &Path) -> PathBuf {
    let argv0 = std::env::args_os().next().unwrap_or_default();
    dir.join(file_name(&argv0, std::process::id()))
}

/// Writes the ports file for this process and returns its path.
///
/// The JSON goes to a temporary name first and is renamed into place, so a tool polling for
/// the file never reads half of it.
pub fn write(dir: &Path, ports: &Ports) -> io::Result<PathBuf> {
    let path = path_in(dir);
    write_at(&path, ports)?;
    Ok(path)
}

fn write_at(path: &Path, ports: &Ports) -> io::Result<()> {
    let json = serde_json::to_vec(ports).map_err(io::Error::other)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.tmp"));
    let result = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o666)
        .open(&tmp)
        .and_then(|mut f| f.write_all(&json))
        .and_then(|()| fs::rename(&tmp, path));
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Removes the ports file at shutdown, as nats-server does.
pub fn remove(path: &Path) -> io::Result<()> {
    fs::remove_file(path)
}

/// Writes this process's pid, without a newline, as nats-server's `-P` does. nats-server
/// leaves the file in place at exit.
pub fn write_pid_file(path: &Path) -> io::Result<()> {
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?
        .write_all(std::process::id().to_string().as_bytes())
}

/// Every IPv4 and IPv6 address of every interface, ordered like Go's net.Interfaces() and
/// Addrs(): by interface index, then in the kernel's order within an interface.
fn interface_ips() -> Vec<IpAddr> {
    let mut found: Vec<(u32, IpAddr)> = Vec::new();
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs writes a list head we own into `head`; on failure nothing is
    // allocated and we return early.
    if unsafe { libc::getifaddrs(&mut head) } != 0 {
        return Vec::new();
    }
    let mut cur = head;
    while !cur.is_null() {
        // SAFETY: `cur` is a node of the list getifaddrs returned, alive until freeifaddrs
        // below; its name is a NUL-terminated string and its address, when non-null, points
        // to a sockaddr whose family field says which sockaddr_* layout it has.
        unsafe {
            let ifa = &*cur;
            if let Some(ip) = sockaddr_ip(ifa.ifa_addr) {
                let index = if ifa.ifa_name.is_null() {
                    0
                } else {
                    libc::if_nametoindex(ifa.ifa_name)
                };
                found.push((index, ip));
            }
            cur = ifa.ifa_next;
        }
    }
    // SAFETY: `head` came from a successful getifaddrs and is freed exactly once; nothing
    // borrowed from the list outlives this call (addresses were copied out).
    unsafe { libc::freeifaddrs(head) };
    found.sort_by_key(|&(index, _)| index); // stable: keeps kernel order within an interface
    found.into_iter().map(|(_, ip)| ip).collect()
}

/// # Safety
/// `sa` is null or points to a valid sockaddr of the size its family implies.
unsafe fn sockaddr_ip(sa: *const libc::sockaddr) -> Option<IpAddr> {
    if sa.is_null() {
        return None;
    }
    match i32::from((*sa).sa_family) {
        libc::AF_INET => {
            let sin = &*(sa as *const libc::sockaddr_in);
            Some(IpAddr::V4(Ipv4Addr::from(u32::from_be(
                sin.sin_addr.s_addr,
            ))))
        }
        libc::AF_INET6 => {
            let sin6 = &*(sa as *const libc::sockaddr_in6);
            Some(IpAddr::V6(Ipv6Addr::from(sin6.sin6_addr.s6_addr)))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("tachyon-portsfile-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
        dir
    }

    #[test]
    fn json_matches_nats_server() {
        let ports = Ports {
            nats: vec!["nats://127.0.0.1:4222".into()],
            monitoring: vec!["http://127.0.0.1:8222".into()],
            ..Ports::default()
        };
        assert_eq!(
            serde_json::to_string(&ports).unwrap_or_default(),
            r#"{"nats":["nats://127.0.0.1:4222"],"monitoring":["http://127.0.0.1:8222"]}"#
        );
        assert_eq!(
            serde_json::to_string(&Ports::default()).unwrap_or_default(),
            "{}"
        );
    }

    #[test]
    fn file_named_after_executable_base_name_and_pid() {
        assert_eq!(
            file_name(OsStr::new("/usr/local/bin/nats-server"), 42),
            "nats-server_42.ports"
        );
        assert_eq!(file_name(OsStr::new("tachyon"), 7), "tachyon_7.ports");
        assert_eq!(file_name(OsStr::new(""), 7), "tachyon_7.ports");
        let p = path_in(Path::new("/d"));
        assert!(p
            .to_string_lossy()
            .ends_with(&format!("_{}.ports", std::process::id())));
        assert!(p.starts_with("/d"));
    }

    #[test]
    fn write_then_remove() {
        let dir = temp_dir("write");
        let ports = Ports {
            nats: urls(
                "nats",
                "127.0.0.1:5000".parse().unwrap_or_else(|e| panic!("{e}")),
            ),
            ..Ports::default()
        };
        let path = write(&dir, &ports).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(path.parent(), Some(dir.as_path()));
        let text = fs::read_to_string(&path).unwrap_or_default();
        assert_eq!(text, r#"{"nats":["nats://127.0.0.1:5000"]}"#);
        // No temporary file is left behind.
        assert_eq!(fs::read_dir(&dir).map(|d| d.count()).unwrap_or(0), 1);
        remove(&path).unwrap_or_else(|e| panic!("{e}"));
        assert!(!path.exists());
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn write_into_missing_dir_fails() {
        assert!(write(Path::new("/nonexistent-tachyon-dir"), &Ports::default()).is_err());
    }

    #[test]
    fn pid_file_holds_pid_without_newline() {
        let dir = temp_dir("pid");
        let path = dir.join("x.pid");
        fs::write(&path, "stale contents that are longer").unwrap_or_else(|e| panic!("{e}"));
        write_pid_file(&path).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            fs::read_to_string(&path).unwrap_or_default(),
            std::process::id().to_string()
        );
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn specific_address_is_listed_alone() {
        let v4: SocketAddr = "127.0.0.1:4222".parse().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(urls("nats", v4), ["nats://127.0.0.1:4222"]);
        let v6: SocketAddr = "[::1]:4222".parse().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(urls("nats", v6), ["nats://[::1]:4222"]);
    }

    #[test]
    fn unspecified_address_lists_every_interface_address() {
        let any: SocketAddr = "0.0.0.0:4222".parse().unwrap_or_else(|e| panic!("{e}"));
        let list = urls("nats", any);
        // Loopback has the lowest interface index, so nats-server lists it first.
        assert_eq!(
            list.first().map(String::as_str),
            Some("nats://127.0.0.1:4222")
        );
        assert!(list.iter().all(|u| u.ends_with(":4222")));
        assert!(!list.iter().any(|u| u.contains("0.0.0.0")));
        // IPv6 addresses are included too (bracketed) when the host has any.
        let has_v6 = fs::read_to_string("/proc/net/if_inet6")
            .map(|s| !s.trim().is_empty())
            .unwrap_or(false);
        assert_eq!(list.iter().any(|u| u.contains('[')), has_v6);
        let any6: SocketAddr = "[::]:4222".parse().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(urls("nats", any6), list);
    }
}
