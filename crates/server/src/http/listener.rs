//! Where `keyward serve` listens (`KEYWARD_BIND`): a TCP address, or a Unix domain
//! socket (`unix:/run/keyward/keyward.sock`) for a gateway on the same host, which
//! then reaches keyward without the loopback TCP stack.
//!
//! The socket file is made owner- and group-writable only (0660: the gateway's user
//! joins keyward's group), is refused while a live server holds it, replaces one left
//! by a server that did not stop cleanly, and is removed when the server stops. It is
//! created under a temporary name, given its mode, and only then linked to its place
//! (a link fails if anything is there): no client can connect while the mode is still
//! the umask's, and two servers starting at once cannot both take the path.

use std::fmt;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use tokio::net::{TcpListener, UnixListener};

/// The longest path a Unix socket address holds (`sun_path`, less its final NUL).
const MAX_SOCKET_PATH: usize = 107;
/// The socket file's mode: the owner and its group (the gateway) may connect.
const SOCKET_MODE: u32 = 0o660;

/// What `KEYWARD_BIND` names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Bind {
    Tcp(SocketAddr),
    Unix(PathBuf),
}

impl FromStr for Bind {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        if let Some(path) = text.strip_prefix("unix:") {
            if path.starts_with('@') || path.contains('\0') {
                return Err(
                    "abstract sockets (unix:@name) are not supported: give a file's path".into(),
                );
            }
            if !path.starts_with('/')
                || path.ends_with('/')
                || path.ends_with("/.")
                || path.ends_with("/..")
            {
                return Err(
                    "unix: needs the socket file's absolute path (unix:/run/keyward/keyward.sock)"
                        .into(),
                );
            }
            if path.len() > MAX_SOCKET_PATH {
                return Err(format!(
                    "a Unix socket's path holds at most {MAX_SOCKET_PATH} bytes; this one has {}: choose a shorter one",
                    path.len()
                ));
            }
            return Ok(Self::Unix(PathBuf::from(path)));
        }
        text.parse().map(Self::Tcp).map_err(|_| {
            "expected host:port (127.0.0.1:8080, [::1]:8080, 0.0.0.0:8080) or unix:/path/to/keyward.sock".into()
        })
    }
}

impl fmt::Display for Bind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Tcp(address) => write!(f, "{address}"),
            Self::Unix(path) => write!(f, "unix:{}", path.display()),
        }
    }
}

/// The peer every connection over the Unix socket counts as: a process on this host,
/// like a gateway on loopback (a trusted proxy by default, `KEYWARD_TRUSTED_PROXIES`).
pub const UNIX_PEER: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::LOCALHOST), 0);

/// A bound listener; a Unix socket's file is removed when this is dropped.
pub enum Listener {
    Tcp(TcpListener),
    Unix(UnixListener, SocketFile),
}

impl Listener {
    /// Binds `bind`; must run inside a Tokio runtime. The error says what to do.
    pub async fn bind(bind: &Bind) -> anyhow::Result<Self> {
        match bind {
            Bind::Tcp(address) => TcpListener::bind(address)
                .await
                .map(Self::Tcp)
                .map_err(|e| {
                    let hint = match e.kind() {
                        io::ErrorKind::AddrInUse => {
                            "; another program (another keyward?) listens there: stop it, or choose \
                             another address with KEYWARD_BIND (or --bind)"
                        }
                        _ => "",
                    };
                    anyhow::anyhow!("cannot listen on {address}: {e}{hint}")
                }),
            Bind::Unix(path) => bind_unix(path)
                .await
                .map(|(listener, file)| Self::Unix(listener, file))
                .map_err(|e| anyhow::anyhow!("cannot listen on unix:{}: {e}", path.display())),
        }
    }

    /// Where clients reach it, for the log: `http://127.0.0.1:8080` or `unix:/path`.
    pub fn describe(&self) -> String {
        match self {
            Self::Tcp(listener) => match listener.local_addr() {
                Ok(address) => format!("http://{address}"),
                Err(_) => "http://(unknown)".into(),
            },
            Self::Unix(_, file) => format!("unix:{}", file.path.display()),
        }
    }
}

/// The socket file this server made; removed on drop if it is still this one (not a
/// file another server put there since).
pub struct SocketFile {
    path: PathBuf,
    device: u64,
    inode: u64,
}

impl Drop for SocketFile {
    fn drop(&mut self) {
        let ours = std::fs::symlink_metadata(&self.path)
            .is_ok_and(|meta| meta.dev() == self.device && meta.ino() == self.inode);
        if ours && let Err(err) = std::fs::remove_file(&self.path) {
            tracing::warn!(path = %self.path.display(), error = %err, "could not remove the socket file");
        }
    }
}

async fn bind_unix(path: &Path) -> io::Result<(UnixListener, SocketFile)> {
    let dir = path.parent().unwrap_or(Path::new("/"));
    let meta = std::fs::metadata(dir)?;
    if meta.permissions().mode() & 0o002 != 0 {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "{} is writable by every user: once keyward stops, another user could put a socket of their own in its place and receive the proxy's requests; use a directory of keyward's own, such as /run/keyward",
                dir.display()
            ),
        ));
    }
    // One server at a time between finding the path free (or stale) and taking it:
    // two starting at once cannot remove each other's socket.
    let guard = std::fs::File::open(dir)?;
    rustix::fs::flock(&guard, rustix::fs::FlockOperation::LockExclusive)?;
    clear_stale(path).await?;
    // Made in a directory of its own (0700), given its mode there, then linked into
    // place: no one else can connect before the mode is set, or swap the file for
    // something else to be given that mode.
    let mut random = [0_u8; 6];
    getrandom::fill(&mut random).map_err(io::Error::other)?;
    let suffix: String = random.iter().map(|b| format!("{b:02x}")).collect();
    let private = dir.join(format!(".keyward-{suffix}"));
    std::fs::DirBuilder::new().mode(0o700).create(&private)?;
    let temporary = private.join("s");
    let placed = place(&temporary, path);
    // The temporary name and its directory go whatever happened: the listener keeps
    // the socket, and the link its file.
    let _ = std::fs::remove_file(&temporary);
    let _ = std::fs::remove_dir(&private);
    drop(guard);
    placed
}

fn place(temporary: &Path, path: &Path) -> io::Result<(UnixListener, SocketFile)> {
    if temporary.as_os_str().len() > MAX_SOCKET_PATH {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "the socket is made first under a temporary name {} bytes long, more than a socket's {MAX_SOCKET_PATH}: choose a shorter directory",
                temporary.as_os_str().len()
            ),
        ));
    }
    let listener = UnixListener::bind(temporary)?;
    std::fs::set_permissions(temporary, std::fs::Permissions::from_mode(SOCKET_MODE))?;
    let meta = std::fs::symlink_metadata(temporary)?;
    std::fs::hard_link(temporary, path).map_err(|e| match e.kind() {
        io::ErrorKind::AlreadyExists => in_use(),
        _ => e,
    })?;
    Ok((
        listener,
        SocketFile {
            path: path.to_owned(),
            device: meta.dev(),
            inode: meta.ino(),
        },
    ))
}

/// Removes a socket file no server listens on (left by one that was killed); refuses
/// one a server answers on (or that does not answer within a second: a server too
/// busy to accept), and anything that is not a socket.
async fn clear_stale(path: &Path) -> io::Result<()> {
    use std::os::unix::fs::FileTypeExt;
    let meta = match std::fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    if !meta.file_type().is_socket() {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            "something that is not a socket is there; it is left as it is: remove it, or choose another path",
        ));
    }
    let connect = tokio::net::UnixStream::connect(path);
    match tokio::time::timeout(std::time::Duration::from_secs(1), connect).await {
        Ok(Err(e)) if e.kind() == io::ErrorKind::ConnectionRefused => {
            tracing::info!(path = %path.display(), "removing a socket file no server listens on");
            std::fs::remove_file(path)
        }
        Ok(Err(e)) => Err(e),
        Ok(Ok(_)) | Err(_) => Err(in_use()),
    }
}

fn in_use() -> io::Error {
    io::Error::new(
        io::ErrorKind::AddrInUse,
        "another server (another keyward?) listens on this socket: stop it, or choose another path",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binds_are_addresses_or_unix_socket_paths() {
        assert_eq!(
            "127.0.0.1:8080".parse::<Bind>(),
            Ok(Bind::Tcp("127.0.0.1:8080".parse().unwrap()))
        );
        assert_eq!(
            "unix:/run/keyward/keyward.sock".parse::<Bind>(),
            Ok(Bind::Unix("/run/keyward/keyward.sock".into()))
        );
        assert_eq!(
            "unix:/run/k.sock".parse::<Bind>().unwrap().to_string(),
            "unix:/run/k.sock"
        );
        for wrong in [
            "",
            "8080",
            "localhost:8080",
            "unix:",
            "unix:/run/",
            "unix:@abstract",
            "unix:keyward.sock",
            "unix: /run/k.sock",
            "unix:/run/k/..",
            "unix:/run/k/.",
        ] {
            assert!(wrong.parse::<Bind>().is_err(), "{wrong:?}");
        }
        let long = format!("unix:/{}", "x".repeat(MAX_SOCKET_PATH));
        assert!(
            long.parse::<Bind>()
                .unwrap_err()
                .contains("at most 107 bytes")
        );
    }
}
